"""Boltz-2 weights in our spatial-temporal network: same numbers as Boltz-2, safe loading.

The fixtures come from the real ``boltz`` package (``scripts/make_boltz2_fixtures.py``); this
file does not import it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from boltzkinema.errors import CheckpointError
from boltzkinema.io.lightning_checkpoint import read_checkpoint
from boltzkinema.model.boltz2_network import Boltz2DiffusionNetwork
from boltzkinema.model.boltz2_weights import (
    config_from_checkpoint,
    load_boltz2_weights,
    network_from_checkpoint,
    temporal_keys,
)
from boltzkinema.model.edm import preconditioning

DATA = Path(__file__).parent / "data" / "boltz2"
CKPT = DATA / "tiny_boltz2.ckpt"
N_REAL_ATOMS = 43


@pytest.fixture(scope="module")
def recorded() -> dict[str, torch.Tensor]:
    return load_file(DATA / "diffusion_io.safetensors")


@pytest.fixture(scope="module")
def network() -> Boltz2DiffusionNetwork:
    net, _ = network_from_checkpoint(CKPT)
    return net.eval()


def feats_of(recorded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("feats."): v for k, v in recorded.items() if k.startswith("feats.")}


def denoise(
    net: Boltz2DiffusionNetwork,
    recorded: dict[str, torch.Tensor],
    x: torch.Tensor,
    sigma: torch.Tensor,
    times: torch.Tensor | None = None,
    feats: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run the network on x (1, T, M, 3) with the recorded Boltz-2 features and trunk outputs."""
    t = x.shape[1]
    times = torch.zeros(1, t) if times is None else times
    feats = feats_of(recorded) if feats is None else feats
    with torch.no_grad():
        cond = net.condition(feats, recorded["s_trunk"], recorded["z_trunk"])
        return net.denoise(
            x,
            sigma,
            times,
            torch.ones(1, t, dtype=torch.bool),
            feats,
            recorded["s_inputs"],
            recorded["s_trunk"],
            cond,
        )


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def three_frames(recorded: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    x0, x1 = recorded["x_noisy.0"][0], recorded["x_noisy.1"][0]
    return torch.stack([x0, x1, 0.5 * x0])[None], torch.tensor([[4.0, 48.0, 10.0]])


@pytest.mark.parametrize("level", [0, 1])
def test_one_frame_reproduces_boltz2_denoiser(network, recorded, level):
    x, sigma = recorded[f"x_noisy.{level}"], recorded[f"sigma.{level}"]
    expected = recorded[f"denoised.{level}"]
    out = denoise(network, recorded, x[:, None], sigma[:, None])[:, 0]
    assert rel_error(out, expected) < 1e-5
    # The network's own contribution, without the c_skip·x pass-through both sides share.
    _, c_skip, _, _ = preconditioning(sigma, network.cfg.sigma_data)
    assert rel_error(out - c_skip * x, expected - c_skip * x) < 1e-5


def test_only_the_temporal_layers_are_missing_from_boltz2(network, caplog):
    temporal = temporal_keys(network)
    fresh = Boltz2DiffusionNetwork(network.cfg)
    with caplog.at_level(logging.INFO, logger="boltzkinema.model.boltz2_weights"):
        report = load_boltz2_weights(fresh, CKPT)
    assert temporal and set(report.missing) == temporal
    assert report.unexpected == ()
    assert set(report.mapped) | temporal == set(fresh.state_dict())
    assert f"Loaded {len(report.mapped)}/{len(fresh.state_dict())} keys" in caplog.text


def test_zero_initialised_temporal_layers_leave_every_frame_as_alone(network, recorded):
    x, sigma = three_frames(recorded)
    together = denoise(network, recorded, x, sigma, times=torch.tensor([[0.0, 0.5, 2.0]]))
    for i in range(3):
        alone = denoise(network, recorded, x[:, i : i + 1], sigma[:, i : i + 1])[:, 0]
        assert rel_error(together[:, i], alone) < 1e-6


def test_trained_temporal_layers_couple_the_frames(recorded):
    net, _ = network_from_checkpoint(CKPT)
    net.eval()
    x, sigma = three_frames(recorded)
    times = torch.tensor([[0.0, 0.5, 2.0]])
    before = denoise(net, recorded, x, sigma, times)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key in temporal_keys(net):
            if key.endswith("temporal.out.weight"):
                param = net.get_parameter(key)
                param.copy_(0.1 * torch.randn(param.shape, generator=g))
    assert rel_error(denoise(net, recorded, x, sigma, times), before) > 1e-3


def _perturbed_frame_conditioning(net: Boltz2DiffusionNetwork) -> Boltz2DiffusionNetwork:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if ".frame_conditioning." in f".{name}":
                param.copy_(0.1 * torch.randn(param.shape, generator=g))
    return net


def test_trained_frame_conditioning_makes_the_output_depend_on_the_frame_spacing(recorded):
    net = _perturbed_frame_conditioning(network_from_checkpoint(CKPT)[0].eval())
    x, sigma = three_frames(recorded)
    ps = denoise(net, recorded, x, sigma, times=torch.arange(3.0)[None] * 0.001)
    ns = denoise(net, recorded, x, sigma, times=torch.arange(3.0)[None] * 1.0)
    assert rel_error(ps, ns) > 1e-4
    later = denoise(net, recorded, x, sigma, times=torch.arange(3.0)[None] * 1.0 + 9.0)
    assert rel_error(later, ns) < 1e-6  # spacing and offsets, not the absolute time


def test_given_frames_enter_with_their_own_vector_not_boltz_c_noise(recorded):
    net = _perturbed_frame_conditioning(network_from_checkpoint(CKPT)[0].eval())
    x, sigma = three_frames(recorded)
    times = torch.tensor([[0.0, 0.5, 2.0]])
    for key in temporal_keys(net):
        if key.endswith("temporal.out.weight"):
            with torch.no_grad():
                net.get_parameter(key).normal_(0.0, 0.1)
    given = sigma.clone()
    given[0, 0] = 0.0
    tiny = sigma.clone()
    tiny[0, 0] = 1e-22  # a noised frame with Boltz's clamped c_noise of σ = 0
    a = denoise(net, recorded, x, given, times)
    b = denoise(net, recorded, x, tiny, times)
    assert rel_error(a[:, 1:], b[:, 1:]) > 1e-5


def test_sigma_zero_frames_come_back_exactly(network, recorded):
    x, sigma = three_frames(recorded)
    sigma[0, 0] = 0.0
    out = denoise(network, recorded, x, sigma, times=torch.tensor([[0.0, 0.5, 2.0]]))
    assert torch.equal(out[:, 0], x[:, 0])


def test_atom_count_need_not_fill_the_query_windows(network, recorded):
    x, sigma = recorded["x_noisy.1"][:, None], recorded["sigma.1"][:, None]
    full = denoise(network, recorded, x, sigma)
    trimmed_feats = {
        k: v[:, :N_REAL_ATOMS] if v.dim() > 1 and v.shape[1] == x.shape[2] else v
        for k, v in feats_of(recorded).items()
    }
    trimmed = denoise(network, recorded, x[:, :, :N_REAL_ATOMS], sigma, feats=trimmed_feats)
    assert trimmed.shape[2] == N_REAL_ATOMS
    assert rel_error(trimmed, full[:, :, :N_REAL_ATOMS]) < 1e-6


def test_network_size_is_read_from_the_checkpoint():
    cfg = config_from_checkpoint(CKPT)
    assert cfg.token_transformer_heads == 2
    assert (cfg.token_s, cfg.token_z, cfg.atom_s, cfg.atom_z) == (32, 16, 16, 8)
    depths = (cfg.atom_encoder_depth, cfg.token_transformer_depth, cfg.atom_decoder_depth)
    assert depths == (2, 1, 2)
    assert cfg.atom_feature_dim == 388 and cfg.sigma_data == 16.0


def test_omegaconf_hyper_parameters_are_read_as_plain_values():
    assert config_from_checkpoint(DATA / "omegaconf_hparams.ckpt") == config_from_checkpoint(CKPT)
    hparams = read_checkpoint(DATA / "omegaconf_hparams.ckpt")["hyper_parameters"]
    assert hparams == read_checkpoint(CKPT)["hyper_parameters"]


def test_checkpoint_of_the_wrong_shape_is_refused_naming_the_key(tmp_path):
    ckpt = read_checkpoint(CKPT)
    key = "structure_module.score_model.a_norm.weight"
    ckpt["state_dict"][key] = torch.ones(7)
    torch.save(ckpt, tmp_path / "wrong.ckpt")
    network = Boltz2DiffusionNetwork(config_from_checkpoint(ckpt))
    with pytest.raises(CheckpointError, match=rf"{key}.*\(7,\).*\(64,\)"):
        load_boltz2_weights(network, tmp_path / "wrong.ckpt")


class _Payload:
    """Pickles to a call of exec(): loading it unsafely creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_pickled_code_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Payload(marker)}}, path)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt.*weights_only=True.*exec"):
        read_checkpoint(path)
    assert not marker.exists()
    # Control: the payload is real, an unrestricted load does run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_checkpoint_says_where_to_put_it(tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere\.ckpt.*Put boltz2_conf\.ckpt there"):
        read_checkpoint(tmp_path / "nowhere.ckpt")
