"""Import Boltz-2 diffusion-module weights from a Lightning checkpoint (``boltz2_conf.ckpt``).

The file is read by :func:`~boltzkinema.io.lightning_checkpoint.read_checkpoint`
(``torch.load(weights_only=True)`` with OmegaConf hyper-parameters as inert stand-ins).

Checkpoint names map onto :class:`Boltz2DiffusionNetwork` by prefix (:data:`CHECKPOINT_PREFIXES`);
the network's temporal attentions and frame conditioning have no counterpart and keep their
(zero-output) initial values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from boltzkinema.errors import CheckpointError
from boltzkinema.io.lightning_checkpoint import read_checkpoint
from boltzkinema.model.boltz2_network import Boltz2Config, Boltz2DiffusionNetwork
from boltzkinema.model.layers.attention import TemporalAttention
from boltzkinema.model.layers.frames import FrameConditioning

log = logging.getLogger(__name__)

# Boltz-2 checkpoint prefix → prefix in Boltz2DiffusionNetwork.
CHECKPOINT_PREFIXES = {
    "structure_module.score_model.": "score_model.",
    "diffusion_conditioning.": "conditioning.",
    "rel_pos.": "rel_pos.",
}


def _as_checkpoint(checkpoint: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    return checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)


def config_from_checkpoint(
    checkpoint: str | Path | Mapping[str, Any], **overrides: Any
) -> Boltz2Config:
    """The network size stored in the checkpoint's ``hyper_parameters``; ``overrides`` win.

    Absent entries take Boltz-2's constructor defaults. σ_data is the diffusion process's.
    """
    ckpt = _as_checkpoint(checkpoint)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, Mapping):
        raise CheckpointError("checkpoint has no 'hyper_parameters'; cannot size the network")
    score = hp.get("score_model_args") or {}
    process = hp.get("diffusion_process_args") or {}
    defaults = Boltz2Config()
    from_hp = {
        name: hp.get(name, getattr(defaults, name))
        for name in (
            "token_s",
            "token_z",
            "atom_s",
            "atom_z",
            "atoms_per_window_queries",
            "atoms_per_window_keys",
            "atom_feature_dim",
            "fix_sym_check",
            "cyclic_pos_enc",
            "use_no_atom_char",
            "use_atom_backbone_feat",
            "use_residue_feats_atoms",
        )
    }
    from_score = {
        name: score.get(name, getattr(defaults, name))
        for name in (
            "dim_fourier",
            "atom_encoder_depth",
            "atom_encoder_heads",
            "token_transformer_depth",
            "token_transformer_heads",
            "atom_decoder_depth",
            "atom_decoder_heads",
            "conditioning_transition_layers",
            "transformer_post_ln",
        )
    }
    sigma_data = float(process.get("sigma_data", defaults.sigma_data))
    return Boltz2Config(**from_hp, **from_score, sigma_data=sigma_data, **overrides)


def checkpoint_weights(
    checkpoint: Mapping[str, Any], use_ema: bool = False
) -> Mapping[str, torch.Tensor]:
    """The checkpoint's ``state_dict`` (what Boltz-2 predicts with), or its EMA weights."""
    if not use_ema:
        return checkpoint["state_dict"]
    ema = checkpoint.get("ema")
    if not isinstance(ema, Mapping) or not isinstance(ema.get("ema_weights"), Mapping):
        raise CheckpointError("use_ema=True but the checkpoint has no 'ema' → 'ema_weights'")
    return ema["ema_weights"]


def temporal_keys(network: torch.nn.Module) -> set[str]:
    """State-dict names of the parameters Boltz-2 does not have: the temporal attentions and
    the frame conditioning (given-frame vector, frame-spacing and frame-offset features)."""
    return {
        f"{name}.{key}"
        for name, module in network.named_modules()
        if isinstance(module, TemporalAttention | FrameConditioning)
        for key in module.state_dict()
    }


@dataclass(frozen=True)
class LoadReport:
    """Which network keys were filled, which were not (``missing``) and which checkpoint keys
    under the mapped prefixes found no place (``unexpected``, checkpoint names)."""

    mapped: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def load_boltz2_weights(
    network: Boltz2DiffusionNetwork,
    checkpoint: str | Path | Mapping[str, Any],
    use_ema: bool = False,
    strict: bool = True,
) -> LoadReport:
    """Copy Boltz-2 weights into ``network`` by name.

    A shape mismatch always raises. With ``strict``, so does any missing key other than the
    temporal layers and the frame conditioning, and any unexpected key.
    """
    ckpt = _as_checkpoint(checkpoint)
    ours = network.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in checkpoint_weights(ckpt, use_ema).items():
        prefix = next((p for p in CHECKPOINT_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        name = CHECKPOINT_PREFIXES[prefix] + key.removeprefix(prefix)
        if name not in ours:
            unexpected.append(key)
            continue
        if value.shape != ours[name].shape:
            raise CheckpointError(
                f"shape mismatch for {key} (→ {name}): checkpoint {tuple(value.shape)}, "
                f"network {tuple(ours[name].shape)}"
            )
        renamed[name] = value
    report = LoadReport(
        mapped=tuple(sorted(renamed)),
        missing=tuple(sorted(set(ours) - set(renamed))),
        unexpected=tuple(sorted(unexpected)),
    )
    if strict:
        untrained = sorted(set(report.missing) - temporal_keys(network))
        if untrained or report.unexpected:
            raise CheckpointError(
                "checkpoint does not match the network: missing non-temporal keys "
                f"{untrained[:10]}, unexpected keys {list(report.unexpected)[:10]}"
            )
    network.load_state_dict(renamed, strict=False)
    log.info(
        "Loaded %d/%d keys (%d missing, kept as initialised; %d unexpected)",
        len(report.mapped),
        len(ours),
        len(report.missing),
        len(report.unexpected),
    )
    return report


def network_from_checkpoint(
    path: str | Path, use_ema: bool = False, **overrides: Any
) -> tuple[Boltz2DiffusionNetwork, LoadReport]:
    """Build a network of the checkpoint's size (``overrides``, e.g. ``causal=True``, apply)
    and load its weights."""
    ckpt = read_checkpoint(path)
    log.info("Read Boltz-2 checkpoint %s", path)
    network = Boltz2DiffusionNetwork(config_from_checkpoint(ckpt, **overrides))
    return network, load_boltz2_weights(network, ckpt, use_ema=use_ema)
