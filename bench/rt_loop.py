"""Compiled servo loop vs a pure-Python loop, and the servo-bus cycle against its wire-time limit.

    python bench/rt_loop.py [--segment 1] [--repeats 5] [--rate 1000] [--spin-us 200] [--hogs 2] [--bus-duration 3]

1. Timing, three variants of one fixed-rate loop on absolute deadlines (bus=None, so only the loop's own
   timing is measured): `_rt.ControlLoop` sleeping to each deadline (clock_nanosleep), `_rt.ControlLoop`
   sleeping to `--spin-us` before it and spinning the rest (`spin_us`), the sleeping one again with a 0 us
   CPU latency request held (`compiled_sleep_qos`: idle CPUs poll instead of halting, core/cpu_latency.py),
   all SCHED_FIFO + mlockall when granted, and a Python loop doing `time.sleep` to the same deadlines. The variants run in short
   alternating segments (`--segment` s each, sleep -> spin -> sleep+qos -> python, `--repeats` rounds), so a change in
   the machine's load hits all of them alike; this is done twice, idle and with `--hogs` busy-loop
   processes started by this script. Lateness = wake time - deadline; an overrun is a cycle that ends
   after the next deadline (which is then skipped, never burst). Per segment: p50/p99/max lateness and
   the loop thread's CPU use per second; reported as median [min, max] over the rounds. Ratios are
   Python / compiled p99 of the same round. Other agents share this machine: the load average and the
   steal time of each condition are in the JSON.
2. Bus: 6 Dynamixel XM430 servos on a pty (tests/rt_device.py) that holds every reply until the instruction
   and the reply would have crossed a 1 Mbps wire (a pty has no baud), with the return delay the emulated
   arm's hardware config sets (0 us; the factory 500 us per servo tripled this figure). The compiled loop at 200 Hz does one
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

from robotlearn.core.cpu_latency import CpuLatencyRequest
from robotlearn.hardware.calibration import load_hardware_config
from robotlearn.hardware.servo_tables import load_servo_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import CpuHogs, MachineSample, spread  # noqa: E402
from rt_device import PtyServoChain  # noqa: E402  (the pty servo chain the driver tests use)

IDS = [1, 2, 3, 4, 5, 6]
VARIANTS = ("compiled_sleep", "compiled_spin", "compiled_sleep_qos", "python")


def limits(n: int) -> rt.JointLimits:
    return rt.JointLimits([-3.0] * n, [3.0] * n, [5.0] * n, [5.0] * n)


def compiled_loop(rate: float, duration: float, spin_us: float = 0.0) -> dict:
    loop = rt.ControlLoop(None, rate_hz=rate, limits=limits(6), watchdog_hold_ms=0.0, watchdog_off_ms=0.0,
                          spin_us=spin_us)
    loop.start()
    time.sleep(duration)
    loop.stop()
    s = loop.stats()
    return {"p50_us": s["latency_p50_us"], "p99_us": s["latency_p99_us"], "max_us": s["latency_max_us"],
            "overrun_fraction": s["overrun_fraction"], "cycles": s["cycles"], "cpu_fraction": s["cpu_fraction"],
            "late_wakes": s["late_wakes"], "wait_mode": s["wait_mode"],
            "sched_fifo": s["sched_fifo"], "mlockall": s["mlockall"]}


def python_loop(rate: float, duration: float) -> dict:
    period = 1.0 / rate
    late = []
    overruns = cycles = 0
    t0 = time.perf_counter() + period
    cpu0 = time.thread_time()
    k = 0
    end = t0 + duration
    while True:
        deadline = t0 + k * period
        if deadline > end:
            break
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        late.append(time.perf_counter() - deadline)
        cycles += 1
        k += 1
        if time.perf_counter() > t0 + k * period:  # missed the next deadline: skip it, like the C++ loop
            overruns += 1
            k = int((time.perf_counter() - t0) / period) + 1
    cpu = time.thread_time() - cpu0
    lat = np.array(late) * 1e6
    return {"p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99)),
            "max_us": float(lat.max()), "overrun_fraction": overruns / cycles, "cycles": cycles,
            "cpu_fraction": cpu / duration}


def timing_condition(rate: float, segment: float, repeats: int, spin_us: float, hogs: int) -> dict:
    """`repeats` rounds of sleep / spin / python segments, with `hogs` busy processes running."""
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with CpuHogs(hogs):
        machine = MachineSample()
        for _ in range(repeats):
            runs["compiled_sleep"].append(compiled_loop(rate, segment))
            runs["compiled_spin"].append(compiled_loop(rate, segment, spin_us))
            with CpuLatencyRequest(0) as qos:
                runs["compiled_sleep_qos"].append({**compiled_loop(rate, segment), "qos_held": qos.held})
            runs["python"].append(python_loop(rate, segment))
        machine.finish()
    out = {"hogs": hogs, "machine": machine.as_dict()}
    for v, rs in runs.items():
        out[v] = {k: spread(r[k] for r in rs) for k in ("p50_us", "p99_us", "max_us", "overrun_fraction",
                                                      "cpu_fraction")}
        if v != "python":
            out[v]["late_wakes"] = spread(r["late_wakes"] for r in rs)
            out[v]["wait_mode"] = rs[0]["wait_mode"]
            out[v]["sched_fifo"] = all(r["sched_fifo"] for r in rs)
            out[v]["mlockall"] = all(r["mlockall"] for r in rs)
    out["compiled_sleep_qos"]["qos_held"] = all(r["qos_held"] for r in runs["compiled_sleep_qos"])
    for v in ("compiled_sleep", "compiled_spin", "compiled_sleep_qos"):
        out[f"python_over_{v}_p99"] = spread(p["p99_us"] / max(c["p99_us"], 0.5)  # 1 us histogram bins
                                             for p, c in zip(runs["python"], runs[v], strict=True))
    return out


def bus_cycle(table: dict, duration: float) -> dict:
    model = load_servo_table("xm430_w350")
    # The servos' return delay as the emulated arm's hardware config sets it (a sync-read setup sets 0; the
    # factory 500 us per servo would add 3 ms to a 6-servo read that no host can win back).
    return_delay_us = load_hardware_config("arm6_emulated").return_delay_us
    with PtyServoChain(model, IDS, baud=1_000_000, wire_time=True,
                       eeprom={"return_delay_time": return_delay_us // 2}) as chain:
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
        return {"return_delay_us": return_delay_us, "wire_bytes": wire_bytes, "wire_limit_us": wire_us,
                "host_cycle_p50_us": s["work_p50_us"],
                "host_cycle_p99_us": s["work_p99_us"], "cycle_p50_us": cycle, "cycle_over_wire_p50": cycle / wire_us,
                "bus_rtt_p50_us": s["rtt_p50_us"], "timeouts": s["timeouts"], "crc_errors": s["crc_errors"],
                "cycles": s["cycles"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment", type=float, default=1.0, help="seconds per variant per round")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per condition (>= 3)")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--spin-us", type=float, default=200.0, help="spin window of the compiled_spin variant")
    ap.add_argument("--hogs", type=int, default=2, help="busy-loop processes of the loaded condition")
    ap.add_argument("--bus-duration", type=float, default=3.0, help="seconds per bus configuration")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (a spread needs repetitions)")

    timing = {name: timing_condition(args.rate, args.segment, args.repeats, args.spin_us, hogs)
              for name, hogs in (("idle", 0), ("load", args.hogs))}
    print(f"loop @ {args.rate:g} Hz, {args.repeats} x {args.segment:g} s interleaved segments per variant; "
          "median [min, max] over rounds")
    for name, t in timing.items():
        m = t["machine"]
        print(f"-- {name}: {t['hogs']} busy processes; loadavg {m['loadavg_start'][0]:.2f} -> "
              f"{m['loadavg_end'][0]:.2f}, steal {100 * m['steal_fraction']:.1f} %, cpu busy "
              f"{100 * m['cpu_busy_fraction']:.0f} %")
        print(f"   {'variant':<16}{'p50 us':>18}{'p99 us':>24}{'max us':>24}{'cpu/s':>8}")
        for v in VARIANTS:
            r = t[v]

            def cell(key: str, width: int, r=r) -> str:
                x = r[key]
                return f"{x['median']:.1f} [{x['min']:.1f}, {x['max']:.1f}]".rjust(width)
            print(f"   {v:<16}{cell('p50_us', 18)}{cell('p99_us', 24)}{cell('max_us', 24)}"
                  f"{100 * r['cpu_fraction']['median']:>7.1f}%")
        for v in ("compiled_sleep", "compiled_spin", "compiled_sleep_qos"):
            x = t[f"python_over_{v}_p99"]
            print(f"   python / {v} p99: x{x['median']:.1f} [{x['min']:.1f}, {x['max']:.1f}]")
    fifo = timing["idle"]["compiled_sleep"]["sched_fifo"]
    mlock = timing["idle"]["compiled_sleep"]["mlockall"]
    print(f"SCHED_FIFO granted: {fifo}  mlockall granted: {mlock}")

    model = load_servo_table("xm430_w350")
    full = model.host_table()
    pos_only = {k: full[k] for k in ("present_position", "goal_position", "torque_enable")}
    bus = {"pos_only": bus_cycle(pos_only, args.bus_duration), "pos_vel_cur": bus_cycle(full, args.bus_duration)}
    for name, b in bus.items():
        print(f"bus 6 servos {name:<12} {b['wire_bytes']} B -> wire limit {b['wire_limit_us']:.0f} us @ 1 Mbps; "
              f"cycle p50 {b['cycle_p50_us']:.0f} us (host {b['host_cycle_p50_us']:.0f} + write wire time, "
              f"host p99 {b['host_cycle_p99_us']:.0f} us) "
              f"(x{b['cycle_over_wire_p50']:.2f} of wire), timeouts {b['timeouts']}, crc {b['crc_errors']}")
    out = {"rate_hz": args.rate, "segment_s": args.segment, "repeats": args.repeats, "spin_us": args.spin_us,
           "timing": timing, "sched_fifo": fifo, "mlockall": mlock, "bus": bus,
           "loadavg": timing["load"]["machine"]["loadavg_end"],
           "steal_fraction": {k: t["machine"]["steal_fraction"] for k, t in timing.items()}}
    print(json.dumps(out, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))


if __name__ == "__main__":
    main()
