"""ATLAS: per protein a PDB plus replica trajectories (``{name}_R{k}.xtc``), protein only.

The ATLAS archive names replicas ``{name}_R1.xtc`` (and ``{name}_prod_R1_fit.xtc`` in older
releases); frames are 10 ps apart. mdtraj returns nm.
"""

from __future__ import annotations

import re
from pathlib import Path

from boltzkinema.io import mdtraj_files
from boltzkinema.io.system import RawSystem, SystemRef

DEFAULT_FRAME_DT_NS = 0.01
_REPLICA = re.compile(r"^(?P<name>.+?)(?:_prod)?_R(?P<rep>\d+)(?:_fit)?\.xtc$")


def discover(dataset: str, directories: list[str]) -> list[SystemRef]:
    """One reference per replica trajectory whose protein PDB sits beside it."""
    refs = []
    for directory in directories:
        for traj in sorted(Path(directory).rglob("*.xtc")):
            m = _REPLICA.match(traj.name)
            if not m:
                continue
            pdb = traj.with_name(f"{m['name']}.pdb")
            refs.append(
                SystemRef(
                    f"{dataset}.{m['name']}_R{m['rep']}",
                    "atlas",
                    str(traj),
                    topology=str(pdb),
                    extra={"replica": int(m["rep"])},
                )
            )
    return refs


def load(ref: SystemRef) -> RawSystem:
    return mdtraj_files.load(ref)
