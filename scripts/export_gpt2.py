"""Export a GPT-2-family decoder to TorchScript with a KV cache, plus an
Infernet model manifest, for the node's `text_generation` task.

Two ways to use it:

  # A real model: a Hugging Face GPT-2 checkpoint directory (config.json,
  # model.safetensors or pytorch_model.bin, tokenizer.json), e.g. `gpt2`,
  # `distilgpt2` or `gpt2-medium` downloaded with `huggingface-cli download`.
  python scripts/export_gpt2.py $INFERNET_MODELS_DIR/gpt2 --from ~/hf/gpt2 --name gpt2

  # A tiny random GPT-2 for tests (seeded, so every export is identical),
  # with a byte-level BPE tokenizer trained on a built-in text. The Hugging
  # Face checkpoint is kept in <out>/hf so tests can compare against it.
  python scripts/export_gpt2.py <out-dir> --tiny

The TorchScript interface the node relies on (any decoder exported with the
same three methods works, e.g. a Llama-family model written the same way):

  forward(ids: int64[B, T], start: int64[B], last: int64[B],
          k_cache: float[L, B, H, S, D], v_cache: float[L, B, H, S, D])
      -> float32[B, V]
    Row b's tokens take positions start[b] .. start[b] + T - 1. Their keys and
    values are written into the caches in place at those slots, each token
    attends to slots <= its own position, and the logits of token last[b]
    of each row come back. S may be any length up to max_context().
  empty_cache(batch: int) -> (k_cache, v_cache)   zeros on the model's device
  max_context() -> int                             positions the model knows
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

EOS = "<|endoftext|>"

TINY_CORPUS = """
The market for inference opens at dawn. Providers bring their machines,
consumers bring their questions, and every answer is paid for in small coins.
A node that answers well earns a good name; a node that cheats is shown the
door. Models are loaded, batched and run; tokens stream back one by one.
User: what is the weather like today?
Assistant: It is sunny with a light breeze, and the evening will be cool.
User: tell me a story about a lighthouse.
Assistant: Once upon a time a keeper lit the lamp every night for forty years.
""" * 4


class Block(torch.nn.Module):
    def __init__(self, d: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.head_dim = d // heads
        self.ln_1 = torch.nn.LayerNorm(d, eps=eps)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln_2 = torch.nn.LayerNorm(d, eps=eps)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.fc_proj = torch.nn.Linear(4 * d, d)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        allowed: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        index = pos[:, None, :, None].expand(b, self.heads, t, self.head_dim)
        k_cache.scatter_(2, index, k)
        v_cache.scatter_(2, index, v)
        scores = torch.matmul(q, k_cache.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, float("-inf"))
        att = torch.matmul(torch.softmax(scores, dim=-1), v_cache)
        att = att.transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(att)
        h = self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))
        return x + h


class Decoder(torch.nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, context: int, eps: float):
        super().__init__()
        self.context = context
        self.layers = layers
        self.heads = heads
        self.head_dim = d // heads
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Embedding(context, d)
        self.blocks = torch.nn.ModuleList([Block(d, heads, eps) for _ in range(layers)])
        self.ln_f = torch.nn.LayerNorm(d, eps=eps)

    def forward(
        self,
        ids: torch.Tensor,
        start: torch.Tensor,
        last: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        b, t = ids.shape
        slots = k_cache.size(3)
        pos = start[:, None] + torch.arange(t, device=ids.device)[None, :]
        x = self.wte(ids) + self.wpe(pos.clamp(max=self.context - 1))
        allowed = (
            torch.arange(slots, device=ids.device)[None, None, None, :]
            <= pos[:, None, :, None]
        )
        i = 0
        for block in self.blocks:
            x = block(x, pos, allowed, k_cache[i], v_cache[i])
            i += 1
        x = x[torch.arange(b, device=ids.device), last]
        return torch.matmul(self.ln_f(x), self.wte.weight.t()).float()

    @torch.jit.export
    def empty_cache(self, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = [self.layers, batch, self.heads, self.context, self.head_dim]
        w = self.wte.weight
        return (
            torch.zeros(shape, dtype=w.dtype, device=w.device),
            torch.zeros(shape, dtype=w.dtype, device=w.device),
        )

    @torch.jit.export
    def max_context(self) -> int:
        return self.context


def from_hf(hf) -> Decoder:
    """Copies a transformers GPT2LMHeadModel's weights into a Decoder."""
    c = hf.config
    dec = Decoder(c.vocab_size, c.n_embd, c.n_layer, c.n_head, c.n_positions, c.layer_norm_epsilon)
    sd = hf.state_dict()
    with torch.no_grad():
        dec.wte.weight.copy_(sd["transformer.wte.weight"])
        dec.wpe.weight.copy_(sd["transformer.wpe.weight"])
        dec.ln_f.weight.copy_(sd["transformer.ln_f.weight"])
        dec.ln_f.bias.copy_(sd["transformer.ln_f.bias"])
        for i, blk in enumerate(dec.blocks):
            p = f"transformer.h.{i}."
            blk.ln_1.weight.copy_(sd[p + "ln_1.weight"])
            blk.ln_1.bias.copy_(sd[p + "ln_1.bias"])
            blk.ln_2.weight.copy_(sd[p + "ln_2.weight"])
            blk.ln_2.bias.copy_(sd[p + "ln_2.bias"])
            # GPT-2 stores its projections as Conv1D: weight [in, out].
            blk.qkv.weight.copy_(sd[p + "attn.c_attn.weight"].t())
            blk.qkv.bias.copy_(sd[p + "attn.c_attn.bias"])
            blk.proj.weight.copy_(sd[p + "attn.c_proj.weight"].t())
            blk.proj.bias.copy_(sd[p + "attn.c_proj.bias"])
            blk.fc.weight.copy_(sd[p + "mlp.c_fc.weight"].t())
            blk.fc.bias.copy_(sd[p + "mlp.c_fc.bias"])
            blk.fc_proj.weight.copy_(sd[p + "mlp.c_proj.weight"].t())
            blk.fc_proj.bias.copy_(sd[p + "mlp.c_proj.bias"])
    return dec.eval()


def tiny(out: Path):
    """A seeded random GPT-2 and a byte-level BPE tokenizer trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS.splitlines(), trainer=trainer)
    hf_dir = out / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(hf_dir / "tokenizer.json"))

    torch.manual_seed(1234)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=tok.token_to_id(EOS),
        eos_token_id=tok.token_to_id(EOS),
    )
    hf = GPT2LMHeadModel(config)
    # Wider weights than the default init, so that greedy decoding has clear
    # winners and varied text rather than one repeated token.
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.35)
    hf.save_pretrained(str(hf_dir), safe_serialization=True)
    return hf_dir


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="src", help="a Hugging Face GPT-2 checkpoint directory")
    src.add_argument("--tiny", action="store_true", help="a small random model for tests")
    parser.add_argument("--name", default=None)
    parser.add_argument("--price-msat", type=int, default=0, help="per job")
    parser.add_argument("--input-token-msat", type=int, default=1)
    parser.add_argument("--output-token-msat", type=int, default=2)
    parser.add_argument("--half", action="store_true", help="store float16 weights (for CUDA)")
    args = parser.parse_args()

    from transformers import GPT2LMHeadModel

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_dir = tiny(out) if args.tiny else Path(args.src)
    name = args.name or ("tiny-gpt2" if args.tiny else hf_dir.name)
    hf = GPT2LMHeadModel.from_pretrained(str(hf_dir)).eval()
    dec = from_hf(hf)
    if args.half:
        dec = dec.half()

    # The exported module must give what transformers gives, token for token.
    ids = torch.tensor([[5, 17, 42, 7, 99, 3]]) % hf.config.vocab_size
    with torch.no_grad():
        want = hf(ids).logits[0, -1].float()
        k, v = dec.empty_cache(1)
        got = dec(ids, torch.tensor([0]), torch.tensor([ids.shape[1] - 1]), k, v)[0]
    err = (want - got).abs().max().item()
    if not args.half and err > 1e-3:
        print(f"exported decoder differs from transformers by {err}", file=sys.stderr)
        return 1

    scripted = torch.jit.script(dec)
    scripted.save(str(out / "model.pt"))
    tok_src = hf_dir / "tokenizer.json"
    (out / "tokenizer.json").write_bytes(tok_src.read_bytes())
    manifest = {
        "name": name,
        "task": "text_generation",
        "file": "model.pt",
        "tokenizer": "tokenizer.json",
        "price_msat": args.price_msat,
        "token_price": {
            "input_msat": args.input_token_msat,
            "output_msat": args.output_token_msat,
        },
        "description": f"GPT-2 family decoder ({hf.config.n_layer} layers, "
        f"{hf.config.n_embd} wide, context {hf.config.n_positions})",
        "generation": {
            "eos_token": EOS,
            "chat_template": {
                "system": "System: {content}\n",
                "user": "User: {content}\n",
                "assistant": "Assistant: {content}\n",
                "assistant_start": "Assistant:",
            },
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"out": str(out), "name": name, "max_abs_logit_diff": err}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
