"""Compiled servo loop vs a pure-Python loop, and the servo-bus cycle against its wire-time limit.

    python bench/rt_loop.py [--duration 10] [--rate 1000] [--bus-duration 3]

1. Timing: `_rt.ControlLoop` (C++ thread, clock_nanosleep on absolute deadlines, SCHED_FIFO + mlockall when
   granted; bus=None so only the loop's own timing is measured) and a Python loop doing `time.sleep` to the
   same absolute deadlines, `--duration` s each at `--rate` Hz, one after the other in this run. Period error
   is lateness against the deadline (wake time - deadline); an overrun is a cycle that ends after the next
   deadline (that deadline is then skipped, never burst). Ratios are Python / compiled.
2. Bus: 6 Dynamixel XM430 servos on a pty (tests/rt_device.py) that holds every reply until the instruction
   and the reply would have crossed a 1 Mbps wire (a pty has no baud). The compiled loop at 200 Hz does one
   sync-read + one sync-write per cycle; its work time plus the sync-write's own wire time (it gets no
   reply, so the host does not wait for it, but a real wire is busy with it) is the bus cycle, compared
   with the wire-time limit for the same bytes. Two tables: position only (154 bytes, the classic figure) and position + velocity +
   current (the span the arm backend reads).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import robotlearn._rt as rt

from robotlearn.hardware.servo_tables import load_servo_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from rt_device import PtyServoChain  # noqa: E402  (the pty servo chain the driver tests use)

IDS = [1, 2, 3, 4, 5, 6]


def limits(n: int) -> rt.JointLimits:
    return rt.JointLimits([-3.0] * n, [3.0] * n, [5.0] * n, [5.0] * n)


def compiled_loop(rate: float, duration: float) -> dict:
    loop = rt.ControlLoop(None, rate_hz=rate, limits=limits(6), watchdog_hold_ms=0.0, watchdog_off_ms=0.0)
    loop.start()
    time.sleep(duration)
    loop.stop()
    s = loop.stats()
    return {"p50_us": s["latency_p50_us"], "p99_us": s["latency_p99_us"], "max_us": s["latency_max_us"],
            "period_p50_us": s["period_p50_us"], "period_p99_us": s["period_p99_us"],
            "overrun_fraction": s["overrun_fraction"], "cycles": s["cycles"],
            "sched_fifo": s["sched_fifo"], "mlockall": s["mlockall"]}


def python_loop(rate: float, duration: float) -> dict:
    period = 1.0 / rate
    late, periods = [], []
    overruns = cycles = 0
    t0 = time.perf_counter() + period
    k, prev = 0, None
    end = t0 + duration
    while True:
        deadline = t0 + k * period
        if deadline > end:
            break
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        late.append(now - deadline)
        if prev is not None:
            periods.append(now - prev)
        prev = now
        cycles += 1
        k += 1
        if time.perf_counter() > t0 + k * period:  # missed the next deadline: skip it, like the C++ loop
            overruns += 1
            k = int((time.perf_counter() - t0) / period) + 1
    lat = np.array(late) * 1e6
    per = np.array(periods) * 1e6
    return {"p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99)),
            "max_us": float(lat.max()), "period_p50_us": float(np.percentile(per, 50)),
            "period_p99_us": float(np.percentile(per, 99)), "overrun_fraction": overruns / cycles,
            "cycles": cycles}


def bus_cycle(table: dict, duration: float) -> dict:
    model = load_servo_table("xm430_w350")
    with PtyServoChain(model, IDS, baud=1_000_000, wire_time=True) as chain:
        bus = rt.ServoBus(chain.port, 1_000_000, "dynamixel2", IDS, table, timeout_ms=10.0)
        tpu = model.ticks_per_rad
        loop = rt.ControlLoop(bus, rate_hz=200.0, limits=limits(6), ticks_per_unit=[tpu] * 6,
                              offset_ticks=[2048.0] * 6, watchdog_hold_ms=0.0, watchdog_off_ms=0.0)
        loop.start()
        time.sleep(duration)
        loop.stop()
        s = loop.stats()
        wire_bytes = s["wire_bytes_per_cycle"]
        wire_us = wire_bytes * 10.0  # 8N1 at 1 Mbps: 10 us per byte
        # The sync-write gets no reply: write() returns once the bytes are queued, but on a real wire they
        # still occupy the bus for their wire time before the next sync-read can go out. Count it.
        goal = table["goal_position"]
        write_us = (14 + len(IDS) * (1 + goal[1])) * 10.0
        cycle = s["work_p50_us"] + write_us
        return {"wire_bytes": wire_bytes, "wire_limit_us": wire_us, "host_cycle_p50_us": s["work_p50_us"],
                "host_cycle_p99_us": s["work_p99_us"], "cycle_p50_us": cycle, "cycle_over_wire_p50": cycle / wire_us,
                "bus_rtt_p50_us": s["rtt_p50_us"], "timeouts": s["timeouts"], "crc_errors": s["crc_errors"],
                "cycles": s["cycles"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per timing loop (each)")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--bus-duration", type=float, default=3.0, help="seconds per bus configuration")
    args = ap.parse_args()

    c = compiled_loop(args.rate, args.duration)
    p = python_loop(args.rate, args.duration)
    print(f"{f'loop @ {args.rate:g} Hz':<22}{'err p50 us':>11}{'p99 us':>10}{'max us':>10}{'overrun':>10}")
    for name, r in (("compiled (C++)", c), ("python time.sleep", p)):
        print(f"{name:<22}{r['p50_us']:>11.1f}{r['p99_us']:>10.1f}{r['max_us']:>10.1f}{r['overrun_fraction']:>10.4f}")
    ratio_p99 = p["p99_us"] / max(c["p99_us"], 1e-9)
    ratio_p50 = p["p50_us"] / max(c["p50_us"], 1e-9)
    print(f"python/compiled: p50 x{ratio_p50:.1f}  p99 x{ratio_p99:.1f}; "
          f"SCHED_FIFO granted: {c['sched_fifo']}  mlockall granted: {c['mlockall']}")

    model = load_servo_table("xm430_w350")
    full = model.host_table()
    pos_only = {k: full[k] for k in ("present_position", "goal_position", "torque_enable")}
    bus = {"pos_only": bus_cycle(pos_only, args.bus_duration), "pos_vel_cur": bus_cycle(full, args.bus_duration)}
    for name, b in bus.items():
        print(f"bus 6 servos {name:<12} {b['wire_bytes']} B -> wire limit {b['wire_limit_us']:.0f} us @ 1 Mbps; "
              f"cycle p50 {b['cycle_p50_us']:.0f} us (host {b['host_cycle_p50_us']:.0f} + write wire time, "
              f"host p99 {b['host_cycle_p99_us']:.0f} us) "
              f"(x{b['cycle_over_wire_p50']:.2f} of wire), timeouts {b['timeouts']}, crc {b['crc_errors']}")
    out = {"rate_hz": args.rate, "duration_s": args.duration, "compiled": c, "python": p,
           "ratio_p99": ratio_p99, "ratio_p50": ratio_p50, "sched_fifo": c["sched_fifo"], "mlockall": c["mlockall"],
           "bus": bus}
    print(json.dumps(out, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))


if __name__ == "__main__":
    main()
