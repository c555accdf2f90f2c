"""A self-contained HTML report of a run: summary tables per split, training curves, every
figure and the run's provenance."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from boltzkinema.evaluate.figures import training_curves
from boltzkinema.train.resolved import ResolvedCheckpoint
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
    table = frame[cols].to_html(
        index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="metrics", na_rep="–"
    )
    return f"<div class='wide'>{table}</div>"


PACKAGES = ("boltzkinema", "torch", "numpy", "mdtraj", "rdkit", "deeptime", "snakemake", "h5py")


# After loading, the page counts its figures and says at the top if any failed to render (a
# headless browser reads the same counts from the body's data attributes).
CHECK_FIGURES = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.dataset.figures = images.length;
  document.body.dataset.figuresBroken = broken.length;
  if (broken.length) {
    var p = document.createElement("p");
    p.className = "broken";
    p.textContent = broken.length + " of " + images.length + " figures failed to load";
    document.body.prepend(p);
  }
});
</script>"""


@dataclass(frozen=True)
class Provenance:
    """What a run came from: its resolved checkpoint, stage configs, manifest and training log."""

    checkpoint: Path | None = None
    configs: tuple[Path, ...] = ()
    manifest: Path | None = None
    train_log: Path | None = None


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _figure(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (
        f"<figure style='display:inline-block'><img src='data:image/png;base64,"
        f"{data}' alt='{html.escape(path.name)}'><figcaption>"
        f"{html.escape(path.name)}</figcaption></figure>"
    )


def _rows(pairs: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
        for k, v in pairs
    )
    return f"<table class='metrics provenance'>{cells}</table>"


def _provenance(prov: Provenance) -> list[str]:
    parts = ["<h2 id='provenance'>Provenance</h2>"]
    if prov.checkpoint is not None:
        info = ResolvedCheckpoint.read(prov.checkpoint)
        parts.append(
            _rows(
                [
                    ("checkpoint", info.weights),
                    ("policy / step", f"{info.policy} / {info.step}"),
                    ("sha256", info.sha256),
                    ("weight average", str(info.averaged)),
                ]
            )
        )
    if prov.manifest is not None:
        table = pd.read_parquet(prov.manifest)
        digest = hashlib.sha256(prov.manifest.read_bytes()).hexdigest()
        parts.append(
            f"<p>Manifest <code>{html.escape(str(prov.manifest))}</code> (sha256 "
            f"<code>{digest}</code>), {len(table)} systems; data hashes per system:</p>"
        )
        keys = ("system_id", "split", "ood", "topology_hash", "trunk_key")
        cols = [c for c in keys if c in table]
        parts.append(table[cols].to_html(index=False, border=0, classes="metrics"))
    parts.append("<p>Packages:</p>" + _rows(sorted(_versions().items())))
    for config in prov.configs:
        text = json.dumps(json.loads(config.read_text()), indent=1, sort_keys=True)
        parts.append(
            f"<details><summary>{html.escape(config.name)}</summary>"
            f"<pre>{html.escape(text)}</pre></details>"
        )
    return parts


def write_report(
    run: str,
    per_system: pd.DataFrame,
    summary: pd.DataFrame,
    figures: list[Path],
    output: str | Path,
    sections: list[Path] | None = None,
    provenance: Provenance | None = None,
) -> None:
    """One HTML file with images embedded, so it can be mailed or opened anywhere.

    ``sections`` are HTML fragments placed after the summary (e.g. the learning benchmark's
    table, written by ``benchmarks/learning.py``); ``provenance`` adds the training curves and
    what the run came from (checkpoint sha256, configs, data hashes, package versions).
    """
    prov = provenance or Provenance()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Boltz-Kinema run {html.escape(run)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table.metrics{border-collapse:collapse;"
        "font-size:12px} .metrics td,.metrics th{padding:2px 6px;border-bottom:1px solid #ddd}"
        " .metrics td{white-space:nowrap} .wide{overflow-x:auto} img{max-width:48%;margin:4px}"
        " .broken{color:#b00;font-weight:bold}</style></head><body>",
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
    ]
    if prov.train_log is not None:
        with tempfile.TemporaryDirectory() as tmp:
            curves = training_curves(pd.read_parquet(prov.train_log), Path(tmp) / "training.png")
            parts += ["<h2 id='training'>Training</h2>", _figure(curves)]
    parts.append("<h2 id='figures'>Figures</h2>")
    parts += [_figure(Path(fig)) for fig in sorted(figures)]
    parts += _provenance(prov)
    parts += [CHECK_FIGURES, "</body></html>"]
    atomic_write_text(output, "\n".join(parts))
