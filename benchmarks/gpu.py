"""The GPU checks of a session that is lent a GPU, in one run (one device call, a few minutes).

On CUDA where there is one (else on the CPU; ``--smoke`` runs every part at toy sizes, as the
tests do), prints:

1. the training step of ``config/gpu.yaml``'s network (forward with bf16 autocast on CUDA, as
   training does; backward; AdamW) for T = 8 and 32 frames and M = 2,000 and 5,000 atoms
   (M/8 tokens, a batch of one): seconds and peak memory (CUDA's allocator peak);
2. the attention operators and kernels the temporal attention gets with its (B, H, T, T) bias,
   forward and backward, from torch's profiler (which SDPA backend: flash, memory-efficient,
   cuDNN or the math fallback);
3. sampling speed at 187L's size (T4 lysozyme L99A + p-xylene: 1,298 heavy atoms, 170 tokens):
   forecast windows of 8 frames (1 given, 7 generated) with the sampler as ``sample`` runs it
   (float32, 20 Heun steps), in generated ns per second at 1 ns per frame.

It imports only torch, NumPy, PyYAML and ``boltzkinema``'s network and sampler, which a bare GPU
machine has (run it with ``PYTHONPATH=src``). Not here: the Boltz-2 trunk per system on CUDA,
which needs the Boltz environment and the real checkpoint
(``benchmarks/trunk.py --device cuda --checkpoint boltz2_conf.ckpt``). Run::

    PYTHONPATH=src python benchmarks/gpu.py [--smoke]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from model import synthetic_batch, time_training_step

from boltzkinema.model.layers.attention import TemporalAttention
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.sample.sampler import SamplerConfig, sample

REPO = Path(__file__).resolve().parents[1]
T4L_ATOMS, T4L_TOKENS = 1298, 170  # 187L's heavy atoms and tokens, as preprocessed
SMOKE = {"c_atom": 16, "c_token": 32, "atom_heads": 2, "token_heads": 2, "token_blocks": 1}


def model_config(smoke: bool) -> ModelConfig:
    """``config/gpu.yaml``'s network (toy widths with ``smoke``)."""
    gpu = yaml.safe_load((REPO / "config" / "gpu.yaml").read_text())
    model = {k: v for k, v in gpu["train"]["model"].items() if k in ModelConfig.__annotations__}
    model.update(SMOKE if smoke else {})
    return ModelConfig(c_s=gpu["trunk"]["c_s"], c_z=gpu["trunk"]["c_z"], **model)


def training_steps(cfg: ModelConfig, sizes: list[tuple[int, int]], device: str) -> None:
    print(f"1. training step, config/gpu.yaml network, bf16 autocast: {device}")
    for t, m in sizes:
        torch.manual_seed(0)
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        net = DiffusionNetwork(cfg).to(device).train()
        batch, x, sigma = synthetic_batch(t, m, max(1, m // 8), cfg.c_s, cfg.c_z, device)
        try:
            r = time_training_step(net, batch, x, sigma, repeats=3, bf16=True)
            print(f"   T {t:3d}  M {m:5d}: {r['seconds']:7.3f} s/step  peak {r['peak_mb']:8.0f} MB")
        except torch.OutOfMemoryError:
            print(f"   T {t:3d}  M {m:5d}: out of memory")
        del net, batch, x, sigma


def attention_kernels(cfg: ModelConfig, device: str) -> None:
    """Profile one temporal attention block (token width, 384 tokens, 8 frames)."""
    print("2. temporal attention with its bias: operators and kernels (forward + backward)")
    block = TemporalAttention(cfg.c_token, cfg.token_heads).to(device)
    x = torch.randn(1, 8, 384, cfg.c_token, device=device, requires_grad=True)
    times = torch.arange(8, device=device, dtype=torch.float32)
    dt = (times[:, None] - times[None, :]).abs()[None]
    mask = torch.ones(1, 8, dtype=torch.bool, device=device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out = block(x, dt, mask)
        out.float().sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
    names = sorted(
        {
            e.key
            for e in prof.key_averages()
            if any(w in e.key.lower() for w in ("attention", "fmha", "flash", "softmax"))
        }
    )
    for name in names:
        print(f"   {name[:110]}")


def sampling_speed(cfg: ModelConfig, device: str, n_steps: int, windows: int) -> None:
    print(f"3. sampling at 187L's size ({T4L_ATOMS} atoms, {T4L_TOKENS} tokens), float32")
    torch.manual_seed(0)
    net = DiffusionNetwork(cfg).to(device).eval()
    batch, x, _ = synthetic_batch(8, T4L_ATOMS, T4L_TOKENS, cfg.c_s, cfg.c_z, device)
    batch["times"] = batch["times"] * 10.0  # 1 ns per frame
    known = torch.zeros(1, 8, dtype=torch.bool, device=device)
    known[:, 0] = True
    sampler = SamplerConfig(n_steps=n_steps)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sample(net.denoiser(batch), x, known, sampler, generator)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(windows):
            x = sample(net.denoiser(batch), x, known, sampler, generator)
        if device == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    generated_ns = windows * 7 * 1.0
    print(
        f"   {windows} windows x 7 frames, {n_steps} steps: {seconds / windows:.3f} s/window, "
        f"{generated_ns / seconds:.2f} generated ns/s ({generated_ns / seconds * 86400:.0f} ns/day)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="toy sizes: every part, in seconds")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}")
    cfg = model_config(a.smoke)
    sizes = [(4, 64), (8, 96)] if a.smoke else [(8, 2000), (8, 5000), (32, 2000), (32, 5000)]
    training_steps(cfg, sizes, device)
    attention_kernels(cfg, device)
    sampling_speed(cfg, device, n_steps=2 if a.smoke else 20, windows=1 if a.smoke else 5)


if __name__ == "__main__":
    main()
