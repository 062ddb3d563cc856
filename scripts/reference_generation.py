"""Reference greedy generation from transformers (PyTorch eager), for
comparing with what a node generates. Usage: reference_generation.py
<model-dir> <max-new-tokens>; reads a JSON list of prompts on stdin and
writes a JSON list of generated token-id lists on stdout. The model dir is
one made by `export_gpt2.py --tiny` (its Hugging Face checkpoint is in hf/)."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.disable_progress_bar()
model_dir = Path(sys.argv[1])
max_new = int(sys.argv[2])
tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
model = GPT2LMHeadModel.from_pretrained(str(model_dir / "hf")).eval()
eos = model.config.eos_token_id
out = []
for prompt in json.load(sys.stdin):
    ids = tok.encode(prompt).ids or [eos]
    with torch.no_grad():
        gen = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos,
        )
    out.append(gen[0, len(ids):].tolist())
json.dump(out, sys.stdout)
