"""Real files from MD engines, from the pinned MDAnalysisTests data package (installed by
``make install``): AMBER parm7 + NetCDF in a truncated octahedron, AMBER prmtop + mdcrd,
CHARMM psf + dcd, a GROMACS membrane protein with lipids and a dummy-atom zinc model, and a
GROMACS .tpr. Atoms are counted against the topology; periodic cells are real ones."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
from pathlib import Path

import mdtraj
import numpy as np
import pytest

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.errors import InputError
from boltzkinema.io import mdtraj_files
from boltzkinema.io.system import SystemRef


@pytest.fixture(scope="module")
def data() -> Path:
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MDAnalysisTests (pinned in constraints.txt) is missing: make install")
    return Path(spec.submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def unpacked(data, tmp_path_factory) -> Path:
    """The compressed topologies, decompressed (mdtraj reads them by extension)."""
    out = tmp_path_factory.mktemp("engines")
    with bz2.open(data / "Amber" / "tz2.truncoct.parm7.bz2") as f:
        (out / "tz2.truncoct.parm7").write_bytes(f.read())
    with gzip.open(data / "analysis" / "YiiP_lipids.gro.gz") as f:
        (out / "YiiP_lipids.gro").write_bytes(f.read())
    return out


def load(trajectory: Path, topology: Path, **opts) -> tuple:
    ref = SystemRef("engine.x", "mdtraj", str(trajectory), topology=str(topology))
    raw = mdtraj_files.load(ref)
    return process(raw, ProcessOptions(**opts))


def solute_heavy_atoms(topology: Path) -> int:
    """Heavy atoms outside water and single-atom residues (ions), counted with mdtraj."""
    top = mdtraj.load_topology(str(topology))
    return sum(
        1
        for a in top.atoms
        if a.element.symbol != "H" and not a.residue.is_water and a.residue.n_atoms > 1
    )


def longest_bond(system) -> float:
    b = system.bonds
    lengths = np.linalg.norm(system.coords[:, b[:, 0]] - system.coords[:, b[:, 1]], axis=-1)
    return float(lengths.max())


def test_amber_netcdf_with_zero_times_needs_the_spacing_from_the_config(data, unpacked):
    nc, top = data / "Amber" / "tz2.truncoct.nc", unpacked / "tz2.truncoct.parm7"
    assert np.all(mdtraj.load(str(nc), top=str(top)).time == 0)  # as the engine wrote it
    with pytest.raises(InputError) as err:
        load(nc, top)
    assert err.value.code == "no_frame_spacing" and "frame_dt_ns" in err.value.fix


def test_a_truncated_octahedron_wrapped_atom_by_atom_comes_back_whole(data, unpacked, tmp_path):
    nc, top = data / "Amber" / "tz2.truncoct.nc", unpacked / "tz2.truncoct.parm7"
    traj = mdtraj.load(str(nc), top=str(top))
    assert not np.allclose(traj.unitcell_angles, 90.0)  # 109.47°: a truncated octahedron
    cell = traj.unitcell_vectors
    frac = np.einsum("fnj,fjk->fnk", traj.xyz, np.linalg.inv(cell))
    wrapped = traj[:]
    wrapped.xyz = np.einsum("fnj,fjk->fnk", frac - np.floor(frac), cell).astype(np.float32)
    path = tmp_path / "wrapped.nc"
    wrapped.save_netcdf(str(path))
    ref, _ = load(nc, top, frame_dt_ns=0.001)
    system, summary = load(path, top, frame_dt_ns=0.001)
    pairs = np.array([(a.index, b.index) for a, b in traj.topology.bonds])
    stretched = np.linalg.norm(wrapped.xyz[:, pairs[:, 0]] - wrapped.xyz[:, pairs[:, 1]], axis=-1)
    assert stretched.max() > 1.0  # nm: the input really is broken across the cell faces
    assert system.attrs["unwrap"]["cell"] == "triclinic" and system.attrs["unwrap"]["changed"]
    assert system.n_atoms == solute_heavy_atoms(top) == ref.n_atoms
    assert longest_bond(system) < 2.0
    np.testing.assert_allclose(system.coords, ref.coords, atol=2e-3)
    assert summary["removed_residues"]["HOH"] == traj.topology.n_residues - len(
        {a.residue.index for a in traj.topology.atoms if a.residue.name != "HOH"}
    )


def test_kept_residue_names_are_not_removed_as_solvent(data, unpacked):
    nc, top = data / "Amber" / "tz2.truncoct.nc", unpacked / "tz2.truncoct.parm7"
    plain, _ = load(nc, top, frame_dt_ns=0.001)
    kept, summary = load(nc, top, frame_dt_ns=0.001, keep_residues=("HOH",))
    waters = sum(1 for r in mdtraj.load_topology(str(top)).residues if r.name == "HOH")
    assert kept.n_atoms == plain.n_atoms + waters and "HOH" not in summary["removed_residues"]


def test_amber_prmtop_with_mdcrd(data):
    crd, top = data / "Amber" / "ache.mdcrd", data / "Amber" / "ache.prmtop"
    with pytest.raises(InputError, match="no usable frame spacing"):
        load(crd, top)  # mdcrd holds no times
    system, summary = load(crd, top, frame_dt_ns=0.001)
    assert system.n_atoms == solute_heavy_atoms(top) and system.n_frames == 11
    assert summary["frame_dt_evidence"]["source"] == "config" and longest_bond(system) < 2.0


def test_charmm_psf_with_dcd(data):
    dcd, psf = data / "adk_dims.dcd", data / "adk.psf"
    # The CHARMM header says NSAVC 1000 steps of 0.02045 AKMA (1 fs): 1 ps between frames.
    system, summary = load(dcd, psf)
    assert summary["frame_dt_evidence"]["source"] == "file"
    assert summary["frame_dt_ns"] == pytest.approx(0.001, rel=1e-4)
    system, summary = load(dcd, psf, frame_dt_ns=0.001)
    assert not summary["frame_dt_evidence"]["warnings"]  # the config agrees with the header
    assert system.n_atoms == solute_heavy_atoms(psf) == 1656  # adenylate kinase, 214 residues
    assert summary["sequences"]["0"].startswith("MRIILLGAPGAGKGTQ") and longest_bond(system) < 2.0


def test_a_membrane_protein_preprocesses_to_its_protein(data, unpacked):
    xtc, gro = data / "analysis" / "YiiP_lipids.xtc", unpacked / "YiiP_lipids.gro"
    system, summary = load(xtc, gro)
    top = mdtraj.load_topology(str(gro))
    protein = top.select("protein and not element H")
    assert system.n_atoms == len(protein) and summary["mol_types"] == ["protein"]
    assert summary["removed_residues"] == {"POPE": 221, "POPG": 55}
    assert any("virtual sites dropped (DM1" in n for n in summary["notes"])  # dummy zinc model
    # The .gro holds the YiiP dimer as one chain: the bond mdtraj makes across it is refused.
    assert any("longer than 3 Å" in n for n in summary["notes"])
    assert len(summary["sequences"]) == 2 and longest_bond(system) < 2.0
    assert summary["frame_dt_evidence"]["source"] == "file" and summary["frame_dt_ns"] == 20.0


def test_a_gromacs_tpr_is_refused_with_the_command_that_converts_it(data):
    with pytest.raises(InputError) as err:
        load(data / "adk_oplsaa.xtc", data / "adk_oplsaa.tpr")
    assert err.value.code == "unsupported_topology" and "gmx editconf" in err.value.fix
    system, _ = load(data / "adk_oplsaa.xtc", data / "adk_oplsaa.gro")  # the suggested route
    assert system.n_atoms == solute_heavy_atoms(data / "adk_oplsaa.gro")
