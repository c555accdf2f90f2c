"""The bad-input catalogue: every bad file or setting we know a user can hand the pipeline.

Each case builds one bad input, runs the real entry point on it, and returns what the user sees.
A data case is processed in one shard beside good systems: it must be quarantined with its code,
naming the file, the system and the fix, and the good systems must still be written. Any other
case must fail with one error that names the file (or config key) and says what to do. The table
in docs/reliability.md lists the same cases.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

from boltzkinema.data.index import build_index
from boltzkinema.data.ligand import perceive_ligand
from boltzkinema.data.manifest import build_manifest
from boltzkinema.data.preprocess import StrictModeError, preprocess_shard
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.splits import SplitConfig
from boltzkinema.data.store import ShardReader
from boltzkinema.errors import BoltzKinemaError
from boltzkinema.io import atlas, mdcath, misato
from boltzkinema.io.system import SystemRef
from boltzkinema.sample.job import SampleConfig, load_model, run_sampling
from boltzkinema.train import checkpoint as ckpt
from boltzkinema.train.loop import TrainConfig, Trainer, trunk_dims
from boltzkinema.trunk.cache import load_embedding
from conftest import (
    EXAMPLE,
    EXAMPLE_GROUP,
    EXAMPLE_MISATO,
    TINY_MODEL,
    copy_misato_group,
    example_config,
    snakemake_cmd,
    venv_env,
)

OPTS = ProcessOptions(frame_dt_ns=0.001)


@dataclass(frozen=True)
class Seen:
    """What the user sees: the message, and the strings it must contain (file, system, fix)."""

    message: str
    names: tuple[str, ...]


# ---------------------------------------------------------------- data cases: one shared shard


def _misato_arrays() -> dict[str, np.ndarray]:
    with h5py.File(EXAMPLE_MISATO) as f:
        return {k: v[()] for k, v in f[EXAMPLE_GROUP].items()}


def _bad_misato_groups(a: dict[str, np.ndarray]) -> dict[str, dict]:
    xyz = a["trajectory_coordinates"]
    nan, inf = xyz.copy(), xyz.copy()
    nan[3, 10] = np.nan
    inf[2, 7, 1] = np.inf
    unknown_element = a["atoms_number"].copy()
    unknown_element[5] = 0
    unknown_residue = a["atoms_residue"].copy()
    unknown_residue[10] = 250
    lig = int(a["molecules_begin_atom_index"][-1])
    collapsed = xyz.copy()
    collapsed[:, lig:] = collapsed[:, lig : lig + 1]
    n = len(a["atoms_number"])
    return {
        "GOOD": {},
        "NAN": {"overrides": {"trajectory_coordinates": nan}},
        "INF": {"overrides": {"trajectory_coordinates": inf}},
        "EMPTY": {"overrides": {"trajectory_coordinates": xyz[:0]}},
        "SHORT": {"overrides": {"atoms_residue": a["atoms_residue"][:-5]}},
        "ELEMENT": {"overrides": {"atoms_number": unknown_element}},
        "RESIDUE": {"overrides": {"atoms_residue": unknown_residue}},
        "LIGAND": {"overrides": {"trajectory_coordinates": collapsed}},
        "NOCOORDS": {"drop": ("trajectory_coordinates",)},
        "NOZ": {"drop": ("atoms_number",)},
        "ODDUNIT": {"overrides": {"trajectory_coordinates": xyz / 3.2}},
        "NM": {"overrides": {"trajectory_coordinates": xyz / 10.0}},
        "NOLIGAND": {
            "overrides": {
                "molecules_begin_atom_index": np.append(a["molecules_begin_atom_index"][:-1], n)
            }
        },
    }


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> dict:
    """One shard of good and bad systems from every reader, processed once."""
    tmp = tmp_path_factory.mktemp("catalogue")
    md = tmp / "MD.hdf5"
    with h5py.File(md, "w") as f:
        for key, spec in _bad_misato_groups(_misato_arrays()).items():
            copy_misato_group(
                EXAMPLE_MISATO, EXAMPLE_GROUP, f, key, spec.get("overrides"), spec.get("drop", ())
            )
    truncated = tmp / "truncated.hdf5"
    truncated.write_bytes(md.read_bytes()[: md.stat().st_size // 2])
    atlas_dir = tmp / "atlas"
    shutil.copytree(EXAMPLE / "atlas", atlas_dir)
    victim = sorted(atlas_dir.rglob("*_R2.xtc"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    cath = tmp / "mdcath_villin.h5"
    shutil.copy(next((EXAMPLE / "mdcath").glob("*.h5")), cath)
    with h5py.File(cath, "a") as f:
        del f["villin_hp35/348/0/coords"]
    mismatch = SystemRef(
        "x.mismatch",
        "mdtraj",
        str(EXAMPLE / "mdtraj" / "ala2_tip3p.dcd"),
        topology=str(next((EXAMPLE / "atlas").rglob("*.pdb"))),
    )
    refs = [
        *misato.discover("m", [str(md), str(truncated)]),
        *atlas.discover("a", [str(atlas_dir)]),
        *mdcath.discover("c", [str(cath)]),
        mismatch,
    ]
    report = preprocess_shard(refs, tmp / "s.h5", tmp / "r.json", OPTS)
    with ShardReader(tmp / "s.h5") as reader:
        written = set(reader.system_ids())
        pair = (reader.load("m.GOOD"), reader.load("m.NM"))
    return {
        "entries": {e["system_id"]: e for e in report.systems},
        "written": written,
        "pair": pair,
        "files": {"md": str(md), "truncated": str(truncated), "xtc": str(victim)},
    }


QUARANTINED = {
    "truncated HDF5 file": ("m.truncated.hdf5", "unreadable", "re-copy"),
    "missing coordinates dataset": ("m.NOCOORDS", "missing_dataset", "unmodified MISATO"),
    "missing atomic numbers dataset": ("m.NOZ", "missing_dataset", "unmodified MISATO"),
    "NaN coordinates": ("m.NAN", "non_finite", "re-export"),
    "Inf coordinates": ("m.INF", "non_finite", "re-export"),
    "zero frames": ("m.EMPTY", "no_frames", "re-export or drop"),
    "topology shorter than the coordinates (MISATO)": ("m.SHORT", "topology_mismatch", "re-export"),
    "topology of another system (mdtraj pair)": (
        "x.mismatch",
        "topology_mismatch",
        "pair the trajectory with the topology",
    ),
    "truncated xtc replica (ATLAS)": (
        "a.villin_hp35_R2",
        "unreadable|topology_mismatch",
        "re-copy|pair the trajectory",
    ),
    "mdCATH replica without coords": (
        "c.villin_hp35_348K_r0",
        "missing_dataset",
        "unmodified mdCATH",
    ),
    "unknown element": ("m.ELEMENT", "unknown_element", "atomic numbers"),
    "unknown residue code": ("m.RESIDUE", "unknown_residue", "mdtraj"),
    "chemically invalid ligand": ("m.LIGAND", "ligand_invalid", "leave the system out"),
    "coordinates in neither nm nor Å": ("m.ODDUNIT", "undecidable_unit", "units: nm"),
}


@pytest.mark.parametrize("case", sorted(QUARANTINED))
def test_bad_system_is_quarantined_naming_file_system_and_fix_and_the_rest_is_written(shard, case):
    system_id, code, fix = QUARANTINED[case]
    entry = shard["entries"][system_id]
    assert entry["status"] == "quarantined"
    assert re.fullmatch(code, entry["code"])
    assert entry["file"] and Path(entry["file"]).exists()
    assert entry["reason"] and re.search(fix, entry["fix"])
    assert system_id not in shard["written"]
    assert {"m.GOOD", "a.villin_hp35_R1", "c.villin_hp35_320K_r0"} <= shard["written"]


def test_misato_file_in_nm_comes_out_identical_to_the_angstrom_file(shard):
    assert shard["entries"]["m.NM"]["unit"]["detected"] == "nm"
    good, nm = shard["pair"]
    assert np.array_equal(good.coords, nm.coords)


def test_complex_whose_ligand_molecule_is_empty_is_kept_as_protein_with_a_note(shard):
    entry = shard["entries"]["m.NOLIGAND"]
    assert entry["status"] == "ok" and "m.NOLIGAND" in shard["written"]
    assert any("last molecule is empty" in note for note in entry["notes"])


# ------------------------------------------------------------ every other case: one clear error


def _raises(exc: type[Exception], call: Callable[[], object]) -> str:
    with pytest.raises(exc) as info:
        call()
    return str(info.value)


def _missing_input(tmp: Path) -> Seen:
    path = str(tmp / "MD_missing.hdf5")
    return Seen(
        _raises(BoltzKinemaError, lambda: build_index("m", "misato", [path], 8)),
        (path, "datasets.m.inputs"),
    )


def _duplicate_ids_at_index(tmp: Path) -> Seen:
    for sub in ("a", "b"):
        (tmp / sub).mkdir()
        shutil.copy(EXAMPLE_MISATO, tmp / sub / "MD.hdf5")
    paths = [str(tmp / "a" / "MD.hdf5"), str(tmp / "b" / "MD.hdf5")]
    msg = _raises(BoltzKinemaError, lambda: build_index("m", "misato", paths, 8))
    return Seen(msg, ("m.187L", "distinct file names"))


def _manifest_inputs(results: Path) -> tuple[list[Path], list[Path]]:
    return sorted(results.glob("processed/*/*.report.json")), sorted(results.glob("trunk/*/*.json"))


def _duplicate_ids_at_manifest(tmp: Path, results: Path) -> Seen:
    reports, trunks = _manifest_inputs(results)
    copy_ = reports[0].with_name("again.report.json")
    shutil.copy(reports[0], copy_)
    try:
        msg = _raises(
            BoltzKinemaError,
            lambda: build_manifest([*reports, copy_], trunks, results, SplitConfig()),
        )
    finally:
        copy_.unlink()
    return Seen(msg, ("appears in", "again.report.json"))


def _escaping_manifest_path(tmp: Path, results: Path) -> Seen:
    reports, trunks = _manifest_inputs(results)
    data = json.loads(trunks[0].read_text())
    for entry in data["systems"].values():
        entry["path"] = "../../elsewhere/x.safetensors"
    bad = tmp / "t.json"
    bad.write_text(json.dumps(data))
    msg = _raises(
        BoltzKinemaError,
        lambda: build_manifest(reports, [bad, *trunks[1:]], results, SplitConfig()),
    )
    return Seen(msg, ("escapes the results folder", "../../elsewhere/x.safetensors"))


def _bad_config(tmp: Path, edit: Callable[[dict], None]) -> str:
    path = example_config(tmp)
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        snakemake_cmd(tmp, "-n"), capture_output=True, text=True, env=venv_env(), cwd=tmp
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def _unknown_config_key(tmp: Path) -> Seen:
    msg = _bad_config(tmp, lambda c: c["preprocess"].update(shard_sise=8))
    return Seen(msg, ("shard_sise", "was unexpected"))


def _config_value_of_wrong_type(tmp: Path) -> Seen:
    msg = _bad_config(tmp, lambda c: c["train"].update(steps="many"))
    return Seen(msg, ("many", "integer"))


def _strict_mode(tmp: Path) -> Seen:
    md = tmp / "MD.hdf5"
    nan = _misato_arrays()["trajectory_coordinates"].copy()
    nan[0, 0] = np.nan
    with h5py.File(md, "w") as f:
        copy_misato_group(EXAMPLE_MISATO, EXAMPLE_GROUP, f, "NAN", {"trajectory_coordinates": nan})
    refs = misato.discover("m", [str(md)])
    msg = _raises(
        StrictModeError,
        lambda: preprocess_shard(refs, tmp / "s.h5", tmp / "r.json", replace(OPTS, strict=True)),
    )
    assert not any(tmp.glob("s.h5*")) and not (tmp / "r.json").exists()
    return Seen(msg, (str(md), "NAN", "Fix:", "strict: false"))


def _empty_ligand(tmp: Path) -> Seen:
    msg = _raises(BoltzKinemaError, lambda: perceive_ligand(np.zeros((0, 3)), np.array([])))
    return Seen(msg, ("no atoms", "supply its atoms"))


MODEL = TINY_MODEL


@pytest.fixture(scope="module")
def trained(example_results, tmp_path_factory) -> Path:
    """A run of two steps on the example: a real checkpoint to damage."""
    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.from_dict(
        {
            "run": "t",
            "steps": 2,
            "batch_size": 1,
            "checkpoint_every": 2,
            "val_every": 0,
            "segments": {"n_frames": 2, "max_atoms": 64, "max_tokens": 16},
            "model": MODEL,
        }
    )
    Trainer(cfg, example_results / "manifest.parquet", example_results, run).run()
    return run


def _weights(run: Path) -> Path:
    return ckpt.list_checkpoints(run)[-1][1] / "model.safetensors"


def _placeholder_checkpoint(tmp: Path, run: Path) -> Seen:
    placeholder = "/path/to/checkpoints/step_XXXXXXXX"
    msg = _raises(
        ckpt.CheckpointError, lambda: ckpt.resolve_checkpoint(run, "explicit", placeholder)
    )
    return Seen(msg, (placeholder, "checkpoint.path", str(_weights(run).parent)))


def _corrupt_checkpoint(tmp: Path, run: Path) -> Seen:
    bad = tmp / "model.safetensors"
    bad.write_bytes(_weights(run).read_bytes()[:1000])
    msg = _raises(ckpt.CheckpointError, lambda: ckpt.read_weights(bad))
    return Seen(msg, (str(bad), "re-copy"))


def _checkpoint_of_other_shapes(tmp: Path, run: Path) -> Seen:
    weights = ckpt.read_weights(_weights(run))
    key = sorted(weights)[0]
    weights[key] = torch.zeros(7, 7)
    bad = tmp / "model.safetensors"
    save_file(weights, str(bad))
    model = load_model(_checkpoint_json(tmp, run))
    msg = _raises(ckpt.CheckpointError, lambda: ckpt.load_weights(model, bad))
    return Seen(msg, (key, "(7, 7)", "shape mismatch"))


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EXPLOIT_MARK']}",))


def _pickled_checkpoint(tmp: Path) -> Seen:
    mark = tmp / "pwned"
    os.environ["EXPLOIT_MARK"] = str(mark)
    try:
        evil = tmp / "evil.pt"
        with open(evil, "wb") as f:
            pickle.dump({"weight": _Exploit()}, f)
        msg = _raises(ckpt.CheckpointError, lambda: ckpt.read_weights(evil))
    finally:
        del os.environ["EXPLOIT_MARK"]
    assert not mark.exists(), "the pickled payload ran"
    return Seen(msg, (str(evil), "refused", "safetensors"))


def _corrupt_trunk_entry(tmp: Path, results: Path) -> Seen:
    entry = tmp / "entry.safetensors"
    entry.write_bytes(b"not a safetensors file")
    msg = _raises(ValueError, lambda: load_embedding(entry))
    return Seen(msg, (str(entry), "rerun"))


def _trunk_entry(path: Path, n: int, c_s: int, c_z: int, c_s_inputs: int | None = None) -> None:
    save_numpy(
        {
            "s_inputs": np.zeros((n, c_s_inputs or c_s), np.float16),
            "s_trunk": np.zeros((n, c_s), np.float16),
            "z_trunk": np.zeros((n, n, c_z), np.float16),
        },
        str(path),
    )


def _trunk_widths_mixed(tmp: Path, results: Path) -> Seen:
    manifest = pd.read_parquet(results / "manifest.parquet")
    odd = tmp / "odd.safetensors"
    _trunk_entry(odd, 4, 8, 2)
    shutil.copy(odd, results / "odd_width.safetensors")
    try:
        mixed = manifest.assign(trunk_path=["odd_width.safetensors", *manifest["trunk_path"][1:]])
        msg = _raises(BoltzKinemaError, lambda: trunk_dims(mixed, results))
    finally:
        (results / "odd_width.safetensors").unlink()
    return Seen(msg, ("odd_width.safetensors", "c_s=8, c_z=2", "Rerun trunk_cache"))


def _corrupt_trunk_entry_at_training(tmp: Path, results: Path) -> Seen:
    manifest = pd.read_parquet(results / "manifest.parquet")
    (results / "corrupt.safetensors").write_bytes(b"\x00" * 16)
    try:
        corrupt = manifest.assign(trunk_path="corrupt.safetensors")
        msg = _raises(BoltzKinemaError, lambda: trunk_dims(corrupt, results))
    finally:
        (results / "corrupt.safetensors").unlink()
    return Seen(msg, ("corrupt.safetensors", "rerun trunk_cache"))


def _trunk_tensors_disagree(tmp: Path, results: Path) -> Seen:
    from boltzkinema.trunk.cache import embedding_widths

    bad = tmp / "bad.safetensors"
    _trunk_entry(bad, 4, 8, 2, c_s_inputs=6)
    msg = _raises(ValueError, lambda: embedding_widths(bad))
    return Seen(msg, (str(bad), "rerun trunk_cache"))


def _checkpoint_json(tmp: Path, run: Path) -> Path:
    path = tmp / "checkpoint.json"
    ckpt.resolve_checkpoint(run, "latest").write(path)
    return path


def _trunk_width_unlike_the_checkpoint(tmp: Path, results: Path, run: Path) -> Seen:
    table = pd.read_parquet(results / "manifest.parquet")
    row = table.iloc[0]
    with ShardReader(results / row["shard"]) as reader:
        n_tokens = int(reader.load(row["system_id"]).n_tokens)
    root = tmp / "results"
    root.mkdir()
    for name in ("processed",):
        (root / name).symlink_to(results / name)
    _trunk_entry(root / "wide.safetensors", n_tokens, 32, 4)
    table.assign(trunk_path="wide.safetensors").to_parquet(root / "manifest.parquet")
    cj = _checkpoint_json(tmp, run)
    msg = _raises(
        BoltzKinemaError,
        lambda: run_sampling(
            cj,
            root / "manifest.parquet",
            root,
            row["system_id"],
            "forecast",
            SampleConfig.from_dict({}),
            tmp / "out",
        ),
    )
    return Seen(msg, (str(cj), "wide.safetensors", "c_s=32, c_z=4", "retrain"))


ERRORS: dict[str, Callable[..., Seen]] = {
    "input file that does not exist": _missing_input,
    "duplicate system ids (index)": _duplicate_ids_at_index,
    "duplicate system ids (manifest)": _duplicate_ids_at_manifest,
    "manifest path escaping the results folder": _escaping_manifest_path,
    "unknown config key": _unknown_config_key,
    "config value of the wrong type": _config_value_of_wrong_type,
    "strict mode with a bad system": _strict_mode,
    "empty ligand": _empty_ligand,
    "placeholder checkpoint path": _placeholder_checkpoint,
    "corrupt safetensors checkpoint": _corrupt_checkpoint,
    "checkpoint whose shapes do not fit": _checkpoint_of_other_shapes,
    "pickled checkpoint that runs code": _pickled_checkpoint,
    "corrupt trunk entry": _corrupt_trunk_entry,
    "corrupt trunk entry met by training": _corrupt_trunk_entry_at_training,
    "trunk embeddings of mixed widths": _trunk_widths_mixed,
    "trunk tensors of one entry disagree": _trunk_tensors_disagree,
    "trunk embeddings of another width than the checkpoint": _trunk_width_unlike_the_checkpoint,
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_input_fails_with_one_error_naming_what_and_the_fix(case, tmp_path, request):
    call = ERRORS[case]
    needs = call.__code__.co_varnames[1 : call.__code__.co_argcount]
    fixtures = {"results": "example_results", "run": "trained"}
    seen = call(tmp_path, *(request.getfixturevalue(fixtures[n]) for n in needs))
    for name in seen.names:
        assert name in seen.message, f"{case}: {name!r} not in {seen.message[-2000:]!r}"


def test_the_catalogue_has_at_least_25_cases():
    handled = [
        test_misato_file_in_nm_comes_out_identical_to_the_angstrom_file,
        test_complex_whose_ligand_molecule_is_empty_is_kept_as_protein_with_a_note,
    ]
    assert len(QUARANTINED) + len(ERRORS) + len(handled) >= 25
