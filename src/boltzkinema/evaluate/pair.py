"""``evaluate --pred --ref --topology``: metrics of any two mdtraj-readable trajectories."""

from __future__ import annotations

from typing import Any

import mdtraj

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.evaluate.ensemble import evaluate_ensemble
from boltzkinema.io.mdtraj_files import from_trajectory
from boltzkinema.io.system import SystemRef


def evaluate_pair(pred: str, ref: str, topology: str) -> dict[str, Any]:
    """Heavy-atom metrics of ``pred`` (every frame, one trajectory) against ``ref`` (same system,
    same topology), both superposed on ``ref``'s first frame; no frames are cut or dropped."""
    trajs = []
    for path in (pred, ref):
        try:
            traj = mdtraj.load(path, top=topology)
        except (ValueError, OSError) as exc:
            raise BoltzKinemaError(
                f"{path}: cannot read with topology {topology}: {exc}; both "
                "trajectories must match the topology"
            ) from exc
        raw = from_trajectory(SystemRef(path, "mdtraj", path, topology=topology), traj)
        trajs.append(process(raw, ProcessOptions(units="nm"))[0])
    p, r = trajs
    dt_r = float(r.times_ns[1] - r.times_ns[0]) if r.n_frames > 1 else 1.0
    dt_p = float(p.times_ns[1] - p.times_ns[0]) if p.n_frames > 1 else dt_r
    metrics = evaluate_ensemble(p.coords.astype(float), r.coords.astype(float), r, dt_p, dt_r)
    spans = {
        "span_ns_pred": (p.n_frames - 1) * dt_p,
        "span_ns_ref": (r.n_frames - 1) * dt_r,
        "dt_ns_pred": dt_p,
        "dt_ns_ref": dt_r,
    }
    return {"pred": pred, "ref": ref, "topology": topology, **spans, **metrics}
