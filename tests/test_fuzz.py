"""Hypothesis fuzzing: readers and the config loader fail only with clear, typed errors."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from boltzkinema.data.process import ProcessOptions, process
from boltzkinema.errors import InputError
from boltzkinema.io import mdcath, misato
from boltzkinema.io.system import RawSystem, SystemRef
from boltzkinema.settings import SCHEMA_FILE
from conftest import REPO


def load_misato(ref: misato.SystemRef, **kw) -> RawSystem:
    """misato.load with the config's default peptide-ligand size."""
    limit = ProcessOptions().peptide_ligand_max_residues
    return misato.load(ref, peptide_ligand_max_residues=limit, **kw)


SCHEMA = str(SCHEMA_FILE)
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# FUZZ_EXAMPLES=2000 for a longer hunt; CI runs a fixed (derandomised) sample so it is stable.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    section=st.sampled_from(sorted(DEFAULT)),
    key=st.text(min_size=1, max_size=12),
    value=json_values,
)
def test_config_loader_accepts_or_names_the_problem(section, key, value):
    cfg = copy.deepcopy(DEFAULT)
    if isinstance(cfg[section], dict):
        cfg[section][key] = value
    else:
        cfg[section] = value
    try:
        validate(cfg, SCHEMA)
    except WorkflowError as exc:
        assert str(exc)


@FUZZ
@given(
    n_atoms=st.integers(0, 40),
    n_frames=st.integers(0, 4),
    numbers=st.lists(st.integers(-2, 130), min_size=0, max_size=40),
    residues=st.lists(st.integers(-1, 30), min_size=0, max_size=40),
    begins=st.lists(st.integers(-3, 45), min_size=0, max_size=4),
    scale=st.sampled_from([0.1, 1.0, 3.0, 1e4]),
    seed=st.integers(0, 2**16),
)
@example(n_atoms=0, n_frames=1, numbers=[], residues=[], begins=[], scale=0.1, seed=0)
def test_misato_reader_fails_only_with_input_errors(
    n_atoms, n_frames, numbers, residues, begins, scale, seed
):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "MD.hdf5"
        with h5py.File(path, "w") as f:
            g = f.create_group("FUZZ")
            g.create_dataset(
                "atoms_number", data=np.array(numbers[:n_atoms] or [6] * n_atoms, dtype=np.int64)
            )
            g.create_dataset(
                "atoms_residue", data=np.array(residues[:n_atoms] or [2] * n_atoms, dtype=np.int64)
            )
            g.create_dataset(
                "molecules_begin_atom_index", data=np.array(begins or [0], dtype=np.int64)
            )
            g.create_dataset(
                "trajectory_coordinates",
                data=rng.normal(0, 1, (n_frames, n_atoms, 3)).cumsum(1) * scale,
            )
        ref = SystemRef("f.FUZZ", "misato", str(path), group="FUZZ")
        try:
            process(load_misato(ref), ProcessOptions(frame_dt_ns=0.08))
        except InputError as exc:
            assert exc.reason and exc.fix and exc.code


@FUZZ
@given(
    n_atoms=st.integers(1, 30),
    n_frames=st.integers(0, 3),
    elements=st.lists(
        st.sampled_from(["C", "N", "O", "S", "H", "X", "", "Zz", "Cl"]), min_size=1, max_size=30
    ),
    resnames=st.lists(
        st.sampled_from(["ALA", "GLY", "HOH", "NA", "LIG", "UNK", "DA"]), min_size=1, max_size=30
    ),
    unit=st.sampled_from(["Angstrom", "nm", "", "furlong"]),
    seed=st.integers(0, 2**16),
)
def test_mdcath_reader_fails_only_with_input_errors(
    n_atoms, n_frames, elements, resnames, unit, seed
):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mdcath_dataset_fuzz.h5"
        with h5py.File(path, "w") as f:
            g = f.create_group("fuzz")
            g.create_dataset("element", data=np.array((elements * n_atoms)[:n_atoms], dtype="S2"))
            g.create_dataset("resname", data=np.array((resnames * n_atoms)[:n_atoms], dtype="S4"))
            g.create_dataset("resid", data=np.arange(n_atoms) // 3)
            g.create_dataset("chain", data=np.array(["A"] * n_atoms, dtype="S1"))
            ds = g.create_dataset(
                "320/0/coords", data=rng.normal(0, 1.5, (n_frames, n_atoms, 3)).cumsum(1)
            )
            if unit:
                ds.attrs["unit"] = unit
        refs = mdcath.discover("f", [str(path)])
        try:
            process(mdcath.load(refs[0]), ProcessOptions(frame_dt_ns=1.0))
        except InputError as exc:
            assert exc.reason and exc.fix and exc.code


def test_fuzzing_is_not_vacuous():
    """The strategies above do reach both outcomes: accepted systems and quarantined ones."""
    with pytest.raises(InputError):
        process(
            load_misato(
                SystemRef(
                    "e",
                    "misato",
                    str(REPO / "resources" / "example" / "misato" / "MD.hdf5"),
                    group="none",
                )
            ),
            ProcessOptions(),
        )
