"""Write ``src/boltzkinema/trunk/data/ccd_reference.json``: CCD ideal reference conformers.

The Boltz-2 trunk backend needs, for every standard residue Boltz knows, what Boltz's own molecule
archive (``~/.boltz/mols``, built from the wwPDB Chemical Component Dictionary) provides: atom
names, elements, formal charges, leaving-atom flags, bonds and reference coordinates. Nothing may
be downloaded at run time, so this script extracts them once from the CCD that the ``biotite``
wheel bundles (``biotite/structure/info/components.bcif``), taking the CCD *ideal* coordinates
(``pdbx_model_Cartn_{x,y,z}_ideal``; the model coordinates only where an ideal one is missing,
which is recorded per residue).

biotite is not a dependency of the package; run this in a throw-away venv::

    python3.11 -m venv /tmp/ccdvenv && /tmp/ccdvenv/bin/pip install biotite
    /tmp/ccdvenv/bin/python scripts/make_ccd_reference.py

Residues: the 20 canonical amino acids and UNK (Boltz's ``const.canonical_tokens``), the
nucleotides A C G U and DA DC DG DT, and the protein caps ACE, NME, NH2 (non-standard residues
that MD topologies put in protein chains). Hydrogens are kept (flagged by element) so that the
molecules can be rebuilt whole; the backend uses heavy atoms only.
"""

from __future__ import annotations

import json
from pathlib import Path

import biotite
import numpy as np
from biotite.structure.info.ccd import _CCD_FILE, get_ccd

OUT = Path(__file__).resolve().parents[1] / "src" / "boltzkinema" / "trunk" / "data"
AMINO_ACIDS = [
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "UNK",
]  # fmt: skip
NUCLEOTIDES = ["A", "C", "G", "U", "DA", "DC", "DG", "DT"]
CAPS = ["ACE", "NME", "NH2"]


def _column(category, name: str) -> np.ndarray:
    col = category[name]
    values = col.as_array()
    if col.mask is not None:
        mask = col.mask.array != 0  # 0 = present, 1 = '.', 2 = '?'
        values = np.where(mask, None, values.astype(object))
    return values


def _residue(ccd, comp: str) -> dict:
    atoms, bonds = ccd["chem_comp_atom"], ccd["chem_comp_bond"]
    sel = np.flatnonzero(atoms["comp_id"].as_array() == comp)
    if len(sel) == 0:
        raise SystemExit(f"{comp} not in the bundled CCD")
    names = [str(n) for n in atoms["atom_id"].as_array()[sel]]
    ideal = np.stack([_column(atoms, f"pdbx_model_Cartn_{a}_ideal")[sel] for a in "xyz"], axis=1)
    model = np.stack([_column(atoms, f"model_Cartn_{a}")[sel] for a in "xyz"], axis=1)
    missing = np.array([any(v is None for v in row) for row in ideal])
    coords = np.where(missing[:, None], model, ideal)
    if any(v is None for v in coords.ravel()):
        raise SystemExit(f"{comp}: atoms without ideal or model coordinates")
    bsel = np.flatnonzero(bonds["comp_id"].as_array() == comp)
    index = {n: i for i, n in enumerate(names)}
    return {
        "names": names,
        "elements": [str(e).capitalize() for e in atoms["type_symbol"].as_array()[sel]],
        "charges": [int(c) for c in atoms["charge"].as_array()[sel]],
        "leaving": [str(f) == "Y" for f in atoms["pdbx_leaving_atom_flag"].as_array()[sel]],
        "coords": [[round(float(x), 3) for x in row] for row in coords],
        "coords_source": "model" if missing.all() else "ideal+model" if missing.any() else "ideal",
        "bonds": [
            [
                index[str(bonds["atom_id_1"].as_array()[b])],
                index[str(bonds["atom_id_2"].as_array()[b])],
                str(bonds["value_order"].as_array()[b]),
                str(bonds["pdbx_aromatic_flag"].as_array()[b]) == "Y",
            ]
            for b in bsel
        ],
    }


def main() -> None:
    ccd = get_ccd()
    residues = {comp: _residue(ccd, comp) for comp in AMINO_ACIDS + NUCLEOTIDES + CAPS}
    out = {
        "source": (
            f"wwPDB Chemical Component Dictionary as bundled in biotite {biotite.__version__} "
            f"({Path(_CCD_FILE).name}); ideal coordinates"
        ),
        "generated_by": "scripts/make_ccd_reference.py",
        "residues": residues,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ccd_reference.json"
    path.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"{path}: {len(residues)} residues, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
