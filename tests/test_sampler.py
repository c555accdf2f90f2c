"""EDM sampler: schedule, call counts, endpoint at σ = 0, fixed conditioning, knobs that act."""

from __future__ import annotations

import pytest
import torch

from boltzkinema.sample.sampler import SamplerConfig, karras_sigmas, sample


class Recorder:
    """A stand-in denoiser that shrinks towards a fixed structure and records its calls."""

    def __init__(self, target: torch.Tensor):
        self.target, self.calls, self.outputs = target, [], []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append(sigma.clone())
        w = (sigma / (sigma + 1.0))[..., None, None]
        out = w * x + (1 - w) * self.target
        self.outputs.append(out)
        return out


def setup(t=4):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, t, 10, 3, generator=g)
    cond = torch.randn(2, t, 10, 3, generator=g)
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[:, 0] = True
    return target, cond, mask


def test_karras_schedule_runs_from_sigma_max_to_zero():
    s = karras_sigmas(SamplerConfig(n_steps=20))
    assert len(s) == 21 and s[0] == pytest.approx(160.0) and s[-2] == pytest.approx(1e-4)
    assert s[-1] == 0 and torch.all(s[:-1] > s[1:])


@pytest.mark.parametrize("heun,calls", [(False, 20), (True, 39)])
def test_exactly_n_model_evaluations_and_the_last_update_lands_on_zero(heun, calls):
    target, cond, mask = setup()
    den = Recorder(target)
    out = sample(
        den, cond, mask, SamplerConfig(n_steps=20, heun=heun), torch.Generator().manual_seed(1)
    )
    assert len(den.calls) == calls
    assert torch.allclose(out[:, 1:], den.outputs[-1][:, 1:], atol=1e-5)


def test_conditioning_frames_stay_exactly_as_given_and_see_sigma_zero():
    target, cond, mask = setup()
    den = Recorder(target)
    out = sample(den, cond, mask, SamplerConfig(n_steps=5), torch.Generator().manual_seed(1))
    assert torch.equal(out[:, 0], cond[:, 0])
    assert all(torch.all(c[:, 0] == 0) and torch.all(c[:, 1:] > 0) for c in den.calls)


@pytest.mark.parametrize(
    "knob",
    [
        {"noise_scale": 0.0},
        {"gamma": 0.0},
        {"gamma_min": 500.0},
        {"step_scale": 1.0},
        {"heun": True},
        {"n_steps": 7},
        {"sigma_max": 80.0},
        {"sigma_min": 0.5},
        {"rho": 3.0},
    ],
)
def test_every_knob_changes_the_output(knob):
    target, cond, mask = setup()
    # AlphaFold 3's stochastic settings, so that every knob (churn included) acts.
    base = SamplerConfig(n_steps=10, gamma=0.8, noise_scale=1.003, step_scale=1.5, heun=False)
    a = sample(Recorder(target), cond, mask, base, torch.Generator().manual_seed(1))
    b = sample(
        Recorder(target),
        cond,
        mask,
        SamplerConfig(**{**base.__dict__, **knob}),
        torch.Generator().manual_seed(1),
    )
    assert not torch.allclose(a, b)


def test_same_seed_same_samples_other_seed_other_samples():
    target, cond, mask = setup()
    cfg = SamplerConfig(n_steps=6)
    a = sample(Recorder(target), cond, mask, cfg, torch.Generator().manual_seed(3))
    b = sample(Recorder(target), cond, mask, cfg, torch.Generator().manual_seed(3))
    c = sample(Recorder(target), cond, mask, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize(
    "bad", [{"n_steps": 0}, {"sigma_min": 0.0}, {"step_scale": 0.0}, {"gamma": -1.0}]
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SamplerConfig(**bad)


@pytest.mark.parametrize("s", [1.0, 4.0, 16.0])
def test_default_sampler_reproduces_the_variance_of_gaussian_data(s):
    """With the exact denoiser of N(0, s²) data, D(x, σ) = x·s²/(s² + σ²), samples drawn with
    the default settings have variance s² within 5 % (AlphaFold 3's settings do not)."""
    cond = torch.zeros(1, 2, 4000, 3)
    mask = torch.zeros(1, 2, dtype=torch.bool)

    def exact(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x * (s**2 / (s**2 + sigma**2))[..., None, None]

    out = sample(exact, cond, mask, SamplerConfig(), torch.Generator().manual_seed(0))
    assert abs(out.var().item() / s**2 - 1) < 0.05
    af3 = SamplerConfig(n_steps=20, gamma=0.8, noise_scale=1.003, step_scale=1.5, heun=False)
    frozen = sample(exact, cond, mask, af3, torch.Generator().manual_seed(0))
    assert frozen.var().item() / s**2 < 0.5
