"""The config schema as the one source of every setting's default.

``config.schema.yaml`` (beside this module) validates the workflow's config (the Snakefile) and
holds each setting's default and description. The settings dataclasses of the stages are
declared with :func:`settings`: their fields carry types only, and their defaults are read from
the schema when the module is imported, so that a default is written once.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

SCHEMA_FILE = Path(__file__).with_name("config.schema.yaml")
T = TypeVar("T")


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def schema() -> dict[str, Any]:
    """The config schema (a copy: callers may change it)."""
    return copy.deepcopy(_schema())


def section_schema(section: str) -> dict[str, Any]:
    """The schema of a dotted config path, e.g. ``train.segments``; ``*`` stands for any key
    of a mapping (``datasets.*.units``: the units of any dataset)."""
    node = _schema()
    for key in section.split("."):
        try:
            node = node["additionalProperties"] if key == "*" else node["properties"][key]
        except (KeyError, TypeError):
            raise KeyError(f"{SCHEMA_FILE}: no setting {section!r}") from None
    return node


def default(section: str) -> Any:
    """The default of one setting, e.g. ``default("checkpoint.policy")`` (for a command-line
    option of a command that also runs by hand)."""
    value = default_of(section_schema(section))
    if value is dataclasses.MISSING:
        raise KeyError(f"{SCHEMA_FILE}: {section} has no default")
    return value


def default_of(node: dict[str, Any]) -> Any:
    """A schema node's default, with the defaults of its properties filled in where it is an
    object (as Snakemake's ``validate`` fills them); ``dataclasses.MISSING`` without one."""
    if "default" not in node:
        return dataclasses.MISSING
    value = copy.deepcopy(node["default"])
    if isinstance(value, dict):
        for key, sub in node.get("properties", {}).items():
            inner = default_of(sub)
            if inner is not dataclasses.MISSING:
                value.setdefault(key, inner)
    return value


def read_settings(cls: type[T], path: str | Path | None, section: str) -> T:
    """The settings ``cls`` of a stage from a JSON file (what a rule writes from the validated
    config), or its defaults without one; an unreadable file or an unknown key is an error that
    names the file."""
    from boltzkinema.errors import ConfigError
    from boltzkinema.util import from_settings

    if path is None:
        return cls()
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not readable as {section} settings ({exc})") from exc
    try:
        return from_settings(cls, values, section)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}; fix the {section} section of the config") from exc


def _field_default(value: Any) -> Any:
    if isinstance(value, dict | list):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, value))
    return dataclasses.field(default=value)


def settings(section: str, **elsewhere: str | type) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``cls`` as a frozen, keyword-only dataclass of the config section
    ``section``, each field's default the schema's.

    ``elsewhere`` names fields that are not settings of ``section``: a dotted schema path whose
    default the field takes (e.g. ``seed="train.seed"``), or a settings class whose instance of
    defaults it takes. A field the schema does not know, or one given a default in the class
    body, is an error when the module is imported; a setting without a default stays required.
    """

    def wrap(cls: type[T]) -> type[T]:
        props = section_schema(section).get("properties", {})
        for name in inspect.get_annotations(cls):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__}.{name}: a default in the class; it belongs in "
                    f"{SCHEMA_FILE.name} under {section}.{name}"
                )
            source = elsewhere.get(name)
            if isinstance(source, type):
                setattr(cls, name, dataclasses.field(default_factory=source))
                continue
            node = section_schema(source) if source else props.get(name)
            if node is None:
                raise TypeError(f"{cls.__name__}.{name}: no setting {section}.{name} in the schema")
            value = default_of(node)
            if value is not dataclasses.MISSING:
                setattr(cls, name, _field_default(value))
        return dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    return wrap
