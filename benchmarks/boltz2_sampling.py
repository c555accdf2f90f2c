"""Sampling with the Boltz-2-layout network (``train.model.architecture: boltz2``): what the
conditioning computed once per window saves, and how the network compares with the native one.

On T4L L99A + p-xylene from the bundled MISATO example (1298 atoms, 170 tokens), one forecast
window (1 given + 3 generated frames, 2 samples, 10 sampler steps), random weights at a mid size
(token_s 128, token_z 32, atom_s 64, 4 token-transformer layers), random trunk embeddings:

- reference: Boltz-2 network called as ``net(batch, x, sigma)`` at every step (conditioning —
  atom-pair features, pair biases of every layer — recomputed each time);
- boltz2: ``net.denoiser(batch)`` (conditioning once per window, what ``sample`` does);
- native: our own network at comparable widths, for scale.

Also times the per-system Boltz-2 atom features (computed once per system in training and
sampling). Prints seconds and ratios against the reference measured in the same run.
Run: ``.venv/bin/python benchmarks/boltz2_sampling.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boltzkinema.data.features import atom_features
from boltzkinema.data.index import discover
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.store import ShardReader
from boltzkinema.model.boltz2_network import Boltz2Config, Boltz2DiffusionNetwork
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.sample.sampler import SamplerConfig, sample
from boltzkinema.trunk.boltz2_atoms import diffusion_features

REPO = Path(__file__).resolve().parents[1]
C_S, C_Z, FRAMES, SAMPLES = 128, 32, 4, 2
BOLTZ2 = Boltz2Config(
    token_s=C_S,
    token_z=C_Z,
    atom_s=64,
    atom_z=16,
    atom_encoder_depth=1,
    atom_decoder_depth=1,
    token_transformer_depth=4,
    token_transformer_heads=4,
    atom_encoder_heads=2,
    atom_decoder_heads=2,
)
NATIVE = ModelConfig(
    c_s=C_S,
    c_z=C_Z,
    c_atom=64,
    c_token=2 * C_S,
    atom_heads=2,
    token_heads=4,
    atom_encoder_blocks=1,
    token_blocks=4,
    atom_decoder_blocks=1,
)


def system_187l(root: Path):
    refs = discover("misato", "misato", [str(REPO / "resources/example/misato/MD.hdf5")])
    shard = root / "s.h5"
    preprocess_shard(refs, shard, root / "r.json", ProcessOptions(frame_dt_ns=0.001))
    with ShardReader(shard) as reader:
        return reader.load(reader.system_ids()[0])


def timed(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        system = system_187l(Path(tmp))
    ref = system.coords[0].astype(np.float64)
    t_ours = timed(lambda: atom_features(system.elements, system.mol_type, system.atom_names, ref))
    t_boltz = timed(lambda: diffusion_features(system))
    feats = diffusion_features(system)
    m, n = system.n_atoms, system.n_tokens
    print(f"system: {m} atoms, {n} tokens")
    print(f"atom features: native {t_ours * 1e3:.1f} ms, boltz2 {t_boltz * 1e3:.1f} ms (once)")

    def rep(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return x[None].expand(SAMPLES, *x.shape)

    batch = {k: rep(v) for k, v in feats.items()}
    batch.update(
        atom_features=rep(atom_features(system.elements, system.mol_type, system.atom_names, ref)),
        atom_to_token=rep(system.token_index.astype(np.int64)),
        atom_mask=torch.ones(SAMPLES, m, dtype=torch.bool),
        token_mask=torch.ones(SAMPLES, n, dtype=torch.bool),
        s_inputs=rep(torch.randn(n, C_S)),
        s_trunk=rep(torch.randn(n, C_S)),
        z_trunk=rep(torch.randn(n, n, C_Z)),
        times=rep(torch.arange(FRAMES) * 0.08),
        frame_mask=torch.ones(SAMPLES, FRAMES, dtype=torch.bool),
    )
    known = torch.zeros(SAMPLES, FRAMES, m, 3)
    known[:, 0] = torch.from_numpy(system.coords[0])
    mask = (torch.arange(FRAMES) < 1)[None].expand(SAMPLES, -1)
    cfg = SamplerConfig(n_steps=10)
    boltz2 = Boltz2DiffusionNetwork(BOLTZ2).eval()
    native = DiffusionNetwork(NATIVE).eval()

    def window(denoise_of) -> None:
        with torch.no_grad():
            sample(denoise_of(), known, mask, cfg, torch.Generator().manual_seed(0))

    reference = timed(lambda: window(lambda: lambda x, s: boltz2(batch, x, s)), repeats=2)
    cached = timed(lambda: window(lambda: boltz2.denoiser(batch)), repeats=2)
    ours = timed(lambda: window(lambda: native.denoiser(batch)), repeats=2)
    threads = torch.get_num_threads()
    print(f"window: {cfg.n_steps} steps, {SAMPLES} samples x {FRAMES} frames, {threads} threads")
    for name, seconds in [
        ("reference (boltz2, conditioning every step)", reference),
        ("boltz2 (conditioning once per window)", cached),
        ("native network, comparable widths", ours),
    ]:
        print(f"  {name:<45} {seconds:6.2f} s  ({reference / seconds:.2f}x)")
    count = [sum(p.numel() for p in net.parameters()) for net in (boltz2, native)]
    print(f"  parameters: boltz2 {count[0]:,}, native {count[1]:,}")


if __name__ == "__main__":
    main()
