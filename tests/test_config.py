"""The config schema: the default validates, unknown keys are errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from boltzkinema.settings import SCHEMA_FILE
from conftest import REPO

SCHEMA = str(SCHEMA_FILE)


@pytest.fixture
def default_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults(default_config):
    cfg = copy.deepcopy(default_config)
    del cfg["preprocess"]
    validate(cfg, SCHEMA)
    assert cfg["preprocess"]["shard_size"] == 64
    assert cfg["datasets"]["atlas_example"]["units"] == "auto"


@pytest.mark.parametrize(
    "path",
    [
        ("bogus_top",),
        ("preprocess", "shard_sise"),
        ("datasets", "atlas_example", "unit"),
        ("trunk", "cz"),
    ],
)
def test_unknown_key_is_an_error_naming_it(default_config, path):
    cfg = copy.deepcopy(default_config)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 1
    with pytest.raises(WorkflowError, match=path[-1]):
        validate(cfg, SCHEMA)


def test_mdtraj_dataset_needs_a_topology(default_config):
    cfg = copy.deepcopy(default_config)
    del cfg["datasets"]["ala2_example"]["topology"]
    with pytest.raises(WorkflowError, match="topology"):
        validate(cfg, SCHEMA)


def test_bad_unit_policy_is_refused(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["datasets"]["misato_example"]["units"] = "bohr"
    with pytest.raises(WorkflowError, match="bohr"):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize(
    "preset",
    [
        "gpu.yaml",
        "boltz2.yaml",
    ],
)
def test_presets_validate_on_top_of_the_default(default_config, preset):
    from snakemake.utils import update_config

    cfg = copy.deepcopy(default_config)
    update_config(cfg, yaml.safe_load((REPO / "config" / preset).read_text()))
    validate(cfg, SCHEMA)
    assert cfg["train"]["run"] != "example"


@pytest.mark.parametrize(
    "section,settings",
    [
        (("train",), "boltzkinema.train.loop:TrainConfig"),
        (("sample",), "boltzkinema.sample.job:SampleConfig"),
        (("sample", "steering"), "boltzkinema.sample.steering:SteeringConfig"),
    ],
)
def test_settings_classes_default_to_what_the_schema_says(section, settings):
    """Until the schema is the only source of defaults (issue 14), the two must agree."""
    import dataclasses
    import importlib

    module, name = settings.split(":")
    cls = getattr(importlib.import_module(module), name)
    node = yaml.safe_load(Path(SCHEMA).read_text())
    for key in section:
        node = node["properties"][key]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = 0
    for key, spec in node["properties"].items():
        if "default" in spec and key in fields and fields[key].default is not dataclasses.MISSING:
            assert fields[key].default == spec["default"], f"{name}.{key}"
            checked += 1
    assert checked >= 3
