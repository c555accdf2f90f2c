"""Decide whether coordinates are in nm or Å from evidence, and say how sure we are.

Each piece of evidence compares an observed length with what it would be in Å and scores the
two hypotheses on a log10 scale (Å: ratio ≈ 1, nm: ratio ≈ 0.1). Scores add as log-odds; the
confidence is the posterior of the winning unit. Metadata counts, but geometry usually decides:
a file that claims Å while its C–C bonds are 0.15 long is in nm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from boltzkinema.io.chemistry import covalent_radii

UNITS = ("angstrom", "nm")
NM_TO_ANGSTROM = 10.0
_MAX_LOG_ODDS = 12.0
_HINT_LOG_ODDS = {"file": 6.0, "convention": 1.5}


@dataclass
class UnitDecision:
    """The unit chosen for a system, with the evidence behind it."""

    unit: str
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)
    forced: bool = False

    @property
    def scale_to_angstrom(self) -> float:
        return NM_TO_ANGSTROM if self.unit == "nm" else 1.0


def _log_odds_angstrom(ratio: float, sigma: float) -> float:
    """log-odds(Å : nm) for an observed/expected-in-Å length ratio with log10 spread sigma."""
    if not np.isfinite(ratio) or ratio <= 0:
        return 0.0
    x = math.log10(ratio)
    lo = ((x + 1.0) ** 2 - x**2) / (2.0 * sigma**2)
    return float(np.clip(lo, -_MAX_LOG_ODDS, _MAX_LOG_ODDS))


def _heavy(elements: np.ndarray) -> np.ndarray:
    return elements != "H"


def bond_evidence(xyz: np.ndarray, elements: np.ndarray, bonds: np.ndarray | None) -> dict | None:
    """Median bonded heavy-atom distance against the sum of covalent radii."""
    if bonds is None or len(bonds) == 0:
        return None
    heavy = _heavy(elements)
    b = bonds[heavy[bonds[:, 0]] & heavy[bonds[:, 1]]]
    if len(b) < 3:
        return None
    b = b[:5000]
    d = np.linalg.norm(xyz[b[:, 0]] - xyz[b[:, 1]], axis=1)
    r = covalent_radii(elements)
    expected = r[b[:, 0]] + r[b[:, 1]]
    ratio = float(np.median(d / expected))
    return {"median_ratio": ratio, "n_bonds": len(b), "log_odds": _log_odds_angstrom(ratio, 0.08)}


def neighbour_evidence(xyz: np.ndarray, elements: np.ndarray) -> dict | None:
    """Median nearest heavy-atom distance; covalent neighbours sit about 1.45 Å apart."""
    heavy = np.flatnonzero(_heavy(elements))
    if len(heavy) < 4:
        return None
    pts = xyz[heavy[:: max(1, len(heavy) // 4000)]]
    if not np.isfinite(pts).all():
        return None
    d, _ = cKDTree(pts).query(pts, k=2)
    nn = d[:, 1]
    nn = nn[nn > 0]
    if len(nn) < 3:
        return None
    observed = float(np.median(nn))
    ratio = observed / 1.45
    return {
        "median_nn": observed,
        "expected_angstrom": 1.45,
        "log_odds": _log_odds_angstrom(ratio, 0.12),
    }


def extent_evidence(xyz: np.ndarray, elements: np.ndarray) -> dict | None:
    """Radius of gyration against a compact-protein scaling law (weak: shapes vary)."""
    heavy = _heavy(elements)
    n = int(heavy.sum())
    if n < 20:
        return None
    pts = xyz[heavy]
    rg = float(np.sqrt(((pts - pts.mean(0)) ** 2).sum(1).mean()))
    expected = 2.2 * (n / 7.8) ** 0.38
    return {
        "rg": rg,
        "expected_angstrom": expected,
        "log_odds": _log_odds_angstrom(rg / expected, 0.35),
    }


def detect_unit(
    xyz: np.ndarray,
    elements: np.ndarray,
    bonds: np.ndarray | None = None,
    hint: str | None = None,
    hint_source: str = "",
) -> UnitDecision:
    """Weigh metadata, bonded distances, neighbour distances and extent of one frame."""
    evidence: dict[str, Any] = {}
    total = 0.0
    if hint in UNITS:
        lo = _HINT_LOG_ODDS.get(hint_source, 1.0) * (1 if hint == "angstrom" else -1)
        evidence["metadata"] = {"says": hint, "source": hint_source, "log_odds": lo}
        total += lo
    geometric = bond_evidence(xyz, elements, bonds) or neighbour_evidence(xyz, elements)
    if geometric is not None:
        key = "bonded_distances" if "n_bonds" in geometric else "nearest_neighbours"
        evidence[key] = geometric
        total += geometric["log_odds"]
    extent = extent_evidence(xyz, elements)
    if extent is not None:
        evidence["extent"] = extent
        total += extent["log_odds"]
    p_angstrom = 1.0 / (1.0 + math.exp(-total))
    unit = "angstrom" if p_angstrom >= 0.5 else "nm"
    evidence["total_log_odds_angstrom"] = total
    return UnitDecision(unit, max(p_angstrom, 1.0 - p_angstrom), evidence)


def forced_unit(unit: str, measured: UnitDecision) -> UnitDecision:
    """A unit set by the user; the measured evidence is kept so a wrong force can be spotted."""
    evidence = dict(measured.evidence)
    evidence["measured"] = {"unit": measured.unit, "confidence": measured.confidence}
    return UnitDecision(unit, 1.0, evidence, forced=True)
