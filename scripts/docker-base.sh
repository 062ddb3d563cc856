#!/usr/bin/env bash
# Makes the base images the Dockerfile builds on, for machines that cannot
# pull from a container registry, from Debian's packages and this machine's
# own Rust toolchain:
#
#   infernet-base/debian:bookworm   `debootstrap --variant=minbase`, without
#                                   apt's lists, caches and the docs
#   infernet-base/rust:<version>    the same, with the toolchain that builds
#                                   this workspace (rustc, cargo, clippy,
#                                   rustfmt, the wasm32 target)
#
# Idempotent: an image that exists is kept (INFERNET_DOCKER_REBASE=1 makes
# them again). Prints the `--build-arg`s that select them; with a registry,
# the Dockerfile's defaults (the official images) need none of this.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Debian's client: the one on PATH may want a buildx plugin.
DOCKER="${DOCKER:-/usr/bin/docker}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$INFERNET_CACHE/docker-base"
debian_image="infernet-base/debian:$suite"
rust_version="$(rustc --version | awk '{print $2}')"
rust_image="infernet-base/rust:$rust_version"
sysroot="$(rustc --print sysroot)"

say() { printf '\033[1m[docker-base]\033[0m %s\n' "$*" >&2; }
have() {
  [ "${INFERNET_DOCKER_REBASE:-0}" != 1 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1
}

if ! have "$debian_image"; then
  say "making $debian_image with debootstrap from $mirror (about 2 minutes)"
  command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install debootstrap" >&2
    exit 1
  }
  rm -rf "$work/rootfs"
  mkdir -p "$work"
  debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log"
  rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/*.bin \
    "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/usr/share/doc/* \
    "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/info/*
  tar -C "$work/rootfs" --numeric-owner -c . |
    "$DOCKER" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  rm -rf "$work/rootfs"
fi

if ! have "$rust_image"; then
  say "making $rust_image from $sysroot"
  [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ] || {
    echo "the toolchain lacks the wasm32 target: rustup target add wasm32-unknown-unknown" >&2
    exit 1
  }
  context="$work/rust"
  rm -rf "$context"
  mkdir -p "$context/toolchain"
  # The toolchain without its documentation (half its size).
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$context/toolchain" -x
  cat >"$context/Dockerfile" <<EOF
FROM $debian_image
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CARGO_HOME=/usr/local/cargo
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
EOF
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host -q -t "$rust_image" "$context" >/dev/null
  rm -rf "$context"
fi

say "ready: $debian_image, $rust_image"
echo "--build-arg DEBIAN=$debian_image --build-arg RUST=$rust_image"
