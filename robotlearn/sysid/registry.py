"""The parameters sysid estimates, as data (configs/sysid/<kind>.yaml): names, bounds, priors.

A parameter name is a key of sim/physical.py's `ArmPhysicalParams` / `QuadPhysicalParams`, dotted for
per-link entries (``link_mass_scale.forearm_link``). The registry maps between a flat vector the
optimizer searches (in [0, 1] per parameter, log-spaced for scales) and the nested parameter model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import Field

from robotlearn.core.config import ConfigError, Strict, config_path
from robotlearn.sim.physical import PARAMS_BY_KIND


class ParameterEntry(Strict):
    bounds: tuple[float, float]
    prior: float
    log: bool = True
    fit: bool = True


class RegistryFile(Strict):
    robot_kind: str = Field(pattern="^(arm|quadrotor)$")
    parameters: dict[str, ParameterEntry]


@dataclass(frozen=True)
class Parameter:
    name: str
    lower: float
    upper: float
    prior: float
    log: bool

    def to_unit(self, value: float) -> float:
        if self.log:
            return float(np.log(value / self.lower) / np.log(self.upper / self.lower))
        return (value - self.lower) / (self.upper - self.lower)

    def from_unit(self, u: float) -> float:
        u = float(np.clip(u, 0.0, 1.0))
        if self.log:
            return float(self.lower * (self.upper / self.lower) ** u)
        return self.lower + u * (self.upper - self.lower)


def nest(model, names: Sequence[str], values: Sequence[float], base: dict | None = None,
         fill: float | None = None) -> dict:
    """Flat names -> the parameter model's layout over `base`: ``link_mass_scale.forearm_link`` into a
    mapping, ``wind.0`` into component 0 of a vector (the others from `base`, else the field's default,
    or `fill` when given: an uncertainty block has zero std where nothing was estimated)."""
    data = dict(base or {})
    for name, v in zip(names, values, strict=True):
        key, _, sub = name.partition(".")
        if sub.isdigit():
            default = model.model_fields[key].default
            vec = list(data.get(key, [fill] * len(default) if fill is not None else default))
            vec[int(sub)] = float(v)
            data[key] = vec
        elif sub:
            data[key] = {**data.get(key, {}), sub: float(v)}
        else:
            data[key] = float(v)
    return data


class Registry:
    """The chosen parameters of one robot kind and the mapping vector <-> parameter model."""

    def __init__(self, kind: str, parameters: Sequence[Parameter]):
        self.kind, self.parameters = kind, tuple(parameters)
        self.model = PARAMS_BY_KIND[kind]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def prior(self) -> np.ndarray:
        return np.array([p.prior for p in self.parameters])

    def to_params(self, values: Sequence[float], base: dict | None = None):
        """The parameter model with `values` (in the registry's order) over `base` (default: nominal)."""
        return self.model.model_validate(nest(self.model, self.names, values, dict(base or {})))

    def values_of(self, params) -> np.ndarray:
        """The registry's entries of a parameter model (or of a reality-gap / calib dict)."""
        data = params if isinstance(params, dict) else params.model_dump()
        out = []
        for p in self.parameters:
            key, _, sub = p.name.partition(".")
            if sub.isdigit():  # a component of a vector key (wind.0)
                value = data.get(key, self.model.model_fields[key].default)[int(sub)]
            else:
                value = data.get(key, {}).get(sub, 1.0) if sub else data.get(key, p.prior)
            out.append(float(value))
        return np.array(out)

    def to_unit(self, values: Sequence[float]) -> np.ndarray:
        return np.array([p.to_unit(v) for p, v in zip(self.parameters, values, strict=True)])

    def from_unit(self, u: Sequence[float]) -> np.ndarray:
        return np.array([p.from_unit(x) for p, x in zip(self.parameters, u, strict=True)])


def parameter_names(kind: str, source: str | Path | None = None) -> list[str]:
    """Every parameter configs/sysid/<kind>.yaml lists, fit by default or not."""
    path = config_path("sysid", source or kind)
    return list(RegistryFile.model_validate(yaml.safe_load(path.read_text())).parameters)


def load_registry(kind: str, names: Sequence[str] | None = None, source: str | Path | None = None) -> Registry:
    """configs/sysid/<kind>.yaml; `names` picks parameters (default: those marked ``fit``)."""
    path = config_path("sysid", source or kind)
    data = RegistryFile.model_validate(yaml.safe_load(path.read_text()))
    if data.robot_kind != kind:
        raise ConfigError(f"{path}: parameters for a {data.robot_kind}, not a {kind}")
    fields = PARAMS_BY_KIND[kind].model_fields
    for name in data.parameters:
        if name.partition(".")[0] not in fields:
            raise ConfigError(f"{path}: {name!r} is not a {kind} physical parameter; keys: {', '.join(fields)}")
    if names:
        unknown = [n for n in names if n not in data.parameters]
        if unknown:
            raise ConfigError(f"unknown sysid parameters {unknown}; {kind} parameters: {', '.join(data.parameters)}")
        chosen = list(names)
    else:
        chosen = [n for n, e in data.parameters.items() if e.fit]
    params = []
    for name in chosen:
        e = data.parameters[name]
        low, high = e.bounds
        if not low < high or (e.log and low <= 0) or not low <= e.prior <= high:
            raise ConfigError(f"{path}: {name}: bounds {e.bounds} / prior {e.prior} are inconsistent")
        params.append(Parameter(name, low, high, e.prior, e.log))
    return Registry(kind, params)
