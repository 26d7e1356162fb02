"""YAML configs with `key=value` overrides and one-line validation errors.

Every CLI run is a config file plus overrides. Schemas are pydantic models with `extra="forbid"`, so a
typo is an error naming the key and the file instead of a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from robotlearn.core.resources import data_root

CONFIG_ROOT = data_root("configs")
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config problem, stated in one line: file, key, what is wrong."""


class Strict(BaseModel):
    """Base for config schemas: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def config_path(group: str, name: str | Path) -> Path:
    """Resolve `name` (a config name like "arm6" or a path to a YAML file) inside configs/<group>/."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = CONFIG_ROOT / group / f"{name}.yaml"
    if not candidate.exists():
        known = sorted(p.stem for p in (CONFIG_ROOT / group).glob("*.yaml"))
        raise ConfigError(f"unknown {group} config {str(name)!r}; known: {', '.join(known) or 'none'}")
    return candidate


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """["a.b=1", "c=[1,2]"] -> {"a.b": 1, "c": [1, 2]}; values are parsed as YAML scalars/lists."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _apply_override(data: dict, dotted: str, value: Any, source: Path) -> None:
    """Set `a.b.0.c` style keys; numeric parts index into lists (e.g. ``cameras.0.width=224``)."""
    node: Any = data
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: override {dotted!r}: {part!r} is not an index of a {len(node)}-item list")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if not last and node.get(key) is None:
                node[key] = {}
        else:
            raise ConfigError(f"{source}: override {dotted!r}: {parts[depth - 1]!r} is not a section")
        if last:
            node[key] = value
        else:
            node = node[key]


def _format_error(err: ValidationError, source: Path) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    kind = first["type"]
    if kind == "extra_forbidden":
        what = "unknown key"
    elif kind == "missing":
        what = "missing required key"
    else:
        what = f"{first['msg']} (got {first.get('input')!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {key}: {what}{more}"


def validate(model: type[M], data: Mapping[str, Any], source: Path | str) -> M:
    """Validate `data` against `model`, raising a one-line ConfigError naming file and key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_format_error(err, Path(source))) from None


def load_config(model: type[M], group: str, name: str | Path, overrides=None) -> M:
    """Load configs/<group>/<name>.yaml (or a YAML path), apply overrides, validate against `model`."""
    path = config_path(group, name)
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for key, value in parse_overrides(overrides).items():
        _apply_override(data, key, value, path)
    return validate(model, data, path)
