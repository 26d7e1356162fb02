"""A fit as a calib.yaml: the estimate under the reality-gap keys, its uncertainty, its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robotlearn.sim.physical import Calibration
from robotlearn.sysid.estimator import FitResult
from robotlearn.sysid.registry import Registry, nest


def calibration_of(result: FitResult, registry: Registry, provenance: dict[str, Any]) -> Calibration:
    return Calibration(params=registry.to_params(result.estimate),
                       uncertainty=nest(registry.model, result.names, result.std, fill=0.0),
                       sysid={**provenance, "fit": result.names, "loss_rad2": result.loss,
                              "prior_loss_rad2": result.prior_loss, "weakly_identified": result.weak,
                              "simulations": result.evaluations,
                              "outlier_segments": [[int(s), int(n)] for s, n in result.outliers]})


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Physical parameters estimated by `robotlearn sysid fit` (keys as configs/hardware/reality_gap.yaml:\n"
              "# scales relative to the nominal description, latency in s); uncertainty = one standard deviation.\n"
              "# Use: --backend-opt calibration=THIS (or domain_randomization=THIS to sample around it).\n")
    path.write_text(header + calibration.to_yaml())
    return path
