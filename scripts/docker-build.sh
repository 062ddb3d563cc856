#!/usr/bin/env bash
# The Docker build's build stage (see Dockerfile): sets up what building
# needs (INFERNET_SETUP=build), builds the site and the release binaries,
# and lays out what the images copy under OUT (scripts/docker-collect.sh).
# A CA bundle given as the build secret `ca` is trusted by every download
# (pip, cargo, npm), for builds behind a TLS-inspecting proxy; it is read
# where BuildKit mounts it and never copied.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:?usage: docker-build.sh OUT}"
if [ -s /run/secrets/ca ]; then
  export SSL_CERT_FILE=/run/secrets/ca PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca \
    CARGO_HTTP_CAINFO=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca npm_config_cafile=/run/secrets/ca
fi
INFERNET_SETUP=build ./scripts/setup.sh
source scripts/env.sh
./scripts/build-site.sh
cargo build --release -p server -p node
./scripts/docker-collect.sh "$out"
