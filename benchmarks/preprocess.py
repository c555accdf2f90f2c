"""Preprocessing throughput against a plain h5py read of the same coordinates, in one run.

Builds a MISATO-layout file of N copies of the example complex (T4 lysozyme L99A + p-xylene,
2,621 atoms with hydrogens) with F frames each (the example's frames repeated, 100 by default as
in MISATO), then times:

- reference: ``h5py`` reading every group's ``trajectory_coordinates`` into memory;
- preprocess, replicas: the full ``preprocess_shard`` (read, checks, units, bonds, RDKit ligand
  check, unwrapping, superposition, tokens, shard write). The copies share one topology, as
  mdCATH's temperatures × replicas of a domain or MISATO reruns do, so per-topology work
  (residue walking, bonds, the ligand check, the topology hash) is done once;
- preprocess, distinct topologies: the same with reuse turned off (``TopologyCache(0)``), what a
  shard of unique complexes (MISATO's) costs.

Throughput is input atom-frames per second; the ratio says how many times slower preprocessing is
than just reading the bytes. Each is the fastest of ``--repeats`` runs (a shared machine's noise
only ever slows a run down). Run:
``.venv/bin/python benchmarks/preprocess.py [--systems 8] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from boltzkinema.data.preprocess import preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.io import misato
from boltzkinema.io.topology_cache import TopologyCache

EXAMPLE = Path(__file__).resolve().parents[1] / "resources" / "example" / "misato" / "MD.hdf5"


def build_input(path: Path, systems: int, frames: int) -> int:
    """Write ``systems`` groups of ``frames`` frames; return atoms per system."""
    with h5py.File(EXAMPLE, "r") as src, h5py.File(path, "w") as dst:
        g0 = src["187L"]
        xyz = g0["trajectory_coordinates"][()]
        reps = int(np.ceil(frames / len(xyz)))
        xyz = np.concatenate([xyz] * reps)[:frames]
        for i in range(systems):
            g = dst.create_group(f"S{i:04d}")
            for name, ds in g0.items():
                if name != "trajectory_coordinates" and not name.startswith("frames_"):
                    g.create_dataset(name, data=ds[()])
            g.create_dataset("trajectory_coordinates", data=xyz, chunks=(1, *xyz.shape[1:]))
        return int(xyz.shape[1])


def fastest(run: Callable[[], None], repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls of ``run``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tmp / "MD.hdf5"
        n_atoms = build_input(raw, args.systems, args.frames)
        atom_frames = args.systems * args.frames * n_atoms

        def read() -> None:
            with h5py.File(raw, "r") as f:
                total = sum(float(f[k]["trajectory_coordinates"][()].sum()) for k in f)
            assert np.isfinite(total)

        def preprocess(cache: TopologyCache | None) -> None:
            report = preprocess_shard(
                refs,
                tmp / "out.h5",
                tmp / "out.json",
                ProcessOptions(frame_dt_ns=0.08),
                cache=cache,
            )
            assert report.n_ok == args.systems, report.systems[0]

        refs = misato.discover("bench", [str(raw)])
        t_read = fastest(read, args.repeats)
        timings = {
            "replicas": fastest(lambda: preprocess(None), args.repeats),
            "distinct topologies": fastest(lambda: preprocess(TopologyCache(0)), args.repeats),
        }

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"input: {args.systems} systems x {args.frames} frames x {n_atoms} atoms "
        f"= {atom_frames:,} atom-frames"
    )
    rate = atom_frames / t_read
    print(f"{'h5py read (reference):':37s}{t_read:8.3f} s  {rate:14,.0f} atom-frames/s")
    for label, t_pre in timings.items():
        print(
            f"{'preprocess, ' + label + ':':37s}{t_pre:8.3f} s  {atom_frames / t_pre:14,.0f} "
            f"atom-frames/s  {t_pre / t_read:5.1f}x the read ({t_pre / args.systems:.3f} s/system)"
        )
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
