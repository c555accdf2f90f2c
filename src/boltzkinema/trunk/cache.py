"""Trunk embeddings cached per unique topology, half precision, in safetensors files.

The cache key hashes the topology hash with the backend's name, version and parameters, so
replicas (and temperatures) of one system share an entry and a changed backend never reuses a
stale one. Each shard gets an index (JSON) naming the entry of each of its systems.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from boltzkinema.data.store import ShardReader
from boltzkinema.errors import SystemRefused
from boltzkinema.progress import track
from boltzkinema.trunk.backend import TrunkBackend, TrunkEmbedding
from boltzkinema.trunk.shard_index import TrunkIndex
from boltzkinema.util import atomic_output

log = logging.getLogger(__name__)
TENSORS = ("s_inputs", "s_trunk", "z_trunk")


def cache_key(backend: TrunkBackend, topology_hash: str, reference_hash: str = "") -> str:
    """Same topology, reference structure and backend settings: same entry."""
    payload = json.dumps(
        {
            "backend": backend.name,
            "version": backend.version,
            "params": backend.params(),
            "topology": topology_hash,
            "reference": reference_hash,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


META_KEY = "boltzkinema"


def save_embedding(path: Path, emb: TrunkEmbedding, metadata: dict[str, str]) -> None:
    """Write float16 tensors to a temporary file, then rename into place.

    The metadata goes in as one sorted JSON string: safetensors writes a metadata map in no fixed
    order, and equal inputs must give byte-identical files.
    """
    tensors = {k: np.ascontiguousarray(getattr(emb, k), dtype=np.float16) for k in TENSORS}
    with atomic_output(path, sum(t.nbytes for t in tensors.values())) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(metadata, sort_keys=True)})


def entry_metadata(path: str | Path) -> dict[str, str]:
    """An entry's metadata (backend, version, params JSON, ...), read from its header only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable trunk embedding ({exc}); delete it and rerun "
            "the trunk_cache rule"
        ) from exc
    return json.loads(raw[META_KEY]) if META_KEY in raw else raw


def load_embedding(path: str | Path) -> tuple[TrunkEmbedding, dict[str, str]]:
    """Read an entry (float16, as stored) and its metadata; a clear error for a corrupt file."""
    metadata = entry_metadata(path)
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable trunk embedding ({exc}); delete it and rerun "
            "the trunk_cache rule"
        ) from exc
    missing = [k for k in TENSORS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing}; delete it and rerun trunk_cache")
    emb = TrunkEmbedding(*(arrays[k] for k in TENSORS))
    return emb, metadata


def embedding_widths(path: str | Path) -> tuple[int, int]:
    """(c_s, c_z) of an entry, read from its header; an error if its tensors disagree."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in TENSORS}
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable trunk embedding ({exc}); delete it and rerun trunk_cache"
        ) from exc
    (n, c_s), (n2, c_s2), (n3, n4, c_z) = (shapes[k] for k in TENSORS)
    if (n2, c_s2) != (n, c_s) or (n3, n4) != (n, n):
        raise ValueError(
            f"{path}: trunk tensors disagree ({shapes}); delete it and rerun trunk_cache"
        )
    return c_s, c_z


def check_widths(
    paths: list[str | Path], expected: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The one (c_s, c_z) of all entries, which must equal ``expected`` when given."""
    by_width: dict[tuple[int, int], str] = {}
    for path in paths:
        by_width.setdefault(embedding_widths(path), str(path))
    if expected is not None:
        by_width.setdefault(tuple(expected), "the model")
    if len(by_width) != 1:
        seen = "; ".join(f"c_s={s}, c_z={z} in {where}" for (s, z), where in by_width.items())
        raise ValueError(
            f"trunk embeddings of different widths: {seen}. Rerun trunk_cache with the trunk "
            "settings (trunk.c_s, trunk.c_z, backend) the model was trained with, or retrain"
        )
    return next(iter(by_width))


def _entry_valid(path: Path, key: str) -> bool:
    if not path.exists():
        return False
    try:
        _, meta = load_embedding(path)
    except ValueError:
        return False
    return meta.get("key") == key


def build_trunk_cache(
    shard: str | Path,
    index_out: str | Path,
    embeddings_dir: str | Path,
    backend: TrunkBackend,
    results_root: str | Path,
) -> TrunkIndex:
    """Embed every unique topology of a shard (reusing valid entries) and write the shard index.

    A system the backend refuses (:class:`SystemRefused`) is listed under ``quarantined`` with
    the reason instead; the others are embedded.
    """
    embeddings_dir = Path(embeddings_dir)
    embeddings_dir.mkdir(parents=True, exist_ok=True)
    systems: dict[str, dict[str, Any]] = {}
    quarantined: dict[str, str] = {}
    computed = reused = 0
    with ShardReader(shard) as reader:
        ids = reader.system_ids()
        for i, sid in enumerate(track(ids, f"trunk {Path(shard).name}", unit="system"), start=1):
            attrs = reader.attrs(sid)
            key = cache_key(backend, attrs["topology_hash"], attrs.get("reference_hash", ""))
            path = embeddings_dir / f"{key}.safetensors"
            fresh = not _entry_valid(path, key)
            if fresh:
                system = reader.load(sid, frames=[0])
                try:
                    emb = backend.embed(system)
                except SystemRefused as exc:
                    quarantined[sid] = str(exc)
                    log.warning("[%d/%d] %s: quarantined: %s", i, len(ids), sid, exc)
                    continue
                emb.validate(system.n_tokens, backend.c_s, backend.c_z)
                save_embedding(
                    path,
                    emb,
                    {
                        "key": key,
                        "backend": backend.name,
                        "version": backend.version,
                        "params": json.dumps(backend.params(), sort_keys=True),
                        "topology_hash": attrs["topology_hash"],
                        "n_tokens": str(system.n_tokens),
                        "reference_hash": attrs.get("reference_hash", ""),
                    },
                )
                computed += 1
            else:
                reused += 1
            systems[sid] = {
                "key": key,
                "path": os.path.relpath(path, results_root),
                "topology_hash": attrs["topology_hash"],
                "computed": fresh,
            }
            log.info("[%d/%d] %s: %s %s", i, len(ids), sid, "computed" if fresh else "reused", key)
    index = TrunkIndex(
        backend=backend.name,
        backend_version=backend.version,
        params=backend.params(),
        shard=os.path.relpath(shard, results_root),
        computed=computed,
        reused=reused,
        systems=systems,
        quarantined=quarantined,
    )
    index.write(index_out)
    return index
