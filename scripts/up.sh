#!/usr/bin/env bash
# Sets up (idempotently), builds, and runs the whole platform locally: the
# server with its embedded SurrealDB, one CPU node serving every model in
# $INFERNET_MODELS_DIR (all-MiniLM-L6-v2, a tiny GPT-2 and a tensor demo
# after set-up), and the web app. Ctrl-C stops everything.
#   INFERNET_PORT (default 8080) and INFERNET_P2P_PORT (default 4001).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
# The very build scripts/test.sh makes (same command, same features), so
# that running one after the other compiles nothing again.
scripts/build-site.sh
cargo build --workspace --bins

port="${INFERNET_PORT:-8080}"
data="$INFERNET_ROOT/.data"
mkdir -p "$data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# --local-key-file: a private single-user deployment's own account and an
# API key for it (made once, reused; the file is 0600).
"$CARGO_TARGET_DIR/debug/server" --listen "127.0.0.1:$port" --data-dir "$data/server" \
  --p2p-port "${INFERNET_P2P_PORT:-4001}" --site-root "$INFERNET_SITE_ROOT" \
  --local-key-file "$data/server/local.key" \
  > "$data/server.out" 2> >(tee "$data/server.log" >&2) &
pids+=($!)
for _ in $(seq 1 120); do grep -q '"ready"' "$data/server.out" 2>/dev/null && break; sleep 0.5; done
grep -q '"ready"' "$data/server.out" || { echo "the server did not start; see $data/server.log" >&2; exit 1; }

"$CARGO_TARGET_DIR/debug/infernet-node" --server "http://127.0.0.1:$port" --models-dir "$INFERNET_MODELS_DIR" \
  --key-file "$data/node/node.key" > "$data/node.out" 2> >(tee "$data/node.log" >&2) &
pids+=($!)
for _ in $(seq 1 240); do grep -q '"ready"' "$data/node.out" 2>/dev/null && break; sleep 0.5; done
grep -q '"ready"' "$data/node.out" || { echo "the node did not start; see $data/node.log" >&2; exit 1; }

# Passkeys need a domain name: the app is at localhost, not 127.0.0.1.
url="http://localhost:$port"
key="$(cat "$data/server/local.key")"
# Jobs are paid from a balance. Without Lightning, the server's operator
# grants credit: the local account gets 100 000 sat once (the same key on
# the next start credits nothing). More: server --data-dir … admin credit.
acct="$(python3 -c 'import json, sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/api/v1/account", headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.load(urllib.request.urlopen(r))["id"])' "http://127.0.0.1:$port" "$key")"
"$CARGO_TARGET_DIR/debug/server" --data-dir "$data/server" admin credit "$acct" 100000000 \
  --key up-initial-credit --memo "scripts/up.sh: starting credit" >/dev/null
models="$(python3 -c 'import json, sys
for line in sys.stdin:
    try: print(", ".join(json.loads(line)["models"]))
    except (ValueError, KeyError): pass' < "$data/node.out")"
printf '\n\033[1mInfernet is up: %s\033[0m  (one CPU node serving %s; Ctrl-C stops)\n' "$url" "$models"
printf 'API key of the local account (also in %s):\n  export INFERNET_API_KEY=%s\n\n' "$data/server/local.key" "$key"
if [ -n "${DISPLAY:-}" ] && command -v xdg-open >/dev/null; then xdg-open "$url" >/dev/null 2>&1 || true; fi
wait -n "${pids[@]}"
