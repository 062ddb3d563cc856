# Sourced by the other scripts: where the cache lives and the environment
# that builds and runs Infernet. Nothing here installs anything.
#
# INFERNET_CACHE (default ~/.cache/infernet) holds everything that outlives a
# clone: the Python venv with torch, built tools, the exported model, and the
# cargo target directory. It is reused when present and rebuilt when not.
# The web app is built into the clone (target/site), where the server finds it.

INFERNET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export INFERNET_ROOT
export INFERNET_CACHE="${INFERNET_CACHE:-$HOME/.cache/infernet}"
export INFERNET_VENV="$INFERNET_CACHE/venv"
export INFERNET_PYTHON="$INFERNET_VENV/bin/python"
export INFERNET_TOOLS="$INFERNET_CACHE/tools"
export INFERNET_MODELS_DIR="${INFERNET_MODELS_DIR:-$INFERNET_CACHE/models}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$INFERNET_CACHE/target}"
# The built web app: where the server looks for it by default (target/site,
# from the repository root).
export INFERNET_SITE_ROOT="${INFERNET_SITE_ROOT:-$INFERNET_ROOT/target/site}"

# Every checkout shares the target directory, but Cargo judges a workspace
# crate fresh by comparing its sources' mtimes (paths relative to the crate)
# with the artifact's: a checkout whose files are older than another
# checkout's build would reuse that build. So when the checkout changes,
# forget the fingerprints of the workspace's own crates; everything from
# crates.io stays built.
#
# The workspace's own artifacts are rebuilt then anyway, and each checkout
# (its path is part of every artifact's hash) leaves a new set of them (a
# debug server test binary is close to 1 GB): so they go too, with their
# incremental caches, or the shared target directory grows by ~10 GB a
# checkout until the disk is full.
infernet_prune_workspace_artifacts() {
  local names
  names="$(cargo metadata --no-deps --offline --format-version 1 --manifest-path "$INFERNET_ROOT/Cargo.toml" 2>/dev/null |
    python3 -c 'import json, sys
m = json.load(sys.stdin)
print("|".join(sorted({t["name"].replace("-", "_") for p in m["packages"] for t in p["targets"]} | {p["name"] for p in m["packages"]})))' 2>/dev/null)" ||
    names=""
  [ -n "$names" ] || names="wire|p2p|app|server|node|consumer|payments|testkit|surreal|it|infernet|infernet_node"
  find "$CARGO_TARGET_DIR" -maxdepth 4 -regextype posix-extended \
    -regex ".*/(deps|incremental|\.fingerprint)/(lib)?($names)-[0-9a-z]{13,16}(\..*)?" \
    -prune -exec rm -rf {} + 2>/dev/null || true
}
_checkout_stamp="$CARGO_TARGET_DIR/.infernet-checkout"
if [ -d "$CARGO_TARGET_DIR" ] && [ "$(cat "$_checkout_stamp" 2>/dev/null)" != "$INFERNET_ROOT" ]; then
  infernet_prune_workspace_artifacts
  printf '%s\n' "$INFERNET_ROOT" >"$_checkout_stamp"
fi

# tch links against the venv's PyTorch (tch 0.26 expects torch 2.13.0).
export LIBTORCH_USE_PYTORCH=1
export PATH="$INFERNET_VENV/bin:$INFERNET_TOOLS/bin:$HOME/.cargo/bin:$PATH"
if [ -x "$INFERNET_PYTHON" ]; then
  _torch_lib="$("$INFERNET_PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)"
  if [ -n "$_torch_lib" ]; then
    export LD_LIBRARY_PATH="$_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# mold links the big debug binaries several times faster than ld.
if command -v mold >/dev/null 2>&1 && command -v clang >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=clang
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=mold"
fi
