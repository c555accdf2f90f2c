"""Shared paths and helpers for building real-layout fixtures from the bundled example."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "example"
MISATO_FIXTURES = Path(__file__).parent / "data" / "misato"
EXAMPLE_MISATO = EXAMPLE / "misato" / "MD.hdf5"
EXAMPLE_GROUP = "187L"


# A network small enough for CPU tests of training (2 heads, one block per stack).
TINY_MODEL = {
    "c_atom": 16,
    "c_token": 32,
    "atom_heads": 2,
    "token_heads": 2,
    "atom_encoder_blocks": 1,
    "token_blocks": 1,
    "atom_decoder_blocks": 1,
}


def settings_file(path: Path, **values: Any) -> Path:
    """A stage settings JSON (as the workflow's stage_settings writes) holding ``values``."""
    path.write_text(json.dumps(values))
    return path


def resolved_record(folder: str | Path, sha256: str = "ab" * 32) -> Any:
    """A ResolvedCheckpoint of the raw weights of checkpoint folder ``folder`` at step 4."""
    from boltzkinema.train.resolved import ResolvedCheckpoint

    return ResolvedCheckpoint(
        path=str(folder),
        weights=str(Path(folder) / "model.safetensors"),
        averaged=False,
        step=4,
        policy="latest",
        sha256=sha256,
    )


def copy_misato_group(
    src: Path,
    key: str,
    dst: h5py.File,
    new_key: str,
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> None:
    """Copy one MISATO group, replacing or dropping datasets (to make bad or altered inputs)."""
    overrides = overrides or {}
    with h5py.File(src, "r") as f:
        g = dst.create_group(new_key)
        for name, ds in f[key].items():
            if name in drop:
                continue
            g.create_dataset(name, data=overrides.get(name, ds[()]))
        for name, value in overrides.items():
            if name not in g:
                g.create_dataset(name, data=value)


@pytest.fixture
def misato_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a MISATO MD.hdf5 whose groups are altered copies of the example complex."""

    def make(groups: dict[str, dict[str, Any]], name: str = "MD.hdf5") -> Path:
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            for key, spec in groups.items():
                copy_misato_group(
                    EXAMPLE_MISATO,
                    EXAMPLE_GROUP,
                    f,
                    key,
                    spec.get("overrides"),
                    spec.get("drop", ()),
                )
        return path

    return make


@pytest.fixture
def example_coords() -> np.ndarray:
    with h5py.File(EXAMPLE_MISATO, "r") as f:
        return f[EXAMPLE_GROUP]["trajectory_coordinates"][()]


@pytest.fixture
def atlas_copy(tmp_path: Path) -> Path:
    """A writable copy of the example ATLAS folder."""
    dst = tmp_path / "atlas"
    shutil.copytree(EXAMPLE / "atlas", dst)
    return dst


def build_example_results(root: Path, c_s: int | None = None, c_z: int | None = None) -> Path:
    """The data stage of the example run in-process: ``root`` with shards, trunk and manifest
    (built-in trunk of the config's widths unless given)."""
    import yaml

    from boltzkinema.data.index import discover
    from boltzkinema.data.manifest import build_manifest, write_manifest
    from boltzkinema.data.preprocess import DEFAULT_FRAME_DT_NS, preprocess_shard
    from boltzkinema.data.process import ProcessOptions
    from boltzkinema.data.splits import SplitConfig
    from boltzkinema.trunk.backend import get_backend
    from boltzkinema.trunk.cache import build_trunk_cache

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    backend = get_backend("builtin", c_s=c_s or cfg["trunk"]["c_s"], c_z=c_z or cfg["trunk"]["c_z"])
    reports, trunks = [], []
    for name, ds in cfg["datasets"].items():
        inputs = [str(REPO / p) for p in ds["inputs"]]
        if ds["format"] == "mdtraj":
            inputs = [{"topology": str(REPO / ds["topology"]), "trajectories": inputs}]
        refs = discover(name, ds["format"], inputs)
        shard = root / "processed" / name / "0000.h5"
        opts = ProcessOptions(
            frame_dt_ns=ds.get("frame_dt_ns"), default_frame_dt_ns=DEFAULT_FRAME_DT_NS[ds["format"]]
        )
        reports.append(shard.with_suffix(".report.json"))
        preprocess_shard(refs, shard, reports[-1], opts, dataset=name)
        trunks.append(root / "trunk" / name / "0000.json")
        build_trunk_cache(shard, trunks[-1], root / "trunk" / "embeddings", backend, root)
    table = build_manifest(reports, trunks, root, SplitConfig(**cfg["splits"]))
    write_manifest(table, root / "manifest.parquet")
    return root


@pytest.fixture(scope="session")
def example_results(tmp_path_factory) -> Path:
    """The example's data stage with the config's trunk widths."""
    return build_example_results(tmp_path_factory.mktemp("example") / "results")


def venv_env(**extra: str) -> dict[str, str]:
    """The environment with this interpreter's bin first on PATH (rules call `python -m ...`)."""
    bin_dir = Path(sys.executable).parent
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **extra)


def example_config(work: Path, inputs_root: Path = REPO, **sections: dict[str, Any]) -> Path:
    """The default config with absolute input paths under ``inputs_root`` (a copy of the repo's
    ``resources/example`` or the repo itself), so that it runs from any folder; sections updated."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for ds in cfg["datasets"].values():
        ds["inputs"] = [str(inputs_root / p) for p in ds["inputs"]]
        if "topology" in ds:
            ds["topology"] = str(inputs_root / ds["topology"])
    for name, values in sections.items():
        cfg[name].update(values)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_cmd(work: Path, *extra: str) -> list[str]:
    """Snakemake on this repo's workflow with ``work``'s config, run in ``work`` on 2 cores."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        "2",
        *extra,
    ]


DETERMINISTIC_OUTPUTS = (
    "processed/*/*.h5",
    "trunk/embeddings/*.safetensors",
    "manifest.parquet",
    "runs/example/checkpoints/*/model.safetensors",
    "runs/example/samples/*/*.npz",
    "runs/example/eval/per_system.parquet",
)


def output_hashes(results: Path) -> dict[str, str]:
    """sha256 of every output of a run that must not depend on timing or interruptions."""
    out = {}
    for pattern in DETERMINISTIC_OUTPUTS:
        for path in sorted(results.glob(pattern)):
            out[str(path.relative_to(results))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lance_rows(results: Path) -> dict[str, list[tuple]]:
    """Each LanceDB table's rows, sorted (Lance files hold random ids, so compare contents)."""
    from boltzkinema.track import read_table

    return {
        name: sorted(
            map(tuple, read_table(results / "lancedb", name).round(9).astype(str).to_numpy())
        )
        for name in ("runs", "systems", "eval")
    }


@pytest.fixture(scope="session")
def ala2_md(tmp_path_factory) -> list:
    """The shipped alanine dipeptide MD, replicas R1 and R2, preprocessed (heavy atoms)."""
    from boltzkinema.data.index import discover
    from boltzkinema.data.preprocess import preprocess_shard
    from boltzkinema.data.process import ProcessOptions
    from boltzkinema.data.store import ShardReader

    root = tmp_path_factory.mktemp("ala2")
    refs = discover("peptides", "atlas", [str(REPO / "resources" / "peptides" / "ala2")])[:2]
    preprocess_shard(refs, root / "0000.h5", root / "0000.report.json", ProcessOptions())
    with ShardReader(root / "0000.h5") as reader:
        return [reader.load(s) for s in reader.system_ids()]
