"""One preprocessing job: the systems of a shard in, one HDF5 shard plus a JSON report out.

A system that fails a check is quarantined with its reason and fix in the report; the others are
still written. With ``strict`` a quarantine fails the job instead. Both outputs are written to
temporary names and renamed at the end, so a crash never leaves a valid-looking partial shard.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.data.shard_report import ShardReport
from boltzkinema.data.store import ShardWriter
from boltzkinema.errors import BoltzKinemaError, InputError
from boltzkinema.io import atlas, mdcath, mdtraj_files, misato
from boltzkinema.io.listing import check_listed
from boltzkinema.io.system import RawSystem, SystemRef
from boltzkinema.io.topology_cache import NO_REUSE, TopologyCache
from boltzkinema.progress import track

log = logging.getLogger(__name__)

DEFAULT_FRAME_DT_NS = {
    "misato": misato.DEFAULT_FRAME_DT_NS,
    "mdcath": mdcath.DEFAULT_FRAME_DT_NS,
    "atlas": atlas.DEFAULT_FRAME_DT_NS,
    "mdtraj": None,  # no convention: the file's times or the config's frame_dt_ns
}


class StrictModeError(BoltzKinemaError):
    """A system was quarantined while ``strict`` is on."""


def load_raw(
    ref: SystemRef,
    qm_path: str | None,
    *,
    peptide_ligand_max_residues: int,
    cache: TopologyCache = NO_REUSE,
) -> RawSystem:
    """Read one system with the reader of its format (readers whose files hold replicas reuse
    their topology through ``cache``)."""
    check_listed(ref)
    if ref.format == "misato":
        return misato.load(
            ref,
            qm_path=qm_path,
            peptide_ligand_max_residues=peptide_ligand_max_residues,
            cache=cache,
        )
    if ref.format == "mdcath":
        return mdcath.load(ref, cache=cache)
    if ref.format == "atlas":
        return atlas.load(ref)
    if ref.format == "mdtraj":
        return mdtraj_files.load(ref)
    raise ValueError(f"unknown format {ref.format!r}")


def _quarantine(ref: SystemRef, err: InputError) -> dict[str, Any]:
    return {
        "system_id": ref.system_id,
        "status": "quarantined",
        "file": ref.path,
        "group": ref.group,
        "code": err.code,
        "reason": err.reason,
        "fix": err.fix,
    }


def preprocess_shard(
    refs: list[SystemRef],
    output: str | Path,
    report: str | Path,
    opts: ProcessOptions,
    *,
    dataset: str = "",
    qm_path: str | None = None,
    cache: TopologyCache | None = None,
) -> ShardReport:
    """Process every system of a shard; return the report (also written to ``report``).

    Per-topology work is done once per distinct topology of the shard (``cache``, a fresh
    :class:`TopologyCache` unless given; ``TopologyCache(0)`` turns reuse off)."""
    cache = TopologyCache() if cache is None else cache
    entries: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ShardWriter(output) as writer:
        shown = track(refs, f"preprocess {Path(output).name}", unit="system")
        for i, ref in enumerate(shown, start=1):
            t0 = time.perf_counter()
            try:
                raw = load_raw(
                    ref,
                    qm_path,
                    peptide_ligand_max_residues=opts.peptide_ligand_max_residues,
                    cache=cache,
                )
                system, summary = process(raw, opts, cache)
                writer.add(system)
                entries.append(
                    {
                        "system_id": ref.system_id,
                        "status": "ok",
                        "format": ref.format,
                        "file": ref.path,
                        "group": ref.group,
                        "extra": ref.extra,
                        **summary,
                        "seconds": round(time.perf_counter() - t0, 3),
                    }
                )
                status = "ok"
            except InputError as err:
                entries.append(_quarantine(ref, err))
                status = f"QUARANTINED ({err.code}): {err.located(ref.path, ref.group)}"
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                err = InputError(
                    f"{type(exc).__name__}: {exc}",
                    "check that the file is complete and readable (re-copy it)",
                    code="unreadable",
                )
                entries.append(_quarantine(ref, err))
                status = f"QUARANTINED (unreadable): {err.located(ref.path, ref.group)}"
            log.info("[%d/%d] %s: %s", i, len(refs), ref.system_id, status)
        quarantined = [e for e in entries if e["status"] != "ok"]
        if opts.strict and quarantined:
            first = quarantined[0]
            raise StrictModeError(
                f"strict mode: {len(quarantined)} of {len(refs)} systems quarantined; first: "
                f"{first['file']} [{first['group'] or first['system_id']}]: {first['reason']}. "
                f"Fix: {first['fix']} (or set strict: false to skip such systems)"
            )
    log.info("per-topology work reused %d times, done %d times", cache.hits, cache.misses)
    result = ShardReport(
        dataset=dataset,
        shard=Path(output).name,
        n_systems=len(refs),
        n_ok=len(entries) - len(quarantined),
        n_quarantined=len(quarantined),
        seconds=round(time.perf_counter() - started, 3),
        options={k: getattr(opts, k) for k in opts.__dataclass_fields__},
        systems=entries,
    )
    result.write(report)
    return result
