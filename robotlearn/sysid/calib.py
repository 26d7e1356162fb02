"""A fit as a calib.yaml: the estimate under the reality-gap keys, its uncertainty, its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robotlearn.sim.physical import Calibration
from robotlearn.sysid.estimator import FitResult
from robotlearn.sysid.registry import Registry


def nested(names: list[str], values) -> dict[str, Any]:
    """{"link_mass_scale.forearm_link": v, "latency_s": w} -> {"link_mass_scale": {"forearm_link": v}, ...}."""
    out: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        key, _, sub = name.partition(".")
        if sub:
            out.setdefault(key, {})[sub] = float(value)
        else:
            out[key] = float(value)
    return out


def calibration_of(result: FitResult, registry: Registry, provenance: dict[str, Any]) -> Calibration:
    return Calibration(params=registry.to_params(result.estimate), uncertainty=nested(result.names, result.std),
                       sysid={**provenance, "fit": result.names, "loss_rad2": result.loss,
                              "prior_loss_rad2": result.prior_loss, "weakly_identified": result.weak,
                              "simulations": result.evaluations})


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Physical parameters estimated by `robotlearn sysid fit` (keys as configs/hardware/reality_gap.yaml:\n"
              "# scales relative to the nominal description, latency in s); uncertainty = one standard deviation.\n"
              "# Use: --backend-opt calibration=THIS (or domain_randomization=THIS to sample around it).\n")
    path.write_text(header + calibration.to_yaml())
    return path
