"""How a training job starts its processes: this one alone, torchrun over the devices of one
node, or, on several nodes of a SLURM job, ``srun`` starting one torchrun agent per node, the
agents meeting by c10d rendezvous on the job's first node.

``python -m boltzkinema train`` calls :func:`launch_command` first; where it returns a command,
the process becomes that command, and every training process it starts runs the same
``train`` line again (torchrun sets ``LOCAL_RANK``, so those train).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

from boltzkinema.errors import ConfigError


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True).stdout


def first_node(nodelist: str) -> str:
    """The address of the first node of a SLURM node list: its ``NodeAddr``, the name SLURM
    itself connects to (often the node's name; on clusters whose node names are not host names,
    and on a test cluster of several slurmd on one host, not)."""
    name = _scontrol("show", "hostnames", nodelist).split()[0]
    found = re.search(r"\bNodeAddr=(\S+)", _scontrol("show", "node", name))
    return found.group(1) if found else name


def launch_command(
    args: Sequence[str], devices: int, nodes: int, port: int, env: Mapping[str, str]
) -> list[str] | None:
    """The command that starts the training processes of ``python -m boltzkinema <args>``, or
    None when this process is the one to train (one device, none as on a CPU node given
    ``gpu=0``, or already started by torchrun)."""
    if "LOCAL_RANK" in env or (devices <= 1 and nodes == 1):
        return None
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    train = ["-m", "boltzkinema", *args]
    if nodes == 1:
        return [*torchrun, "--standalone", f"--nproc-per-node={devices}", *train]
    if "SLURM_JOB_ID" not in env or "SLURM_JOB_NODELIST" not in env:
        raise ConfigError(
            f"train.nodes is {nodes}: training on several nodes runs inside a SLURM job "
            "(snakemake --profile slurm asks for the nodes); set train.nodes: 1 to train on "
            "this machine"
        )
    head = first_node(env["SLURM_JOB_NODELIST"])
    return [
        "srun",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        *torchrun,
        f"--nnodes={nodes}",
        f"--nproc-per-node={devices}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={head}:{port}",
        f"--rdzv-id={env['SLURM_JOB_ID']}",
        *train,
    ]
