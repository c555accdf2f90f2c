"""Training past one process: a global batch that holds whatever the device count, two torchrun
agents on localhost (two "nodes", gloo, c10d rendezvous on 127.0.0.1), the srun line a SLURM
job runs, and a resume after one agent is killed.

Two ways to the srun line: a real two-node SLURM job (two slurmd daemons on this host,
``slurm_cluster.local_cluster``), and, where SLURM cannot run, two small stand-ins (``srun``
starts its command once per node, ``scontrol`` names the nodes and their address). Everything
they start is the real launch line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from boltzkinema.errors import ConfigError
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.batches import accumulation_steps, step_indices
from boltzkinema.train.launch import launch_command
from conftest import TINY_MODEL
from slurm_cluster import local_cluster

MODEL = TINY_MODEL
STEPS = 30

FAKE_SRUN = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
nodes = int(next(a for a in args if a.startswith("--nodes=")).split("=")[1])
command = args[next(i for i, a in enumerate(args) if not a.startswith("--")):]
procs = [
    subprocess.Popen(command, env=dict(os.environ, SLURM_NODEID=str(i), SLURM_PROCID=str(i)))
    for i in range(nodes)
]
sys.exit(max(p.wait() for p in procs))
"""
FAKE_SCONTROL = """#!/bin/sh
[ "$1 $2" = "show hostnames" ] && echo node1 && echo node2
[ "$1 $2" = "show node" ] && echo "NodeName=$3 Arch=x86_64 CoresPerSocket=1" && \
  echo "   NodeAddr=127.0.0.1 NodeHostName=$3 Version=22.05.8"
exit 0
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, **kw) -> Path:
    cfg = {
        "run": "mn",
        "steps": STEPS,
        "batch_size": 1,
        "global_batch": 2,
        "checkpoint_every": 10,
        "val_every": 0,
        "segments": {"n_frames": 2, "max_atoms": 48, "max_tokens": 12},
        "model": MODEL,
        **kw,
    }
    path = tmp / f"train{len(list(tmp.glob('train*.json')))}.json"
    path.write_text(json.dumps(cfg))
    return path


def _train_args(results: Path, config: Path, run: Path) -> list[str]:
    return [
        "train",
        "--manifest",
        str(results / "manifest.parquet"),
        "--results-root",
        str(results),
        "--config",
        str(config),
        "--run-dir",
        str(run),
        "--output",
        str(run / "done.json"),
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK"))}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _weights(run: Path) -> dict:
    step, folder = ckpt.list_checkpoints(run)[-1]
    assert step == STEPS
    return load_file(str(folder / "model.safetensors"))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst


def _batch_record(run: Path) -> dict:
    return json.loads((ckpt.list_checkpoints(run)[-1][1] / "state.json").read_text())["batch"]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it (an agent and its training worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        _kill_tree(int(child))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _agent(results: Path, config: Path, run: Path, port: int) -> subprocess.Popen:
    """One torchrun agent of a two-node job."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=kill-test",
        "-m",
        "boltzkinema",
        *_train_args(results, config, run),
    ]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def one_process(example_results, tmp_path_factory) -> Path:
    """The reference: one process, accumulating the global batch of 2 in two micro-batches."""
    tmp = tmp_path_factory.mktemp("one")
    run = tmp / "run"
    args = _train_args(example_results, _config(tmp), run)
    proc = subprocess.run(
        [sys.executable, "-m", "boltzkinema", *args], env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_the_items_of_a_step_do_not_depend_on_the_process_layout():
    """Global batch 8 as 1 x 8 micro-batches, 2 processes x 4, 4 x 2 or 8 x 1: one item set."""
    for step in (0, 3):
        layouts = []
        for world in (1, 2, 4, 8):
            accumulation = 8 // world
            layouts.append(
                sorted(
                    index
                    for rank in range(world)
                    for micro in range(accumulation)
                    for _, index in step_indices(step, 1, world, rank, 1000, micro, accumulation)
                )
            )
        assert all(layout == list(range(8 * step, 8 * step + 8)) for layout in layouts)


def test_a_global_batch_that_does_not_divide_is_refused():
    assert accumulation_steps(None, 4, 2) == 1
    assert accumulation_steps(32, 4, 2) == 4
    with pytest.raises(ConfigError, match="multiple of 8"):
        accumulation_steps(12, 4, 2)


def test_the_rendezvous_host_is_the_first_nodes_address_else_its_name(monkeypatch):
    from boltzkinema.train import launch

    answers = {
        ("show", "hostnames", "n[1-2]"): "n1\nn2\n",
        ("show", "node", "n1"): "NodeName=n1 Arch=x86_64\n   NodeAddr=10.0.0.7 NodeHostName=n1\n",
    }
    monkeypatch.setattr(launch, "_scontrol", lambda *args: answers[args])
    assert launch.first_node("n[1-2]") == "10.0.0.7"
    answers[("show", "node", "n1")] = "NodeName=n1 Arch=x86_64\n"
    assert launch.first_node("n[1-2]") == "n1"


def test_several_nodes_need_a_slurm_job():
    with pytest.raises(ConfigError, match="SLURM job"):
        launch_command(["train"], 1, 2, 29500, {})
    assert launch_command(["train"], 1, 1, 29500, {}) is None
    assert launch_command(["train"], 0, 1, 29500, {}) is None  # gpu=0: a CPU node
    assert launch_command(["train"], 4, 2, 29500, {"LOCAL_RANK": "0"}) is None
    assert "--standalone" in launch_command(["train"], 2, 1, 29500, {})


def test_two_nodes_through_the_srun_line_match_one_process(example_results, one_process, tmp_path):
    """The launch line of a two-node SLURM job (srun, one torchrun agent per node, c10d on the
    first node) trains the same weights as one process with the same global batch."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    run = tmp_path / "run"
    config = _config(tmp_path, nodes=2, rendezvous_port=_free_port())
    env = _env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NODELIST="node[1-2]",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "boltzkinema", *_train_args(example_results, config, run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "srun --nodes=2 --ntasks-per-node=1" in proc.stderr
    assert "--rdzv-endpoint=127.0.0.1:" in proc.stderr
    _assert_same(_weights(run), _weights(one_process))
    assert _batch_record(run) == {
        "global": 2,
        "per_device": 1,
        "processes": 2,
        "nodes": 2,
        "accumulation": 1,
    }
    assert _batch_record(one_process)["accumulation"] == 2


@pytest.mark.slow
def test_a_two_node_slurm_job_matches_one_process(example_results, one_process, tmp_path):
    """sbatch on a real two-node cluster: the train line starts srun, srun one torchrun agent
    on each node, the agents meet on the first node's address, and they train the weights of
    one process with the same global batch."""
    (tmp_path / "slurm").mkdir()
    with local_cluster(tmp_path / "slurm", n_nodes=2) as cluster_env:
        run = tmp_path / "run"
        config = _config(tmp_path, nodes=2, rendezvous_port=_free_port())
        train = [sys.executable, "-m", "boltzkinema", *_train_args(example_results, config, run)]
        out = tmp_path / "job.out"
        job = [
            "sbatch",
            "--wait",
            "--nodes=2",
            "--ntasks-per-node=1",
            f"--output={out}",
            "--wrap",
            shlex.join(train),
        ]
        env = _env(PATH=cluster_env["PATH"], SLURM_CONF=cluster_env["SLURM_CONF"])
        proc = subprocess.run(job, env=env, capture_output=True, text=True, timeout=900)
        log = out.read_text() if out.exists() else ""
        assert proc.returncode == 0, proc.stderr + log[-3000:]
    assert "srun --nodes=2 --ntasks-per-node=1" in log
    assert "--rdzv-endpoint=127.0.0.1:" in log  # the first node's NodeAddr, not its name
    _assert_same(_weights(run), _weights(one_process))
    assert _batch_record(run)["nodes"] == 2


def test_a_killed_agent_resumes_to_the_same_weights_on_one_process(
    example_results, one_process, tmp_path
):
    """Two agents train; one is killed between checkpoints; the run resumes in one process
    (the device count changed, the global batch did not) and ends where one process ends."""
    run = tmp_path / "run"
    config = _config(tmp_path)
    port = _free_port()
    agents = [_agent(example_results, config, run, port) for _ in range(2)]
    deadline = time.time() + 300
    while time.time() < deadline:
        steps = [s for s, _ in ckpt.list_checkpoints(run)] if run.exists() else []
        if steps and max(steps) < STEPS:
            break
        assert all(a.poll() is None for a in agents), agents[0].stderr.read()[-3000:]
        time.sleep(0.05)
    _kill_tree(agents[1].pid)
    try:
        agents[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        _kill_tree(agents[0].pid)
    for a in agents:
        a.wait()
    assert not (run / "done.json").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "boltzkinema", *_train_args(example_results, config, run)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr
    _assert_same(_weights(run), _weights(one_process))
