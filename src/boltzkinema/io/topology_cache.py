"""Per-topology work done once: replicas of one system (mdCATH's temperatures × replicas, MISATO
reruns) share a topology, so what depends on the topology alone (residue walking, bonds, the
RDKit ligand check, the topology hash) is computed for the first of them and reused by the
others. The unit is not among them: one file can hold groups of one topology in nm and in Å.

A cache lives for one preprocessing job (a shard); entries are keyed by a content fingerprint of
the arrays they were derived from, never by a name, so two systems share an entry only when their
topologies are identical. Values are stored with their arrays made read-only, so a caller that
would change a shared array in place fails loudly instead of corrupting the next replica.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# Readers list replicas next to each other (mdCATH: a domain's temperatures and replicas), so
# a few entries catch them; each holds about ten per-atom arrays, far less than one system's
# coordinates, so memory stays bounded by one system.
DEFAULT_ENTRIES = 8


def fingerprint(*parts: Any) -> str:
    """Content hash of arrays (dtype, shape and bytes), strings, numbers and None."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if part is None:
            h.update(b"\x00none")
            continue
        if isinstance(part, np.ndarray | list | tuple):
            arr = np.asarray(part)
            if arr.dtype == object:
                arr = arr.astype(str)
            arr = np.ascontiguousarray(arr)
            h.update(f"\x00{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(f"\x00{type(part).__name__}:{part}".encode())
    return h.hexdigest()


def _read_only(value: Any) -> Any:
    """``value`` with every array it holds (directly, in tuples, lists, dicts or dataclass
    fields) made read-only."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, tuple | list):
        for v in value:
            _read_only(v)
    elif isinstance(value, dict):
        for v in value.values():
            _read_only(v)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            _read_only(getattr(value, f.name))
    return value


class TopologyCache:
    """A bounded memo of per-topology results (least recently used entries leave first).

    ``max_entries=0`` keeps nothing: every system does all its own work (the benchmark's
    distinct-topology case). Hits and misses are counted for the job's log.
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value stored under ``key``, computed (and stored) on the first request. An
        exception from ``compute`` propagates and stores nothing."""
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        value = compute()
        if self.max_entries > 0:
            self._entries[key] = _read_only(value)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    @property
    def size(self) -> int:
        """Entries held now."""
        return len(self._entries)


# What a caller without a cache of its own gets: nothing is kept, every call computes.
NO_REUSE = TopologyCache(0)
