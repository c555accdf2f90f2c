"""How a training step's time and memory grow with the atom count, for both architectures.

One CPU thread (or the GPU), forward + backward + AdamW of a batch of one trajectory, at T
frames and M atoms (M/8 tokens, 4 heads, 3 spatial layers per stack): the native network
(c_atom 128, c_token 128) and the Boltz-2 layout (atom_s 128, token_s 128, its 32/128 atom
windows). Each (architecture, T, M) runs in its own process so that peak RSS is clean. Printed:
seconds and peak MB per step, and the ratio to the size a quarter as large, measured in the
same run (target: at most 5x time for 4x atoms). The children keep freed memory as the train
and sample commands do (``util.keep_freed_memory``); ``--default-allocator`` measures glibc's
default, which unmaps every large block on free and page-faults it back in the next step. Run::

    .venv/bin/python benchmarks/model_scaling.py [--atoms 512 2048 8192] [--frames 8 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
from model import time_training_step  # benchmarks/model.py (this script's folder)

from boltzkinema.data.features import ATOM_FEATURES
from boltzkinema.model.boltz2_network import Boltz2Config, Boltz2DiffusionNetwork
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.util import keep_freed_memory

NATIVE = dict(
    c_s=128, c_z=16, c_atom=128, c_token=128, atom_heads=4, token_heads=4,
    atom_encoder_blocks=3, token_blocks=3, atom_decoder_blocks=3,
)  # fmt: skip
BOLTZ2 = dict(
    token_s=128, token_z=16, atom_s=128, atom_z=16, atom_encoder_depth=3, atom_encoder_heads=4,
    token_transformer_depth=3, token_transformer_heads=4, atom_decoder_depth=3,
    atom_decoder_heads=4,
)  # fmt: skip


def _batch(arch: str, t: int, m: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = max(1, m // 8)
    width = NATIVE["c_s"] if arch == "native" else BOLTZ2["token_s"]
    batch = {
        "atom_mask": torch.ones(1, m, dtype=torch.bool),
        "atom_to_token": (torch.arange(m) * n // m)[None],
        "token_mask": torch.ones(1, n, dtype=torch.bool),
        "s_inputs": torch.randn(1, n, width, generator=g),
        "s_trunk": torch.randn(1, n, width, generator=g),
        "z_trunk": torch.randn(1, n, n, 16, generator=g),
        "times": torch.arange(t)[None].float() * 0.1,
        "frame_mask": torch.ones(1, t, dtype=torch.bool),
    }
    if arch == "native":
        batch["atom_features"] = torch.randn(1, m, ATOM_FEATURES, generator=g)
        return batch
    tokens = torch.arange(n)[None]
    zeros = torch.zeros(1, n, dtype=torch.long)
    batch.update(
        {
            "atom.ref_pos": torch.randn(1, m, 3, generator=g) * 10,
            "atom.ref_charge": torch.zeros(1, m),
            "atom.ref_element": torch.full((1, m), 6),
            "atom.ref_atom_name_chars": torch.randint(0, 64, (1, m, 4), generator=g),
            "atom.ref_space_uid": batch["atom_to_token"].clone(),
            "token.res_type": torch.full((1, n), 2),
            "token.residue_index": tokens,
            "token.asym_id": zeros,
            "token.entity_id": zeros,
            "token.sym_id": zeros,
            "token.cyclic_period": zeros,
            "token.modified": zeros,
            "token.mol_type": zeros,
        }
    )
    return batch


def one(arch: str, t: int, m: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    net = (
        DiffusionNetwork(ModelConfig(**NATIVE))
        if arch == "native"
        else Boltz2DiffusionNetwork(Boltz2Config(**BOLTZ2))
    ).to(device)
    batch = {k: v.to(device) for k, v in _batch(arch, t, m).items()}
    x = torch.randn(1, t, m, 3, device=device)
    sigma = torch.full((1, t), 5.0, device=device)
    return time_training_step(net, batch, x, sigma, repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", nargs=3, metavar=("ARCH", "T", "M"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--frames", type=int, nargs="+", default=[8, 32])
    p.add_argument("--atoms", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--archs", nargs="+", default=["native", "boltz2"])
    p.add_argument("--default-allocator", action="store_true")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)
    if a.child:
        arch, t, m = a.child[0], int(a.child[1]), int(a.child[2])
        if not a.default_allocator:
            keep_freed_memory()
        print(json.dumps(one(arch, t, m, device, a.repeats)))
        return
    allocator = "glibc default" if a.default_allocator else "freed memory kept"
    print(f"device: {device}, 1 thread, {allocator}; native {NATIVE}; boltz2 {BOLTZ2}")
    print(f"{'arch':>7} {'T':>3} {'M':>6} | {'s/step':>8} {'x vs M/4':>8} | {'peak MB':>8}")
    for arch in a.archs:
        for t in a.frames:
            last, prev_m = None, 0
            for m in a.atoms:
                cmd = [sys.executable, __file__, "--child", arch, str(t), str(m)]
                cmd += ["--default-allocator"] if a.default_allocator else []
                out = subprocess.run(
                    [*cmd, "--repeats", str(a.repeats)], capture_output=True, text=True
                )
                if out.returncode != 0:
                    print(f"{arch:>7} {t:>3} {m:>6} | failed: {out.stderr.strip()[-200:]}")
                    break
                res = json.loads(out.stdout.strip().splitlines()[-1])
                ratio = f"{res['seconds'] / last:7.2f}x" if last and m == 4 * prev_m else " " * 8
                print(
                    f"{arch:>7} {t:>3} {m:>6} | {res['seconds']:8.2f} {ratio} | "
                    f"{res['peak_mb']:8.0f}",
                    flush=True,
                )
                last, prev_m = res["seconds"], m


if __name__ == "__main__":
    main()
