"""Read a PyTorch Lightning checkpoint safely: ``torch.load(weights_only=True)`` and nothing else.

Tensors and plain containers only, never arbitrary pickled objects. Boltz-2's released
checkpoints keep some hyper-parameters as OmegaConf containers; the only other names the reader
accepts are those OmegaConf classes, each mapped to an inert stand-in that just stores the pickled
state (no OmegaConf code runs, OmegaConf need not be installed), and the stand-ins are turned back
into plain dicts and lists. Torch only, so the Boltz worker's environment can import it too.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from boltzkinema.errors import CheckpointError

OMEGACONF_CLASSES = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    *(
        f"omegaconf.nodes.{node}"
        for node in (
            "AnyNode",
            "StringNode",
            "IntegerNode",
            "FloatNode",
            "BooleanNode",
            "BytesNode",
            "PathNode",
        )
    ),
)


class _PickledState:
    """Inert stand-in for an OmegaConf object: keeps its pickled state, runs no code."""

    def __setstate__(self, state: dict) -> None:
        self.state = state


class _TypeRef:
    """Stand-in for ``typing.Any`` (OmegaConf metadata refers to it; we never use it)."""


def _discard(*_args: object) -> None:
    """Stand-in for ``collections.defaultdict``: only OmegaConf's resolver cache is built by it."""


SAFE_STAND_INS = [
    *((_PickledState, name) for name in OMEGACONF_CLASSES),
    (_TypeRef, "typing.Any"),
    (_discard, "collections.defaultdict"),
    dict,
    list,
    int,
    float,
    str,
    bool,
]


def _plain(value: Any) -> Any:
    """Replace OmegaConf stand-ins by the dicts, lists and values they held."""
    if isinstance(value, _PickledState):
        state = value.state
        return _plain(state["_content"] if "_content" in state else state.get("_val"))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Boltz-2 Lightning checkpoint safely; hyper-parameters come back as plain values."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Boltz-2 checkpoint not found at {path}. Put boltz2_conf.ckpt there (the file "
            "`boltz predict` caches in ~/.boltz, published as boltz-community/boltz-2 on "
            "Hugging Face); nothing is downloaded at run time."
        )
    try:
        with torch.serialization.safe_globals(SAFE_STAND_INS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next(
            (line.strip() for line in str(err).splitlines() if "WeightsUnpickler" in line),
            str(err).splitlines()[0],
        )
        raise CheckpointError(
            f"{path} was refused by torch.load(weights_only=True): it holds pickled Python "
            f"objects other than tensors, plain containers and OmegaConf configs, and loading "
            f"those could run arbitrary code. Unpickler said: {reason}"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint: no 'state_dict' mapping")
    if "hyper_parameters" in ckpt:
        ckpt["hyper_parameters"] = _plain(ckpt["hyper_parameters"])
    return ckpt
