"""Build the bundled example: run the OpenMM simulations and store them in every raw layout.

``resources/example/`` then holds real MD in the MISATO (T4 lysozyme L99A + p-xylene), ATLAS and
mdCATH (villin headpiece) and plain-mdtraj (alanine dipeptide in water, prmtop + dcd) layouts,
plus ``PROVENANCE.md``. Needs the ``sim`` extra (OpenMM).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import mdtraj

from boltzkinema.io.layouts import write_atlas, write_mdcath, write_misato
from boltzkinema.simulate import EXAMPLE_RUNS, SYSTEM_NOTES, simulate

log = logging.getLogger(__name__)
MISATO_GROUP = "187L"  # PDB entry of T4 lysozyme L99A with p-xylene
VILLIN = "villin_hp35"


def amber_atom_types(prmtop: Path) -> list[str]:
    """The AMBER_ATOM_TYPE section of a prmtop file (20 fields of 4 characters per line)."""
    types: list[str] = []
    reading = False
    for line in prmtop.read_text().splitlines():
        if line.startswith("%FLAG"):
            reading = line.split()[1] == "AMBER_ATOM_TYPE"
            continue
        if reading and not line.startswith("%FORMAT"):
            types.extend(
                line[i : i + 4].strip() for i in range(0, len(line), 4) if line[i : i + 4].strip()
            )
    return types


def _protein_only(traj: mdtraj.Trajectory) -> mdtraj.Trajectory:
    return traj.atom_slice(traj.topology.select("protein"))


def build_example(
    inputs: Path, work: Path, output: Path, threads: int = 1, only: list[str] | None = None
) -> None:
    """Simulate what is missing in ``work`` and write every layout under ``output``."""
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for run in EXAMPLE_RUNS:
        path = work / f"{run.name}.h5"
        if not path.exists() and (only is None or run.name in only):
            log.info("simulating %s", run.name)
            simulate(run, inputs, path, threads=threads)
        runs[run.name] = mdtraj.load(str(path))

    t4l = runs["t4l_pxylene"]
    write_misato(
        output / "misato" / "MD.hdf5",
        {MISATO_GROUP: (t4l, amber_atom_types(inputs / "t4l_pxylene.prmtop"))},
        ligand_residue="TMP",
    )
    write_atlas(
        output / "atlas" / VILLIN,
        VILLIN,
        [_protein_only(runs["villin_300K_r1"]), _protein_only(runs["villin_300K_r2"])],
    )
    write_mdcath(
        output / "mdcath" / f"mdcath_dataset_{VILLIN}.h5",
        VILLIN,
        {
            (320, 0): _protein_only(runs["villin_320K_r0"]),
            (348, 0): _protein_only(runs["villin_348K_r0"]),
        },
    )
    ala = output / "mdtraj"
    ala.mkdir(parents=True, exist_ok=True)
    shutil.copy(inputs / "ala2_tip3p.prmtop", ala / "ala2_tip3p.prmtop")
    runs["ala2_tip3p"].save_dcd(str(ala / "ala2_tip3p.dcd"))
    (output / "PROVENANCE.md").write_text(provenance(work))


def provenance(work: Path) -> str:
    """A Markdown note of how every example trajectory was made."""
    lines = [
        "# Provenance of the bundled example",
        "",
        "Real MD made with OpenMM by `python -m boltzkinema simulate-example` (rule",
        "`simulate_example`). Inputs in `inputs/`: T4 lysozyme L99A + p-xylene and alanine",
        "dipeptide prmtop/inpcrd from the openmmtools test data (MIT licence); villin headpiece",
        "HP35 N68H from OpenMM's `test.pdb` (water removed).",
        "",
        "| run | system | force field, solvent | T (K) | step (fs) | frames | dt (ps) | seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    version = "unknown"
    for run in EXAMPLE_RUNS:
        meta_path = work / f"{run.name}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        lines.append(
            f"| {run.name} | {run.system} | {SYSTEM_NOTES[run.system]} | {run.temperature_k:g} | "
            f"{run.timestep_fs:g} | {run.n_frames} | "
            f"{run.steps_per_frame * run.timestep_fs / 1000:g}"
            f" | {run.seed} |"
        )
        version = meta.get("openmm_version", version)
    lines += [
        "",
        f"All runs: LangevinMiddleIntegrator, friction 1/ps, HBonds constraints, hydrogen mass "
        f"3 amu, 500-step minimisation then {EXAMPLE_RUNS[0].equilibration_steps} equilibration "
        f"steps before recording; OpenMM {version}, CPU platform.",
        "",
        "Layouts written from these runs:",
        f"- `misato/MD.hdf5`: group `{MISATO_GROUP}` (t4l_pxylene), MISATO layout, Å, hydrogens "
        "kept, ligand residue code 0 (`MOL`), AMBER/GAFF type codes from MISATO's tables "
        "(types absent from them coded by element).",
        f"- `atlas/{VILLIN}/`: `{VILLIN}.pdb` + `{VILLIN}_R1.xtc`, `{VILLIN}_R2.xtc` "
        "(villin_300K_r1/r2), protein only, fitted on the first frame.",
        f"- `mdcath/mdcath_dataset_{VILLIN}.h5`: temperatures 320 and 348 K, replica 0 "
        "(villin_320K_r0, villin_348K_r0), coordinates in Å.",
        "- `mdtraj/ala2_tip3p.prmtop` + `ala2_tip3p.dcd`: with water and the periodic box, "
        "wrapped as the simulation wrote it.",
        "",
        "Frame spacings are far shorter than the real archives' (MISATO 80 ps, ATLAS 10 ps, mdCATH "
        "1 ns) so that the example simulates in minutes; `config/config.yaml` states them.",
    ]
    return "\n".join(lines) + "\n"
