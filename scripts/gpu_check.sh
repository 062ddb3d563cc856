#!/usr/bin/env bash
# Proves the node's CUDA paths on a GPU machine, with the real binaries:
# NVML sees the GPUs, models load on cuda:N (fp32 and fp16), generation and
# tensor jobs run there through libp2p with receipts that say so, sixteen
# generations at once batch on the GPU, and greedy text matches the same
# job on the CPU; the node's /metrics (the gauges its fleet telemetry
# sends) read each GPU through NVML under DCGM's names; and known answers
# (canaries) made on the CPU agree with the GPU node's, and the other way
# round, by the rules servers use (`infernet check`).
#
#   scripts/gpu_check.sh <kit> <out>
#
# <kit> holds bin/infernet-node, bin/infernet (built against the machine's
# libtorch) and models/ (tiny-gpt2, tiny-gpt2-half, tensor-demo); results
# go to <out> (JSON per job, the nodes' logs, summary.txt). TORCH_LIB is the
# libtorch to run with (default: the active Python's torch). It needs no
# network and no Rust; it also runs on a CPU-only machine (everything then
# says cpu), which is how it is tried before a GPU is lent.
set -uo pipefail
kit="$(cd "$1" && pwd)"
out="$2"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
TORCH_LIB="${TORCH_LIB:-$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export INFERNET_LOG=info
node="$kit/bin/infernet-node"
cli="$kit/bin/infernet"
summary="$out/summary.txt"
: > "$summary"
say() { printf '%s\n' "$*" | tee -a "$summary"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv >"$out/nvidia-smi.csv" 2>&1
say "libtorch: $TORCH_LIB"

# Starts a node on `device` serving `models`; sets `peer` to its TCP
# multiaddr and `node_pid` to its process.
start_node() {
  local tag=$1 device=$2 models=$3
  # No server: a bootstrap peer that does not answer keeps it on the
  # network alone (the CLI dials it directly).
  "$node" --device "$device" --models-dir "$models" --key-file "$out/$tag.key" \
    --bootstrap /ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN \
    --reachability public --p2p-host 127.0.0.1 --ad-interval-ms 2000 \
    --metrics-addr 127.0.0.1:0 \
    >"$out/$tag.ready" 2>"$out/$tag.log" &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 1 600); do grep -q '"ready"' "$out/$tag.ready" 2>/dev/null && break; sleep 0.1; done
  if ! grep -q '"ready"' "$out/$tag.ready"; then
    say "FAIL: $tag did not start"; tail -20 "$out/$tag.log" | tee -a "$summary"; return 1
  fi
  peer=$(python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).readline())
print([a for a in r["p2p"] if "/tcp/" in a][0] + "/p2p/" + r["peer_id"])' "$out/$tag.ready")
  metrics=$(python3 -c 'import json, sys
print(json.loads(open(sys.argv[1]).readline()).get("metrics") or "")' "$out/$tag.ready")
}

# The node's /metrics: NVML's gauges per GPU, as DCGM's exporter names them.
scrape() {
  local tag=$1
  [ -n "$metrics" ] || { say "$tag: no /metrics"; return; }
  python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$metrics" >"$out/$tag-metrics.txt" 2>&1
  say "$tag: /metrics $(grep -c '^DCGM_FI_DEV' "$out/$tag-metrics.txt") DCGM samples"
  grep -E '^DCGM_FI_DEV_(GPU_UTIL|FB_USED|FB_FREE|GPU_TEMP|POWER_USAGE)' "$out/$tag-metrics.txt" | head -10 | tee -a "$summary"
}

field() { python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d[int(k)] if isinstance(d, list) else d.get(k)
print(d if not isinstance(d, (dict, list)) else json.dumps(d))' "$1" "$2"; }

tensors='[{"name": "x", "shape": [2, 4], "data": {"dtype": "f32", "values": [3, 4, 0, 0, 1, 2, 2, 4]}},
          {"name": "scale", "shape": [1], "data": {"dtype": "f32", "values": [2]}}]'
prompt="Once upon a time, in a market for inference,"

# Runs the jobs on one node; `tag` names the results.
run_jobs() {
  local tag=$1 peer=$2 models=$3
  "$cli" --peer "$peer" providers tiny-gpt2 >"$out/$tag-providers.json" 2>>"$out/$tag-cli.log"
  say "$tag: provider device $(field "$out/$tag-providers.json" providers.0.device), gpus $(field "$out/$tag-providers.json" providers.0.gpus)"
  for m in $models; do
    "$cli" --peer "$peer" run --model "$m" --prompt "$prompt" --max-tokens 32 \
      >"$out/$tag-$m.json" 2>>"$out/$tag-cli.log"
    say "$tag: $m exit $? device $(field "$out/$tag-$m.json" receipt.payload | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["device"])') tokens $(field "$out/$tag-$m.json" usage.output_tokens) text $(field "$out/$tag-$m.json" text | head -c 60 | tr '\n' ' ')"
  done
  "$cli" --peer "$peer" run --model tensor-demo --tensors "$tensors" >"$out/$tag-tensor.json" 2>>"$out/$tag-cli.log"
  say "$tag: tensor-demo exit $? outputs $(field "$out/$tag-tensor.json" outputs | tr -d ' ')"
}

gpu_models="$out/models-gpu"; cpu_models="$out/models-cpu"; half_models="$out/models-half"
mkdir -p "$gpu_models" "$cpu_models" "$half_models"
for m in tiny-gpt2 tiny-gpt2-half tensor-demo; do ln -sfn "$kit/models/$m" "$gpu_models/$m"; done
for m in tiny-gpt2 tensor-demo; do ln -sfn "$kit/models/$m" "$cpu_models/$m"; done
ln -sfn "$kit/models/tiny-gpt2-half" "$half_models/tiny-gpt2-half"

# Known answers made on one device, to be checked on the other by the
# rules servers use (`infernet check`): an honest node whose device rounds
# otherwise must agree. Greedy generations and tensors (the embedding model
# is larger than what can be carried to a lent machine).
make_canaries() {
  local tag=$1 device=$2 models=$3
  "$node" --make-canaries "$out/canaries-$tag.json" --canary-count 24 --canary-seed 11 \
    --device "$device" --models-dir "$models" --key-file "$out/canaries.key" \
    >"$out/canaries-$tag.out" 2>"$out/canaries-$tag.log"
  say "canaries made on $device ($tag): exit $? $(tr -d '\n' <"$out/canaries-$tag.out")"
}
check_canaries() {
  local tag=$1 peer=$2 file=$3
  [ -s "$file" ] || { say "$tag: no $file to check"; return; }
  "$cli" --peer "$peer" check --canaries "$file" --timeout 60 >"$out/check-$tag.json" 2>"$out/check-$tag.log"
  local code=$?
  say "$tag: infernet check exit $code (0: every answer agrees) $(python3 - "$out/check-$tag.json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
sets = []
for s in r["sets"]:
    agreed = sum(c["outcome"] == "agree" for c in s["cases"])
    devices = sorted({c["device"] for c in s["cases"] if c.get("device")})
    sets.append(f"{s['model']} made on {s['made_on']}: {agreed}/{len(s['cases'])} agree, answered on {','.join(devices)}")
print("checked", r["checked"], "agreed", r["agreed"], "disagreed", r["disagreed"], "failed", r["failed"], "|", "; ".join(sets))
PY
)"
  grep -E "disagrees|failed:" "$out/check-$tag.log" | head -5 | tee -a "$summary"
}
make_canaries cpu cpu "$cpu_models"
make_canaries half-cpu cpu "$half_models"
make_canaries cuda cuda:0 "$cpu_models"

started=$SECONDS
if start_node gpu auto "$gpu_models"; then
  gpu=$peer
  say "gpu node up in $((SECONDS - started)) s: $(tr -d '\n' <"$out/gpu.ready")"
  grep -E "hardware detected|model loaded|CUDA backend" "$out/gpu.log" | sed 's/\x1b\[[0-9;]*m//g' | tee -a "$summary"
  run_jobs gpu "$gpu" "tiny-gpt2 tiny-gpt2-half"
  # Sixteen at once: continuous batching on the device.
  t0=$(date +%s.%N)
  batch=()
  for i in $(seq 1 16); do
    "$cli" --peer "$gpu" run --model tiny-gpt2 --prompt "Story $i:" --max-tokens 64 --temperature 0.8 \
      >"$out/gpu-batch-$i.json" 2>>"$out/gpu-cli.log" &
    batch+=($!)
  done
  wait "${batch[@]}"
  ok=0; for i in $(seq 1 16); do [ -s "$out/gpu-batch-$i.json" ] && ok=$((ok + 1)); done
  say "gpu: $ok of 16 concurrent generations done in $(python3 -c "import time; print(round(time.time() - $t0, 2))") s (16 CLI processes, each joining the network)"
  scrape gpu
  check_canaries gpu-node-cpu-canaries "$gpu" "$out/canaries-cpu.json"
  check_canaries gpu-node-fp16-canaries-made-on-cpu "$gpu" "$out/canaries-half-cpu.json"
  kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; pids=()
fi

if start_node cpu cpu "$cpu_models"; then
  run_jobs cpu "$peer" "tiny-gpt2"
  check_canaries cpu-node-cuda-canaries "$peer" "$out/canaries-cuda.json"
fi

a=$(field "$out/gpu-tiny-gpt2.json" text 2>/dev/null); b=$(field "$out/cpu-tiny-gpt2.json" text 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ]; then say "greedy text on the GPU equals the CPU's"; else say "greedy text differs between GPU and CPU"; fi
say "done in $((SECONDS - started)) s"
