"""The emulated arm keeps real time and says so: measured on an emulator of its own, with cameras on at
10 fps and the production 500 Hz loop as its host (the scripted pick-place expert, camera perception on).

Each attempt starts a fresh emulator, so its announced timing covers exactly that attempt's window; a
window in which the machine held the CPUs is measured again (quiet_machine.py). The medians and the
physics tick's own compute time are asserted in every window: a hold of the VM moves neither. Bounds from
bench/bus.py's distributions on this VM: physics lag p99 0.16-0.95 ms idle to two CPU hogs (one 60 s run
under heavy outside load: 2.7 ms, reported there), reply lateness p99 8-18 us, p99.9 18-61 us; so one
host period (2 ms, the requirement itself) and 250 us.
"""

from __future__ import annotations

import time

from arm_emulator import Emulator, make_real, success_rate
from quiet_machine import on_a_quiet_machine

from robotlearn.hardware.scene_oracle import read_emulator_info

HOST_PERIOD_US = 1e6 / 500.0  # configs/hardware/arm6_emulated.yaml rate_hz


def emulator_window(tmp_path) -> dict:
    """Timing announced by an emulator after two expert episodes through the production driver."""
    link = tmp_path / f"arm-{time.monotonic_ns()}"
    emu = Emulator(link, "--cameras", "scene", "--camera-fps", "10")
    try:
        env = make_real("ArmPickPlace-v0", link)
        try:
            success_rate(env, range(2))
        finally:
            env.close()
        time.sleep(1.1)  # the announcement's timing is refreshed every second
        return read_emulator_info(link)["timing"]
    finally:
        emu.stop()
        assert emu.proc.returncode == 0


def test_emulator_keeps_real_time_and_announces_its_timing(tmp_path):
    def measure() -> dict:
        """One window; what the emulator's own code decides holds on any machine."""
        t = emulator_window(tmp_path)
        print("emulator timing:", {k: t[k] for k in ("reply_lateness_us", "reply_latency_us", "physics_lag_us",
                                                      "physics_work_us", "serve_work_us", "steal_fraction")})
        tick_us = 1e6 * t["physics_tick_s"]
        assert 0.0 <= t["steal_fraction"] < 1.0
        assert t["sched_fifo"] and t["reply_latency_us"]["count"] > 1000 and t["physics_steps"] > 1000
        assert t["wall_time_s"] - t["physics_time_s"] - t["resync_time_s"] < 2 * t["physics_tick_s"]
        assert t["physics_work_us"]["p99_us"] < tick_us / 2, t["physics_work_us"]  # a tick's own compute
        assert t["physics_lag_us"]["p50_us"] < tick_us / 2, t["physics_lag_us"]
        assert t["reply_lateness_us"]["p50_us"] < 50, t["reply_lateness_us"]
        assert t["reply_latency_us"]["p50_us"] < 1000  # wire time at 4 Mbps plus scheduling
        return t

    def bounds(t: dict) -> None:
        assert t["physics_lag_us"]["p99_us"] < HOST_PERIOD_US, t["physics_lag_us"]
        assert t["reply_lateness_us"]["p99_us"] < 250, t["reply_lateness_us"]

    on_a_quiet_machine(measure, bounds)
