"""Progress a person can follow: periodic plain lines with rate and ETA in a log, a live bar
only on a terminal."""

from __future__ import annotations

import logging

import pytest
from test_train import trainer

from boltzkinema import progress


@pytest.fixture
def every_update(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)


def test_a_log_gets_plain_lines_with_count_rate_and_eta(every_update, caplog):
    caplog.set_level(logging.INFO, logger="boltzkinema.progress")
    assert list(progress.track(range(5), "preprocess 0000.h5", unit="system")) == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records if r.name == "boltzkinema.progress"]
    assert lines and all("\r" not in line and "\x1b" not in line for line in lines)
    assert lines[-1].startswith("preprocess 0000.h5: 100%") and "5/5" in lines[-1]
    assert "system/s" in lines[-1] and "<" in lines[-1]  # rate, elapsed<remaining


def test_training_shows_step_loss_and_learning_rate(
    example_results, tmp_path, every_update, caplog
):
    caplog.set_level(logging.INFO, logger="boltzkinema.progress")
    trainer(example_results, tmp_path / "run", steps=3, val_every=0).run()
    last = [r.getMessage() for r in caplog.records if r.name == "boltzkinema.progress"][-1]
    assert last.startswith("train t: 100%") and "3/3" in last
    assert "step/s" in last and "loss=" in last and "lr=" in last


def test_a_resumed_run_counts_on_from_its_step(example_results, tmp_path, every_update, caplog):
    trainer(example_results, tmp_path / "run", steps=4, val_every=0).run(stop_at=2)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="boltzkinema.progress")
    trainer(example_results, tmp_path / "run", steps=4, val_every=0).run()
    lines = [r.getMessage() for r in caplog.records if r.name == "boltzkinema.progress"]
    assert "2/4" in lines[0] and "4/4" in lines[-1]


def test_a_silent_bar_writes_nothing(every_update, caplog):
    caplog.set_level(logging.INFO, logger="boltzkinema.progress")
    with progress.bar("rank 1", 3, show=False) as b:
        b.update(3)
    assert not [r for r in caplog.records if r.name == "boltzkinema.progress"]
