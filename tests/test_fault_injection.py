"""Kill the workflow again and again (SIGKILL to the whole process group, at random moments during
preprocess, trunk, train and sample), rerun with ``--rerun-incomplete``, and check that the end
result equals an uninterrupted run (files by hash, LanceDB tables row by row) and that no partial
file was ever taken as complete."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import example_config, lance_rows, output_hashes, snakemake_cmd, venv_env

pytestmark = pytest.mark.slow
KILLS = 20


def _config(work: Path) -> None:
    example_config(
        work,
        train={"steps": 60, "checkpoint_every": 3},
        sample={"modes": ["forecast"]},
    )


def _partials(results: Path) -> list[Path]:
    return [p for p in results.rglob("*") if ".tmp" in p.name]


def _training_between_checkpoints(results: Path) -> bool:
    """True while training runs with a checkpoint on disk and steps still to go, the moment a
    kill must be followed by a resume rather than a fresh start."""
    run = results / "runs" / "example"
    steps = [int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("step_*[0-9]")]
    return bool(steps) and max(steps) <= 45 and not (run / "train_done.json").exists()


def _wait_for_kill(
    job: subprocess.Popen, results: Path, at: float | None, in_training: bool
) -> str | None:
    """Wait until it is time to kill ``job``: ``"random"`` at time ``at``, ``"train"`` as soon as
    training sits between checkpoints (when ``in_training``), None when the job ended first.

    Random moments alone would cover training only by luck: on a slow machine all of them can
    land in preprocessing, and the resume path would go untested."""
    while job.poll() is None:
        if in_training and _training_between_checkpoints(results):
            return "train"
        if at is not None and time.time() >= at:
            return "random"
        time.sleep(0.05)
    return None


def test_twenty_kills_lose_nothing(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for work in (clean, killed):
        work.mkdir()
        _config(work)
    proc = subprocess.run(
        snakemake_cmd(clean), capture_output=True, text=True, env=venv_env(), cwd=clean
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = output_hashes(clean / "results")
    assert len(reference) > 15

    rng = random.Random(0)
    kills, deadline = 0, time.time() + 900
    train_killed = finished = False
    while not finished and time.time() < deadline:
        subprocess.run(
            snakemake_cmd(killed, "--unlock"), capture_output=True, env=venv_env(), cwd=killed
        )
        job = subprocess.Popen(
            snakemake_cmd(killed, "--rerun-incomplete"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=venv_env(),
            cwd=killed,
            start_new_session=True,
        )
        if kills < KILLS or not train_killed:
            at_random = time.time() + rng.uniform(1.5, 7.0) if kills < KILLS else None
            reason = _wait_for_kill(job, killed / "results", at_random, not train_killed)
            if reason is not None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
                kills += 1
                train_killed = train_killed or reason == "train"
                continue
        else:
            job.wait(timeout=600)
        finished = (
            job.returncode == 0
            and (killed / "results" / "runs" / "example" / "report.html").exists()
        )
    assert kills >= KILLS, f"only {kills} kills happened before the run finished"
    assert train_killed, "no kill landed in training between two checkpoints"
    assert finished, "the workflow did not finish after the kills"
    assert output_hashes(killed / "results") == reference
    assert not _partials(killed / "results")
    assert lance_rows(killed / "results") == lance_rows(clean / "results")
    log = (killed / "results" / "logs" / "train" / "example.log").read_text()
    assert "resumed from" in log
