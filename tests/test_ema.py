"""Weight averaging and the learning-rate schedule: what sampling gets, and that a resumed
run continues the same average."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from safetensors.torch import load_file
from test_train import trainer
from torch import nn

from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.ema import WeightAverage, ema_decay


def test_decay_warms_up_then_holds_at_its_cap():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6) == 0.999


def test_average_follows_the_closed_form_of_a_weight_that_jumps():
    """A weight held at 1 after starting at 0: the shadow is 1 - prod(decay_t)."""
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
    average = WeightAverage(layer, 0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    for step in range(5):
        average.update(layer, step)
    kept = math.prod(ema_decay(0.5, t) for t in range(5))
    assert float(average.shadow["weight"]) == pytest.approx(1.0 - kept, rel=1e-6)
    assert float(layer.weight.detach()) == 1.0  # the live weights are untouched


def test_frozen_parameters_are_not_averaged():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[0].requires_grad_(False)
    assert set(WeightAverage(net, 0.9).shadow) == {"1.weight", "1.bias"}


def test_checkpoint_keeps_the_average_and_sampling_resolves_to_it(example_results, tmp_path):
    run = tmp_path / "run"
    tr = trainer(example_results, run, steps=2, ema_decay=0.9, val_every=0)
    tr.run()
    folder = ckpt.list_checkpoints(run)[-1][1]
    raw, averaged = (load_file(str(folder / f"{n}.safetensors")) for n in ("model", "ema"))
    assert set(raw) == set(averaged)
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    for name, value in tr.ema.shadow.items():
        assert torch.equal(averaged[name], value)
    info = ckpt.resolve_checkpoint(run, "latest")
    assert info.weights.endswith("ema.safetensors") and info.averaged
    explicit = ckpt.resolve_checkpoint(run, "explicit", str(folder / "model.safetensors"))
    assert explicit.weights.endswith("model.safetensors") and not explicit.averaged


def test_validation_scores_the_averaged_weights_and_restores_the_raw_ones(
    example_results, tmp_path
):
    """``best`` must pick by what sampling uses: validation swaps the average in, then back."""
    tr = trainer(example_results, tmp_path / "run", steps=3, ema_decay=0.5, val_every=0)
    tr.run()
    raw = {k: v.clone() for k, v in tr.model.state_dict().items()}
    with_average = tr.validate()
    assert all(torch.equal(v, raw[k]) for k, v in tr.model.state_dict().items())
    tr.model.load_state_dict(tr.ema.averaged_state(tr.model))
    tr.ema = None  # the averaged weights loaded by hand, scored without swapping
    assert tr.validate() == pytest.approx(with_average, rel=1e-6)
    tr.model.load_state_dict(raw)
    assert tr.validate() != pytest.approx(with_average, rel=1e-6)


def test_a_run_without_averaging_resolves_to_its_raw_weights(example_results, tmp_path):
    run = tmp_path / "run"
    trainer(example_results, run, steps=2, val_every=0).run()
    info = ckpt.resolve_checkpoint(run, "latest")
    assert info.weights.endswith("model.safetensors") and not info.averaged


def test_resumed_run_ends_with_the_same_average(example_results, tmp_path):
    kw = {"steps": 4, "ema_decay": 0.9, "val_every": 0}
    straight = trainer(example_results, tmp_path / "a", **kw)
    straight.run()
    first = trainer(example_results, tmp_path / "b", **kw)
    first.run(stop_at=2)
    del first
    resumed = trainer(example_results, tmp_path / "b", **kw)
    resumed.run()
    for name, value in straight.ema.shadow.items():
        assert torch.equal(value, resumed.ema.shadow[name]), name


def test_cosine_schedule_warms_up_then_ends_at_its_final_fraction(example_results, tmp_path):
    tr = trainer(
        example_results,
        tmp_path / "run",
        steps=21,
        lr=1e-3,
        warmup_steps=5,
        lr_schedule="cosine",
        lr_final_fraction=0.1,
    )
    rates = [tr.learning_rate(s) for s in range(21)]
    assert rates[0] == pytest.approx(2e-4) and rates[4] == pytest.approx(1e-3)
    assert rates[5] == pytest.approx(1e-3) and rates[20] == pytest.approx(1e-4)
    assert rates[12] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 7 / 15)))
    assert all(a >= b for a, b in itertools.pairwise(rates[4:]))
    constant = trainer(example_results, tmp_path / "c", steps=21, warmup_steps=5)
    assert constant.learning_rate(20) == constant.cfg.lr
