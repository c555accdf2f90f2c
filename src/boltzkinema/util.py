"""Small helpers: atomic file writes and logging set-up."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to a temporary file beside ``path``, then rename it into place.

    The temporary name is fixed, so a writer killed half-way leaves a file that the rerun
    overwrites rather than litter.
    """
    tmp = tmp_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def tmp_path(path: str | Path) -> Path:
    """A temporary name beside ``path`` that keeps its suffix (some writers need it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def from_settings(cls: type[T], settings: dict[str, Any], section: str) -> T:
    """A settings dataclass from a config section; unknown keys are an error naming them."""
    from boltzkinema.errors import ConfigError

    unknown = set(settings) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {section} settings {sorted(unknown)}")
    return cls(**settings)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
