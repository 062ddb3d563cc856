# Images of the server and the node, built with the repository's own
# set-up scripts (nothing downloaded outside crates.io, PyPI, npm and
# Debian), BuildKit required (Debian's client: DOCKER_BUILDKIT=1
# /usr/bin/docker build):
#
#   docker build --target server    -t infernet-server .
#   docker build --target node      -t infernet-node .
#   docker build --target node-cuda -t infernet-node-cuda .   # run with --gpus all
#
# Base images: the official ones by default. Where no registry can be
# reached, ./scripts/docker-base.sh makes them from Debian's packages and
# prints the `--build-arg DEBIAN=… --build-arg RUST=…` that select them.
# Behind a proxy that inspects TLS, give the build its CA bundle as a
# secret (used by the downloads, never stored in an image):
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
ARG DEBIAN=debian:bookworm-slim
ARG RUST=rust:1.95-bookworm

FROM ${RUST} AS build
ENV DEBIAN_FRONTEND=noninteractive INFERNET_CACHE=/cache
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends ca-certificates python3 python3-venv \
      mold clang pkg-config nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep crates, the venv with torch, the tools, the models
# and the target directory from one build to the next: a change to the
# code rebuilds only the workspace's crates.
RUN --mount=type=secret,id=ca,required=false \
    --mount=type=cache,id=infernet-cache,target=/cache \
    --mount=type=cache,id=infernet-cargo,target=/usr/local/cargo/registry \
    ./scripts/docker-build.sh /out

# The server: its binary, the built site, and Python with a venv of the
# Breez SDK for the Lightning worker (`--lightning breez`), on a root made
# of exactly the files they load (see scripts/docker-collect.sh): no shell,
# no package manager.
FROM scratch AS server
COPY --from=build /out/server/ /
ENV PATH=/usr/local/bin:/usr/bin INFERNET_LISTEN=0.0.0.0:8080 INFERNET_DATA_DIR=/data \
    INFERNET_SITE_ROOT=/srv/site INFERNET_BREEZ_PYTHON=/opt/breez/bin/python \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
VOLUME /data
EXPOSE 8080 4001/tcp 4001/udp
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["server", "healthcheck"]
ENTRYPOINT ["server"]

# The node on the CPU: its binary, exactly the libraries it loads from
# torch (not the rest of the venv), and the exported models.
FROM ${DEBIAN} AS node
RUN useradd --system --uid 10001 --home-dir /data --no-create-home infernet \
 && mkdir -p /data && chown infernet /data
COPY --from=build /out/node/ /
ENV LD_LIBRARY_PATH=/opt/torch/lib INFERNET_MODELS_DIR=/models INFERNET_NODE_KEY=/data/node.key
USER infernet
VOLUME /data
ENTRYPOINT ["infernet-node"]

# The node with torch's CUDA libraries beside its own (loaded when a GPU
# is there). Needs the NVIDIA container toolkit on the host: --gpus all.
FROM node AS node-cuda
COPY --from=build /out/node-cuda/ /
