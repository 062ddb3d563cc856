#!/usr/bin/env bash
# Tests the HTTP API against its own OpenAPI document (GET /openapi.json)
# with schemathesis: a running server on the embedded SurrealDB, one CPU node
# serving the three models, an account with credit and its API key, and a
# browser session of another. Fails on any 5xx, any status the document does not list
# for the operation, any body or content type that does not match (so every
# error is in the project's shape, and OpenAI's under /v1), and any invalid
# input that is not refused.
#
# Expects the binaries built (cargo build --workspace --bins) and the venv
# with schemathesis (scripts/setup.sh).
#   INFERNET_API_EXAMPLES  test cases per operation and phase (default 25)
#   INFERNET_API_SEED      the run's seed (default 1: CI tries the same cases
#                          every run; pick another to explore)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

bin="$CARGO_TARGET_DIR/debug"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Waits for a process's one-line `ready` event on stdout; prints a field of it.
ready() { # file field
  for _ in $(seq 1 240); do
    if grep -q '"ready"' "$1" 2>/dev/null; then
      python3 -c 'import json, sys
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("event") == "ready": print(e.get(sys.argv[2]) or ""); break' "$1" "$2"
      return 0
    fi
    sleep 0.5
  done
  echo "not ready: $1" >&2
  return 1
}

"$bin/server" --listen 127.0.0.1:0 --p2p-port 0 --data-dir "$work/server" \
  --site-root "$INFERNET_SITE_ROOT" --local-key-file "$work/local.key" \
  --lightning test > "$work/server.out" 2> "$work/server.log" &
pids+=($!)
url="$(ready "$work/server.out" http)" || { tail -20 "$work/server.log" >&2; exit 1; }

"$bin/infernet-node" --server "$url" --models-dir "$INFERNET_MODELS_DIR" \
  --key-file "$work/node.key" > "$work/node.out" 2> "$work/node.log" &
pids+=($!)
ready "$work/node.out" peer_id > /dev/null || { tail -20 "$work/node.log" >&2; exit 1; }

key="$(cat "$work/local.key")"
account="$(python3 -c 'import json, sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/api/v1/account", headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.load(urllib.request.urlopen(r))["id"])' "$url" "$key")"
"$bin/server" --data-dir "$work/server" admin credit "$account" 100000000 \
  --key api-check --memo "scripts/api-check.sh" > /dev/null

# The routes that take a browser session (managing the account) refuse an
# API key: schemathesis also holds the session cookie of a second account,
# signed in with LNURL-auth as a wallet would, with credit too, and sends
# each operation the credential its `security` asks for (and none, to
# check that it is refused without). Requests carry `Sec-Fetch-Site:
# same-origin`, as the app's pages do (the CSRF check).
cookie="$(python scripts/lnurl_sign_in.py "$url")"
session_account="$(python3 -c 'import json, sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/api/v1/account", headers={"Cookie": sys.argv[2]})
print(json.load(urllib.request.urlopen(r))["id"])' "$url" "$cookie")"
"$bin/server" --data-dir "$work/server" admin credit "$session_account" 100000000 \
  --key api-check-session --memo "scripts/api-check.sh" > /dev/null
export INFERNET_API_CHECK_KEY="$key" INFERNET_API_CHECK_SESSION="${cookie#infernet_session=}"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
run() { # what, then schemathesis's options
  local what="$1"
  shift
  echo "== schemathesis: $what (seed ${INFERNET_API_SEED:-1})"
  schemathesis --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks "$checks" \
    --header "Sec-Fetch-Site: same-origin" \
    --max-examples "${INFERNET_API_EXAMPLES:-25}" \
    --seed "${INFERNET_API_SEED:-1}" \
    --report junit --report-dir "$work/report" "$@"
}
# Signing out ends the session the rest needs: those operations go last.
enders=(--include-operation-id sign_out --include-operation-id end_session
  --include-operation-id sign_out_everywhere)
status=0
run "every operation but signing out (API key: $account, session: $session_account)" \
  --exclude-operation-id sign_out --exclude-operation-id end_session \
  --exclude-operation-id sign_out_everywhere || status=$?
run "signing out" "${enders[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 40 lines)" >&2
  tail -40 "$work/server.log" >&2
fi
exit "$status"
