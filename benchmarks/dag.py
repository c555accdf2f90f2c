"""How long ``snakemake -n`` takes to build the DAG for 1,000 and 20,000 systems, in one run.

A synthetic dataset index (the checkpoint output ``results/index/{dataset}.json``) lists the
systems; no raw files are needed, because the workflow reads only the index's shard names when it
builds the DAG. Run: ``.venv/bin/python benchmarks/dag.py [--shard-size 64]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def dry_run(n_systems: int, shard_size: int) -> tuple[float, int]:
    """Seconds for ``snakemake -n`` and the number of jobs it planned."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        raw = work / "raw.h5"
        raw.touch()
        cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        cfg["datasets"] = {"synthetic": {"format": "misato", "inputs": [str(raw)]}}
        cfg["preprocess"]["shard_size"] = shard_size
        cfg["sample"]["systems"] = []
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        shards = {
            f"{i // shard_size:04d}": [
                {
                    "system_id": f"synthetic.S{j:06d}",
                    "format": "misato",
                    "path": str(raw),
                    "group": f"S{j:06d}",
                    "topology": "",
                    "extra": {},
                }
                for j in range(i, min(n_systems, i + shard_size))
            ]
            for i in range(0, n_systems, shard_size)
        }
        index = work / "results" / "index" / "synthetic.json"
        index.parent.mkdir(parents=True)
        index.write_text(
            json.dumps(
                {
                    "dataset": "synthetic",
                    "format": "misato",
                    "n_systems": n_systems,
                    "shard_size": shard_size,
                    "shards": shards,
                }
            )
        )
        os.utime(raw, (time.time() - 60, time.time() - 60))
        env = dict(
            os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        )
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-n",
                "-s",
                str(REPO / "Snakefile"),
                "--directory",
                str(work),
                "--configfile",
                str(work / "config.yaml"),
                "--cores",
                "2",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        totals = [
            int(line.split()[-1])
            for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip().startswith("total")
        ]
        jobs = totals[-1] if totals else 0
        return seconds, jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    a = p.parse_args()
    results = {}
    for n in a.sizes:
        seconds, jobs = dry_run(n, a.shard_size)
        results[n] = seconds
        print(
            f"{n:>6} systems, shard size {a.shard_size}: {jobs} jobs planned, "
            f"snakemake -n {seconds:.1f} s",
            flush=True,
        )
    if len(results) >= 2:
        small, big = min(results), max(results)
        print(f"ratio {big}/{small} systems: {results[big] / results[small]:.2f}x time")


if __name__ == "__main__":
    main()
