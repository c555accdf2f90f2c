"""Training-step time and peak memory against frame count T and atom count M, for our temporal
attention (one (B, H, T, T) bias per batch, broadcast, fused attention) next to a straightforward
reference that materialises the bias for every atom and token and does the softmax by hand.

Each (implementation, T, M) runs in its own process so peak RSS is clean. On a GPU the same
script reports CUDA peak memory instead. Run: ``.venv/bin/python benchmarks/model.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

from boltzkinema.data.features import ATOM_FEATURES
from boltzkinema.model.layers import attention
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.util import keep_freed_memory

CFG = dict(
    c_s=64,
    c_z=16,
    c_atom=64,
    c_token=128,
    atom_heads=4,
    token_heads=8,
    atom_encoder_blocks=1,
    token_blocks=2,
    atom_decoder_blocks=1,
)


def naive_forward(self, x, dt, frame_mask):
    """Reference temporal attention: bias copied per atom, explicit softmax."""
    b, t, n, c = x.shape
    h, d = self.heads, c // self.heads
    qkv = self.qkv(self.norm(x)).view(b, t, n, 3, h, d)
    q, k, v = qkv.permute(3, 0, 2, 4, 1, 5)
    bias = attention.temporal_bias(dt, self.log_lambda, frame_mask, self.causal, q.dtype)
    bias = bias[:, None].expand(b, n, h, t, t).contiguous()  # one copy per atom/token
    scores = torch.einsum("bnhid,bnhjd->bnhij", q, k) / math.sqrt(d) + bias
    out = torch.einsum("bnhij,bnhjd->bnhid", scores.softmax(-1), v)
    return x + self.out(out.permute(0, 3, 1, 2, 4).reshape(b, t, n, c))


def time_training_step(
    net: torch.nn.Module,
    batch: dict,
    x: torch.Tensor,
    sigma: torch.Tensor,
    repeats: int,
    bf16: bool = False,
) -> dict[str, float]:
    """Seconds per forward + backward + AdamW step (after one warm-up step) and peak memory
    in MB (CUDA's allocator peak, or this process's peak RSS on the CPU); ``bf16`` autocasts
    the forward on CUDA, as training does."""
    cuda = x.device.type == "cuda"
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and cuda):
            loss = net(batch, x, sigma).float().square().mean()
        loss.backward()
        opt.step()

    step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / repeats
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"seconds": seconds, "peak_mb": peak}


def one(impl: str, t: int, m: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    if impl == "naive":
        attention.TemporalAttention.forward = naive_forward
    net = DiffusionNetwork(ModelConfig(**CFG)).to(device)
    batch, x, sigma = synthetic_batch(t, m, max(1, m // 8), CFG["c_s"], CFG["c_z"], device)
    return {"impl": impl, "T": t, "M": m, **time_training_step(net, batch, x, sigma, repeats)}


def synthetic_batch(
    t: int, m: int, n: int, c_s: int, c_z: int, device: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A batch of one trajectory (T frames, M atoms in N tokens, random features and trunk
    embeddings, frames 0.1 ns apart), noisy coordinates and σ = 5 Å: what a step's cost
    depends on, not its values."""
    batch = {
        "atom_features": torch.randn(1, m, ATOM_FEATURES),
        "atom_mask": torch.ones(1, m, dtype=bool),
        "atom_to_token": (torch.arange(m) * n // m)[None],
        "token_mask": torch.ones(1, n, dtype=bool),
        "s_inputs": torch.randn(1, n, c_s),
        "s_trunk": torch.randn(1, n, c_s),
        "z_trunk": torch.randn(1, n, n, c_z),
        "times": torch.arange(t)[None].float() * 0.1,
        "frame_mask": torch.ones(1, t, dtype=bool),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    x = torch.randn(1, t, m, 3, device=device)
    return batch, x, torch.full((1, t), 5.0, device=device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--child", nargs=3, metavar=("IMPL", "T", "M"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--atoms", type=int, nargs="+", default=[256, 1024])
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.child:
        impl, t, m = a.child[0], int(a.child[1]), int(a.child[2])
        keep_freed_memory()  # as the train command does
        print(json.dumps(one(impl, t, m, device, a.repeats)))
        return
    print(f"device: {device}; model {CFG}")
    print(
        f"{'T':>4} {'M':>6} | {'ours s':>8} {'naive s':>8} {'speed-up':>8} | "
        f"{'ours MB':>8} {'naive MB':>9} {'ratio':>6}"
    )
    for m in a.atoms:
        for t in a.frames:
            res = {}
            for impl in ("ours", "naive"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        impl,
                        str(t),
                        str(m),
                        "--repeats",
                        str(a.repeats),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
            o, r = res["ours"], res["naive"]
            print(
                f"{t:>4} {m:>6} | {o['seconds']:8.3f} {r['seconds']:8.3f} "
                f"{r['seconds'] / o['seconds']:7.2f}x | {o['peak_mb']:8.0f} "
                f"{r['peak_mb']:9.0f} {r['peak_mb'] / o['peak_mb']:5.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
