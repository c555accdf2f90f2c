"""Listing the systems of raw HDF5 archives, so that one damaged file costs only itself.

A file that exists but cannot be opened or walked becomes one placeholder system; preprocessing
quarantines it as ``unreadable`` with the reason, and every other file is indexed as usual. A path
that does not exist is a configuration mistake and stops the index with the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py

from boltzkinema.errors import ConfigError, InputError
from boltzkinema.io.system import SystemRef

UNREADABLE = "unreadable"


def list_hdf5(
    dataset: str, fmt: str, path: str, lister: Callable[[h5py.File], list[SystemRef]]
) -> list[SystemRef]:
    """``lister(file)``'s systems, or one placeholder when the file cannot be read."""
    if not Path(path).exists():
        raise ConfigError(
            f"dataset {dataset!r}: input {path} does not exist; fix datasets.{dataset}.inputs "
            "in the config"
        )
    try:
        with h5py.File(path, "r") as f:
            return lister(f)
    except (OSError, RuntimeError) as exc:  # h5py's errors for damaged files
        reason = f"{type(exc).__name__}: {exc}"
        return [SystemRef(f"{dataset}.{Path(path).name}", fmt, path, extra={UNREADABLE: reason})]


def check_listed(ref: SystemRef) -> None:
    """Raise the quarantine error of a placeholder made by :func:`list_hdf5`."""
    if UNREADABLE in ref.extra:
        raise InputError(
            f"the file could not be opened to list its systems ({ref.extra[UNREADABLE]})",
            "re-copy the complete file and rerun; its systems are indexed then",
            code=UNREADABLE,
        )
