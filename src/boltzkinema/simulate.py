"""Reproducible OpenMM simulations that produce the bundled example MD.

Optional module (needs the ``sim`` extra: OpenMM). Each run writes one mdtraj HDF5 file holding
every atom (solvent included where the run had any), the frame times and the periodic box, from
which :mod:`boltzkinema.io.layouts` writes the MISATO, mdCATH, ATLAS and plain-mdtraj layouts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from boltzkinema.util import atomic_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationRun:
    """One OpenMM run: inputs, physics and how many frames to keep."""

    name: str
    system: str
    temperature_k: float
    n_frames: int
    steps_per_frame: int
    seed: int
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    equilibration_steps: int = 1000


# Small enough to run on one CPU core in about a quarter of an hour in total: 4 fs steps with
# hydrogen mass repartitioning, frames 0.5-1 ps apart.
EXAMPLE_RUNS: tuple[SimulationRun, ...] = (
    SimulationRun("ala2_tip3p", "ala2_tip3p", 300.0, 100, 125, seed=11),
    SimulationRun("villin_300K_r1", "villin_n68h", 300.0, 50, 250, seed=21),
    SimulationRun("villin_300K_r2", "villin_n68h", 300.0, 50, 250, seed=22),
    SimulationRun("villin_320K_r0", "villin_n68h", 320.0, 50, 250, seed=31),
    SimulationRun("villin_348K_r0", "villin_n68h", 348.0, 50, 250, seed=32),
    SimulationRun("t4l_pxylene", "t4l_pxylene", 300.0, 30, 250, seed=41),
)

SYSTEM_NOTES = {
    "ala2_tip3p": "alanine dipeptide (ACE-ALA-NME), AMBER ff96-era prmtop from openmmtools, TIP3P "
    "explicit water, PME 9 Å cutoff, periodic box kept wrapped as written by the simulation",
    "villin_n68h": "villin headpiece HP35 N68H (OpenMM test.pdb, water and Cl- stripped), "
    "amber14-all + OBC2 implicit solvent, 12 Å cutoff",
    "t4l_pxylene": "T4 lysozyme L99A with p-xylene, AMBER (protein) + GAFF (ligand) prmtop from "
    "openmmtools, OBC2 implicit solvent, 12 Å cutoff",
}


def build_system(system: str, inputs: Path):
    """Return (topology, openmm System, positions) for one named example system."""
    from openmm import app, unit

    hmr = {"constraints": app.HBonds, "hydrogenMass": 3.0 * unit.amu}
    implicit_cutoff = {
        "nonbondedMethod": app.CutoffNonPeriodic,
        "nonbondedCutoff": 1.2 * unit.nanometer,
    }

    if system == "ala2_tip3p":
        prmtop = app.AmberPrmtopFile(str(inputs / "ala2_tip3p.prmtop"))
        crd = app.AmberInpcrdFile(str(inputs / "ala2_tip3p.inpcrd"))
        sys_ = prmtop.createSystem(
            nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, **hmr
        )
        sys_.setDefaultPeriodicBoxVectors(*crd.getBoxVectors())
        return prmtop.topology, sys_, crd.getPositions()
    if system == "t4l_pxylene":
        prmtop = app.AmberPrmtopFile(str(inputs / "t4l_pxylene.prmtop"))
        crd = app.AmberInpcrdFile(str(inputs / "t4l_pxylene.inpcrd"))
        sys_ = prmtop.createSystem(implicitSolvent=app.OBC2, **implicit_cutoff, **hmr)
        return prmtop.topology, sys_, crd.getPositions()
    if system == "villin_n68h":
        pdb = app.PDBFile(str(inputs / "villin_n68h.pdb"))
        ff = app.ForceField("amber14-all.xml", "implicit/obc2.xml")
        modeller = app.Modeller(pdb.topology, pdb.positions)
        modeller.delete(
            [r for r in modeller.topology.residues() if r.name in ("Cl", "CL", "Na", "NA")]
        )
        modeller.addHydrogens(ff)
        sys_ = ff.createSystem(modeller.topology, **implicit_cutoff, **hmr)
        return modeller.topology, sys_, modeller.positions
    raise ValueError(f"unknown example system {system!r}; known: {sorted(SYSTEM_NOTES)}")


def equilibrated(system, positions, run, threads: int = 1, minimise_steps: int = 500):
    """(Context, integrator) on the CPU platform after minimisation and ``run``'s equilibration.

    ``run`` is any record with ``temperature_k``, ``friction_per_ps``, ``timestep_fs``,
    ``seed`` and ``equilibration_steps`` (a SimulationRun or a peptide batch).
    """
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(
        run.temperature_k * unit.kelvin,
        run.friction_per_ps / unit.picosecond,
        run.timestep_fs * unit.femtoseconds,
    )
    integrator.setRandomNumberSeed(run.seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=minimise_steps)
    context.setVelocitiesToTemperature(run.temperature_k * unit.kelvin, run.seed)
    integrator.step(run.equilibration_steps)
    return context, integrator


def simulate(
    run: SimulationRun,
    inputs: Path,
    output: Path,
    threads: int = 1,
    build: Callable = build_system,
    notes: str | None = None,
) -> Path:
    """Minimise, equilibrate and record one run to ``output`` (mdtraj HDF5, nm, ps).

    ``build(run.system, inputs)`` gives (topology, System, positions); ``notes`` describe the
    system in the run's JSON (default: the example's ``SYSTEM_NOTES``).
    """
    import mdtraj
    import openmm
    from openmm import unit

    topology, system, positions = build(run.system, inputs)
    context, integrator = equilibrated(system, positions, run, threads)

    periodic = system.usesPeriodicBoundaryConditions()
    xyz = np.empty((run.n_frames, topology.getNumAtoms(), 3), dtype=np.float32)
    boxes = np.empty((run.n_frames, 3), dtype=np.float32)
    for frame in range(run.n_frames):
        integrator.step(run.steps_per_frame)
        state = context.getState(getPositions=True, enforcePeriodicBox=periodic)
        xyz[frame] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        a, b, c = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        boxes[frame] = (a[0], b[1], c[2])
        if (frame + 1) % max(1, run.n_frames // 20) == 0 or frame + 1 == run.n_frames:
            log.info("%s: frame %d/%d", run.name, frame + 1, run.n_frames)

    dt_ps = run.steps_per_frame * run.timestep_fs / 1000.0
    md_top = mdtraj.Topology.from_openmm(topology)
    traj = mdtraj.Trajectory(
        xyz,
        md_top,
        time=dt_ps * np.arange(1, run.n_frames + 1),
        unitcell_lengths=boxes if periodic else None,
        unitcell_angles=np.full((run.n_frames, 3), 90.0) if periodic else None,
    )
    with atomic_output(output, traj.xyz.nbytes) as tmp:
        traj.save_hdf5(str(tmp), force_overwrite=True)
    meta = asdict(run) | {
        "frame_dt_ps": dt_ps,
        "notes": notes if notes is not None else SYSTEM_NOTES[run.system],
        "openmm_version": openmm.version.version,
        "integrator": "LangevinMiddleIntegrator",
        "constraints": "HBonds",
        "hydrogen_mass_amu": 3.0,
    }
    output.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return output
