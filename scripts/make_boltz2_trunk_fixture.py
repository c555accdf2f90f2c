"""Build ``tests/data/boltz2/trunk_systems.json`` and ``trunk_io.safetensors`` with real boltz.

Two stages, each in the environment it needs (from the repository root)::

    .venv/bin/python scripts/make_boltz2_trunk_fixture.py systems     # core env: our systems
    PYTHONPATH=src .venv-boltz/bin/python scripts/make_boltz2_trunk_fixture.py   # boltz env

The second stage runs the first itself (with ``.venv/bin/python``) when the systems file is
missing or ``--refresh`` is given. Nothing is downloaded.

``systems`` processes the bundled example with our own pipeline and keeps small systems:

* ``t4l_xylene``: residues 1-6 of T4 lysozyme 187L (MISATO) and its p-xylene ligand;
* ``ala2``: capped alanine dipeptide ACE-ALA-NME (the mdtraj/AMBER example);
* ``dimer``: residues 1-4 of 187L twice (two chains, one entity) and the ligand;
* ``nucleic``: a DNA chain DA5-DC-DG-DT3 and an RNA chain A5-U-G3 (AMBER names, atoms and
  coordinates from the CCD reference, not MD) and a glycerol (GOL, an "other" molecule without
  SMILES), to cover nucleotides, several entities and the connectivity-only ligand path;
* ``covalent``: ``t4l_xylene`` plus a bond from the ligand's first atom to residue 3's CA (made
  up, to cover a ligand bonded to a protein: a ``bond`` constraint for Boltz).

The boltz stage gives each system to Boltz-2's own input pipeline, the way ``boltz predict``
would see it as a YAML file: ``parse_boltz_schema`` (proteins with ``msa: empty``, the caps as
``modifications``, ligands as SMILES), ``Boltz2Tokenizer`` and ``Boltz2Featurizer.process`` with
the inference settings of ``boltz/data/module/inferencev2.py`` (rng seed 42, no crop). Where the
real ``boltz predict`` needs files from the internet or is random, this script substitutes:

* the molecules (``~/.boltz/mols``): RDKit molecules built from our shipped
  ``ccd_reference.json`` (CCD ideal coordinates, one conformer named "Ideal");
* ETKDG in Boltz's ``compute_3d_conformer`` gets ``randomSeed`` = SEED (Boltz seeds nothing);
* the reference-conformer augmentation keeps its centring and drops the random rotation and
  shift (``center_random_augmentation(..., augmentation=False)``), Boltz's loop unchanged;
* the ligand SMILES (with stereo from our structure) and the order of its atoms in our topology
  come from ``boltzkinema.trunk.boltz2_features.ligand_reference``; Boltz's structure is permuted
  into our atom order (Boltz itself would order the atoms as in the SMILES).

Everything else (tokens, residue types, entities, atom lists and names, charges, elements,
bonds, MSA, masks, padding, the centring) is Boltz's own code. The trunk outputs are Boltz's own
``Boltz2.forward`` (``s``, ``z``; ``skip_run_structure``) and ``input_embedder`` (``s_inputs``)
of ``tests/data/boltz2/tiny_boltz2.ckpt`` (loaded the way ``boltz predict`` loads a checkpoint:
pairformer v2; unused v1 ``attention.norm_s`` weights of that file dropped), float32 on CPU,
with RECYCLING_STEPS recycling steps.

A second, trunk-only checkpoint ``tiny_boltz2_trunk_v2.ckpt`` (written here, seed SEED + 1) has
the switches of the released Boltz-2 that ``tiny_boltz2.ckpt`` leaves off: method, modified,
cyclic and molecule-type conditioning, bond-type and ``fix_sym_check``/``cyclic_pos_enc``
relative positions, a v2 pairformer (its ``pairformer_args`` say ``use_trifast`` and not ``v2``,
as the released file's do), the paired-MSA flag, and templates (``use_templates_v2``: its outputs
come from ``Boltz2.forward`` with Boltz's dummy templates, which the backend skips). Its
hyper-parameters also carry a key Boltz2 does not take (``future_option``), which the worker must
drop. Only the trunk's weights and the template module's are saved (the diffusion side is not
used). Its outputs are under ``v2.{system}.s_inputs`` etc.

The features are stored packed (class indices for one-hot tensors, bytes for flags; see
``pack_features``, checked to round-trip exactly) under ``feats.{system}.{name}``, with the
trunk outputs under ``{system}.s_inputs`` etc.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "boltz2"
SYSTEMS = OUT / "trunk_systems.json"
TRUNK_IO = OUT / "trunk_io.safetensors"
CHECKPOINT = OUT / "tiny_boltz2.ckpt"
V2_CHECKPOINT = OUT / "tiny_boltz2_trunk_v2.ckpt"
SEED = 0
RECYCLING_STEPS = 3
EXAMPLE = REPO / "resources" / "example"


# ------------------------------------------------------------------------ stage 1: core env
def _subset(system, tokens, system_id: str):
    """The atoms of the given tokens (in order), reindexed."""
    from boltzkinema.data.store import ProcessedSystem

    tokens = list(tokens)
    atoms = np.concatenate([np.flatnonzero(system.token_index == t) for t in tokens])
    remap = np.full(system.n_atoms, -1)
    remap[atoms] = np.arange(len(atoms))
    b = remap[system.bonds]
    bonds = b[(b >= 0).all(axis=1)].astype(np.int32)
    new_token = {t: i for i, t in enumerate(tokens)}
    return ProcessedSystem(
        system_id,
        system.coords[:1, atoms],
        system.times_ns[:1],
        system.atom_names[atoms],
        system.elements[atoms],
        system.residue_names[atoms],
        system.residue_index[atoms],
        system.chain_index[atoms],
        system.mol_type[atoms],
        np.array([new_token[t] for t in system.token_index[atoms]], dtype=np.int32),
        system.observed_mask[atoms],
        bonds,
        np.zeros(len(bonds), np.float32),
        attrs={k: v for k, v in system.attrs.items() if k == "ligand"},
        reference_coords=system.reference_coords[atoms],
    )


def _concat(parts, system_id: str, chain_of_part: list[int]):
    from boltzkinema.data.store import ProcessedSystem

    offset_atoms = offset_tokens = 0
    fields: dict[str, list] = {
        k: []
        for k in (
            "coords",
            "atom_names",
            "elements",
            "residue_names",
            "residue_index",
            "chain_index",
            "mol_type",
            "token_index",
            "observed_mask",
            "bonds",
            "reference_coords",
        )
    }
    for part, chain in zip(parts, chain_of_part, strict=True):
        fields["coords"].append(part.coords[0])
        for k in ("atom_names", "elements", "residue_names", "residue_index", "mol_type"):
            fields[k].append(getattr(part, k))
        fields["observed_mask"].append(part.observed_mask)
        fields["chain_index"].append(np.full(part.n_atoms, chain, np.int32))
        fields["token_index"].append(part.token_index + offset_tokens)
        fields["bonds"].append(part.bonds + offset_atoms)
        fields["reference_coords"].append(part.reference_coords)
        offset_atoms += part.n_atoms
        offset_tokens += part.n_tokens
    cat = {k: np.concatenate(v) for k, v in fields.items()}
    return ProcessedSystem(
        system_id,
        cat.pop("coords")[None],
        np.zeros(1),
        bond_lengths=np.zeros(len(cat["bonds"]), np.float32),
        attrs={k: v for p in parts for k, v in p.attrs.items() if k == "ligand"},
        **cat,
    )


def _synthetic_nucleic():
    """DNA DA5-DC-DG-DT3, RNA A5-U-G3 (AMBER names; CCD atoms and coordinates), glycerol."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from boltzkinema.data.store import ProcessedSystem
    from boltzkinema.io.chemistry import DNA_RESIDUES, RNA_RESIDUES
    from boltzkinema.trunk.boltz2_features import ccd_reference

    ccd = ccd_reference()
    rows = []  # (atom name, element, residue name, residue index, chain, mol type, xyz)
    for chain, (mol_type, names, table) in enumerate(
        [(1, ["DA5", "DC", "DG", "DT3"], DNA_RESIDUES), (2, ["A5", "U", "G3"], RNA_RESIDUES)]
    ):
        for r, name in enumerate(names):
            ref = ccd[table[name]]
            for n, e, xyz in zip(ref["names"], ref["elements"], ref["coords"], strict=True):
                if e == "H" or n in ("OP3",) or (r == 0 and n in ("P", "OP1", "OP2")):
                    continue  # AMBER 5' residues have no phosphate
                rows.append((n, e, name, r, chain, mol_type, np.add(xyz, [7.0 * r, 0, 0])))
    gol = Chem.AddHs(Chem.MolFromSmiles("OCC(O)CO"))
    AllChem.EmbedMolecule(gol, randomSeed=SEED)
    heavy = [a.GetIdx() for a in gol.GetAtoms() if a.GetAtomicNum() > 1]
    gol_names = ["O1", "C1", "C2", "O2", "C3", "O3"]
    start = len(rows)
    for i, name in zip(heavy, gol_names, strict=True):
        xyz = gol.GetConformer().GetAtomPosition(i)
        rows.append((name, gol.GetAtomWithIdx(i).GetSymbol(), "GOL", 0, 2, 4, [*xyz]))
    gol_bonds = [
        (start + b.GetBeginAtomIdx(), start + b.GetEndAtomIdx())
        for b in Chem.RemoveHs(gol).GetBonds()
    ]
    n = len(rows)
    keys = [(r[4], r[3]) if r[5] != 4 else (r[4], r[3], i) for i, r in enumerate(rows)]
    token, tokens = [], {}
    for k in keys:
        token.append(tokens.setdefault(k, len(tokens)))
    xyz = np.array([r[6] for r in rows], dtype=np.float32)
    return ProcessedSystem(
        "nucleic",
        xyz[None],
        np.zeros(1),
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows], np.int32),
        np.array([r[4] for r in rows], np.int32),
        np.array([r[5] for r in rows], np.int8),
        np.array(token, np.int32),
        np.ones(n, bool),
        np.array(sorted(gol_bonds), np.int32).reshape(-1, 2),
        np.zeros(len(gol_bonds), np.float32),
        reference_coords=xyz,
    )


def system_to_json(system) -> dict:
    return {
        "system_id": system.system_id,
        "atom_names": system.atom_names.tolist(),
        "elements": system.elements.tolist(),
        "residue_names": system.residue_names.tolist(),
        "residue_index": system.residue_index.tolist(),
        "chain_index": system.chain_index.tolist(),
        "mol_type": system.mol_type.tolist(),
        "token_index": system.token_index.tolist(),
        "bonds": system.bonds.tolist(),
        "reference_coords": np.round(system.reference_coords.astype(np.float64), 3).tolist(),
        "attrs": {k: v for k, v in system.attrs.items() if k == "ligand"},
    }


def make_systems() -> None:
    from boltzkinema.data.preprocess import load_raw
    from boltzkinema.data.process import ProcessOptions, process
    from boltzkinema.io import mdtraj_files, misato

    opts = ProcessOptions(frame_dt_ns=0.001)
    (t4l_ref,) = misato.discover("misato", [str(EXAMPLE / "misato" / "MD.hdf5")])
    t4l, _ = process(load_raw(t4l_ref), opts)
    (ala2_ref,) = mdtraj_files.discover(
        "mdtraj",
        [
            {
                "topology": str(EXAMPLE / "mdtraj" / "ala2_tip3p.prmtop"),
                "trajectories": [str(EXAMPLE / "mdtraj" / "ala2_tip3p.dcd")],
            }
        ],
    )
    ala2, _ = process(load_raw(ala2_ref), opts)
    ligand_tokens = sorted(set(t4l.token_index[t4l.mol_type == 3].tolist()))
    systems = [
        _subset(t4l, [*range(6), *ligand_tokens], "t4l_xylene"),
        _subset(ala2, range(ala2.n_tokens), "ala2"),
    ]
    pep = _subset(t4l, range(4), "pep")
    copy = _subset(t4l, range(4), "pep")
    copy.reference_coords = copy.reference_coords + np.float32([25.0, 0.0, 0.0])
    lig = _subset(t4l, ligand_tokens, "lig")
    systems.append(_concat([pep, copy, lig], "dimer", [0, 1, 2]))
    systems.append(_synthetic_nucleic())
    # The ligand bonded to residue 3's CA (a covalent ligand; Boltz takes it as a "bond").
    covalent = _subset(t4l, [*range(6), *ligand_tokens], "covalent")
    ca = int(np.flatnonzero((covalent.token_index == 2) & (covalent.atom_names == "CA"))[0])
    first_ligand_atom = int(np.flatnonzero(covalent.mol_type == 3)[0])
    covalent.bonds = np.concatenate([covalent.bonds, [[ca, first_ligand_atom]]]).astype(np.int32)
    systems.append(covalent)
    data = {
        "note": "written by scripts/make_boltz2_trunk_fixture.py systems; see its docstring",
        "systems": [system_to_json(s) for s in systems],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    SYSTEMS.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    for s in systems:
        print(f"{s.system_id}: {s.n_atoms} atoms, {s.n_tokens} tokens")
    print(f"{SYSTEMS.relative_to(REPO)}: {SYSTEMS.stat().st_size / 1024:.0f} KiB")


def system_from_json(entry: dict):
    """A ProcessedSystem-like object (any environment: no h5py needed)."""
    from types import SimpleNamespace

    ref = np.asarray(entry["reference_coords"], dtype=np.float32).reshape(-1, 3)
    tok = np.asarray(entry["token_index"], dtype=np.int32)
    return SimpleNamespace(
        system_id=entry["system_id"],
        coords=ref[None],
        times_ns=np.zeros(1),
        atom_names=np.asarray(entry["atom_names"], dtype=str),
        elements=np.asarray(entry["elements"], dtype=str),
        residue_names=np.asarray(entry["residue_names"], dtype=str),
        residue_index=np.asarray(entry["residue_index"], dtype=np.int32),
        chain_index=np.asarray(entry["chain_index"], dtype=np.int32),
        mol_type=np.asarray(entry["mol_type"], dtype=np.int8),
        token_index=tok,
        observed_mask=np.ones(len(tok), dtype=bool),
        bonds=np.asarray(entry["bonds"], dtype=np.int32).reshape(-1, 2),
        bond_lengths=np.zeros(len(entry["bonds"]), dtype=np.float32),
        attrs=entry["attrs"],
        reference_coords=ref,
        n_atoms=len(tok),
        n_tokens=int(tok.max()) + 1,
    )


# ------------------------------------------------------------------------ stage 2: boltz env
# Our residue names -> Boltz sequence letters (the few the fixture systems use).
_LETTERS = {
    "protein": {"ACE": "X", "NME": "X", "NH2": "X"},
    "dna": {"DA5": "A", "DC": "C", "DG": "G", "DT3": "T"},
    "rna": {"A5": "A", "U": "U", "G3": "G"},
}
_MOL_TYPE = {0: "protein", 1: "dna", 2: "rna", 3: "ligand", 4: "ligand"}


def ccd_molecules() -> dict:
    """RDKit molecules of our CCD reference, with the properties Boltz's CCD pickles carry."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    from boltzkinema.trunk.boltz2_features import ccd_reference

    orders = {
        "SING": Chem.BondType.SINGLE,
        "DOUB": Chem.BondType.DOUBLE,
        "TRIP": Chem.BondType.TRIPLE,
    }
    mols = {}
    for code, ref in ccd_reference().items():
        mol = Chem.RWMol()
        for name, element, charge, leaving in zip(
            ref["names"], ref["elements"], ref["charges"], ref["leaving"], strict=True
        ):
            atom = Chem.Atom(element)
            atom.SetFormalCharge(int(charge))
            atom.SetProp("name", name)
            atom.SetProp("leaving_atom", str(int(leaving)))
            mol.AddAtom(atom)
        for i, j, order, aromatic in ref["bonds"]:
            mol.AddBond(i, j, Chem.BondType.AROMATIC if aromatic else orders[order])
        mol = mol.GetMol()
        Chem.SanitizeMol(mol)
        conf = Chem.Conformer(mol.GetNumAtoms())
        for i, xyz in enumerate(ref["coords"]):
            conf.SetAtomPosition(i, Point3D(*xyz))
        conf.SetProp("name", "Ideal")
        mol.AddConformer(conf, assignId=True)
        mol.SetProp("PDB_NAME", code)
        mols[code] = mol
    return mols


def _chains_of(system) -> list[tuple[int, int, list[int]]]:
    """(chain index, mol type, tokens) per chain in token order."""
    first = np.flatnonzero(np.r_[True, system.token_index[1:] != system.token_index[:-1]])
    out: list[tuple[int, int, list[int]]] = []
    for t, a in enumerate(first):
        key = (int(system.chain_index[a]), int(system.mol_type[a]))
        if out and out[-1][:2] == key:
            out[-1][2].append(t)
        else:
            out.append((*key, [t]))
    return out


def boltz_schema(system, seed: int) -> tuple[dict, list[tuple[str, list[int]]]]:
    """A Boltz input (as from YAML) for ``system``, and per ligand chain its atom order."""
    from boltzkinema.trunk.boltz2_features import ligand_reference

    first = np.flatnonzero(np.r_[True, system.token_index[1:] != system.token_index[:-1]])
    sequences, orders = [], []
    where: dict[int, tuple[str, int, str]] = {}  # our atom -> (chain, residue number, atom name)
    ligand_atoms = np.zeros(system.n_atoms, dtype=bool)
    for n, (_, mol_type, tokens) in enumerate(_chains_of(system)):
        kind, chain_id = _MOL_TYPE[mol_type], chr(ord("A") + n)
        for r, t in enumerate(tokens):
            for a in np.flatnonzero(system.token_index == t):
                where[int(a)] = (chain_id, r + 1, str(system.atom_names[a]))
        if kind == "ligand":
            atoms = np.concatenate([np.flatnonzero(system.token_index == t) for t in tokens])
            local = np.full(system.n_atoms, -1)
            local[atoms] = np.arange(len(atoms))
            inner = local[system.bonds][(local[system.bonds] >= 0).all(axis=1)]
            smiles = (system.attrs.get("ligand") or {}).get("smiles") if mol_type == 3 else None
            lig = ligand_reference(
                system.elements[atoms], inner, system.reference_coords[atoms], smiles, seed
            )
            sequences.append({"ligand": {"id": chain_id, "smiles": lig.smiles}})
            orders.append((chain_id, lig.order))
            ligand_atoms[atoms] = True
            for k, a in enumerate(atoms):
                where[int(a)] = (chain_id, 1, lig.names[k])
            continue
        names = [str(system.residue_names[first[t]]) for t in tokens]
        from boltz.data import const

        letters = [_LETTERS[kind].get(x) or const.prot_token_to_letter.get(x, "X") for x in names]
        entry = {"id": chain_id, "sequence": "".join(letters)}
        mods = [
            {"position": i + 1, "ccd": x}
            for i, x in enumerate(names)
            if kind == "protein" and x in _LETTERS["protein"]
        ]
        if mods:
            entry["modifications"] = mods
        if kind == "protein":
            entry["msa"] = "empty"
        sequences.append({kind: entry})
    constraints = [
        {"bond": {"atom1": list(where[int(i)]), "atom2": list(where[int(j)])}}
        for i, j in system.bonds
        if ligand_atoms[i] != ligand_atoms[j] or (ligand_atoms[i] and where[i][0] != where[j][0])
    ]
    schema = {"version": 1, "sequences": sequences}
    if constraints:
        schema["constraints"] = constraints
    return schema, orders


def permute_ligands(structure, orders):
    """Reorder each SMILES ligand's atoms from SMILES order into our topology's order."""
    from boltz.data.types import StructureV2

    atoms, coords, bonds = structure.atoms.copy(), structure.coords.copy(), structure.bonds.copy()
    new_index = np.arange(len(atoms))
    for chain_id, order in orders:
        chain = structure.chains[structure.chains["name"] == chain_id][0]
        start, n = int(chain["atom_idx"]), int(chain["atom_num"])
        assert n == len(order)
        old = start + np.asarray(order)
        atoms[start : start + n] = structure.atoms[old]
        coords[start : start + n] = structure.coords[old]
        new_index[old] = start + np.arange(n)
    bonds["atom_1"] = new_index[structure.bonds["atom_1"]]
    bonds["atom_2"] = new_index[structure.bonds["atom_2"]]
    return StructureV2(
        atoms=atoms,
        bonds=bonds,
        residues=structure.residues,
        chains=structure.chains,
        interfaces=structure.interfaces,
        mask=structure.mask,
        coords=coords,
        ensemble=structure.ensemble,
    )


def boltz_features(system, components: dict) -> dict:
    """Boltz-2's own featurisation of ``system`` (inference settings; see the docstring)."""
    import torch
    from boltz.data import const
    from boltz.data.feature import featurizerv2
    from boltz.data.parse.schema import parse_boltz_schema
    from boltz.data.tokenize.boltz2 import Boltz2Tokenizer
    from boltz.data.types import Input
    from boltz.model.modules.utils import center_random_augmentation
    from rdkit.Chem import AllChem

    def centre_only(coords, mask, *args, **kwargs):
        return center_random_augmentation(coords, mask, augmentation=False, centering=True)

    def seeded_etkdg_v3(_original=AllChem.ETKDGv3):
        options = _original()
        options.randomSeed = SEED
        return options

    featurizerv2.center_random_augmentation = centre_only
    AllChem.ETKDGv3 = seeded_etkdg_v3  # what boltz.data.parse.schema.compute_3d_conformer calls
    schema, orders = boltz_schema(system, SEED)
    target = parse_boltz_schema(system.system_id, schema, components, None, boltz_2=True)
    structure = permute_ligands(target.structure, orders)
    data = Input(
        structure,
        {},
        record=target.record,
        residue_constraints=None,
        templates=None,
        extra_mols=target.extra_mols,
    )
    tokenized = Boltz2Tokenizer().tokenize(data)
    molecules = {**components, **target.extra_mols}
    torch.manual_seed(SEED)
    feats = featurizerv2.Boltz2Featurizer().process(
        tokenized,
        molecules=molecules,
        random=np.random.default_rng(42),
        training=False,
        max_atoms=None,
        max_tokens=None,
        max_seqs=const.max_msa_seqs,
        pad_to_max_seqs=False,
        single_sequence_prop=0.0,
        compute_frames=True,
        inference_pocket_constraints=None,
        inference_contact_constraints=None,
        compute_constraint_features=True,
        override_method=None,
        compute_affinity=False,
    )
    return feats


def load_tiny_boltz2(path: Path):
    """The checkpoint as ``boltz predict`` loads one: Lightning, pairformer v2, eval mode."""
    import torch
    from boltz.model.models.boltz2 import Boltz2
    from omegaconf import OmegaConf

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    # Boltz2.on_load_checkpoint reads training_args by attribute (an OmegaConf config in Boltz's
    # own checkpoints; a plain dict in the tiny one).
    model = Boltz2.load_from_checkpoint(
        path,
        strict=False,
        map_location="cpu",
        training_args=OmegaConf.create(hp["training_args"]),
        pairformer_args={**hp["pairformer_args"], "v2": True},
        use_kernels=False,
        skip_run_structure=True,
        confidence_prediction=False,
    )
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    assert not missing, missing
    assert all(".attention.norm_s." in k for k in unexpected), unexpected
    return model.eval()


TRUNK_PREFIXES = (
    "input_embedder.",
    "s_init.",
    "z_init_1.",
    "z_init_2.",
    "rel_pos.",
    "token_bonds.",
    "token_bonds_type.",
    "contact_conditioning.",
    "s_norm.",
    "z_norm.",
    "s_recycle.",
    "z_recycle.",
    "msa_module.",
    "pairformer_module.",
    "template_module.",
)


def tiny_boltz2_v2():
    """A tiny Boltz2 with the released model's trunk switches on, every weight random."""
    import torch
    from boltz.model.models.boltz2 import Boltz2

    model = Boltz2(
        atom_s=16,
        atom_z=8,
        token_s=32,
        token_z=16,
        num_bins=16,
        training_args={"recycling_steps": 0},
        validation_args={"recycling_steps": 0},
        embedder_args=dict(
            atom_encoder_depth=1,
            atom_encoder_heads=2,
            add_method_conditioning=True,
            add_modified_flag=True,
            add_cyclic_flag=True,
            add_mol_type_feat=True,
        ),
        msa_args=dict(
            msa_s=8,
            msa_blocks=1,
            msa_dropout=0.0,
            z_dropout=0.0,
            pairwise_head_width=8,
            pairwise_num_heads=2,
            use_paired_feature=True,
        ),
        pairformer_args=dict(
            num_blocks=1,
            num_heads=2,
            dropout=0.0,
            pairwise_head_width=8,
            pairwise_num_heads=2,
            v2=True,
        ),
        score_model_args=dict(
            sigma_data=16,
            dim_fourier=32,
            atom_encoder_depth=1,
            atom_encoder_heads=2,
            token_transformer_depth=1,
            token_transformer_heads=2,
            atom_decoder_depth=1,
            atom_decoder_heads=2,
            conditioning_transition_layers=1,
        ),
        diffusion_process_args=dict(sigma_data=16.0),
        diffusion_loss_args={},
        atom_feature_dim=388,
        confidence_prediction=False,
        validate_structure=False,
        fix_sym_check=True,
        cyclic_pos_enc=True,
        bond_type_feature=True,
        use_templates=True,
        use_templates_v2=True,
        template_args=dict(
            template_dim=8,
            template_blocks=1,
            dropout=0.0,
            pairwise_head_width=8,
            pairwise_num_heads=2,
        ),
        skip_run_structure=True,
    )
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    model = model.eval()
    hparams = dict(model.hparams)
    pairformer = {k: v for k, v in hparams["pairformer_args"].items() if k != "v2"}
    hparams["pairformer_args"] = {**pairformer, "use_trifast": True}
    hparams["future_option"] = True
    state = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIXES)}
    ckpt = {"state_dict": state, "hyper_parameters": hparams, "epoch": 0, "global_step": 0}
    torch.save(ckpt, V2_CHECKPOINT)
    torch.load(V2_CHECKPOINT, map_location="cpu", weights_only=True)
    return model


def make_trunk_io(refresh: bool) -> None:
    from importlib.metadata import version

    import rdkit
    import torch
    from safetensors.numpy import save_file

    from boltzkinema.trunk.boltz2_features import (
        FEATURE_DTYPES,
        expand_features,
        pack_features,
    )

    if refresh or not SYSTEMS.exists():
        core = REPO / ".venv" / "bin" / "python"
        subprocess.run(
            [str(core), __file__, "systems"],
            check=True,
            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
        )
    entries = json.loads(SYSTEMS.read_text())["systems"]
    components = ccd_molecules()
    models = {"": load_tiny_boltz2(CHECKPOINT), "v2.": tiny_boltz2_v2()}
    record: dict[str, np.ndarray] = {}
    for entry in entries:
        system = system_from_json(entry)
        feats = boltz_features(system, components)
        full = {k: feats[k].numpy() for k in FEATURE_DTYPES}
        packed = pack_features(full)
        for k, v in expand_features(packed).items():
            assert v.dtype == full[k].dtype and np.array_equal(v, full[k]), k
        assert full["token_index"].shape[0] == system.n_tokens
        batch = {k: v[None] for k, v in feats.items() if torch.is_tensor(v)}
        sid = system.system_id
        record |= {f"feats.{sid}.{k}": v for k, v in packed.items()}
        for prefix, model in models.items():
            with torch.no_grad():
                s_inputs = model.input_embedder(batch)
                out = model(batch, recycling_steps=RECYCLING_STEPS)
            record[f"{prefix}{sid}.s_inputs"] = s_inputs[0].numpy()
            record[f"{prefix}{sid}.s_trunk"] = out["s"][0].numpy()
            record[f"{prefix}{sid}.z_trunk"] = out["z"][0].numpy()
        print(
            f"{sid}: {system.n_tokens} tokens, {int(full['atom_pad_mask'].sum())} atoms "
            f"(padded {full['atom_pad_mask'].shape[0]})"
        )
    metadata = {
        "boltz": version("boltz"),
        "torch": torch.__version__,
        "rdkit": rdkit.__version__,
        "numpy": np.__version__,
        "checkpoint": CHECKPOINT.name,
        "v2_checkpoint": V2_CHECKPOINT.name,
        "recycling_steps": RECYCLING_STEPS,
        "seed": SEED,
        "systems": [e["system_id"] for e in entries],
        "feature_dtypes": FEATURE_DTYPES,
    }
    # One sorted JSON string: safetensors writes a metadata map in no fixed order.
    save_file(
        {k: np.ascontiguousarray(v) for k, v in record.items()},
        TRUNK_IO,
        {"boltzkinema": json.dumps(metadata, sort_keys=True)},
    )
    for path in (TRUNK_IO, V2_CHECKPOINT):
        print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", nargs="?", choices=["systems", "boltz"], default="boltz")
    p.add_argument("--refresh", action="store_true", help="rebuild the systems file first")
    a = p.parse_args()
    if a.stage == "systems":
        make_systems()
    else:
        make_trunk_io(a.refresh)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
