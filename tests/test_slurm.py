"""A real one-node SLURM cluster on localhost runs the example workflow through the slurm profile.

The cluster (``slurm_cluster.local_cluster``, one node) keeps its state in a temporary folder;
the test runs Snakemake with ``--profile profiles/slurm`` through it.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, example_config
from slurm_cluster import local_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    with local_cluster(tmp) as env:
        yield env, tmp


def test_the_example_runs_through_the_slurm_profile(cluster, tmp_path):
    env, slurm_tmp = cluster
    example_config(tmp_path, train={"steps": 10}, sample={"modes": ["forecast"]})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--slurm-no-account",
            "--seconds-between-status-checks",
            "2",
            # A group job sums the resources of components that may run side by side: two fit
            # this small node (the profile's eight suit real nodes).
            "--group-components",
            "shard=2",
            "--set-resources",
            "train:gpu=0",
            "sample:gpu=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, log + (slurm_tmp / "slurmctld.log").read_text()[-2000:]
    submitted = re.findall(r"SLURM jobid (\d+)", proc.stdout + proc.stderr)
    assert len(submitted) >= 10  # every rule ran as a SLURM job (logs of successes are deleted)
    assert (tmp_path / "results" / "runs" / "example" / "report.html").exists()
    assert len(pd.read_parquet(tmp_path / "results" / "manifest.parquet")) == 6
