"""A self-contained HTML report of a run: summary tables per split and every figure."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from boltzkinema.util import atomic_write_text

KEY_METRICS = [
    "n_frames_pred",
    "n_frames_ref",
    "span_ns_pred",
    "span_ns_ref",
    "dt_ns_pred",
    "dt_ns_ref",
    "rmsf_r_all",
    "rmsf_r_ca",
    "rmsf_mae",
    "pairwise_rmsd_pred",
    "pairwise_rmsd_ref",
    "rmwd",
    "rmwd_trans",
    "rmwd_var",
    "pca_w2_ref",
    "pca_w2_joint",
    "weak_contacts_jaccard",
    "transient_contacts_jaccard",
    "torsion_jsd",
    "chi1_jsd",
    "tica0_jsd",
    "msm_state_jsd",
    "torsion_decorrelation_ns_pred",
    "torsion_decorrelation_ns_ref",
    "its_slowest_ns_pred",
    "its_slowest_ns_ref",
    "bond_violations",
    "clashes_per_frame",
    "ligand_rmsd",
    "unbound_fraction",
    "ref_note",
]


def _table(frame: pd.DataFrame) -> str:
    cols = [
        c
        for c in ["system_id", "split", "ood", "mode", "method", "n", *KEY_METRICS]
        if c in frame.columns
    ]
    return frame[cols].to_html(
        index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="metrics", na_rep="–"
    )


def write_report(
    run: str,
    per_system: pd.DataFrame,
    summary: pd.DataFrame,
    figures: list[Path],
    output: str | Path,
    sections: list[Path] | None = None,
) -> None:
    """One HTML file with images embedded, so it can be mailed or opened anywhere.

    ``sections`` are HTML fragments placed after the summary (e.g. the learning benchmark's
    table, written by ``benchmarks/learning.py``).
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Boltz-Kinema run {html.escape(run)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table.metrics{border-collapse:collapse;"
        "font-size:12px} .metrics td,.metrics th{padding:2px 6px;border-bottom:1px solid #ddd}"
        " img{max-width:48%;margin:4px}</style></head><body>",
        f"<h1>Run {html.escape(run)}</h1>",
        "<p>Generated frames only (never the given conditioning frames) against reference MD "
        "over the same time span at the same spacing (heavy atoms, superposed on the start "
        "structure), next to the baselines: <code>noise</code> (start structure plus per-atom "
        "Gaussian noise with the reference RMSF), <code>static</code> (the start structure "
        "repeated) and <code>replica</code> (another MD run of the system under the same "
        "conditions, only where one exists). A model must beat noise and static. Decorrelation "
        "times that the trajectories are too short to see are censored (–). Medians per "
        "split.</p>",
        "<h2>Summary (medians per split)</h2>",
        _table(summary),
        *(Path(s).read_text() for s in sections or []),
        "<h2>Per system</h2>",
        _table(per_system),
        "<h2>Figures</h2>",
    ]
    for fig in sorted(figures):
        data = base64.b64encode(Path(fig).read_bytes()).decode()
        parts.append(
            f"<figure style='display:inline-block'><img src='data:image/png;base64,"
            f"{data}' alt='{html.escape(fig.name)}'><figcaption>"
            f"{html.escape(fig.name)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    atomic_write_text(output, "\n".join(parts))
