"""Any topology + trajectory pair mdtraj reads gives the same processed system."""

from __future__ import annotations

import mdtraj
import numpy as np
import pytest

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.errors import InputError
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


@pytest.fixture(scope="module")
def tip4p_gromacs(tmp_path_factory):
    """Alanine dipeptide in TIP4P-Ew water built by OpenMM, written as GROMACS gro + xtc: every
    water carries a massless fourth site (M)."""
    app = pytest.importorskip("openmm.app")
    unit = pytest.importorskip("openmm.unit")
    inputs = EXAMPLE / "inputs"
    prmtop = app.AmberPrmtopFile(str(inputs / "ala2_tip3p.prmtop"))
    modeller = app.Modeller(
        prmtop.topology, app.AmberInpcrdFile(str(inputs / "ala2_tip3p.inpcrd")).positions
    )
    modeller.deleteWater()
    forcefield = app.ForceField("amber14/protein.ff14SB.xml", "amber14/tip4pew.xml")
    modeller.addSolvent(forcefield, model="tip4pew", padding=0.6 * unit.nanometer)
    tmp = tmp_path_factory.mktemp("tip4p")
    pdb = tmp / "solvated.pdb"
    with open(pdb, "w") as f:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, f)
    one = mdtraj.load(str(pdb))
    rng = np.random.default_rng(0)
    frames = one.xyz + rng.normal(0, 0.002, (5, *one.xyz.shape[1:])).astype(np.float32)
    traj = mdtraj.Trajectory(frames, one.topology, time=np.arange(5) * 10.0)
    traj.unitcell_vectors = np.repeat(one.unitcell_vectors, 5, axis=0)
    traj[0].save_gro(str(tmp / "conf.gro"))
    traj.save_xtc(str(tmp / "traj.xtc"))
    n_sites = sum(a.name == "M" for a in one.topology.atoms)
    return tmp, one.n_atoms, n_sites


def test_four_site_water_is_no_reason_to_quarantine(tip4p_gromacs):
    tmp, n_atoms, n_sites = tip4p_gromacs
    assert n_sites > 50  # the test holds real 4-site water
    ref = SystemRef("tip4p.ala2", "mdtraj", str(tmp / "traj.xtc"), topology=str(tmp / "conf.gro"))
    raw = mdtraj_files.load(ref)
    assert raw.n_atoms == n_atoms - n_sites
    assert f"{n_sites} virtual sites dropped (M)" in raw.notes
    assert raw.reference_angstrom is not None and len(raw.reference_angstrom) == raw.n_atoms
    system, summary = process(raw, ProcessOptions(frame_dt_ns=0.01))
    assert system.n_atoms == 10  # the dipeptide's heavy atoms; water removed
    assert any("virtual sites dropped" in note for note in summary["notes"])


def _saved(traj: mdtraj.Trajectory, path, time_ps=None) -> SystemRef:
    copy = traj[:5]
    if time_ps is not None:
        copy.time = np.asarray(time_ps, dtype=np.float32)
    copy.save(str(path))
    return SystemRef("spacing.ala2", "mdtraj", str(path), topology=str(PRMTOP))


@pytest.mark.parametrize(
    "name,time_ps",
    [("zero_times.nc", np.zeros(5)), ("no_times.mdcrd", None), ("frames.dcd", None)],
)
def test_a_file_without_usable_times_needs_frame_dt_from_the_config(solute, name, time_ps):
    tmp, traj = solute
    raw = mdtraj_files.load(_saved(traj, tmp / name, time_ps))
    with pytest.raises(InputError) as err:
        process(raw, ProcessOptions())
    assert err.value.code == "no_frame_spacing" and "frame_dt_ns" in err.value.fix
    system, summary = process(raw, ProcessOptions(frame_dt_ns=0.002))
    assert system.attrs["frame_dt_ns"] == 0.002 and system.attrs["frame_dt_source"] == "config"
    assert not summary["frame_dt_evidence"]["warnings"]  # frame numbers are no evidence


def test_mdtrajs_placeholder_dcd_header_is_no_time(solute):
    """mdtraj writes DELTA 1 and NSAVC 1 whatever the simulation: not evidence of a spacing."""
    tmp, traj = solute
    ref = _saved(traj, tmp / "placeholder.dcd")
    assert mdtraj_files.dcd_frame_spacing_ps(ref.path) is None
    assert mdtraj_files.dcd_frame_spacing_ps(DCD) is None  # the example's, written by mdtraj


def test_file_times_decide_the_spacing_and_a_disagreeing_config_wins_with_a_warning(solute):
    tmp, traj = solute
    raw = mdtraj_files.load(_saved(traj, tmp / "timed.xtc", np.arange(5) * 10.0))
    system, summary = process(raw, ProcessOptions())
    assert system.attrs["frame_dt_source"] == "file"
    assert system.attrs["frame_dt_ns"] == pytest.approx(0.01)
    system, summary = process(raw, ProcessOptions(frame_dt_ns=0.02))
    assert system.attrs["frame_dt_ns"] == 0.02
    evidence = summary["frame_dt_evidence"]
    assert evidence["file"] == pytest.approx(0.01) and evidence["source"] == "config"
    assert any("the config wins" in note for note in summary["notes"])
