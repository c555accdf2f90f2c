"""The spatial-temporal network: time bias, windowed atom attention, EDM pass-through."""

from __future__ import annotations

import math

import pytest
import torch

from boltzkinema.data.features import ATOM_FEATURES
from boltzkinema.model.layers import attention
from boltzkinema.model.layers.attention import (
    WindowedAtomAttention,
    init_log_lambdas,
    temporal_bias,
)
from boltzkinema.model.layers.frames import (
    frame_offsets,
    frame_spacing,
    is_added_parameter,
    nearest_given,
)
from boltzkinema.model.network import DiffusionNetwork, ModelConfig

SMALL = dict(
    c_s=16,
    c_z=8,
    c_atom=32,
    c_token=32,
    atom_heads=4,
    token_heads=4,
    atom_encoder_blocks=1,
    token_blocks=1,
    atom_decoder_blocks=1,
)


def make_batch(b: int, t: int, m: int, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "atom_features": torch.randn(b, m, ATOM_FEATURES, generator=g),
        "atom_mask": torch.ones(b, m, dtype=torch.bool),
        "atom_to_token": (torch.arange(m) * n // m)[None].expand(b, m).clone(),
        "token_mask": torch.ones(b, n, dtype=torch.bool),
        "s_inputs": torch.randn(b, n, 16, generator=g),
        "s_trunk": torch.randn(b, n, 16, generator=g),
        "z_trunk": torch.randn(b, n, n, 8, generator=g),
        "times": (torch.arange(t, dtype=torch.float32) * 0.5)[None].expand(b, t).clone(),
        "frame_mask": torch.ones(b, t, dtype=torch.bool),
    }


def test_lambdas_start_geometric_from_0_004_to_0_7_per_ns():
    lam = init_log_lambdas(8).exp()
    assert math.isclose(lam[0], 0.004, rel_tol=1e-5) and math.isclose(lam[-1], 0.7, rel_tol=1e-5)
    ratios = lam[1:] / lam[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)


def test_temporal_bias_decays_with_time_and_masks_future_and_padding():
    times = torch.tensor([[0.0, 1.0, 3.0, 4.0]])
    dt = attention.time_distances(times)
    mask = torch.tensor([[True, True, True, False]])
    log_lam = torch.log(torch.tensor([0.5, 0.1]))
    bias = temporal_bias(dt, log_lam, mask, causal=False, dtype=torch.float32)
    assert bias.shape == (1, 2, 4, 4)
    assert math.isclose(bias[0, 0, 0, 2].item(), -1.5, rel_tol=1e-6)
    assert math.isclose(bias[0, 1, 2, 1].item(), -0.2, rel_tol=1e-5)
    assert torch.isinf(bias[0, :, :3, 3]).all()
    causal = temporal_bias(dt, log_lam, torch.ones(1, 4, dtype=torch.bool), True, torch.float32)
    assert torch.isinf(causal[0, 0, 0, 1]) and not torch.isinf(causal[0, 0, 1, 0])


def test_time_bias_is_built_once_per_layer_call_never_per_atom(monkeypatch):
    shapes = []
    real = attention.temporal_bias

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(attention, "temporal_bias", spy)
    net = DiffusionNetwork(ModelConfig(**SMALL))
    net(make_batch(2, 5, 70, 20), torch.randn(2, 5, 70, 3), torch.full((2, 5), 3.0))
    assert shapes and set(shapes) == {(2, 4, 5, 5)}
    assert len(shapes) == 3  # encoder, token and decoder blocks: one each


@pytest.mark.parametrize("m", [1, 33, 65, 130])
def test_windowed_attention_works_for_any_atom_count(m):
    layer = WindowedAtomAttention(32, 4)
    x = torch.randn(3, m, 32)
    out = layer(x, torch.ones(3, m, dtype=torch.bool))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_padded_atoms_do_not_change_real_ones():
    torch.manual_seed(0)
    layer = WindowedAtomAttention(32, 4)
    x = torch.randn(1, 33, 32)
    alone = layer(x, torch.ones(1, 33, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 32, 32) * 100], dim=1)
    mask = torch.zeros(1, 65, dtype=torch.bool)
    mask[:, :33] = True
    assert torch.allclose(layer(padded, mask)[:, :33], alone, atol=1e-5)


def test_conditioning_frames_pass_through_exactly():
    net = DiffusionNetwork(ModelConfig(**SMALL))
    x = torch.randn(2, 4, 40, 3) * 10
    sigma = torch.tensor([[0.0, 2.0, 10.0, 0.0], [0.0, 0.0, 1.0, 5.0]])
    out = net(make_batch(2, 4, 40, 12), x, sigma)
    assert torch.equal(out[sigma == 0], x[sigma == 0])
    assert not torch.equal(out[sigma > 0], x[sigma > 0])


@pytest.mark.parametrize("frames", [1, 3])
def test_fresh_model_equals_its_spatial_only_counterpart(frames):
    torch.manual_seed(1)
    full = DiffusionNetwork(ModelConfig(**SMALL))
    spatial = DiffusionNetwork(ModelConfig(**SMALL, temporal=False))
    report = spatial.load_state_dict(full.state_dict(), strict=False)
    assert not report.missing_keys and all(is_added_parameter(k) for k in report.unexpected_keys)
    batch = make_batch(1, frames, 50, 10)
    x, sigma = torch.randn(1, frames, 50, 3), torch.full((1, frames), 4.0)
    assert torch.allclose(full(batch, x, sigma), spatial(batch, x, sigma), atol=1e-6)


def _perturb_temporal(net: DiffusionNetwork) -> None:
    g = torch.Generator().manual_seed(3)
    for name, p in net.named_parameters():
        if ".temporal.out" in name or name.startswith("frame_conditioning."):
            p.data = torch.randn(p.shape, generator=g) * 0.1


def test_padded_frames_do_not_change_real_frames():
    net = DiffusionNetwork(ModelConfig(**SMALL))
    _perturb_temporal(net)
    batch = make_batch(1, 3, 40, 10)
    x, sigma = torch.randn(1, 3, 40, 3), torch.full((1, 3), 4.0)
    alone = net(batch, x, sigma)
    padded = make_batch(1, 5, 40, 10)
    padded["frame_mask"][:, 3:] = False
    xp = torch.cat([x, torch.randn(1, 2, 40, 3) * 50], dim=1)
    out = net(padded, xp, torch.cat([sigma, torch.full((1, 2), 9.0)], dim=1))
    assert torch.allclose(out[:, :3], alone, atol=1e-5)


def test_causal_model_does_not_look_ahead():
    net = DiffusionNetwork(ModelConfig(**SMALL, causal=True))
    _perturb_temporal(net)
    batch = make_batch(1, 4, 40, 10)
    x, sigma = torch.randn(1, 4, 40, 3), torch.full((1, 4), 4.0)
    y = x.clone()
    y[:, 3] += 5.0
    assert torch.allclose(net(batch, x, sigma)[:, :3], net(batch, y, sigma)[:, :3], atol=1e-6)
    bidir = DiffusionNetwork(ModelConfig(**SMALL))
    bidir.load_state_dict(net.state_dict())
    assert not torch.allclose(bidir(batch, x, sigma)[:, :3], bidir(batch, y, sigma)[:, :3])


def test_frame_spacing_and_offsets_come_from_the_times():
    times = torch.tensor([[0.0, 0.002, 0.004, 0.006], [1.0, 2.0, 3.0, 4.0]])
    spacing = frame_spacing(times)
    assert torch.allclose(spacing, torch.tensor([0.002, 1.0]))
    assert torch.allclose(frame_offsets(times, spacing), torch.arange(4.0).expand(2, 4))
    assert torch.equal(frame_spacing(times[:, :1]), torch.ones(2))


def test_output_changes_with_the_frame_spacing_once_trained():
    """Time is an input: the same coordinates at 1 ps and at 1 ns spacing denoise differently
    (through the frame conditioning, not only the decay bias)."""
    net = DiffusionNetwork(ModelConfig(**SMALL))
    _perturb_temporal(net)
    x, sigma = torch.randn(1, 3, 40, 3), torch.full((1, 3), 4.0)
    ps, ns = make_batch(1, 3, 40, 10), make_batch(1, 3, 40, 10)
    ps["times"] = torch.arange(3.0)[None] * 0.001
    ns["times"] = torch.arange(3.0)[None] * 1.0
    assert (net(ps, x, sigma) - net(ns, x, sigma)).abs().max() > 1e-3
    # Spacing and offsets matter, not the absolute time: a shifted window denoises the same.
    shifted = make_batch(1, 3, 40, 10)
    shifted["times"] = ns["times"] + 7.0
    assert torch.allclose(net(shifted, x, sigma), net(ns, x, sigma), atol=1e-6)


def test_given_frames_are_marked_by_their_own_vector_not_by_a_noise_level():
    """A σ = 0 frame must not look like a frame at σ = 1 Å, where c_noise is 0 as well."""
    net = DiffusionNetwork(ModelConfig(**SMALL))
    _perturb_temporal(net)
    batch = make_batch(1, 2, 40, 10)
    x = torch.randn(1, 2, 40, 3)
    given = net(batch, x, torch.tensor([[0.0, 4.0]]))[:, 1]
    at_one = net(batch, x, torch.tensor([[1.0, 4.0]]))[:, 1]
    assert (given - at_one).abs().max() > 1e-4
    with torch.no_grad():
        for p in net.frame_conditioning.given:
            p.add_(1.0)
    moved = net(batch, x, torch.tensor([[0.0, 4.0]]))[:, 1]
    assert (moved - given).abs().max() > 1e-4
    assert torch.equal(net(batch, x, torch.tensor([[1.0, 4.0]]))[:, 1], at_one)


def test_a_system_of_one_window_attends_as_the_windowed_path_does():
    torch.manual_seed(0)
    attn = WindowedAtomAttention(32, 4)
    hn = torch.randn(3, 20, 32)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 15:] = False
    assert torch.allclose(attn._one_window(hn, mask), attn._windows(hn, mask), atol=1e-6)


def test_generated_frames_are_anchored_on_the_nearest_given_frame():
    x = torch.arange(5.0)[None, :, None, None].expand(1, 5, 2, 3).clone()
    sigma = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    times = torch.arange(5.0)[None]
    frame_mask = torch.ones(1, 5, dtype=torch.bool)
    anchor = nearest_given(x, sigma, times, frame_mask)
    assert anchor[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0, 4.0, 0.0]  # tie at frame 2: earlier
    none_given = nearest_given(x, torch.ones(1, 5), times, frame_mask)
    assert not none_given.any()
    padded = frame_mask.clone()
    padded[0, 4] = False  # a padded frame (σ = 0 after collate) is no given frame
    assert nearest_given(x, sigma, times, padded)[0, :, 0, 0].tolist() == [0, 0, 0, 0, 0]


def test_an_anchored_network_sees_the_given_frame_without_temporal_attention():
    torch.manual_seed(0)
    cfg = dict(c_s=8, c_z=4, c_atom=16, c_token=16, atom_heads=2, token_heads=2,
               atom_encoder_blocks=1, token_blocks=1, atom_decoder_blocks=1, temporal=False,
               sigma_data=3.0)  # fmt: skip
    b, t, m, n = 1, 3, 6, 2
    batch = {
        "atom_features": torch.randn(b, m, ATOM_FEATURES),
        "atom_mask": torch.ones(b, m, dtype=torch.bool),
        "atom_to_token": torch.tensor([[0, 0, 0, 1, 1, 1]]),
        "token_mask": torch.ones(b, n, dtype=torch.bool),
        "s_inputs": torch.randn(b, n, 8),
        "s_trunk": torch.randn(b, n, 8),
        "z_trunk": torch.randn(b, n, n, 4),
        "times": torch.arange(t, dtype=torch.float32)[None] * 0.01,
        "frame_mask": torch.ones(b, t, dtype=torch.bool),
    }
    sigma = torch.tensor([[0.0, 0.5, 0.5]])
    x = torch.randn(b, t, m, 3)
    moved = x.clone()
    moved[:, 0] += 2.0  # only the given frame changes
    for anchored in (False, True):
        net = DiffusionNetwork(ModelConfig(**cfg, anchor_given=anchored)).eval()
        with torch.no_grad():
            diff = (net(batch, moved, sigma) - net(batch, x, sigma))[:, 1:].abs().max()
        assert (diff > 0.1) == anchored
