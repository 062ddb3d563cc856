# Multi-stage build of the server and the node with the repository's own
# set-up scripts (no downloads outside crates.io, PyPI, npm and Debian).
#   docker build --target server -t infernet-server .
#   docker build --target node   -t infernet-node .
# (Base images from a registry; issue 15 makes them from Debian's packages.)
FROM rust:1.95-bookworm AS build
ENV INFERNET_CACHE=/cache DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      python3 python3-venv mold clang pkg-config nodejs npm chromium \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./scripts/setup.sh \
 && . scripts/env.sh \
 && ./scripts/build-site.sh \
 && cargo build --release -p server -p node \
 && mkdir -p /out/bin \
 && cp "$CARGO_TARGET_DIR/release/server" "$CARGO_TARGET_DIR/release/infernet-node" /out/bin/ \
 && cp -R "$INFERNET_SITE_ROOT" /out/site \
 && cp -R "$INFERNET_MODELS_DIR" /out/models

FROM debian:bookworm-slim AS server
RUN apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/server /usr/local/bin/server
COPY --from=build /out/site /srv/site
ENV INFERNET_LISTEN=0.0.0.0:8080 INFERNET_DATA_DIR=/data INFERNET_SITE_ROOT=/srv/site
VOLUME /data
EXPOSE 8080 4001/tcp 4001/udp
ENTRYPOINT ["server"]

# The node needs libtorch: it keeps the venv's torch/lib beside the binary.
FROM debian:bookworm-slim AS node
RUN apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /cache/venv /opt/venv
COPY --from=build /out/bin/infernet-node /usr/local/bin/infernet-node
COPY --from=build /out/models /models
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/torch/lib \
    INFERNET_MODELS_DIR=/models INFERNET_NODE_KEY=/data/node.key
VOLUME /data
ENTRYPOINT ["infernet-node"]
