"""The production arm driver against the emulated arm with and without a CPU latency request.

    python bench/cpu_latency.py [--segment 5] [--repeats 3] [--hogs 2]

`robotlearn emulate arm` (no reality gap, no cameras) in its own process and `RealArmBackend` here, both
told to leave the machine as it is (`cpu_latency_us=null`); this script holds a 0 us request
(core/cpu_latency.py: the kernel's PM QoS interface, system-wide) for every other segment. Each segment
drives the arm through `--segment` seconds of 10 Hz ticks of a 0.5 Hz sine on all joints, as a policy
would. Per segment: the fraction of the 500 Hz loop's cycles it missed (a cycle whose work ended past the
next deadline skips it), the fraction of control ticks whose own cycle was skipped (their state is
blended from the cycles either side), and the worst wake-up of a top-priority probe thread per CPU
(core/stall_probe.py). Variants alternate (off, on, off, on, ...) for `--repeats` rounds, idle and with
`--hogs` busy-loop processes; figures are median [min, max] over rounds and ratios off / on of the same
round. The last line is one JSON object with load average and steal time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm_emulator import Emulator  # noqa: E402
from machine_load import CpuHogs, MachineSample, spread  # noqa: E402

from robotlearn.core.cpu_latency import CpuLatencyRequest  # noqa: E402
from robotlearn.core.robot_config import load_robot_spec  # noqa: E402
from robotlearn.core.stall_probe import StallProbes  # noqa: E402
from robotlearn.hardware.arm import RealArmBackend  # noqa: E402

HOME = np.array([0.0, 0.28, -0.32, 0.0, 1.2, 0.0, 0.03, 0.03])
AMPLITUDE = np.array([0.25, 0.2, -0.25, 0.3, 0.25, 0.3, 0.0, 0.0])
VARIANTS = ("no_request", "request_0us")


def segment(backend: RealArmBackend, seconds: float, t0: float) -> dict:
    before = backend.loop.stats()
    stale0 = backend.advance()["loop_stats"]["stale_ticks"]
    ticks = int(seconds * backend.spec.control_hz)
    with StallProbes() as probes:
        for k in range(ticks):
            t = t0 + k / backend.spec.control_hz
            backend.read()
            backend.command(HOME + AMPLITUDE * np.sin(2 * np.pi * 0.5 * t))
            stats = backend.advance()["loop_stats"]
    cycles = stats["cycles"] - before["cycles"]
    missed = stats["missed_cycles"] - before["missed_cycles"]
    return {"missed_fraction": missed / max(cycles + missed, 1), "stale_tick_fraction": (stats["stale_ticks"] - stale0) / ticks,
            "probe_max_late_ms": 1e3 * probes.report.max_late_s, "probe_held_ms": 1e3 * probes.report.stalled_s}


def condition(backend: RealArmBackend, hogs: int, seconds: float, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    held = True
    with CpuHogs(hogs):
        machine = MachineSample()
        for r in range(repeats):
            runs["no_request"].append(segment(backend, seconds, 2 * r * seconds))
            with CpuLatencyRequest(0) as request:
                held &= request.held
                runs["request_0us"].append(segment(backend, seconds, (2 * r + 1) * seconds))
        machine.finish()
    out = {"hogs": hogs, "machine": machine.as_dict(), "request_held": held}
    for v, rs in runs.items():
        out[v] = {k: spread(r[k] for r in rs) for k in rs[0]}
    out["missed_off_over_on"] = spread(a["missed_fraction"] / max(b["missed_fraction"], 1e-4)
                                       for a, b in zip(runs["no_request"], runs["request_0us"], strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment", type=float, default=5.0, help="seconds per variant per round")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per condition (>= 3)")
    ap.add_argument("--hogs", type=int, default=2, help="busy-loop processes of the loaded condition")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (a spread needs repetitions)")
    link = Path(tempfile.mkdtemp()) / "arm"
    emu = Emulator(link, "--gap", "reality_gap_none", "--cameras", "none", "--set", "cpu_latency_us=null")
    try:
        backend = RealArmBackend(load_robot_spec("arm6"), RealArmBackend.Options(
            port=str(link), overrides={"cpu_latency_us": None}))
        try:
            backend.reset(np.random.default_rng(0), {"joint_pos": HOME})
            results = {name: condition(backend, hogs, args.segment, args.repeats)
                       for name, hogs in (("idle", 0), ("load", args.hogs))}
        finally:
            backend.close()
    finally:
        emu.stop()
    print(f"arm loop 500 Hz over the emulated bus, {args.repeats} x {args.segment:g} s interleaved segments; "
          "median [min, max] over rounds")
    for name, res in results.items():
        m = res["machine"]
        print(f"-- {name}: {res['hogs']} busy processes; loadavg {m['loadavg_start'][0]:.2f} -> "
              f"{m['loadavg_end'][0]:.2f}, steal {100 * m['steal_fraction']:.1f} %; request held: {res['request_held']}")
        for v in VARIANTS:
            cells = "  ".join(f"{k} {x['median']:.3g} [{x['min']:.3g}, {x['max']:.3g}]" for k, x in res[v].items())
            print(f"   {v:<12} {cells}")
        x = res["missed_off_over_on"]
        print(f"   missed cycles without / with the request: x{x['median']:.1f} [{x['min']:.1f}, {x['max']:.1f}]")
    print(json.dumps({"segment_s": args.segment, "repeats": args.repeats, **results}))


if __name__ == "__main__":
    main()
