"""The two denoising networks behind one interface, chosen by ``train.model.architecture``.

* ``native``: :class:`~boltzkinema.model.network.DiffusionNetwork`, our own layout, sized by the
  config (DESIGN §4).
* ``boltz2``: :class:`~boltzkinema.model.boltz2_network.Boltz2DiffusionNetwork`, Boltz-2's
  structure module with our temporal attention; sized by the Boltz-2 checkpoint it starts from
  (``train.init_from: boltz2_conf.ckpt``), or by the config when trained from scratch.

Both are called as ``net(batch, x_noisy, sigma)``, give ``net.denoiser(batch)`` to the sampler
and name their trunk widths (``net.trunk_widths``); checkpoints record the architecture.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from torch import nn

from boltzkinema.data.dataset import SystemFeatures
from boltzkinema.errors import ConfigError
from boltzkinema.model.boltz2_network import (
    Boltz2Config,
    Boltz2DiffusionNetwork,
    atom_feature_width,
)
from boltzkinema.model.boltz2_weights import config_from_checkpoint
from boltzkinema.model.network import DiffusionNetwork, ModelConfig
from boltzkinema.settings import default
from boltzkinema.trunk.boltz2_atoms import features_for_entry

log = logging.getLogger(__name__)
ARCHITECTURES = ("native", "boltz2")
# Boltz-2 settings a config may change on top of a checkpoint's sizes.
BOLTZ2_SWITCHES = ("temporal", "causal", "activation_checkpointing")


def architecture_of(settings: Mapping[str, Any]) -> str:
    """The architecture named in a ``train.model`` section (``native`` when absent)."""
    arch = settings.get("architecture", default("train.model.architecture"))
    if arch not in ARCHITECTURES:
        raise ConfigError(f"train.model.architecture {arch!r}: choose one of {ARCHITECTURES}")
    return arch


def _own_settings(cls: type, settings: Mapping[str, Any], owned: tuple[str, ...]) -> dict:
    """The settings of ``cls``'s architecture; the other architecture's are dropped (a preset
    may switch architecture on top of a config that sizes the other one), and an unknown key or
    a width the trunk owns is an error."""
    arch = architecture_of(settings)
    own = {f.name for f in fields(cls)} - set(owned)
    other_cls = ModelConfig if cls is Boltz2Config else Boltz2Config
    other = {f.name for f in fields(other_cls)} - own
    given = {k: v for k, v in settings.items() if k != "architecture"}
    widths = sorted(set(given) & set(owned))
    if widths:
        raise ConfigError(f"train.model: {widths} come from the trunk (trunk.c_s, trunk.c_z)")
    unknown = sorted(set(given) - own - other)
    if unknown:
        raise ConfigError(f"train.model: {unknown} are not settings; {arch} uses {sorted(own)}")
    ignored = sorted(set(given) - own)
    if ignored:
        log.warning("train.model: %s do not apply to the %s architecture; ignored", ignored, arch)
    return {k: v for k, v in given.items() if k in own}


def network_config(
    settings: Mapping[str, Any],
    trunk_widths: tuple[int, int],
    boltz2_checkpoint: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
) -> ModelConfig | Boltz2Config:
    """The network's configuration from ``train.model`` and the trunk embeddings' widths.

    For ``boltz2`` started from a Boltz-2 checkpoint, or from an earlier run of ours (its
    ``stored`` configuration), that start sizes the network; the config may only switch
    :data:`BOLTZ2_SWITCHES`, and the trunk must have the start's widths.
    """
    c_s, c_z = trunk_widths
    if architecture_of(settings) == "native":
        return ModelConfig(c_s=c_s, c_z=c_z, **_own_settings(ModelConfig, settings, ("c_s", "c_z")))
    given = _own_settings(Boltz2Config, settings, ("token_s", "token_z"))
    if boltz2_checkpoint is None and stored is None:
        cfg = Boltz2Config(token_s=c_s, token_z=c_z, **given)
        return replace(cfg, atom_feature_dim=atom_feature_width(cfg))
    sizes = sorted(set(given) - set(BOLTZ2_SWITCHES))
    if sizes:
        raise ConfigError(
            f"train.model: {sizes} are set by the checkpoint in train.init_from; "
            f"remove them (a config may change only {list(BOLTZ2_SWITCHES)})"
        )
    if stored is not None:
        cfg = replace(Boltz2Config(**stored), **given)
    else:
        cfg = config_from_checkpoint(boltz2_checkpoint, **given)
    if (cfg.token_s, cfg.token_z) != (c_s, c_z):
        raise ConfigError(
            f"the trunk embeddings have c_s={c_s}, c_z={c_z} but the checkpoint in init_from "
            f"needs token_s={cfg.token_s}, token_z={cfg.token_z}: run the trunk with "
            "trunk.backend: boltz2 and the same checkpoint (or set trunk.c_s/c_z to match)"
        )
    return cfg


def build_network(architecture: str, config: Mapping[str, Any]) -> nn.Module:
    """A fresh network of ``architecture`` from a stored configuration (``state.json``)."""
    if architecture == "boltz2":
        cfg = Boltz2Config(**config)
        if cfg.use_atom_backbone_feat:
            raise ConfigError(
                "this Boltz-2 checkpoint uses atom backbone features, which boltzkinema does "
                "not build; use a checkpoint without use_atom_backbone_feat"
            )
        if cfg.atom_feature_dim != atom_feature_width(cfg):
            raise ConfigError(
                f"atom_feature_dim {cfg.atom_feature_dim} (from the checkpoint's "
                "hyper-parameters) does not fit the atom features boltzkinema builds for its "
                f"switches ({atom_feature_width(cfg)} wide); this checkpoint's atom features "
                "are not supported"
            )
        return Boltz2DiffusionNetwork(cfg)
    if architecture == "native":
        return DiffusionNetwork(ModelConfig(**config))
    raise ConfigError(f"unknown architecture {architecture!r}; one of {ARCHITECTURES}")


def system_features(architecture: str) -> SystemFeatures | None:
    """What the architecture reads about a system besides our own atom features."""
    return features_for_entry if architecture == "boltz2" else None
