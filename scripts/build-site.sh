#!/usr/bin/env bash
# Builds the browser half of the web app into $INFERNET_SITE_ROOT:
# pkg/app.js + pkg/app_bg.wasm (hydrate build), pkg/app.css, and public/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERNET_ROOT"

cargo build -p app --lib --target wasm32-unknown-unknown --no-default-features \
  --features hydrate --profile wasm-release
site="$INFERNET_SITE_ROOT"
rm -rf "$site.tmp" && mkdir -p "$site.tmp/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site.tmp/pkg" --out-name app \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/app.wasm"
# binaryen from npm (scripts/npm), pinned; see setup.sh.
"$INFERNET_ROOT/scripts/npm/node_modules/.bin/wasm-opt" -Oz \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$site.tmp/pkg/app_bg.wasm" -o "$site.tmp/pkg/app_bg.opt.wasm"
mv "$site.tmp/pkg/app_bg.opt.wasm" "$site.tmp/pkg/app_bg.wasm"
cp style/main.css "$site.tmp/pkg/app.css"
cp -R public/. "$site.tmp/"
# The browser wallet's SDK (Breez, Spark; web build) and a QR encoder, from
# npm (scripts/npm, pinned): loaded only by the Wallet page, when opened.
npm_modules="$INFERNET_ROOT/scripts/npm/node_modules"
mkdir -p "$site.tmp/vendor/breez-sdk-spark" "$site.tmp/vendor/qrcode"
cp -R "$npm_modules/@breeztech/breez-sdk-spark/web/." "$site.tmp/vendor/breez-sdk-spark/"
cp "$npm_modules/qrcode-generator/dist/qrcode.mjs" "$site.tmp/vendor/qrcode/"
# The service worker's cache is named after this build, so a new build
# replaces the cached shell.
build_id="$(cat "$site.tmp/pkg/app_bg.wasm" "$site.tmp/pkg/app.js" "$site.tmp/pkg/app.css" | sha256sum | cut -c1-12)"
sed -i "s/__BUILD_ID__/$build_id/" "$site.tmp/sw.js"
# Brotli and gzip beside each asset, for the server to send as they are.
node "$INFERNET_ROOT/scripts/precompress.mjs" "$site.tmp/pkg" "$site.tmp/vendor"
rm -rf "$site" && mv "$site.tmp" "$site"
echo "site built in $site ($(du -h "$site/pkg/app_bg.wasm" | cut -f1) wasm)" >&2
