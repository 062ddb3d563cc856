#!/usr/bin/env bash
# Self-hosting, checked end to end as a self-hoster would meet it: builds
# the images (base images made from Debian's packages when no registry
# answers), starts compose.yaml's stack with host networking on 127.0.0.1
# ports, enrols a node with a token, runs a job through the server's API
# from the host, restarts the server and checks that accounts, jobs and
# the ledger survived on its volume, scales to two nodes, then stops
# everything and removes what it made. Exits non-zero on any failure and
# prints each check.
#
#   ./scripts/docker-test.sh        (CI: only with INFERNET_DOCKER_TEST=1)
#
# Needs root (dockerd), Debian's docker.io, docker-compose and debootstrap:
# installed here if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

DOCKER=/usr/bin/docker
project="infernet-test-$$"
work="$(mktemp -d)"
say() { printf '\033[1m[docker-test]\033[0m %s\n' "$*" >&2; }
ok() { printf '\033[1m[docker-test] ok:\033[0m %s\n' "$*"; }
fail() {
  printf '\033[1m[docker-test] FAILED:\033[0m %s\n' "$*" >&2
  [ -f "$work/env" ] && compose logs --no-color --tail 40 >&2
  true
  exit 1
}
compose() { docker-compose -p "$project" --env-file "$work/env" -f compose.yaml "$@"; }
cleanup() {
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# 1. Docker itself, with no bridge: nothing but host networking.
need=()
[ -x "$DOCKER" ] || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
  say "starting dockerd (no bridge, no iptables)"
  (setsid dockerd --bridge=none --iptables=false >"$INFERNET_CACHE/dockerd.log" 2>&1 &)
  for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || fail "dockerd did not start (see $INFERNET_CACHE/dockerd.log)"
fi
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1

# 2. Base images: made here from Debian's packages (no registry to pull
#    from), selected by build arguments.
read -r -a base_args <<<"$(./scripts/docker-base.sh)"
base_debian="$(printf '%s\n' "${base_args[@]}" | sed -n 's/^DEBIAN=//p')"
base_rust="$(printf '%s\n' "${base_args[@]}" | sed -n 's/^RUST=//p')"

# 3. The images. The host's CA bundle goes to the build as a secret (a
#    TLS-inspecting proxy stands between this machine and the registries);
#    it is not in any image.
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
for target in server node; do
  say "building infernet-$target"
  start=$(date +%s)
  "$DOCKER" build --network host "${base_args[@]}" "${secret[@]}" \
    --target "$target" -t "infernet-$target" . >"$work/build-$target.log" 2>&1 ||
    { tail -40 "$work/build-$target.log" >&2; fail "docker build --target $target"; }
  size=$("$DOCKER" image inspect -f '{{.Size}}' "infernet-$target")
  ok "image infernet-$target built in $(($(date +%s) - start)) s, $((size / 1000000)) MB"
done
server_size=$("$DOCKER" image inspect -f '{{.Size}}' infernet-server)
max_mb="${INFERNET_DOCKER_SERVER_MAX_MB:-150}"
[ "$server_size" -lt $((max_mb * 1000000)) ] || fail "the server image is $((server_size / 1000000)) MB (goal < $max_mb MB)"
ok "the server image is under $max_mb MB"
[ "$("$DOCKER" image inspect -f '{{.Config.User}}' infernet-server)" != "" ] || fail "the server image runs as root"
ok "the server image runs as a user of its own"

# 4. The stack, on 127.0.0.1 ports the OS picked as free.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
p2p_port=$(free_port)
url="http://127.0.0.1:$http_port"
cat >"$work/env" <<EOF
INFERNET_HTTP_ADDR=127.0.0.1
INFERNET_HTTP_PORT=$http_port
INFERNET_PUBLIC_URL=http://localhost:$http_port
INFERNET_P2P_HOST=127.0.0.1
INFERNET_P2P_PORT=$p2p_port
INFERNET_NODE_P2P_HOST=127.0.0.1
INFERNET_LIGHTNING=none
INFERNET_BASE_DEBIAN=$base_debian
INFERNET_BASE_RUST=$base_rust
EOF
say "starting the server on $url"
compose up -d --no-build server >/dev/null
healthy() {
  [ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$(compose ps -q server)" 2>/dev/null)" = healthy ]
}
for _ in $(seq 1 90); do healthy && break; sleep 1; done
healthy || fail "the server never became healthy"
ok "the server container is healthy ($url/healthz)"

server_exec() { "$DOCKER" exec "$(compose ps -q server)" "$@"; }
# The image has no shell and no `cat`: the key file comes out by `docker cp`.
"$DOCKER" cp "$(compose ps -q server):/data/local.key" "$work/local.key"
key="$(cat "$work/local.key")"
api() { # method path [json]
  curl -sS -f -X "$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$url$2"
}
account="$(api GET /api/v1/account | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
server_exec server --data-dir /data admin credit "$account" 100000000 \
  --key docker-test --memo "scripts/docker-test.sh" >/dev/null
ok "account $account credited 100 000 sat through the admin socket"

# 5. A node that enrols itself with the account's token (reusable: the
#    second node of step 8 enrols with it too), made over the admin socket
#    as an operator without a browser would.
token="$(server_exec server --data-dir /data admin enrol-token "$account" --name docker-test --reusable |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"
[ -n "$token" ] || fail "no enrolment token"
echo "INFERNET_ENROLL_TOKEN=$token" >>"$work/env"
compose up -d --no-build node >/dev/null
online_nodes() {
  curl -sS "$url/nodes?online=true" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["nodes"]))'
}
for _ in $(seq 1 120); do [ "$(online_nodes)" -ge 1 ] && break; sleep 1; done
[ "$(online_nodes)" -ge 1 ] || fail "the node never showed online in /nodes"
claimed="$(curl -sS "$url/nodes" | python3 -c 'import json, sys; print(sum(n["claimed"] for n in json.load(sys.stdin)["nodes"]))')"
[ "$claimed" -ge 1 ] || fail "the node did not enrol"
ok "a node container joined and enrolled itself"

# 6. A job through the API, from the host.
job="$(api POST /v1/embeddings '{"model":"all-minilm-l6-v2","input":["self-hosted"]}')" ||
  fail "the embedding job failed"
dims="$(python3 -c 'import json, sys; print(len(json.loads(sys.argv[1])["data"][0]["embedding"]))' "$job")"
[ "$dims" = 384 ] || fail "an embedding of $dims dimensions"
jobs_before="$(api GET '/api/v1/jobs?limit=50')"
balance_before="$(api GET /api/v1/billing | python3 -c 'import json, sys; print(json.load(sys.stdin)["balance_msat"])')"
ok "an embedding job ran through /v1/embeddings (384 dimensions); balance $balance_before msat"

# 7. The server restarted: what it stored is still there.
compose restart server >/dev/null
for _ in $(seq 1 90); do healthy && break; sleep 1; done
healthy || fail "the server did not come back"
[ "$(api GET /api/v1/account | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')" = "$account" ] ||
  fail "the account is gone after a restart"
[ "$(api GET '/api/v1/jobs?limit=50')" = "$jobs_before" ] || fail "the jobs changed across a restart"
balance_after="$(api GET /api/v1/billing | python3 -c 'import json, sys; print(json.load(sys.stdin)["balance_msat"])')"
[ "$balance_after" = "$balance_before" ] || fail "the balance moved across a restart ($balance_before -> $balance_after)"
ok "after a restart: the same account, jobs and balance"

# 8. Two nodes.
compose up -d --no-build --scale node=2 node >/dev/null
for _ in $(seq 1 120); do [ "$(online_nodes)" -ge 2 ] && break; sleep 1; done
[ "$(online_nodes)" -ge 2 ] || fail "two nodes never showed online"
ok "scaled to two nodes, both online"

# 9. Down, volumes and all (the trap).
compose down -v --remove-orphans >/dev/null
[ -z "$(compose ps -q)" ] || fail "containers left behind"
ok "stopped and removed"
