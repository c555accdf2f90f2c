"""Small helpers: atomic file writes that fail clearly on a full disk, settings and versioned
records read into dataclasses, logging set-up, and the process's memory allocator."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

from boltzkinema.errors import DiskFullError

T = TypeVar("T")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to a temporary file beside ``path``, then rename it into place."""
    with atomic_output(path, len(text.encode())) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_output(path: str | Path, needed_bytes: int = 0) -> Iterator[Path]:
    """A temporary path beside ``path`` (file or folder) that becomes ``path`` when the block
    ends cleanly and is removed when it does not.

    The temporary name is fixed, so a writer killed half-way leaves a file that the rerun
    overwrites rather than litter. ``needed_bytes`` (an estimate) is checked against the free
    space first, and a full disk during the write becomes one :class:`DiskFullError` naming the
    path instead of a traceback from deep inside a library.
    """
    path = Path(path)
    tmp = tmp_path(path)
    ensure_free_space(path, needed_bytes)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if is_disk_full(exc):
            raise disk_full(path, needed_bytes) from exc
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC (or a quota), as an OSError or as a library's message about one."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    folder = Path(path).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def disk_full(path: str | Path, needed_bytes: int = 0) -> DiskFullError:
    need = f"needs about {_size(needed_bytes)}, " if needed_bytes else ""
    return DiskFullError(
        f"{path}: no space left on its filesystem ({need}{_size(free_bytes(path))} free); the "
        "partial file was removed. Fix: free space there, or point `results` at a larger disk, "
        "then rerun"
    )


def ensure_free_space(path: str | Path, needed_bytes: int) -> None:
    """Refuse a write of ``needed_bytes`` (an estimate; 1 MiB slack for metadata) that cannot
    fit, before anything is written."""
    if needed_bytes > 0 and free_bytes(path) < needed_bytes + (1 << 20):
        raise disk_full(path, needed_bytes)


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


def read_record(cls: type[T], path: Path, version: int, fix: str, error: type[Exception]) -> T:
    """The dataclass ``cls`` (a record between stages, with a ``version`` field) from the JSON
    file ``path``. A file without a version is version 1, the layout from before versions;
    another version, unreadable JSON or a missing required field raises ``error`` naming the
    file and ``fix``. Keys the dataclass does not know are ignored."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not readable ({exc}); {fix}") from exc
    found = data.get("version", 1)
    if found != version:
        raise error(f"{path}: version {found}; this boltzkinema reads version {version}: {fix}")
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    missing = sorted(required - set(data))
    if missing:
        raise error(f"{path}: lacks {missing}; {fix}")
    return cls(**{k: v for k, v in data.items() if k in names} | {"version": found})


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Make this process reuse the memory it frees instead of handing it back to the OS.

    A training or sampling step allocates the same large activations every iteration. glibc
    serves each block above its mmap threshold with a fresh mapping and unmaps it on free, so
    every step page-faults its activations in again: on CPU that made a step 2.6x slower at
    8,192 atoms and its time grow 8x for 4x the atoms (benchmarks/model_scaling.py). With
    mappings and trimming off, freed blocks stay in the heap for the next step; the resident
    size stays at its peak, which is higher (measured +20-45%). Where the environment already
    configures the allocator (``MALLOC_*``, ``GLIBC_TUNABLES`` with ``glibc.malloc``, or a
    preloaded malloc such as jemalloc) that choice is left alone. Returns whether it took
    (False off glibc, e.g. macOS).
    """
    chosen = (
        any(k.startswith("MALLOC_") for k in environ)
        or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")
        or "malloc" in environ.get("LD_PRELOAD", "")
    )
    if chosen:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
