"""Profiles and environments: every profile plans the example DAG; conda envs match pyproject."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO, example_config, venv_env

# conda-forge names of the PyPI packages we depend on, where they differ.
CONDA_NAMES = {"torch": "pytorch", "tables": "pytables", "matplotlib": "matplotlib-base"}
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


@pytest.mark.parametrize("profile", ["local", "runpod", "slurm"])
def test_every_profile_plans_the_whole_dag(profile, tmp_path):
    example_config(tmp_path)
    env = venv_env()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--profile",
            str(REPO / "profiles" / profile),
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"index_dataset\s+4", out) and "checkpoint" in out.lower()


def _requirement_names(specs: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ]", s, maxsplit=1)[0].lower() for s in specs}


@pytest.mark.parametrize("env_file", ["core.yaml", "sim.yaml"])
def test_conda_environments_carry_every_runtime_dependency(env_file):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = _requirement_names(project["dependencies"]) - WORKFLOW_ONLY
    if env_file == "sim.yaml":
        needed |= _requirement_names(project["optional-dependencies"]["sim"])
    env = yaml.safe_load((REPO / "envs" / env_file).read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= _requirement_names(dep["pip"])
        else:
            conda |= _requirement_names([dep])
    missing = {n for n in needed if CONDA_NAMES.get(n, n) not in conda and n not in pip}
    assert not missing, f"{env_file} lacks {sorted(missing)}"


def _plan_train(work: Path, config: Path, *extra: str) -> str:
    """What ``snakemake -n -p --until train -F`` prints for the config (jobs, resources,
    shell lines)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "-s", str(REPO / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(config), "--until", "train", "-F"]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=venv_env(), cwd=work)
    return proc.stdout + proc.stderr


def test_train_gets_the_devices_the_rule_is_given(tmp_path):
    """The rule passes its gpu resource on; ``train`` then starts torchrun over that many
    processes (``launch_command``, tested in test_multinode.py)."""
    config = example_config(tmp_path)
    one = _plan_train(tmp_path, config, "--resources", "gpu=4")
    two = _plan_train(tmp_path, config, "--resources", "gpu=4", "--set-resources", "train:gpu=2")
    assert "python -m boltzkinema train --devices 1 " in one
    assert "python -m boltzkinema train --devices 2 " in two


def test_train_on_several_nodes_asks_slurm_for_the_nodes_and_their_gpus(tmp_path):
    """With train.nodes > 1 the job asks the executor for that many nodes, one task each, the
    devices as GPUs per node, and says its command starts its own job steps (mpi: srun)."""
    config = example_config(tmp_path, train={"nodes": 2, "devices": 4})
    train_job = _plan_train(tmp_path, config).split("rule train:")[1].split("\n\n")[0]
    assert "nodes=2, tasks=2, tasks_per_gpu=0, mpi=srun, gres=gpu:4" in train_job


def test_earlier_training_phases_get_the_train_jobs_cluster_resources():
    """Phases before the last run as rule train_phase (see workflow/rules/train.smk)."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    resources = profile["set-resources"]
    assert resources["train_phase"] == resources["train"]
