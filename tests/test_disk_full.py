"""A full disk is one clear error naming the path, never a crash or a half-written file.

Where the tests run as root, a real 1 MiB tmpfs is mounted; elsewhere (and for the writers
that need more set-up) the fault is injected at the free-space query or the write itself.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from boltzkinema import util
from boltzkinema.errors import DiskFullError
from boltzkinema.train import checkpoint as ckpt
from conftest import REPO


@pytest.fixture
def tiny(tmp_path):
    """A 1 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_preprocess_onto_a_full_disk_exits_1_naming_the_shard(tiny):
    shard = tiny / "peptides" / "0000.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "boltzkinema",
            "preprocess",
            "--format",
            "atlas",
            "--input",
            str(REPO / "resources" / "peptides" / "ala2"),
            "--output",
            str(shard),
            "--report",
            str(tiny / "peptides" / "0000.report.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "no space left" in proc.stderr and "0000.h5" in proc.stderr
    assert "needs about" in proc.stderr and "Traceback" not in proc.stderr
    assert not shard.exists() and not leftovers(tiny)


def test_a_write_that_runs_out_of_space_is_removed_and_named(tiny):
    target = tiny / "big.bin"
    with (
        pytest.raises(DiskFullError, match=r"big\.bin: no space left"),
        util.atomic_output(target) as tmp,
    ):
        tmp.write_bytes(b"\0" * (2 << 20))
    assert not target.exists() and not leftovers(tiny)


def test_a_write_that_cannot_fit_is_refused_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(util, "free_bytes", lambda path: 10 << 20)
    with (
        pytest.raises(DiskFullError, match=r"needs about 64\.0 MiB, 10\.0 MiB free"),
        util.atomic_output(tmp_path / "x.bin", 64 << 20),
    ):
        raise AssertionError("the block must not run")


def test_an_injected_enospc_becomes_the_same_error(tmp_path):
    def full(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with (
        pytest.raises(DiskFullError, match=r"out\.parquet: no space left"),
        util.atomic_output(tmp_path / "out.parquet") as tmp,
    ):
        full(tmp)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_that_cannot_fit_leaves_no_folder_behind(tmp_path, monkeypatch):
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 64)).sum().backward()
    optimizer.step()
    monkeypatch.setattr(util, "free_bytes", lambda path: 1024)
    with pytest.raises(DiskFullError, match="step_00000005: no space left"):
        ckpt.save_checkpoint(tmp_path, 5, model, optimizer, {}, trainable_only=False)
    assert ckpt.list_checkpoints(tmp_path) == [] and not leftovers(tmp_path)


def test_other_errors_pass_through_and_still_clean_up(tmp_path):
    with (
        pytest.raises(ValueError, match="not about space"),
        util.atomic_output(tmp_path / "a.json") as tmp,
    ):
        tmp.write_text("{")
        raise ValueError("not about space")
    assert list(tmp_path.iterdir()) == []
