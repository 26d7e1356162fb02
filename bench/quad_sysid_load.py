"""Quadrotor sysid over MAVLink on a loaded machine: does the fit still find the vehicle's latency?

Each round, idle and with `--hogs` busy processes (bench/machine_load.py), records `--seconds` of doublets
through the production driver from two fresh `robotlearn emulate quadrotor --gap quad_gap` vehicles, one
at its default SCHED_FIFO priority and one at ordinary priority (`--priority 0`), and fits each recording
on MuJoCo twice: with the vehicle's sample stamps (steps that read no new sample or skipped one belong to
no segment) and without them (every step replayed as one period). The variants alternate within each
round, so load changes fall on all of them alike.

Baseline of the ratios: ordinary priority without stamps (the behaviour before both), measured in the same
run. Figures: |fitted latency - the gap's| (ms) per variant, median [min, max] over rounds; thrust per unit
mass error; steps left out by the stamps. Last line: one JSON object.

    python bench/quad_sysid_load.py --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from robotlearn.core.config import CONFIG_ROOT
from robotlearn.sysid.estimator import fit
from robotlearn.sysid.quad import QuadReplayer, collect_quad
from robotlearn.sysid.registry import load_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import CpuHogs, MachineSample, spread  # noqa: E402
from udp_port import free_udp_port  # noqa: E402

GAP = yaml.safe_load((CONFIG_ROOT / "hardware" / "quad_gap.yaml").read_text())
LATENCY, THRUST = GAP["latency_s"], GAP["thrust_scale"] / GAP["mass_scale"]
BASELINE = "ordinary/no_stamps"



def record(priority: int | None, seconds: float, seed: int):
    """Doublets from a fresh emulated vehicle; returns the recording and the vehicle's timing line."""
    port = free_udp_port()
    cmd = [sys.executable, "-m", "robotlearn.cli.emulate_quadrotor", "--mavlink", f"udpout:127.0.0.1:{port}",
           "--gap", "quad_gap", *([] if priority is None else ["--priority", str(priority)])]
    emu = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        data = collect_quad("real", {"connection": f"udpin:127.0.0.1:{port}"}, seconds, seed=seed)
    finally:
        emu.terminate()
        output, _ = emu.communicate(timeout=10)
    timing = next((line for line in output.splitlines() if line.startswith("vehicle timing")), "")
    return data, timing


def fitted(data, generations: int) -> dict[str, float]:
    replayer = QuadReplayer(data, "mujoco", 1.0)
    try:
        r = fit(replayer, load_registry("quadrotor"), generations=generations, polish_steps=3, progress=False,
                check=False)
    finally:
        replayer.close()
    est = dict(zip(r.names, r.estimate, strict=True))
    return {"latency_error_ms": abs(est["latency_s"] - LATENCY) * 1e3,
            "thrust_error_pct": abs(est["thrust_scale"] / THRUST - 1) * 100, "outliers": len(r.outliers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--generations", type=int, default=4)
    args = ap.parse_args()
    out: dict = {"gap_latency_ms": LATENCY * 1e3, "seconds": args.seconds, "conditions": {}}
    for condition, hogs in (("idle", 0), (f"{args.hogs}_hogs", args.hogs)):
        rows: dict[str, list[dict]] = {}
        machine = MachineSample()
        with CpuHogs(hogs):
            for k in range(args.rounds):
                for priority, name in ((None, "fifo"), (0, "ordinary")):
                    data, timing = record(priority, args.seconds, seed=k + 1)
                    skipped = int((~data.regular_steps()).sum())
                    for stamps in (True, False):
                        variant = f"{name}/{'stamps' if stamps else 'no_stamps'}"
                        run = fitted(data if stamps else dataclasses.replace(data, timestamps=None),
                                     args.generations)
                        rows.setdefault(variant, []).append({**run, "steps_left_out": skipped if stamps else 0})
                        print(f"{condition} round {k + 1} {variant}: latency off by {run['latency_error_ms']:.2f} ms, "
                              f"thrust {run['thrust_error_pct']:.3f} %, {skipped if stamps else 0} steps left "
                              f"out; {timing}", flush=True)
        machine.finish()
        summary = {v: {key: spread(r[key] for r in runs) for key in runs[0]} for v, runs in rows.items()}
        base = summary[BASELINE]["latency_error_ms"]["median"]
        for s in summary.values():
            s["latency_error_ratio_vs_baseline"] = base / max(s["latency_error_ms"]["median"], 1e-3)
        out["conditions"][condition] = {"variants": summary, "loadavg": machine.loadavg_end,
                                        "steal_fraction": machine.steal_fraction}
        print(condition, "latency error median (ms):",
              ", ".join(f"{v} {s['latency_error_ms']['median']:.2f}" for v, s in summary.items()), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
