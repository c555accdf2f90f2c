"""Any topology + trajectory pair mdtraj reads gives the same processed system."""

from __future__ import annotations

import mdtraj
import numpy as np
import pytest

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.io import mdtraj_files
from boltzkinema.io.system import SystemRef
from conftest import EXAMPLE

PRMTOP = EXAMPLE / "mdtraj" / "ala2_tip3p.prmtop"
DCD = EXAMPLE / "mdtraj" / "ala2_tip3p.dcd"
OPTS = ProcessOptions(frame_dt_ns=0.0005)


@pytest.fixture(scope="module")
def reference():
    raw = mdtraj_files.load(SystemRef("r.ala2", "mdtraj", str(DCD), topology=str(PRMTOP)))
    return process(raw, OPTS)[0]


@pytest.fixture(scope="module")
def solute(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats")
    traj = mdtraj.load(str(DCD), top=str(PRMTOP))
    return tmp, traj


@pytest.mark.parametrize(
    "top_ext,traj_ext",
    [
        ("pdb", "xtc"),
        ("gro", "trr"),
        ("pdb", "nc"),
        ("prmtop", "h5"),
        ("pdb", "pdb"),
    ],
)
def test_format_pairs_agree_with_prmtop_dcd(solute, reference, top_ext, traj_ext):
    tmp, traj = solute
    top = PRMTOP if top_ext == "prmtop" else tmp / f"top.{top_ext}"
    if top_ext != "prmtop":
        traj[0].save(str(top))
    path = tmp / f"traj_{top_ext}.{traj_ext}"
    traj.save(str(path))
    raw = mdtraj_files.load(SystemRef("r.ala2", "mdtraj", str(path), topology=str(top)))
    system, summary = process(raw, OPTS)
    assert summary["unit"]["detected"] == "nm"
    np.testing.assert_array_equal(system.atom_names, reference.atom_names)
    np.testing.assert_array_equal(system.token_index, reference.token_index)
    # xtc keeps 1e-3 nm, pdb 1e-3 nm (8.3f Å); the others are float32 copies.
    atol = 0.03 if traj_ext in ("xtc", "pdb", "gro") or top_ext == "gro" else 1e-4
    np.testing.assert_allclose(system.coords, reference.coords, atol=atol)


def test_solvent_is_removed_and_hydrogens_are_optional(reference):
    raw = mdtraj_files.load(SystemRef("r.ala2", "mdtraj", str(DCD), topology=str(PRMTOP)))
    assert (raw.residue_names == "HOH").sum() > 1000
    with_h, _ = process(raw, ProcessOptions(frame_dt_ns=0.0005, hydrogens=True))
    assert reference.n_atoms == 10 and with_h.n_atoms == 22
    assert set(reference.residue_names.tolist()) == {"ACE", "ALA", "NME"}
    assert (with_h.elements == "H").sum() == 12


def test_water_wrapped_by_the_simulation_leaves_the_solute_whole(reference):
    lengths = np.linalg.norm(
        reference.coords[:, reference.bonds[:, 0]] - reference.coords[:, reference.bonds[:, 1]],
        axis=-1,
    )
    assert lengths.max() < 1.8 and lengths.min() > 1.1


@pytest.mark.parametrize("traj_ext", ["dcd", "xtc", "trr"])
def test_a_folder_with_non_ascii_letters_reads_like_any_other(solute, reference, traj_ext):
    """mdtraj's compiled readers take ASCII file names only; the loader hides that."""
    tmp, traj = solute
    folder = tmp / "données d'été"
    folder.mkdir(exist_ok=True)
    path = folder / f"traj.{traj_ext}"
    with mdtraj_files.ascii_paths(str(path)) as (writable,):  # mdtraj writes ASCII names only
        traj.save(writable)
    top = folder / "topologie é.prmtop"
    top.write_bytes(PRMTOP.read_bytes())
    raw = mdtraj_files.load(SystemRef("r.ala2", "mdtraj", str(path), topology=str(top)))
    system, _ = process(raw, OPTS)
    np.testing.assert_allclose(system.coords, reference.coords, atol=0.03)
