"""The trunk backend interface: a frozen model that embeds one system's tokens.

A backend turns a processed system into ``s_inputs`` (N, c_s), ``s_trunk`` (N, c_s) and
``z_trunk`` (N, N, c_z). Register new backends (e.g. a Boltz-2 trunk) in :data:`BACKENDS`; the
cache, the manifest and the model only see this interface. Backends that hold resources (the
Boltz-2 worker process) also have ``close()``; callers close them when done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from boltzkinema.data.store import ProcessedSystem
from boltzkinema.errors import ConfigError
from boltzkinema.settings import settings


@dataclass
class TrunkEmbedding:
    """Per-token embeddings of one system (``z_trunk`` may be float16 already; on disk all are)."""

    s_inputs: np.ndarray
    s_trunk: np.ndarray
    z_trunk: np.ndarray

    def validate(self, n_tokens: int, c_s: int, c_z: int) -> None:
        """Raise ValueError unless the shapes are (N, c_s), (N, c_s), (N, N, c_z)."""
        expected = {
            "s_inputs": (n_tokens, c_s),
            "s_trunk": (n_tokens, c_s),
            "z_trunk": (n_tokens, n_tokens, c_z),
        }
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"{name} has shape {got}, expected {shape}")


@settings("trunk")
class TrunkSettings:
    """The ``trunk`` section, less its paths (``checkpoint``, ``python``: command-line options)
    and ``threads`` (the job's OMP_NUM_THREADS, which does not change an embedding)."""

    backend: str
    c_s: int
    c_z: int
    seed: int
    recycling_steps: int
    msa: str
    method: str
    device: str
    precision: str

    def backend_params(self) -> dict[str, Any]:
        """What the configured backend is made with (the boltz2 options only for boltz2)."""
        params: dict[str, Any] = {"c_s": self.c_s, "c_z": self.c_z, "seed": self.seed}
        if self.backend == "boltz2":
            params |= {
                "recycling_steps": self.recycling_steps,
                "msa": self.msa,
                "method": self.method,
                "device": self.device,
                "precision": self.precision,
            }
        return params


class TrunkBackend(Protocol):
    """What every trunk backend provides."""

    name: str
    version: str
    c_s: int
    c_z: int

    def params(self) -> dict[str, Any]:
        """Everything that changes the output (part of the cache key)."""
        ...

    def embed(self, system: ProcessedSystem) -> TrunkEmbedding:
        """Embeddings of the system's tokens from its reference (first) frame."""
        ...


BACKENDS: dict[str, Callable[..., TrunkBackend]] = {}


def register(name: str) -> Callable[[Callable[..., TrunkBackend]], Callable[..., TrunkBackend]]:
    def wrap(factory: Callable[..., TrunkBackend]) -> Callable[..., TrunkBackend]:
        BACKENDS[name] = factory
        return factory

    return wrap


def get_backend(name: str, **params: Any) -> TrunkBackend:
    """Instantiate a registered backend by name."""
    # Importing these registers the backends (boltz2 imports no boltz: its worker does).
    import boltzkinema.trunk.boltz2
    import boltzkinema.trunk.builtin  # noqa: F401

    if name not in BACKENDS:
        raise ConfigError(f"unknown trunk backend {name!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[name](**params)
