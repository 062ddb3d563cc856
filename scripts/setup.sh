#!/usr/bin/env bash
# Installs what building, running and testing Infernet needs. Idempotent:
# each step checks first and does nothing when its result is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERNET_ROOT"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
mkdir -p "$INFERNET_CACHE" "$INFERNET_TOOLS/bin"

# INFERNET_SETUP=build: only what building the binaries, the site and the
# models needs (the Docker build): no browser, no test tools.
for_tests() { [ "${INFERNET_SETUP:-all}" != build ]; }

# 1. System packages: Chromium for browser tests, mold+clang for fast links,
#    Node.js for Playwright and wasm-opt.
need_apt=()
for_tests && { command -v chromium >/dev/null || need_apt+=(chromium); }
command -v mold >/dev/null || need_apt+=(mold)
command -v clang >/dev/null || need_apt+=(clang)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  # mold/clang may have just appeared: pick them up for this run.
  source "$INFERNET_ROOT/scripts/env.sh"
fi

# 2. Rust: the wasm target and the linters (a toolchain without rustup, as
#    in the Docker base image, brings its own).
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
fi

# 3. Python venv with PyTorch (the libtorch that tch links) and the MiniLM
#    weights; pinned in scripts/requirements.txt.
req_hash="$(sha256sum scripts/requirements.txt | cut -c1-16)"
if [ "$(cat "$INFERNET_VENV/.requirements" 2>/dev/null)" != "$req_hash" ]; then
  say "creating the Python venv (torch is ~5 GB with its CUDA libraries)"
  [ -x "$INFERNET_PYTHON" ] || python3 -m venv "$INFERNET_VENV"
  "$INFERNET_PYTHON" -m pip install -q --upgrade pip
  "$INFERNET_PYTHON" -m pip install -q -r scripts/requirements.txt
  echo "$req_hash" > "$INFERNET_VENV/.requirements"
  source "$INFERNET_ROOT/scripts/env.sh"
fi

# 3b. The Breez SDK's Python binding, for the server's Lightning worker
#     (apart from the torch requirements, so adding it re-exports no model).
breez_hash="$(sha256sum scripts/requirements-breez.txt | cut -c1-16)"
if [ "$(cat "$INFERNET_VENV/.requirements-breez" 2>/dev/null)" != "$breez_hash" ]; then
  say "installing the Breez SDK (Spark) Python binding"
  "$INFERNET_PYTHON" -m pip install -q -r scripts/requirements-breez.txt
  echo "$breez_hash" > "$INFERNET_VENV/.requirements-breez"
fi

# 3c. schemathesis, which tests the HTTP API against its OpenAPI document
#     (scripts/api-check.sh).
test_hash="$(sha256sum scripts/requirements-test.txt | cut -c1-16)"
if for_tests && [ "$(cat "$INFERNET_VENV/.requirements-test" 2>/dev/null)" != "$test_hash" ]; then
  say "installing schemathesis"
  "$INFERNET_PYTHON" -m pip install -q -r scripts/requirements-test.txt
  echo "$test_hash" > "$INFERNET_VENV/.requirements-test"
fi

# 4. wasm-bindgen, exactly the version in Cargo.lock.
wb_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
if [ "$("$INFERNET_TOOLS/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  say "installing wasm-bindgen-cli $wb_version"
  cargo install --quiet --locked --root "$INFERNET_TOOLS" wasm-bindgen-cli --version "$wb_version" \
    --target-dir "$INFERNET_CACHE/tools-target"
fi

# 5. The real model: all-MiniLM-L6-v2 traced to TorchScript.
model_dir="$INFERNET_MODELS_DIR/all-minilm-l6-v2"
export_hash="$(sha256sum scripts/export_minilm.py | cut -c1-16)-$req_hash"
if [ "$(cat "$model_dir/.export" 2>/dev/null)" != "$export_hash" ] || [ ! -f "$model_dir/model.pt" ]; then
  say "exporting all-MiniLM-L6-v2 to TorchScript in $model_dir"
  "$INFERNET_PYTHON" scripts/export_minilm.py "$model_dir" >/dev/null
  echo "$export_hash" > "$model_dir/.export"
fi

# 5b. A tiny random GPT-2 (seeded) for text generation: tests and the local
#     platform use it. Real models are exported the same way (see README).
gen_dir="$INFERNET_MODELS_DIR/tiny-gpt2"
gen_hash="$(sha256sum scripts/export_gpt2.py | cut -c1-16)-$req_hash"
if [ "$(cat "$gen_dir/.export" 2>/dev/null)" != "$gen_hash" ] || [ ! -f "$gen_dir/model.pt" ]; then
  say "exporting a tiny GPT-2 to TorchScript in $gen_dir"
  "$INFERNET_PYTHON" scripts/export_gpt2.py "$gen_dir" --tiny >/dev/null 2>&1
  echo "$gen_hash" > "$gen_dir/.export"
fi

# 5c. A small module for the raw-tensor task.
tensor_dir="$INFERNET_MODELS_DIR/tensor-demo"
tensor_hash="$(sha256sum scripts/export_tensor_demo.py | cut -c1-16)-$req_hash"
if [ "$(cat "$tensor_dir/.export" 2>/dev/null)" != "$tensor_hash" ] || [ ! -f "$tensor_dir/model.pt" ]; then
  say "exporting the tensor demo module to $tensor_dir"
  "$INFERNET_PYTHON" scripts/export_tensor_demo.py "$tensor_dir" >/dev/null
  echo "$tensor_hash" > "$tensor_dir/.export"
fi

# 6. npm packages: binaryen's wasm-opt for the web build (Debian 12's is too
#    old) and the browser wallet's Breez SDK and QR encoder (scripts/npm), and
#    playwright-core, which drives Debian's Chromium and downloads no browser
#    of its own (e2e).
npm_dirs=(scripts/npm)
for_tests && npm_dirs+=(e2e)
for dir in "${npm_dirs[@]}"; do
  lock_hash="$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  if [ "$(cat "$dir/node_modules/.lock-hash" 2>/dev/null)" != "$lock_hash" ]; then
    say "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > "$dir/node_modules/.lock-hash"
  fi
done

say "ready (cache: $INFERNET_CACHE)"
