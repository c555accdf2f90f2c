"""Real Snakemake runs of the data stage on the bundled example."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import EXAMPLE, example_config, lance_rows, output_hashes, snakemake_cmd, venv_env

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        snakemake_cmd(workdir, *args), capture_output=True, text=True, env=venv_env(), cwd=workdir
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# Every path a user may have: a space, an apostrophe, a dollar sign, brackets and non-ASCII.
AWKWARD = "it's my $data (v2) é"
RAW = "raw data's"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The whole DAG on the example, with the raw data and the results under awkward names."""
    work = tmp_path_factory.mktemp("wf") / AWKWARD
    raw = work / RAW / "resources" / "example"
    shutil.copytree(EXAMPLE, raw)
    example_config(work, inputs_root=raw.parents[1])
    snakemake(work)
    return work


@pytest.fixture(scope="module")
def first_run_outputs(workdir):
    """Hashes and LanceDB rows of the first run, before other tests rerun parts of it."""
    return output_hashes(workdir / "results"), lance_rows(workdir / "results")


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


def test_two_runs_of_the_example_give_identical_outputs(workdir, first_run_outputs, tmp_path):
    """The same inputs (shards record where they came from) give the same files, whether the
    results sit under a plain folder or an awkward one."""
    hashes, rows = first_run_outputs
    example_config(tmp_path, inputs_root=workdir / RAW)
    snakemake(tmp_path)
    assert len(hashes) > 15 and any("checkpoints" in k for k in hashes)
    assert output_hashes(tmp_path / "results") == hashes
    assert lance_rows(tmp_path / "results") == rows


def test_rerunning_one_rule_reruns_only_it_and_its_dependents(workdir, first_run_outputs):
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
    assert output_hashes(results) == first_run_outputs[0]


def test_training_ran_and_the_checkpoint_is_resolved(workdir):
    run = workdir / "results" / "runs" / "example"
    info = json.loads((run / "checkpoint.json").read_text())
    assert info["policy"] == "best" and (workdir / info["weights"]).exists()
    log = pd.read_parquet(run / "train_log.parquet")
    assert len(log) == 40 and log["val_loss"].notna().sum() >= 4


def test_each_datasets_preprocess_settings_hold_every_processing_option(workdir):
    """The file the preprocess job reads names each option the processing takes (the format's
    frame-spacing convention aside, which the job adds), so none falls back unseen."""
    from dataclasses import fields

    from boltzkinema.data.process import ProcessOptions
    from boltzkinema.settings import read_settings

    files = sorted((workdir / "results" / "settings").glob("preprocess.*.json"))
    options = {f.name for f in fields(ProcessOptions)} - {"default_frame_dt_ns"}
    assert files
    for path in files:
        assert set(json.loads(path.read_text())) == options, path.name
        read_settings(ProcessOptions, path, "preprocess")


def test_nothing_to_do_on_a_second_run(workdir):
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def planned_rules(workdir: Path, *args: str) -> set[str]:
    """The rules a dry run would run (from its job table)."""
    out = snakemake(workdir, "-n", *args).stdout
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"total", "all"}


def test_a_changed_setting_reruns_the_jobs_that_read_it(workdir):
    """Each stage reads its settings from its own file (results/settings/): a new split seed
    remakes the manifest and what follows, never the shards or the trunk embeddings."""
    (workdir / "seed7.yaml").write_text("splits: {seed: 7}\n")
    planned = planned_rules(workdir, "--configfile", "config.yaml", "seed7.yaml")
    assert {"stage_settings", "build_manifest", "train"} <= planned
    assert not planned & {"index_dataset", "preprocess", "trunk_cache"}
    settings = json.loads((workdir / "results" / "settings" / "splits.json").read_text())
    assert settings["seed"] == 17 and settings["sequence_identity"] == 0.3  # config; schema


def test_samples_metrics_and_report_are_written(workdir):
    run = workdir / "results" / "runs" / "example"
    for system in ("mdcath_example.villin_hp35_320K_r0", "misato_example.187L"):
        for mode in ("forecast", "interpolate", "hierarchical"):
            assert (run / "samples" / system / f"{mode}.npz").exists()
            assert (run / "samples" / system / f"{system}.{mode}.pdb").exists()
            assert (run / "samples" / system / f"{mode}_s1.xtc").exists()
    summary = pd.read_parquet(run / "eval" / "summary.parquet")
    # villin's other mdCATH run is at 348 K, no replica of the 320 K one: no replica rows here.
    assert set(summary["method"]) == {"model", "noise", "static"}
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "Summary" in html


def test_the_report_shows_training_figures_and_provenance(workdir):
    run = workdir / "results" / "runs" / "example"
    html = (run / "report.html").read_text()
    assert "id='training'" in html and "alt='training.png'" in html
    assert "rmsf.png" in html and "torsions.png" in html and "ramachandran.png" in html
    resolved = json.loads((run / "checkpoint.json").read_text())
    assert resolved["sha256"] in html  # the weights sampled from
    table = pd.read_parquet(workdir / "results" / "manifest.parquet")
    assert all(h in html for h in table["topology_hash"])  # the data
    assert ">torch<" in html and ">mdtraj<" in html  # package versions
    assert all(f"{s}_config.json" in html for s in ("train", "sample", "evaluate"))


def test_every_figure_of_the_report_loads_in_a_real_browser(workdir):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium here (Debian: apt-get install chromium)")
    run = workdir / "results" / "runs" / "example"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", (run / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    body = re.search(r"<body[^>]*>", proc.stdout)
    assert body, proc.stderr[-2000:]
    n_figures = len(list((run / "eval" / "figures").glob("*.png"))) + 1  # and the training curves
    assert f'data-figures="{n_figures}"' in body.group(0)
    assert 'data-figures-broken="0"' in body.group(0)


def test_snakemake_report_renders(workdir):
    snakemake(workdir, "--report", str(workdir / "snakemake_report.html"))
    assert (workdir / "snakemake_report.html").stat().st_size > 10_000
