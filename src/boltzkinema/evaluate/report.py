"""A self-contained HTML report of a run: summary tables per split and every figure."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from boltzkinema.util import atomic_write_text

KEY_METRICS = [
    "rmsf_r_all",
    "rmsf_r_ca",
    "rmsf_mae",
    "pairwise_rmsd_pred",
    "pairwise_rmsd_ref",
    "rmwd",
    "pca_w2",
    "weak_contacts_jaccard",
    "transient_contacts_jaccard",
    "torsion_jsd",
    "bond_violations",
    "clashes_per_frame",
    "ligand_rmsd",
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
) -> None:
    """One HTML file with images embedded, so it can be mailed or opened anywhere."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Boltz-Kinema run {html.escape(run)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table.metrics{border-collapse:collapse;"
        "font-size:12px} .metrics td,.metrics th{padding:2px 6px;border-bottom:1px solid #ddd}"
        " img{max-width:48%;margin:4px}</style></head><body>",
        f"<h1>Run {html.escape(run)}</h1>",
        "<p>Generated ensembles against reference MD (heavy atoms, superposed on the reference "
        "frame), next to the noise baseline (start frame plus per-atom Gaussian noise with the "
        "reference RMSF) and a second MD replica where one exists. Medians per split.</p>",
        "<h2>Summary (medians per split)</h2>",
        _table(summary),
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
