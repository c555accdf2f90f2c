"""Real Snakemake runs of the data stage on the bundled example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, example_config, venv_env

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = venv_env()
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    example_config(work)
    snakemake(work)
    return work


def test_workflow_builds_the_manifest_from_every_layout(workdir):
    table = pd.read_parquet(workdir / "results" / "manifest.parquet")
    assert set(table["dataset"]) == {
        "misato_example",
        "atlas_example",
        "mdcath_example",
        "ala2_example",
    }
    assert len(table) == 6
    assert set(table["split"]) <= {"train", "val", "test"} and "train" in set(table["split"])
    for rel in table["shard"]:
        assert (workdir / "results" / rel).exists()
    for rule in ("index", "preprocess", "trunk"):
        assert any((workdir / "results" / "logs" / rule).rglob("*.log"))
        assert any((workdir / "results" / "benchmarks" / rule).rglob("*.tsv"))
    log = next((workdir / "results" / "logs" / "preprocess").rglob("*.log")).read_text()
    assert "[1/" in log  # progress: systems done / total


def test_rerunning_one_rule_reruns_only_it_and_its_dependents(workdir):
    results = workdir / "results"
    watched = (
        sorted(results.glob("processed/*/*.h5"))
        + sorted(results.glob("index/*.json"))
        + sorted(results.glob("trunk/*/*.json"))
        + [results / "manifest.parquet", results / "runs" / "example" / "checkpoint.json"]
    )
    before = {p: p.stat().st_mtime_ns for p in watched}
    snakemake(workdir, "-R", "trunk_cache")
    after = {p: p.stat().st_mtime_ns for p in watched}
    changed = {p.relative_to(results).parts[0] for p in watched if after[p] != before[p]}
    assert changed == {"trunk", "manifest.parquet", "runs"}


def test_training_ran_and_the_checkpoint_is_resolved(workdir):
    run = workdir / "results" / "runs" / "example"
    info = json.loads((run / "checkpoint.json").read_text())
    assert info["policy"] == "best" and (workdir / info["weights"]).exists()
    log = pd.read_parquet(run / "train_log.parquet")
    assert len(log) == 40 and log["val_loss"].notna().sum() >= 4


def test_nothing_to_do_on_a_second_run(workdir):
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_samples_metrics_and_report_are_written(workdir):
    run = workdir / "results" / "runs" / "example"
    for system in ("mdcath_example.villin_hp35_320K_r0", "misato_example.187L"):
        for mode in ("forecast", "interpolate", "hierarchical"):
            assert (run / "samples" / system / f"{mode}.npz").exists()
            assert (run / "samples" / system / f"{system}.{mode}.pdb").exists()
            assert (run / "samples" / system / f"{mode}_s1.xtc").exists()
    summary = pd.read_parquet(run / "eval" / "summary.parquet")
    assert {"model", "noise", "replica"} <= set(summary["method"])
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "Summary" in html


def test_snakemake_report_renders(workdir):
    snakemake(workdir, "--report", str(workdir / "snakemake_report.html"))
    assert (workdir / "snakemake_report.html").stat().st_size > 10_000
