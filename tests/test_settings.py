"""Settings: the config schema is the one place a default is written.

The settings dataclasses take their defaults from the schema, the workflow's validated config
holds the same values, and no function, command-line option or record reader in the package
repeats a schema default as a literal.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from boltzkinema.data.dataset import SegmentConfig
from boltzkinema.data.masking import TaskConfig
from boltzkinema.data.process import ProcessOptions
from boltzkinema.data.splits import SplitConfig
from boltzkinema.errors import ConfigError
from boltzkinema.evaluate.job import EvaluateConfig
from boltzkinema.sample.job import SampleConfig
from boltzkinema.sample.sampler import SamplerConfig
from boltzkinema.sample.steering import SteeringConfig
from boltzkinema.settings import SCHEMA_FILE, default, read_settings, schema, settings
from boltzkinema.train.loop import TrainConfig
from boltzkinema.train.losses import LossWeights
from conftest import REPO

SRC = REPO / "src" / "boltzkinema"
SECTIONS = {
    TrainConfig: "train",
    SegmentConfig: "train.segments",
    TaskConfig: "train.tasks",
    LossWeights: "train.losses",
    SampleConfig: "sample",
    SamplerConfig: "sample.sampler",
    SteeringConfig: "sample.steering",
    EvaluateConfig: "evaluate",
    SplitConfig: "splits",
    ProcessOptions: "preprocess",
}
# Names that mean something else where they stand, or code that cannot read the schema.
NOT_THE_SETTING = {
    ("cli.py", "threads"): "OpenMM threads of simulate-example/-peptides, not trunk.threads",
    ("example.py", "threads"): "OpenMM threads",
    ("peptides.py", "threads"): "OpenMM threads",
    ("simulate.py", "threads"): "OpenMM threads",
    ("io/system.py", "frame_dt_ns"): "RawSystem: the file's own spacing, None where it has none",
    ("train/checkpoint.py", "strict"): "strict parameter-name matching of a weights load",
    ("sample/coverage.py", "strict"): "refuse instead of warn, not preprocess.strict",
    ("sample/coverage.py", "tasks"): "a checkpoint that recorded no tasks",
    ("trunk/boltz2_worker.py", "*"): "runs in the Boltz environment; the backend passes all",
    ("trunk/boltz2_features.py", "*"): "also runs in the Boltz environment",
    # The architectures' layouts: rebuilt from a checkpoint's stored config, so their defaults
    # are the layout's (DESIGN §4 for native, Boltz-2's hyper-parameters for boltz2), not
    # settings that a config fills (a boltz2 start takes its sizes from its checkpoint).
    ("model/network.py", "*"): "ModelConfig, the native layout",
    ("model/boltz2_network.py", "*"): "Boltz2Config, Boltz-2's hyper-parameters",
    ("model/edm.py", "*"): "EDMConfig, built from the tasks settings",
}


def schema_defaults() -> dict[str, list]:
    """Every default in the schema, by setting name (a name may stand in several sections)."""
    found: dict[str, list] = {}

    def walk(node: dict) -> None:
        for key, sub in node.get("properties", {}).items():
            if "default" in sub:
                found.setdefault(key, []).append(sub["default"])
            walk(sub)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(schema())
    return found


def _same(value: object, default: object) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return type(value) in (int, float, str, list, dict, type(None)) and value == default


def literal_defaults(tree: ast.AST):
    """(line, name, literal) of every default in a file: function parameters, command-line
    options, ``mapping.get(name, literal)`` and dataclass fields."""
    for node in ast.walk(tree):
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs += zip(
                [a.arg for a in positional[len(positional) - len(args.defaults) :]],
                args.defaults,
                strict=True,
            )
            pairs += [
                (a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                if node.func.attr == "add_argument":
                    name = first.value.lstrip("-").replace("-", "_")
                    pairs += [(name, k.value) for k in node.keywords if k.arg == "default"]
                elif node.func.attr == "get" and len(node.args) == 2:
                    pairs.append((first.value, node.args[1]))
        elif isinstance(node, ast.ClassDef):
            pairs += [
                (s.target.id, s.value)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value
            ]
        for name, value in pairs:
            try:
                yield value.lineno, name, ast.literal_eval(value)
            except ValueError:
                continue  # not a literal: a call of settings.default, a constant ...


def test_no_default_is_written_outside_the_schema():
    defaults = schema_defaults()
    copies = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if (rel, "*") in NOT_THE_SETTING:
            continue
        for line, name, value in literal_defaults(ast.parse(path.read_text())):
            if (rel, name) in NOT_THE_SETTING or name not in defaults:
                continue
            if any(_same(value, d) for d in defaults[name]):
                copies.append(f"{rel}:{line} {name}={value!r}")
    assert not copies, f"defaults written outside {SCHEMA_FILE.name}: {copies}"


def test_the_scan_finds_a_copied_default():
    tree = ast.parse(
        "def f(steps=30, window=4, other=1):\n    return cfg.get('lr_schedule', 'constant')\n"
    )
    found = {(name, value) for _, name, value in literal_defaults(tree)}
    assert {("steps", 30), ("window", 4), ("lr_schedule", "constant")} <= found


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda c: c.__name__)
def test_a_settings_class_takes_every_default_from_the_schema(cls):
    props = schema()
    for key in SECTIONS[cls].split("."):
        props = props["properties"][key]
    for f in dataclasses.fields(cls):
        if f.name in props["properties"]:
            made = f.default_factory() if callable(f.default_factory) else f.default
            assert made == default(f"{SECTIONS[cls]}.{f.name}"), f.name


def test_a_default_in_the_class_body_is_refused():
    with pytest.raises(TypeError, match=r"config.schema.yaml under train.steps"):

        @settings("train")
        class Steps:
            steps: int = 10


def test_a_field_the_schema_does_not_know_is_refused():
    with pytest.raises(TypeError, match=r"no setting train.wings"):

        @settings("train")
        class Wings:
            wings: int


def test_the_workflow_config_holds_the_package_defaults(tmp_path):
    """Snakemake's validate fills the same defaults the settings classes have, so a stage run
    by the workflow and one run by hand start from the same values."""
    config = {"datasets": {"d": {"format": "atlas", "inputs": ["x"]}}}
    validate(config, str(SCHEMA_FILE))
    assert TrainConfig.from_dict(copy.deepcopy(config["train"])) == TrainConfig()
    assert TrainConfig().segment_config() == SegmentConfig()
    assert SampleConfig.from_dict(config["sample"]) == SampleConfig()
    assert EvaluateConfig.from_dict(config["evaluate"]) == EvaluateConfig()
    assert SplitConfig(**config["splits"]) == SplitConfig()
    dataset = config["datasets"]["d"]
    assert dataset["units"] == ProcessOptions().units
    assert dataset["peptide_ligand_max_residues"] == ProcessOptions().peptide_ligand_max_residues
    assert (
        config["preprocess"]["jump_threshold_angstrom"] == ProcessOptions().jump_threshold_angstrom
    )


def test_the_example_config_sets_nothing_the_schema_does_not_know():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(SCHEMA_FILE))
    assert Path(SCHEMA_FILE).parent == SRC


def test_a_stage_reads_its_settings_file_and_refuses_an_unknown_key(tmp_path):
    given = tmp_path / "splits.json"
    given.write_text('{"seed": 7}')
    assert read_settings(SplitConfig, given, "splits") == SplitConfig(seed=7)
    assert read_settings(SplitConfig, None, "splits") == SplitConfig()
    given.write_text('{"seeds": 7}')
    with pytest.raises(ConfigError, match=r"splits.json: unknown splits settings \['seeds'\]"):
        read_settings(SplitConfig, given, "splits")
