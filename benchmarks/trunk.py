"""Trunk cache time per system: the Boltz-2 trunk (``boltz2`` backend) against the built-in one.

Processes the bundled example (T4L L99A + p-xylene, villin HP35 from ATLAS and mdCATH, alanine
dipeptide) into one shard, then builds the trunk cache of that shard in a fresh folder with

- reference: the ``builtin`` featurizer (c_s 64, c_z 16 as in the example config);
- boltz2: the real Boltz-2 trunk from a checkpoint (default: the tiny random fixture
  ``tests/data/boltz2/tiny_boltz2_trunk_v2.ckpt``; give ``--checkpoint boltz2_conf.ckpt`` for the
  real model), in the Boltz environment (``make boltz-env``), one worker process per shard.

Prints worker start-up, seconds per unique system and the ratio to the built-in backend.
Run: ``.venv/bin/python benchmarks/trunk.py [--checkpoint PATH] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from boltzkinema.data.index import discover
from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.trunk.backend import get_backend
from boltzkinema.trunk.cache import build_trunk_cache

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "example"


def example_shard(root: Path) -> Path:
    """All example systems in one processed shard."""
    refs = [
        *discover("misato", "misato", [str(EXAMPLE / "misato" / "MD.hdf5")]),
        *discover("atlas", "atlas", [str(EXAMPLE / "atlas")]),
        *discover("mdcath", "mdcath", [str(EXAMPLE / "mdcath" / "*.h5")]),
    ]
    shard = root / "processed" / "s.h5"
    preprocess_shard(refs, shard, root / "r.json", ProcessOptions(frame_dt_ns=0.001))
    return shard


def timed_cache(shard: Path, root: Path, name: str, backend) -> tuple[float, int]:
    t0 = time.perf_counter()
    index = build_trunk_cache(shard, root / f"{name}.json", root / name, backend, root)
    return time.perf_counter() - t0, int(index.computed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    tiny = REPO / "tests" / "data" / "boltz2" / "tiny_boltz2_trunk_v2.ckpt"
    parser.add_argument("--checkpoint", default=str(tiny))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recycling-steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shard = example_shard(root)
        ref_s, n = timed_cache(shard, root, "builtin", get_backend("builtin", c_s=64, c_z=16))
        t0 = time.perf_counter()
        backend = get_backend(
            "boltz2",
            checkpoint=args.checkpoint,
            device=args.device,
            recycling_steps=args.recycling_steps,
        )
        startup = time.perf_counter() - t0
        try:
            boltz_s, n_boltz = timed_cache(shard, root, "boltz2", backend)
        finally:
            backend.close()
    print(f"unique systems: builtin {n}, boltz2 {n_boltz}")
    print(f"builtin: {ref_s / n:.3f} s/system")
    print(f"boltz2: worker start-up {startup:.1f} s, {boltz_s / n_boltz:.3f} s/system")
    print(f"ratio boltz2/builtin per system: {boltz_s / n_boltz / (ref_s / n):.1f}x")


if __name__ == "__main__":
    main()
