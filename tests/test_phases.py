"""Training phases in the DAG: a real Snakemake run of three tiny phases on the example."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, example_config, snakemake_cmd, venv_env

pytestmark = pytest.mark.slow

PHASES = [
    {"run": "warmup", "train": {"steps": 4}},
    {"run": "mix", "train": {"steps": 2, "lr": 5.0e-4}},
    {"run": "unbinding", "train": {"steps": 2, "model": {"causal": True}}},
]


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        snakemake_cmd(work, *args), capture_output=True, text=True, env=venv_env(), cwd=work
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def write_phases(work: Path, phases: list[dict]) -> None:
    path = work / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["phases"] = phases
    path.write_text(yaml.safe_dump(cfg))


def start_of(work: Path, run: str) -> str | None:
    """sha256 of the weights a run's latest checkpoint started from."""
    states = sorted((work / "results" / "runs" / run / "checkpoints").glob("*/state.json"))
    base = json.loads(states[-1].read_text())["base"]
    return base and base["sha256"]


def resolved(work: Path, run: str) -> str:
    return json.loads((work / "results" / "runs" / run / "checkpoint.json").read_text())["sha256"]


def finished(work: Path) -> dict[str, int]:
    runs = work / "results" / "runs"
    return {p["run"]: (runs / p["run"] / "train_done.json").stat().st_mtime_ns for p in PHASES}


@pytest.fixture(scope="module")
def phased(tmp_path_factory) -> Path:
    """The example with three tiny phases, trained by one `snakemake --until train`."""
    work = tmp_path_factory.mktemp("phases")
    example_config(work)
    write_phases(work, PHASES)
    snakemake(work, "--until", "train")
    return work


def test_until_train_trains_every_phase_each_from_the_one_before(phased):
    runs = phased / "results" / "runs"
    assert start_of(phased, "warmup") is None
    assert start_of(phased, "mix") == resolved(phased, "warmup")
    assert start_of(phased, "unbinding") == resolved(phased, "mix")
    done = finished(phased)
    assert done["warmup"] < done["mix"] < done["unbinding"]
    settings = json.loads((runs / "unbinding" / "train_config.json").read_text())
    assert settings["model"]["causal"] is True and settings["steps"] == 2
    assert settings["init_from"] == "results/runs/mix/checkpoint.json"
    assert not (runs / "unbinding" / "samples").exists()  # --until stopped at training


def test_the_last_phase_is_the_run_that_is_sampled(phased):
    dry = snakemake(phased, "-n")
    assert "runs/unbinding/samples/" in dry.stdout and "runs/mix/samples/" not in dry.stdout


def test_rerunning_one_phase_reruns_it_and_the_phases_after(phased):
    before = finished(phased)
    proc = snakemake(phased, "--until", "train", "-R", "results/runs/mix/train_done.json")
    after = finished(phased)
    assert after["warmup"] == before["warmup"]
    assert after["mix"] > before["mix"] and after["unbinding"] > before["unbinding"]
    assert "train_phase" in proc.stdout + proc.stderr


def test_a_phase_trained_further_retrains_the_phases_after_from_its_new_weights(phased):
    old_mix = resolved(phased, "mix")
    grown = [dict(p) for p in PHASES]
    grown[1] = {"run": "mix", "train": {"steps": 3, "lr": 5.0e-4}}
    write_phases(phased, grown)
    snakemake(phased, "--until", "train")
    assert resolved(phased, "mix") != old_mix
    assert start_of(phased, "unbinding") == resolved(phased, "mix")
    aside = phased / "results" / "runs" / "unbinding" / "superseded" / "01" / "checkpoints"
    assert sorted(p.name for p in aside.iterdir()) == ["step_00000002"]
    write_phases(phased, PHASES)  # the fixture's phases again, for any test after this one


def test_a_phase_with_a_bad_override_is_refused_before_anything_runs(tmp_path):
    example_config(tmp_path)
    write_phases(tmp_path, [{"run": "a", "train": {"steps": 0}}, {"run": "b", "train": {}}])
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True, env=venv_env(), cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "phase 'a'" in proc.stdout and "steps" in proc.stdout


def test_the_shipped_phases_plan_three_chained_training_jobs(tmp_path):
    example_config(tmp_path)
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"),
                      str(REPO / "config" / "phases.yaml"), "--until", "train"),
        capture_output=True, text=True, env=venv_env(), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = dict(re.findall(r"^(train_phase|train|resolve_checkpoint)\s+(\d+)$", proc.stdout, re.M))
    assert stats == {"train_phase": "2", "resolve_checkpoint": "2", "train": "1"}


def test_two_phases_of_one_name_are_refused(tmp_path):
    example_config(tmp_path)
    write_phases(tmp_path, [{"run": "a", "train": {}}, {"run": "a", "train": {}}])
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True, env=venv_env(), cwd=tmp_path
    )
    assert proc.returncode != 0 and "used twice" in proc.stderr + proc.stdout
