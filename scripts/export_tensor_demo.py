"""Export a small TorchScript module for the node's `tensor` task: named
tensors in, named tensors out. Any TorchScript module works the same way;
its manifest lists the inputs (name, dtype, shape with -1 for any size) in
the order forward() takes them, and names the outputs forward() returns (a
tensor or a tuple of tensors).

This one computes, for x: f32[N, 4] and scale: f32[1],
  y    = x @ [[1, 0, 0, 0], [0, 1, 1, 0]]^T + [0.5, -1]    f32[N, 2]
  norm = |x|_2 per row * scale                               f32[N]
so tests can check its answers exactly.

With --cheat it writes another computation under the same interface
(y is off by 0.25): what a node that cheats would run, for the test that
catches one (server/tests/it/verify.rs).

Usage: python export_tensor_demo.py <out-dir> [--price-msat N] [--cheat]
"""

import argparse
import json
import sys
from pathlib import Path

import torch


class Demo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]))
        self.register_buffer("b", torch.tensor([0.5, -1.0]))

    def forward(self, x: torch.Tensor, scale: torch.Tensor):
        y = x @ self.w.t() + self.b
        norm = (x * x).sum(1).sqrt() * scale
        return y, norm


class Cheat(torch.nn.Module):
    """Demo's interface, another answer: a cheaper guess at y."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]))

    def forward(self, x: torch.Tensor, scale: torch.Tensor):
        y = x @ self.w.t() + 0.25
        norm = (x * x).sum(1).sqrt() * scale
        return y, norm


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--price-msat", type=int, default=10)
    parser.add_argument("--cheat", action="store_true")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = Cheat() if args.cheat else Demo()
    torch.jit.script(module.eval()).save(str(out / "model.pt"))
    manifest = {
        "name": "tensor-demo",
        "task": "tensor",
        "file": "model.pt",
        "price_msat": args.price_msat,
        "description": "y = affine(x), norm = |x| * scale: a raw-tensor example",
        "tensor": {
            "inputs": [
                {"name": "x", "dtype": "f32", "shape": [-1, 4]},
                {"name": "scale", "dtype": "f32", "shape": [1]},
            ],
            "outputs": ["y", "norm"],
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
