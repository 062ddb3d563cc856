#!/usr/bin/env bash
# The Docker build's last step: lays out under OUT what each image copies
# to its root, from a release build (`cargo build --release -p server -p
# node`, `./scripts/build-site.sh`) and the set-up's cache:
#
#   OUT/server     a whole root for an image `FROM scratch`: the server in
#                  /usr/local/bin, the site in /srv/site, Python and a venv
#                  with the Breez SDK (scripts/requirements-breez.txt) in
#                  /opt/breez for the Lightning worker, the shared libraries
#                  all of these load, the CA bundle, a user `infernet`
#                  (uid 10001) who owns /data
#   OUT/node       /usr/local/bin/infernet-node, the libraries it loads from
#                  torch (its `ldd` closure outside the system's) in
#                  /opt/torch/lib, the exported models in /models
#   OUT/node-cuda  what `libtorch_cuda.so` (which the node loads when it
#                  finds it beside libtorch) needs besides
#
# Usage: scripts/docker-collect.sh OUT
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERNET_ROOT"
out="${1:?usage: docker-collect.sh OUT}"
release="$CARGO_TARGET_DIR/release"
torch_lib="$("$INFERNET_PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

rm -rf "$out"
mkdir -p "$out/server/usr/local/bin" "$out/server/srv" \
  "$out/node/usr/local/bin" "$out/node/opt/torch/lib" "$out/node-cuda/opt/torch/lib"

# FILE and every shared library it loads (the loader too), copied under
# ROOT at their own paths.
with_libs() { # ROOT FILE...
  local root="$1" file lib
  shift
  for file in "$@"; do
    cp --parents -L "$file" "$root/"
    for lib in $(ldd "$file" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
      [ -e "$root$lib" ] || cp --parents -L "$lib" "$root/"
    done
  done
}

# The server, on a root of its own.
root="$out/server"
with_libs "$root" "$release/server"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/data"
mv "$root$release/server" "$root/usr/local/bin/server"
rm -rf "$root${release%%/target/*}"
cp -R "$INFERNET_SITE_ROOT" "$root/srv/site"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0::/root:/usr/sbin/nologin\ninfernet:x:10001:10001::/data:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ninfernet:x:10001:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
chown 10001:10001 "$root/data"
# Python for the Breez worker: the interpreter, the standard library less
# what a worker never imports (tests, IDLE, Tk, pip's bootstrap), and a
# venv with the SDK.
python="$(readlink -f /usr/bin/python3)"
stdlib="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
with_libs "$root" "$python" "$stdlib"/lib-dynload/*.so
ln -s "$python" "$root/usr/bin/python3"
tar -C / --exclude='__pycache__' --exclude='*/test' --exclude='*/tests' --exclude='*/idlelib' \
  --exclude='*/tkinter' --exclude='*/ensurepip' --exclude='*/lib2to3' --exclude='*/turtledemo' \
  --exclude='*/pydoc_data' --exclude='*/config-3*' -c "${stdlib#/}" | tar -C "$root" -x
python3 -m venv --without-pip "$root/opt/breez"
pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
"$INFERNET_PYTHON" -m pip install -q --no-cache-dir --no-compile \
  --target "$root/opt/breez/lib/python$pyver/site-packages" -r scripts/requirements-breez.txt
# The venv's interpreter links resolve inside the image.
ln -sf "$python" "$root/opt/breez/bin/python3"
ln -sf python3 "$root/opt/breez/bin/python"

# The libraries a binary or library loads, resolved against torch's folder,
# that are not the system's own.
closure() {
  LD_LIBRARY_PATH="$torch_lib" ldd "$1" |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
    grep -v -E '^/(usr/)?lib(64)?/' || true
}

# The node.
cp "$release/infernet-node" "$out/node/usr/local/bin/"
closure "$release/infernet-node" | while read -r lib; do
  cp -L "$lib" "$out/node/opt/torch/lib/"
done
cp -R "$INFERNET_MODELS_DIR" "$out/node/models"

# The node's CUDA backend: libtorch_cuda.so, what it links that the CPU
# node does not have already, and every library of torch's NVIDIA wheels
# (cuDNN and cuBLAS open parts of themselves at run time, by name).
if [ -f "$torch_lib/libtorch_cuda.so" ]; then
  cp -L "$torch_lib/libtorch_cuda.so" "$out/node-cuda/opt/torch/lib/"
  {
    closure "$torch_lib/libtorch_cuda.so"
    find "$torch_lib/../../nvidia" -path '*/lib/*.so*' -type f 2>/dev/null
  } | while read -r lib; do
    [ -e "$out/node/opt/torch/lib/$(basename "$lib")" ] ||
      cp -L "$lib" "$out/node-cuda/opt/torch/lib/"
  done
fi

du -sh "$out"/* >&2
