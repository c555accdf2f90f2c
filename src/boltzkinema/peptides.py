"""Capped peptides in implicit solvent: the real MD that the learning benchmark trains on.

Alanine dipeptide (ACE-ALA-NME) in six independent replicas and seven other capped dipeptides with
diverse side chains, Amber ff14SB with OBC2 implicit solvent at 300 K (Langevin 1/ps, HMR 4 fs),
one frame per picosecond. The peptides are built from their sequence with PeptideBuilder
(ideal geometry), capped, protonated by OpenMM's Modeller and simulated by
:func:`boltzkinema.simulate.simulate`; every peptide is written in the ATLAS layout
(``{name}/{name}.pdb`` + ``{name}_R{k}.xtc``) so that the workflow reads it like any ATLAS entry.
Needs the ``sim`` extra (OpenMM, PeptideBuilder).
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import mdtraj
import numpy as np

from boltzkinema.io.layouts import write_atlas
from boltzkinema.simulate import equilibrated
from boltzkinema.util import atomic_output

log = logging.getLogger(__name__)

FRAME_STEPS = 250  # 4 fs steps: one frame per ps
FORCE_FIELD = ("amber14-all.xml", "implicit/obc2.xml")  # Amber ff14SB + OBC2 (GBSA)
CUTOFF_NM = 2.0  # longer than any of these peptides: every intramolecular pair interacts
SPACING_NM = 6.0  # between copies in one context: beyond the cutoff, so copies never interact
TETHER_NM, TETHER_K = 1.0, 100.0  # flat-bottom restraint on each copy's centre of mass
NOTES = (
    "capped peptide (ACE-...-NME) built by PeptideBuilder 1.1 from ideal geometry, hydrogens from "
    "OpenMM's Modeller, Amber ff14SB + OBC2 implicit solvent, 2 nm reaction-field cutoff"
)
ONE_TO_THREE = {
    "A": "ALA", "G": "GLY", "V": "VAL", "S": "SER", "F": "PHE", "N": "ASN", "K": "LYS", "P": "PRO",
    "L": "LEU", "T": "THR", "D": "ASP", "Q": "GLN", "E": "GLU", "Y": "TYR", "W": "TRP", "M": "MET",
}  # fmt: skip


@dataclass(frozen=True)
class PeptideRun:
    """One replica of one capped peptide (``sequence`` in one-letter code)."""

    name: str
    sequence: str
    seed: int


@dataclass(frozen=True)
class PeptideBatch:
    """Replicas simulated together in one OpenMM context (one core), each its own trajectory.

    Small peptides leave OpenMM's CPU platform dominated by per-step overhead (about 300 ns/day
    for one alanine dipeptide here); copies far apart in one context share that overhead.
    """

    name: str
    runs: tuple[PeptideRun, ...]
    n_frames: int
    seed: int
    temperature_k: float = 300.0
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    steps_per_frame: int = FRAME_STEPS
    equilibration_steps: int = 25_000


def peptide_name(sequence: str) -> str:
    """Folder and topology name of a capped peptide: ``ala2`` for ACE-ALA-NME."""
    return "".join(ONE_TO_THREE[aa].lower() for aa in sequence) + "2"


def first_replicas(residues: str, first_seed: int) -> tuple[PeptideRun, ...]:
    """Replica R1 of the capped dipeptide of each residue, seeds counting up from first_seed."""
    return tuple(
        PeptideRun(f"{peptide_name(a)}_R1", a, first_seed + i) for i, a in enumerate(residues)
    )


PEPTIDE_BATCHES: tuple[PeptideBatch, ...] = (
    PeptideBatch(
        "ala2", tuple(PeptideRun(f"ala2_R{k}", "A", 100 + k) for k in range(1, 7)), 5000, seed=1
    ),
    PeptideBatch("others", first_replicas("GVSFNKP", 200), 3000, seed=2),
    # Second replicas of the peptides the benchmark holds out, so that they have a replica
    # baseline (another trajectory under the same conditions).
    PeptideBatch(
        "replicas", (PeptideRun("phe2_R2", "F", 301), PeptideRun("asn2_R2", "N", 302)), 3000, seed=3
    ),
    # More side chains to learn from, among them the held-out ones' chemical neighbours
    # (Tyr and Trp beside Phe; Asp and Gln beside Asn), none of them held out.
    PeptideBatch("more", first_replicas("LTDQEYWM", 400), 3000, seed=4),
)


def capped_peptide_pdb(sequence: str) -> str:
    """PDB text of ACE-<sequence>-NME, heavy atoms only, from PeptideBuilder's ideal geometry.

    The caps are made from two extra alanines: the first keeps CA (as ACE's CH3), C and O; the
    last keeps N and CA (as NME's CH3). Residues are numbered from 1.
    """
    import PeptideBuilder
    from Bio.PDB import PDBIO

    structure = PeptideBuilder.make_extended_structure("A" + sequence + "A")
    residues = list(structure.get_residues())
    caps = ((residues[0], "ACE", {"CA", "C", "O"}), (residues[-1], "NME", {"N", "CA"}))
    for residue, name, keep in caps:
        for atom in [a for a in residue if a.get_id() not in keep]:
            residue.detach_child(atom.get_id())
        residue.resname = name
        ca = residue["CA"]
        residue.detach_child("CA")
        ca.id, ca.name, ca.fullname = "CH3", "CH3", " CH3"
        residue.add(ca)
    out = io.StringIO()
    writer = PDBIO()
    writer.set_structure(structure)
    writer.save(out)
    return out.getvalue()


def _protonated(sequence: str, ff):
    from openmm import app

    pdb = app.PDBFile(io.StringIO(capped_peptide_pdb(sequence)))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addHydrogens(ff)
    return modeller


def build_batch(batch: PeptideBatch):
    """(topology, System, positions, atom slices): every copy SPACING_NM apart on a line, each
    held near its place by a flat-bottom restraint on its mass-weighted centre (a force on the
    centre of mass only, so internal dynamics are untouched)."""
    import openmm
    from openmm import app, unit

    ff = app.ForceField(*FORCE_FIELD)
    combined, slices, start = None, [], 0
    for i, run in enumerate(batch.runs):
        copy = _protonated(run.sequence, ff)
        pos = np.array(copy.positions.value_in_unit(unit.nanometer))
        pos = pos - pos.mean(0) + np.array([SPACING_NM * i, 0.0, 0.0])
        if combined is None:
            combined = app.Modeller(copy.topology, pos * unit.nanometer)
        else:
            combined.add(copy.topology, pos * unit.nanometer)
        n = copy.topology.getNumAtoms()
        slices.append(slice(start, start + n))
        start += n
    system = ff.createSystem(
        combined.topology,
        nonbondedMethod=app.CutoffNonPeriodic,
        nonbondedCutoff=CUTOFF_NM * unit.nanometer,
        constraints=app.HBonds,
        hydrogenMass=3.0 * unit.amu,
    )
    tether = openmm.CustomCentroidBondForce(
        1, "0.5*k*step(d-r0)*(d-r0)^2; d=sqrt((x1-x0)^2+(y1-y0)^2+(z1-z0)^2)"
    )
    for name in ("k", "r0", "x0", "y0", "z0"):
        tether.addPerBondParameter(name)
    for i, sl in enumerate(slices):
        group = tether.addGroup(list(range(sl.start, sl.stop)))
        tether.addBond([group], [TETHER_K, TETHER_NM, SPACING_NM * i, 0.0, 0.0])
    system.addForce(tether)
    return combined.topology, system, combined.positions, slices


def simulate_batch(batch: PeptideBatch, work: Path, threads: int = 1) -> list[Path]:
    """Minimise, equilibrate and record a batch; one mdtraj HDF5 (nm, ps) + JSON per replica."""
    import openmm
    from openmm import unit

    topology, system, positions, slices = build_batch(batch)
    context, integrator = equilibrated(system, positions, batch, threads)
    xyz = np.empty((batch.n_frames, topology.getNumAtoms(), 3), dtype=np.float32)
    start = time.perf_counter()
    for frame in range(batch.n_frames):
        integrator.step(batch.steps_per_frame)
        state = context.getState(getPositions=True)
        xyz[frame] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if (frame + 1) % max(1, batch.n_frames // 50) == 0:
            rate = (frame + 1) / (time.perf_counter() - start)
            log.info(
                "%s: frame %d/%d, %.1f frames/s, ETA %.0f s",
                batch.name, frame + 1, batch.n_frames, rate, (batch.n_frames - frame - 1) / rate,
            )  # fmt: skip
    seconds = time.perf_counter() - start
    dt_ps = batch.steps_per_frame * batch.timestep_fs / 1000.0
    md_top = mdtraj.Topology.from_openmm(topology)
    ns = batch.n_frames * dt_ps / 1000.0
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for run, sl in zip(batch.runs, slices, strict=True):
        traj = mdtraj.Trajectory(
            xyz[:, sl],
            md_top.subset(range(sl.start, sl.stop)),
            time=dt_ps * np.arange(1, batch.n_frames + 1),
        )
        target = work / f"{run.name}.h5"
        with atomic_output(target, traj.xyz.nbytes) as tmp:
            traj.save_hdf5(str(tmp), force_overwrite=True)
        meta = {
            "run": run.name,
            "sequence": run.sequence,
            "batch": batch.name,
            "replicas_in_context": len(batch.runs),
            "n_frames": batch.n_frames,
            "frame_dt_ps": dt_ps,
            "temperature_k": batch.temperature_k,
            "timestep_fs": batch.timestep_fs,
            "friction_per_ps": batch.friction_per_ps,
            "equilibration_steps": batch.equilibration_steps,
            "seed": batch.seed,
            "notes": NOTES,
            "openmm_version": openmm.version.version,
            "wall_seconds": seconds,
            "ns_per_day_per_replica": ns / seconds * 86400,
            "ns_per_day_per_core": ns * len(batch.runs) / seconds * 86400 / threads,
        }
        target.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        paths.append(target)
    log.info("%s: %d x %.1f ns in %.0f s", batch.name, len(batch.runs), ns, seconds)
    return paths


def build_peptides(
    work: Path, output: Path, threads: int = 1, only: list[str] | None = None
) -> None:
    """Simulate the batches missing in ``work`` (all, or those named in ``only``), then write
    every peptide whose replicas all exist in the ATLAS layout under ``output``."""
    work.mkdir(parents=True, exist_ok=True)
    for batch in PEPTIDE_BATCHES:
        done = all((work / f"{r.name}.h5").exists() for r in batch.runs)
        if not done and (only is None or batch.name in only):
            simulate_batch(batch, work, threads)
    by_sequence: dict[str, list[PeptideRun]] = {}
    for batch in PEPTIDE_BATCHES:
        for run in batch.runs:
            by_sequence.setdefault(run.sequence, []).append(run)
    for sequence, runs in by_sequence.items():
        paths = [work / f"{r.name}.h5" for r in runs]
        if all(p.exists() for p in paths):
            name = peptide_name(sequence)
            write_atlas(output / name, name, [mdtraj.load(str(p)) for p in paths])
    output.mkdir(parents=True, exist_ok=True)
    note = output / "PROVENANCE.md"
    earlier = note.read_text() if note.exists() else ""
    with atomic_output(note) as tmp:
        tmp.write_text(provenance(work, earlier))


def provenance(work: Path, earlier: str = "") -> str:
    """A Markdown note of how every peptide trajectory was made (with its measured speed).

    A run simulated by an earlier call (no JSON in ``work``) keeps its row from ``earlier``, the
    note that call wrote, so that adding a batch does not lose the others' measured speeds.
    """
    earlier_rows = {
        line.split("|")[1].strip(): line for line in earlier.splitlines() if line.startswith("| ")
    }
    lines = [
        "# Provenance of the peptide MD",
        "",
        "Real MD made with OpenMM by `python -m boltzkinema simulate-peptides` (rule",
        f"`simulate_peptides`): {NOTES}. 300 K, LangevinMiddleIntegrator with friction 1/ps,",
        "4 fs steps with HBonds constraints and hydrogen mass 3 amu, 500-step minimisation and",
        "100 ps of equilibration before recording one frame per ps. The replicas of a batch run",
        f"in one OpenMM context, {SPACING_NM:g} nm apart (beyond the cutoff, so they never",
        "interact), each held near its place by a flat-bottom restraint on its centre of mass",
        f"({TETHER_K:g} kJ/mol/nm² beyond {TETHER_NM:g} nm), with its own random forces. Each",
        "peptide folder is in the ATLAS layout: `{name}.pdb` (all atoms) + `{name}_R{k}.xtc`",
        "(all atoms, nm, fitted on the first frame of R1).",
        "",
        "| run | sequence | batch | frames | dt (ps) | ns | ns/day per core | OpenMM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for batch in PEPTIDE_BATCHES:
        dt_ps = batch.steps_per_frame * batch.timestep_fs / 1000
        for run in batch.runs:
            meta_path = work / f"{run.name}.json"
            if not meta_path.exists() and run.name in earlier_rows:
                lines.append(earlier_rows[run.name])
                continue
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            speed = meta.get("ns_per_day_per_core")
            lines.append(
                f"| {run.name} | ACE-{'-'.join(ONE_TO_THREE[a] for a in run.sequence)}-NME | "
                f"{batch.name} (seed {batch.seed}) | {batch.n_frames} | {dt_ps:g} | "
                f"{batch.n_frames * dt_ps / 1000:g} | {'-' if speed is None else f'{speed:.0f}'} | "
                f"{meta.get('openmm_version', '-')} |"
            )
    return "\n".join(lines) + "\n"
