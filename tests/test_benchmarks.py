"""The benchmarks still run: each at toy sizes, every path it measures (numbers not checked)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def run(script: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_dataloader_benchmark_reports_rates_rss_and_the_gpu_step():
    out = run("dataloader.py", "--smoke", "--items", "16", "--rss-items", "40", "--systems", "2")
    assert "2 workers" in out and "RSS (MB) with 2 workers over 40 items" in out
    assert "ESTIMATED, no GPU here" in out or "MEASURED on" in out


def test_preprocess_benchmark_reports_its_ratio_to_the_read():
    out = run("preprocess.py", "--systems", "2", "--frames", "10", "--repeats", "1")
    assert "x the read" in out


def test_gpu_checks_run_every_part_at_toy_sizes():
    out = run("gpu.py", "--smoke")
    assert "s/step" in out and "scaled_dot_product" in out and "generated ns/s" in out
