#!/usr/bin/env bash
# Builds the browser half of the web app into $INFERNET_SITE_ROOT:
# pkg/<build id>/{app.js, app_bg.wasm, app.css} (the hydrate build), the
# build id in build-id, public/ (service worker, manifest, icons) and the
# wallet's vendored SDK.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERNET_ROOT"

# The wasm is linked with its relocations so that tools/wasm-split can cut
# it at the lazy routes (app/src/routes.rs): the Nodes page's module loads
# first, every other page's code when it is first visited.
cargo build -q -p wasm-split
cargo rustc -p app --lib --target wasm32-unknown-unknown --no-default-features \
  --features hydrate --profile wasm-release -- -Clink-args=--emit-relocs
wasm_dir="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release"
site="$INFERNET_SITE_ROOT"
rm -rf "$site.tmp" && mkdir -p "$site.tmp/pkg/build"
out="$site.tmp/pkg/build"
"$CARGO_TARGET_DIR/debug/wasm-split" "$wasm_dir/app.wasm" "$out" "$wasm_dir/app_split.wasm"
wasm-bindgen --target web --no-typescript --keep-lld-exports --out-dir "$out" --out-name app \
  "$wasm_dir/app_split.wasm"
# binaryen from npm (scripts/npm), pinned; see setup.sh. After the split:
# it drops the relocations the splitter reads.
# One process per module, as many at once as there are cores.
printf '%s\0' "$out"/*.wasm | xargs -0 -n 1 -P "$(nproc)" sh -c '
  "$0" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue "$1" -o "$1.opt" &&
    mv "$1.opt" "$1"' "$INFERNET_ROOT/scripts/npm/node_modules/.bin/wasm-opt"
cp style/main.css "$out/app.css"
# The build's files live in a folder named after their content, which the
# server sends as immutable (a year in the browser's cache) and names in
# every page it renders: a new build is new URLs, never a stale mix.
build_id="$(cd "$out" && find . -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)"
mv "$out" "$site.tmp/pkg/$build_id"
printf '%s\n' "$build_id" >"$site.tmp/build-id"
# The previous build stays for pages (and service workers) that still name it.
if [ -f "$site/build-id" ]; then
  previous="$(cat "$site/build-id")"
  if [ "$previous" != "$build_id" ] && [ -d "$site/pkg/$previous" ]; then
    cp -R "$site/pkg/$previous" "$site.tmp/pkg/$previous"
  fi
fi
cp -R public/. "$site.tmp/"
# The browser wallet's SDK (Breez, Spark; web build) and a QR encoder, from
# npm (scripts/npm, pinned): loaded only by the Wallet page, when opened.
npm_modules="$INFERNET_ROOT/scripts/npm/node_modules"
mkdir -p "$site.tmp/vendor/breez-sdk-spark" "$site.tmp/vendor/qrcode"
cp -R "$npm_modules/@breeztech/breez-sdk-spark/web/." "$site.tmp/vendor/breez-sdk-spark/"
cp "$npm_modules/qrcode-generator/dist/qrcode.mjs" "$site.tmp/vendor/qrcode/"
# The service worker keeps this build's files and the app's icons (its
# cache is named after the build, so a new build replaces it).
shell_files="$(cd "$site.tmp" && {
  printf '/\n/manifest.webmanifest\n'
  find "pkg/$build_id" icons -type f | LC_ALL=C sort | sed 's|^|/|'
} | node -e 'const l = require("fs").readFileSync(0, "utf8").trim().split("\n"); process.stdout.write(JSON.stringify(l))')"
sed -i "s/__BUILD_ID__/$build_id/; s|__SHELL_FILES__|$shell_files|" "$site.tmp/sw.js"
# Brotli and gzip beside each asset, for the server to send as they are.
node "$INFERNET_ROOT/scripts/precompress.mjs" --cache "$INFERNET_CACHE/precompressed" \
  "$site.tmp/pkg/$build_id" "$site.tmp/vendor"
rm -rf "$site" && mv "$site.tmp" "$site"
echo "site built in $site: build $build_id ($(du -h "$site/pkg/$build_id/app_bg.wasm" | cut -f1) wasm)" >&2
