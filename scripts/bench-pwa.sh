#!/usr/bin/env bash
# The web app's benchmark on a phone profile: Lighthouse (npm `lighthouse`,
# installed into the cache on first use) with Debian's Chromium against a
# local server, and the first visit's transfer size. Builds what it needs.
# Goals: performance >= 90, accessibility >= 95, LCP < 2.5 s, < 400 KB.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERNET_ROOT"
lighthouse_dir="$INFERNET_CACHE/lighthouse-13.5.0"
if [ ! -f "$lighthouse_dir/node_modules/lighthouse/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$lighthouse_dir" lighthouse@13.5.0
fi
[ -f "$INFERNET_SITE_ROOT/build-id" ] || scripts/build-site.sh
cargo build -q --workspace --bins
mkdir -p e2e/artifacts
(cd e2e && LIGHTHOUSE_DIR="$lighthouse_dir" node lighthouse.mjs && node first-visit.mjs | tail -1)
