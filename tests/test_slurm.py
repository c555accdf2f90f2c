"""A real one-node SLURM cluster on localhost runs the example workflow through the slurm profile.

The test installs slurmctld, slurmd, slurm-client and munge from Debian when they are missing
(root and apt needed; otherwise it skips and says why), starts munged, slurmctld and slurmd with
state in a temporary folder (the config itself at /etc/slurm/slurm.conf, where job steps look; the
test skips when one is already there), runs Snakemake with ``--profile profiles/slurm`` and stops
every daemon it started and removes the config.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, example_config, venv_env

pytestmark = pytest.mark.slow
PACKAGES = ["slurmd", "slurmctld", "slurm-client", "munge"]

SLURM_CONF = """\
ClusterName=boltzkinema
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=localhost CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _ensure_installed() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and cannot be (needs root and apt-get)")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, capture_output=True, env=env
    )


def _wait(check, what: str, seconds: float = 60.0) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if check():
            return
        time.sleep(1)
    raise RuntimeError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _ensure_installed()
    tmp = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (tmp / sub).mkdir()
    # Job steps (srun inside a job) read the default path, so the config must live there.
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists():
        pytest.skip(f"{conf} exists: this machine has its own SLURM; not touching it")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(SLURM_CONF.format(tmp=tmp, cpus=os.cpu_count() or 2, mem=16000))
    env = venv_env(SLURM_CONF=str(conf))
    started: list[subprocess.Popen] = []
    munge_key = Path("/etc/munge/munge.key")
    if not munge_key.exists():
        subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        started.append(
            subprocess.Popen(
                ["munged", "--foreground", "--force"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    started.append(
        subprocess.Popen(
            ["slurmctld", "-D", "-f", str(conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    started.append(
        subprocess.Popen(
            ["slurmd", "-D", "-N", "localhost", "-f", str(conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        _wait(
            lambda: (
                "idle"
                in subprocess.run(
                    ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True
                ).stdout
            ),
            "an idle SLURM node",
        )
        yield env, tmp
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        conf.unlink(missing_ok=True)


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
