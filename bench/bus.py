"""The emulated servo bus as an independent host sees it, idle and under a synthetic CPU load.

    python bench/bus.py [--reads 10000] [--sync-reads 2000] [--segments 5] [--physics-s 60] [--physics-rounds 1]
                        [--physics-cameras on|off|both]

Device: `robotlearn emulate arm` (Dynamixel 2.0 at the config's 4 Mbps, MuJoCo physics, no reality gap)
in its own process, its device side compiled (`_rt.ServoEmulator`). The old Python device side is gone,
so the baseline is the wire time the same bytes need at the emulated baud (8N1, 10 bits per byte).

1. Independent host: `dynamixel-sdk` (PortHandler / PacketHandler, pure Python) in this process:
   single-register read (READ of present_position, 4 bytes; `--reads` per condition, timeouts counted)
   and group sync read of present_position from all 7 servos (`--sync-reads`). The SDK busy-polls the
   port, so what it measures includes its own scheduling: `--host-nice` (default -20) says how much CPU
   it gets against the hogs; the device's own view (reply lateness against the wire schedule) is
   reported next to it.
2. Production host: `_rt.ServoBus` bus cycle for 6 servos reading position + velocity + current (one sync
   read of the contiguous span the arm backend reads) plus the goal sync write, against its wire time.
3. Physics: `--physics-rounds` runs of `--physics-s` with cameras on (10 fps; `--physics-cameras both`
   alternates on and off in each round) and the compiled 500 Hz host loop driving all 7 servos, under load;
   the emulator's own physics-lag histogram against the host's control period, where a late tick's time
   went (the tick's work, the device thread's waits, parsing), and how long the machine held a CPU from a
   top-priority probe thread meanwhile (robotlearn.core.stall_probe: the floor no user-space thread beats).

Conditions alternate in `--segments` short segments (idle, load, idle, load, ...), so a change of the
machine's background load hits both; "load" is two CPU-bound helper processes this script starts and
stops around each load segment. Percentiles are over all samples of a condition; the spread is the
range of per-segment p99s. The last line is one JSON object (with load average and steal time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dynamixel_sdk as dxl
import numpy as np
import robotlearn._rt as rt

from robotlearn.core.stall_probe import StallProbes
from robotlearn.hardware.calibration import load_hardware_config
from robotlearn.hardware.scene_oracle import read_emulator_info
from robotlearn.hardware.servo_tables import load_servo_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import CpuHogs, MachineSample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ADDR_PRESENT = 132  # XM430 e-Manual, independent of our YAML
IDS = list(range(1, 8))


class Emulator:
    """`robotlearn emulate arm` in its own process (as users run it); stopped with SIGTERM."""

    def __init__(self, link: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.link = link
        self.proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.main", "emulate", "arm", "--link",
                                      str(link), "--gap", "reality_gap_none", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.info = read_emulator_info(link, timeout_s=60.0)

    def timing(self) -> dict:
        time.sleep(1.1)  # the announcement's timing is refreshed every second
        return read_emulator_info(self.link)["timing"]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return out


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def summary(samples_us: list[float], seg_p99: list[float], wire_us: float, timeouts: int = 0) -> dict:
    return {"n": len(samples_us), "timeouts": timeouts, "p50_us": pct(samples_us, 50), "p99_us": pct(samples_us, 99),
            "p999_us": pct(samples_us, 99.9), "max_us": max(samples_us) if samples_us else float("nan"),
            "p99_spread_us": [min(seg_p99), max(seg_p99)] if seg_p99 else [], "wire_us": wire_us,
            "p50_over_wire": pct(samples_us, 50) / wire_us}


def sdk_segment(link: Path, baud: int, reads: int, sync_reads: int, nice: int, fifo: int) -> tuple[list, int, list, int]:
    old_nice = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, nice)  # this thread only (Linux); hogs and emulator keep theirs
    if fifo:  # below the emulator's device thread (90) and the compiled control loop (80)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))
    port = dxl.PortHandler(str(link))
    assert port.openPort() and port.setBaudRate(baud)
    ph = dxl.PacketHandler(2.0)
    group = dxl.GroupSyncRead(port, ph, ADDR_PRESENT, 4)
    for sid in IDS:
        group.addParam(sid)
    single, sync = [], []
    t_single = t_sync = 0
    try:
        for k in range(reads):
            t0 = time.perf_counter()
            _, comm, _ = ph.read4ByteTxRx(port, 1 + k % 7, ADDR_PRESENT)
            dt = time.perf_counter() - t0
            if comm == dxl.COMM_SUCCESS:
                single.append(dt * 1e6)
            else:
                t_single += 1
        for _ in range(sync_reads):
            t0 = time.perf_counter()
            comm = group.txRxPacket()
            dt = time.perf_counter() - t0
            if comm == dxl.COMM_SUCCESS:
                sync.append(dt * 1e6)
            else:
                t_sync += 1
    finally:
        port.closePort()
        if fifo:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, old_nice)
    return single, t_single, sync, t_sync


def bus_cycle_segment(link: Path, baud: int, cycles: int) -> tuple[list, dict]:
    table = load_servo_table("xm430_w350").host_table()
    bus = rt.ServoBus(str(link), baud, "dynamixel2", IDS[:6], table, timeout_ms=20.0)
    try:
        goals = [2048] * 6
        out = []
        for _ in range(cycles):
            t0 = time.perf_counter()
            bus.read_state()
            bus.write_goal(goals)
            out.append((time.perf_counter() - t0) * 1e6)
        return out, bus.stats()
    finally:
        bus.close()


def physics_run(link: Path, seconds: float, baud: int, load: bool, cameras: bool = True) -> dict:
    """The compiled host loop at 500 Hz on all 7 servos, for `seconds`; the emulator's lag."""
    emu = Emulator(link, *(("--cameras", "scene", "--camera-fps", "10") if cameras else ("--cameras", "none")))
    try:
        hw = load_hardware_config("arm6_emulated")
        bus = rt.ServoBus(str(link), baud, "dynamixel2", IDS, load_servo_table(hw.servo_model).host_table(),
                          timeout_ms=hw.timeout_ms)
        cal = hw.calibration.servos
        n = len(cal)
        loop = rt.ControlLoop(bus, rate_hz=hw.rate_hz, limits=rt.JointLimits([-1.0] * n, [1.0] * n, [2.0] * n,
                                                                             [10.0] * n),
                              ticks_per_unit=[c.ticks_per_unit for c in cal], offset_ticks=[c.offset for c in cal],
                              sign=[c.sign for c in cal], watchdog_hold_ms=0.0, watchdog_off_ms=0.0)
        before = emu.timing()
        probes = StallProbes()  # what the machine itself did to a top-priority thread meanwhile
        with CpuHogs(2 if load else 0), probes:
            loop.start()
            t_end = time.monotonic() + seconds
            rng = np.random.default_rng(0)
            while time.monotonic() < t_end:
                loop.set_target(rng.uniform(-0.3, 0.3, n) * np.array([1, 1, 1, 1, 1, 1, 0.02]))
                time.sleep(0.1)
            loop.stop()
            after = emu.timing()
        s = loop.stats()
        period_us = 1e6 / hw.rate_hz
        lag = after["physics_lag_us"]
        return {"seconds": seconds, "load": load, "cameras": cameras, "control_period_us": period_us, "physics_tick_us":
                after["physics_tick_s"] * 1e6, "lag_p50_us": lag["p50_us"], "lag_p99_us": lag["p99_us"],
                "lag_max_us": lag["max_us"], "ticks": after["physics_steps"] - before["physics_steps"],
                "late_ticks": after["physics_late"] - before["physics_late"], "resyncs": after["physics_resyncs"],
                "lag_max_over_period": lag["max_us"] / period_us, "host_timeouts": bus.stats()["timeouts"],
                "host_cycles": s["cycles"], "sched_fifo": after["sched_fifo"],
                "reply_latency_p99_us": after["reply_latency_us"]["p99_us"],
                "reply_lateness_p99_us": after["reply_lateness_us"]["p99_us"],
                # where a late tick's time went: the tick's own work, or the thread's wait for the pty
                "physics_work_max_us": after["physics_work_us"]["max_us"],
                "wait_excess_max_us": after["wait_excess_us"]["max_us"], "serve_work_max_us": after["serve_work_us"]["max_us"],
                "machine_hold_max_us": 1e6 * probes.report.max_late_s, "machine_held_ms": 1e3 * probes.report.stalled_s}
    finally:
        emu.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reads", type=int, default=10000, help="single-register reads per condition")
    ap.add_argument("--sync-reads", type=int, default=2000, help="7-servo sync reads per condition")
    ap.add_argument("--cycles", type=int, default=2000, help="production bus cycles per condition")
    ap.add_argument("--segments", type=int, default=5, help="alternating idle/load segments per condition")
    ap.add_argument("--physics-s", type=float, default=60.0, help="length of each physics run (0: skip)")
    ap.add_argument("--physics-rounds", type=int, default=1, help="physics runs per camera setting")
    ap.add_argument("--physics-cameras", choices=("on", "off", "both"), default="on",
                    help="cameras during the physics runs; both: alternate on and off within each round")
    ap.add_argument("--host-nice", type=int, default=-20,
                    help="niceness of the dynamixel-sdk host while it measures (-20: a host given the CPU it needs, "
                         "as a robot computer's bus process would be; 0: an ordinary process competing with the hogs)")
    ap.add_argument("--host-fifo", type=int, default=0,
                    help="SCHED_FIFO priority for the dynamixel-sdk host while it measures (0: none), as a real-time "
                         "host process would run")
    args = ap.parse_args()
    hw = load_hardware_config("arm6_emulated")
    baud = hw.baud
    wire = lambda nbytes: nbytes * 10 / baud * 1e6  # noqa: E731
    single_wire = wire(14 + 15)          # READ instruction + status with 4 data bytes
    sync_wire = wire(14 + 7 + 7 * 15)    # SYNC READ for 7 ids + 7 status packets
    machine = MachineSample()
    res: dict[str, dict] = {c: {"single": [], "single_to": 0, "sync": [], "sync_to": 0, "cycle": [],
                                "single_p99": [], "sync_p99": [], "cycle_p99": []} for c in ("idle", "load")}
    cycle_wire = None
    with tempfile.TemporaryDirectory(prefix="rl-bench-bus-") as tmp:
        link = Path(tmp) / "arm"
        emu = Emulator(link, "--cameras", "none")
        try:
            for seg in range(args.segments):
                for cond in ("idle", "load"):
                    ctx = CpuHogs(2 if cond == "load" else 0)
                    with ctx:
                        single, t1, sync, t2 = sdk_segment(link, baud, args.reads // args.segments,
                                                           args.sync_reads // args.segments, args.host_nice, args.host_fifo)
                        cycle, bstats = bus_cycle_segment(link, baud, args.cycles // args.segments)
                    r = res[cond]
                    r["single"] += single
                    r["sync"] += sync
                    r["cycle"] += cycle
                    r["single_to"] += t1
                    r["sync_to"] += t2
                    r["single_p99"].append(pct(single, 99))
                    r["sync_p99"].append(pct(sync, 99))
                    r["cycle_p99"].append(pct(cycle, 99))
                    cycle_wire = wire(bstats["wire_bytes_per_cycle"])
                    print(f"segment {seg} {cond:4s}: single p50 {pct(single, 50):6.0f} p99 {pct(single, 99):6.0f} us "
                          f"({t1} timeouts); sync7 p99 {pct(sync, 99):6.0f} us; bus cycle p50 {pct(cycle, 50):5.0f} us",
                          flush=True)
            device = emu.timing()
        finally:
            out = emu.stop()
        timing_line = next((ln for ln in out.splitlines() if ln.startswith("emulator timing")), "")
        physics: list[dict] = []
        settings = {"on": (True,), "off": (False,), "both": (True, False)}[args.physics_cameras]
        for _ in range(args.physics_rounds if args.physics_s > 0 else 0):
            for cameras in settings:
                run = physics_run(link, args.physics_s, baud, load=True, cameras=cameras)
                physics.append(run)
                print(f"physics run ({args.physics_s:.0f} s, cameras {'on' if cameras else 'off'}, 2 hogs): lag p99 "
                      f"{run['lag_p99_us']:.0f} us max {run['lag_max_us']:.0f} us vs control period "
                      f"{run['control_period_us']:.0f} us; {run['late_ticks']}/{run['ticks']} ticks late; waits over "
                      f"by up to {run['wait_excess_max_us']:.0f} us, tick work max {run['physics_work_max_us']:.0f} us; "
                      f"host timeouts {run['host_timeouts']}; the machine held a top-priority probe up to "
                      f"{run['machine_hold_max_us']:.0f} us", flush=True)
    machine.finish()
    result = {"bench": "bus", "baud": baud, "host_nice": args.host_nice, "host_fifo": args.host_fifo, "device": "compiled (_rt.ServoEmulator)", "old_device": "removed",
              "device_timing": {"reply_latency_us": device["reply_latency_us"],
                                "reply_lateness_us": device["reply_lateness_us"], "sched_fifo": device["sched_fifo"]},
              "physics": physics}
    for cond, r in res.items():
        result[cond] = {"single_read": summary(r["single"], r["single_p99"], single_wire, r["single_to"]),
                        "sync_read_7": summary(r["sync"], r["sync_p99"], sync_wire, r["sync_to"]),
                        "bus_cycle_6_pos_vel_cur": summary(r["cycle"], r["cycle_p99"], cycle_wire)}
        s, y, c = (result[cond][k] for k in ("single_read", "sync_read_7", "bus_cycle_6_pos_vel_cur"))
        print(f"{cond:4s}: single read p50 {s['p50_us']:.0f} p99 {s['p99_us']:.0f} max {s['max_us']:.0f} us, "
              f"{s['timeouts']} timeouts in {s['n'] + s['timeouts']} (wire {single_wire:.0f} us); sync7 p99 "
              f"{y['p99_us']:.0f} us (wire {sync_wire:.0f} us); bus cycle p50 {c['p50_us']:.0f} us = "
              f"{c['p50_over_wire']:.2f}x wire ({cycle_wire:.0f} us)")
    print(timing_line)
    result["loadavg_start"], result["loadavg_end"] = machine.loadavg_start, machine.loadavg_end
    result["steal_fraction"] = machine.steal_fraction
    print(json.dumps(result))


if __name__ == "__main__":
    main()
