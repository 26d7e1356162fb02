"""Sysid benchmark: parameter error vs seconds of data, random vs active excitation (arm; quadrotor: random).

One recording per excitation (``--seconds`` long, the same seed family) is collected on ``--backend``
(mujoco with ``--backend-opt calibration=TRUTH`` for a sim-made "robot", or ``real --backend-opt
port=...`` against ``robotlearn emulate arm``), then fit on its first 1/4, 1/2 and all of it. The error is
the mean absolute relative error over the fitted scales (latency reported separately, in ms) against
``--truth``. Ratios: random's error over active's at each length (> 1: active is better), and the data
active needs to match random's error at full length. The last line is one JSON object.

    python bench/sysid.py --backend mujoco --backend-opt calibration=truth.yaml --truth truth.yaml
    python bench/sysid.py --backend real --backend-opt port=/tmp/rl-arm0 --truth configs/hardware/reality_gap.yaml \
        --sim-opt interpolation=min_jerk

Quadrotor (``--robot cf2x``): doublets only (no active design yet); errors of the identifiable quantities,
thrust and drag per unit mass (truth: the gap's thrust_scale / mass_scale, drag_scale / mass_scale), latency
and wind, at each length of the one recording:

    python bench/sysid.py --robot cf2x --backend real --backend-opt connection=udpin:127.0.0.1:14550 \
        --truth configs/hardware/quad_gap.yaml
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import yaml

from robotlearn.core.config import parse_overrides
from robotlearn.sysid.collect import collect
from robotlearn.sysid.estimator import fit
from robotlearn.sysid.quad import QuadReplayer, collect_quad
from robotlearn.sysid.registry import load_registry
from robotlearn.sysid.simulate import Replayer


def errors(registry, estimate, truth) -> tuple[float, float]:
    true = registry.values_of(truth)
    scales = [abs(e - t) / t for p, e, t in zip(registry.parameters, estimate, true, strict=True) if p.name != "latency_s"]
    latency = [abs(e - t) * 1e3 for p, e, t in zip(registry.parameters, estimate, true, strict=True)
               if p.name == "latency_s"]
    return float(np.mean(scales)), (latency[0] if latency else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mujoco")
    parser.add_argument("--backend-opt", action="append", default=[])
    parser.add_argument("--sim-opt", action="append", default=[])
    parser.add_argument("--truth", required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--restarts", type=int, default=2, help="CMA-ES restarts per fit (as sysid fit)")
    parser.add_argument("--params", default="link_mass_scale.upper_arm_link,link_mass_scale.forearm_link,"
                                             "link_mass_scale.gripper_link,joint_damping_scale,joint_friction_scale,"
                                             "servo_kp_scale,servo_kd_scale,latency_s")
    parser.add_argument("--noise", type=float, default=0.0, help="rad std added to recorded positions (sim data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--robot", default="arm6", help="arm6, or a quadrotor (cf2x, iris)")
    args = parser.parse_args()
    with open(args.truth) as f:
        truth = yaml.safe_load(f)
    if args.robot != "arm6":
        quad_main(args, truth)
        return
    registry = load_registry("arm", args.params.split(","))
    options, sim_options = parse_overrides(args.backend_opt), parse_overrides(args.sim_opt)
    fractions = (0.25, 0.5, 1.0)
    rows = {}
    for excite in ("random", "active"):
        data = collect(args.backend, options, args.seconds, excite, args.seed, progress=False)
        if args.noise:
            data.joint_pos = data.joint_pos + np.random.default_rng(args.seed).normal(0, args.noise, data.joint_pos.shape)
        rows[excite] = []
        for fraction in fractions:
            part = data.head(1.0 + fraction * args.seconds)
            t0 = time.perf_counter()
            replayer = Replayer(part, "mujoco", sim_options=sim_options)
            try:
                result = fit(replayer, registry, args.generations, seed=args.seed, check=False, progress=False,
                             restarts=args.restarts)
            finally:
                replayer.close()
            scale_err, latency_err = errors(registry, result.estimate, truth)
            rows[excite].append({"seconds": fraction * args.seconds, "scale_error": scale_err,
                                 "latency_error_ms": latency_err, "fit_s": time.perf_counter() - t0,
                                 "estimate": dict(zip(result.names, np.round(result.estimate, 4).tolist(), strict=True))})
            print(f"{excite:6s} {fraction * args.seconds:5.1f} s: mean |rel error| {100 * scale_err:5.2f} %, "
                  f"latency error {latency_err:.2f} ms, fit {rows[excite][-1]['fit_s']:.0f} s", flush=True)
    ratios = [r["scale_error"] / max(a["scale_error"], 1e-12) for r, a in zip(rows["random"], rows["active"], strict=True)]
    target = rows["random"][-1]["scale_error"]
    needed = next((a["seconds"] for a in rows["active"] if a["scale_error"] <= target), None)
    print("random/active error ratio per length:", " ".join(f"{r:.2f}" for r in ratios))
    print(f"active reaches random's {args.seconds:.0f} s error with {needed} s" if needed else
          "active does not reach random's full-length error")
    print(json.dumps({"backend": args.backend, "seconds": args.seconds, "rows": rows, "random_over_active": ratios,
                      "active_seconds_for_random_full_error": needed,
                      "data_ratio": (args.seconds / needed) if needed else None}))


def quad_main(args, truth: dict) -> None:
    """Doublets on a quadrotor: errors of the identifiable quantities vs seconds of data."""
    registry = load_registry("quadrotor")
    mass = truth.get("mass_scale", 1.0)
    wind = list(truth.get("wind", (0.0, 0.0, 0.0)))
    data = collect_quad(args.backend, parse_overrides(args.backend_opt), args.seconds, args.seed, args.robot)
    rows = []
    for fraction in (0.25, 0.5, 1.0):
        t0 = time.perf_counter()
        replayer = QuadReplayer(data.head(1.0 + fraction * args.seconds), "mujoco", 1.0,
                                sim_options=parse_overrides(args.sim_opt))
        try:
            result = fit(replayer, registry, args.generations, seed=args.seed, check=False, progress=False,
                         restarts=args.restarts)
        finally:
            replayer.close()
        est = dict(zip(result.names, result.estimate, strict=True))
        row = {"seconds": fraction * args.seconds, "fit_s": time.perf_counter() - t0,
               "thrust_per_mass_error": abs(est["thrust_scale"] / (truth.get("thrust_scale", 1.0) / mass) - 1),
               "drag_per_mass_error": abs(est["drag_scale"] / (truth.get("drag_scale", 1.0) / mass) - 1),
               "latency_ms": 1e3 * est["latency_s"], "true_latency_ms": 1e3 * truth.get("latency_s", 0.0),
               "wind_error_m_s": float(np.hypot(est["wind.0"] - wind[0], est["wind.1"] - wind[1])),
               "estimate": {k: round(float(v), 4) for k, v in est.items()}}
        rows.append(row)
        print(f"{row['seconds']:5.1f} s: thrust/mass {100 * row['thrust_per_mass_error']:.2f} %, drag/mass "
              f"{100 * row['drag_per_mass_error']:.1f} %, latency {row['latency_ms']:.1f} ms (gap "
              f"{row['true_latency_ms']:.0f}), wind error {row['wind_error_m_s']:.3f} m/s, fit {row['fit_s']:.0f} s",
              flush=True)
    print(json.dumps({"robot": args.robot, "backend": args.backend, "seconds": args.seconds, "excite": "random",
                      "rows": rows}))


if __name__ == "__main__":
    main()
