"""The MISATO reader against real MISATO topologies and the example complex."""

from __future__ import annotations

import numpy as np
import pytest

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.io import misato
from boltzkinema.io.system import RawSystem
from conftest import EXAMPLE_GROUP, EXAMPLE_MISATO, MISATO_FIXTURES


def load_misato(ref: misato.SystemRef, **kw) -> RawSystem:
    """misato.load with the config's default peptide-ligand size."""
    limit = ProcessOptions().peptide_ligand_max_residues
    return misato.load(ref, peptide_ligand_max_residues=limit, **kw)


REAL = MISATO_FIXTURES / "inference_from_pdb.hdf5"
QM = MISATO_FIXTURES / "tiny_qm.hdf5"


@pytest.mark.parametrize("key", ["11gs", "1js0", "1o91", "5oml", "5vvf", "6nij", "7yam"])
def test_real_topologies_rebuild_one_alpha_carbon_per_residue(key):
    raw = load_misato(misato.SystemRef(f"m.{key}", "misato", str(REAL), group=key))
    residues = set(zip(raw.chain_ids.tolist(), raw.residue_ids.tolist(), strict=True))
    assert (raw.atom_names == "CA").sum() == len(residues)
    assert (raw.atom_names == "N").sum() >= len(residues) - (raw.residue_names == "ACE").sum()
    # Every molecule ends in OXT; 1o91 also has one at an internal chain break.
    chains = len(set(raw.chain_ids.tolist()))
    oxt = np.flatnonzero(raw.atom_names == "OXT")
    assert len(oxt) >= chains
    heavy_before = [raw.atom_names[:i][raw.elements[:i] != "H"][-1] for i in oxt]
    assert set(heavy_before) == {"O"}


def test_elements_come_from_atomic_numbers_not_the_compact_code():
    raw = load_misato(misato.SystemRef("m.1js0", "misato", str(REAL), group="1js0"))
    assert set(raw.elements.tolist()) <= {"C", "N", "O", "S", "H"}
    assert (raw.elements[raw.atom_names == "SG"] == "S").all()
    assert (raw.elements[raw.atom_names == "CA"] == "C").all()


def test_empty_last_molecule_is_ignored_with_a_note():
    raw = load_misato(misato.SystemRef("m.7yam", "misato", str(REAL), group="7yam"))
    assert len(set(raw.chain_ids.tolist())) == 1
    assert any("empty" in n for n in raw.notes)


def test_example_ligand_is_one_token_per_atom_and_sanitises():
    raw = load_misato(
        misato.SystemRef("e.187L", "misato", str(EXAMPLE_MISATO), group=EXAMPLE_GROUP)
    )
    assert raw.ligand_mask.sum() == 18  # p-xylene with hydrogens
    system, summary = process(raw, ProcessOptions(frame_dt_ns=0.001))
    lig = system.mol_type == 3
    assert lig.sum() == 8
    assert len(np.unique(system.token_index[lig])) == 8
    assert summary["ligand"]["smiles"] == "Cc1ccc(C)cc1"
    assert summary["ligand"]["scaffold"] == "c1ccccc1"
    assert summary["sequences"]["0"].startswith("MNIFEMLRIDEGLRLKIYKDTEGYYTIGIGHLLTKSPSLNAAK")


def test_qm_file_supplies_ligand_bonds_when_its_atoms_match():
    ref = misato.SystemRef("e.187L", "misato", str(EXAMPLE_MISATO), group=EXAMPLE_GROUP)
    raw = load_misato(ref, qm_path=str(QM))
    assert raw.ligand_bonds is not None
    assert len(raw.ligand_bonds) == 18  # C8H10: 8 ring/methyl C-C + 10 C-H
    _, summary = process(raw, ProcessOptions(frame_dt_ns=0.001))
    assert summary["ligand"]["smiles"] == "Cc1ccc(C)cc1"


def test_last_short_segment_without_mol_atoms_is_a_peptide_ligand(misato_file):
    raw_full = load_misato(
        misato.SystemRef("e", "misato", str(EXAMPLE_MISATO), group=EXAMPLE_GROUP)
    )
    protein = ~raw_full.ligand_mask
    # Residues 1-160 as receptor, the last four residues as a separate "peptide" molecule.
    starts = np.flatnonzero(np.r_[True, np.diff(raw_full.residue_ids[protein]) != 0])
    cut = int(starts[-4])
    with_codes = misato_file(
        {
            "PEP1": {
                "overrides": {
                    "molecules_begin_atom_index": np.array([0, cut], dtype=np.int64),
                    "trajectory_coordinates": raw_full.coords[:, protein],
                    **{k: v for k, v in _group_arrays(protein).items()},
                }
            }
        }
    )
    raw = load_misato(misato.SystemRef("p", "misato", str(with_codes), group="PEP1"))
    assert raw.ligand_mask.sum() == protein.sum() - cut
    assert any("peptide ligand" in n for n in raw.notes)


def _group_arrays(keep: np.ndarray) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(EXAMPLE_MISATO, "r") as f:
        g = f[EXAMPLE_GROUP]
        return {
            k: g[k][()][keep]
            for k in ("atoms_number", "atoms_residue", "atoms_type", "atoms_element")
        }
