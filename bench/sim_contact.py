"""MuJoCo vs PyBullet contact agreement on identical joint-target streams (robotlearn/sim/contact_agreement.py),
with the shipped contact settings (sim_assets/arm6/scene.yaml `contact:`) against MuJoCo's default
(solref 0.02 s) as the baseline, measured in the same run (the baseline runs in a child process
on a copy of sim_assets whose scene.yaml carries the defaults).

Per seed: a scripted grasp-lift-place in MuJoCo, its joint targets replayed on both sims; the cube's position
difference at the end and at worst, the final yaw difference, and the slide of a lifted cube held 1 s with
each finger target `squeeze` inside the cube face (0.001 m: lighter than the finger gear friction; 0.003;
0.02: the closed gripper the task uses). The last line is one JSON object.

    python bench/sim_contact.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

SQUEEZES = (0.001, 0.003, 0.02)
MUJOCO_DEFAULT_CONTACT = {"time_constant": 0.02, "damping_ratio": 1.0}


def summarize(result: dict) -> dict:
    eps = result["episodes"]
    out = {f"{k}_mm": {"median": round(1000 * float(np.median([e[k] for e in eps])), 2),
                       "max": round(1000 * float(np.max([e[k] for e in eps])), 2)}
           for k in ("final_pos_diff", "max_pos_diff")}
    out["final_yaw_diff_deg_max"] = round(float(np.degrees(max(e["final_yaw_diff"] for e in eps))), 2)
    for i, s in enumerate(result["squeezes"]):
        diffs = [abs(e["slip"]["mujoco"][i] - e["slip"]["pybullet"][i]) for e in eps]
        out[f"slip_{1000 * s:g}mm"] = {sim: round(1000 * float(np.median([e["slip"][sim][i] for e in eps])), 2)
                                       for sim in ("mujoco", "pybullet")}
        out[f"slip_{1000 * s:g}mm"]["diff_max_mm"] = round(1000 * float(np.max(diffs)), 2)
    out["expert_success"] = float(np.mean([e["expert_success"] for e in eps]))
    return out


def measure(seeds: int) -> dict:
    from robotlearn.sim.contact_agreement import compare

    return summarize(compare(range(seeds), SQUEEZES))


def baseline(seeds: int) -> dict:
    """The same measurement with MuJoCo's default contact settings, in a child process."""
    from robotlearn.core.resources import data_root

    with tempfile.TemporaryDirectory(prefix="rl-contact-") as tmp:
        assets = Path(tmp) / "sim_assets"
        shutil.copytree(data_root("sim_assets"), assets)
        scene = assets / "arm6" / "scene.yaml"
        data = yaml.safe_load(scene.read_text())
        data["contact"] = MUJOCO_DEFAULT_CONTACT
        scene.write_text(yaml.safe_dump(data, sort_keys=False))
        out = subprocess.run([sys.executable, __file__, "--seeds", str(seeds), "--child"], capture_output=True,
                             text=True, check=True, env={**os.environ, "ROBOTLEARN_ASSETS": str(assets)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.seeds)))
        return
    base, aligned = baseline(args.seeds), measure(args.seeds)
    for name, r in (("mujoco defaults", base), ("aligned", aligned)):
        print(f"{name:16s} cube pos diff final median {r['final_pos_diff_mm']['median']:.2f} mm "
              f"(max {r['final_pos_diff_mm']['max']:.2f}), worst on trajectory {r['max_pos_diff_mm']['max']:.2f} mm; "
              + "; ".join(f"slip@{1000 * s:g}mm mj {r[f'slip_{1000 * s:g}mm']['mujoco']:.2f} / "
                          f"pb {r[f'slip_{1000 * s:g}mm']['pybullet']:.2f} mm" for s in SQUEEZES))
    ratio = aligned["final_pos_diff_mm"]["median"] / max(base["final_pos_diff_mm"]["median"], 1e-9)
    print(f"final cube position difference, aligned / MuJoCo defaults: {ratio:.2f}")
    print(json.dumps({"seeds": args.seeds, "baseline_mujoco_defaults": base, "aligned": aligned,
                      "final_pos_diff_ratio": round(ratio, 3), "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
