"""A real SLURM cluster on this host for tests: munged, slurmctld and one slurmd per node.

Several nodes on one host are several slurmd daemons, each started with its node's name
(``slurmd -N``) and listening on its own port; every node's address is 127.0.0.1, and node names
(``bknode1`` ...) need not resolve, as SLURM and our launch line connect to ``NodeAddr``. Debian's
slurmd 22.05 runs several per host; a build that cannot makes a several-node cluster skip, with
the daemons' logs (the srun line is then tested through stand-ins, ``test_multinode.py``). Debian's
SLURM packages are installed when missing (root and apt needed; otherwise the test skips and
says why). The config lives at /etc/slurm/slurm.conf, where job steps look for it, and the
cluster is refused when one is already there (this machine has its own SLURM).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import venv_env

PACKAGES = ["slurmd", "slurmctld", "slurm-client", "munge"]
CONF = Path("/etc/slurm/slurm.conf")
SLURMD_PORT = 16818

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
SlurmdSpoolDir={tmp}/spool/%n
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.%n.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.%n.log
SlurmctldPort=16817
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def node_names(n: int) -> list[str]:
    return [f"bknode{i}" for i in range(1, n + 1)]


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


def _daemon(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def local_cluster(tmp: Path, n_nodes: int = 1) -> Iterator[dict[str, str]]:
    """A cluster of ``n_nodes`` idle nodes (the host's CPUs shared out); yields the environment
    to run SLURM commands in, and stops every daemon it started and removes the config."""
    _ensure_installed()
    if CONF.exists():
        pytest.skip(f"{CONF} exists: this machine has its own SLURM; not touching it")
    for sub in ("state", "spool"):
        (tmp / sub).mkdir(exist_ok=True)
    names = node_names(n_nodes)
    cpus = max(1, (os.cpu_count() or 2) // n_nodes)
    nodes = "\n".join(
        f"NodeName={name} NodeAddr=127.0.0.1 Port={SLURMD_PORT + i} CPUs={cpus} "
        f"RealMemory={16000 // n_nodes} State=UNKNOWN"
        for i, name in enumerate(names)
    )
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(SLURM_CONF.format(tmp=tmp, nodes=nodes))
    env = venv_env(SLURM_CONF=str(CONF))
    started: list[subprocess.Popen] = []
    try:
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
            started.append(_daemon(["munged", "--foreground", "--force"]))
        started.append(_daemon(["slurmctld", "-D", "-f", str(CONF)], env))
        started += [_daemon(["slurmd", "-D", "-N", name, "-f", str(CONF)], env) for name in names]

        def all_idle() -> bool:
            states = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True
            ).stdout.split()
            return states.count("idle") == n_nodes

        try:
            _wait(all_idle, f"{n_nodes} idle SLURM node(s)")
        except RuntimeError:
            if n_nodes == 1:
                raise
            logs = "".join(p.read_text()[-300:] for p in sorted(tmp.glob("slurm*.log")))
            pytest.skip(f"this SLURM cannot run {n_nodes} slurmd on one host: {logs}")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        CONF.unlink(missing_ok=True)
