"""The compiled loop's sleep-then-spin wait (`spin_us`): it runs, says so, costs what it says, and wakes
no later than plain sleeping does on the same machine at the same time.

Sleep and spin segments alternate (5 rounds of 0.4 s at 1 kHz each), so load from the other processes on
this machine falls on both alike. A segment's p99 is its 4th-latest wake-up, which one VM stall decides; the
p50 ordering is asserted on the median over 5 rounds, the p99 ordering on each mode's quietest round (the
median over rounds failed in CI when two of five spin segments each caught a stall) and only on a machine
that did not hold its CPUs meanwhile (quiet_machine.py). Bounds come from bench/rt_loop.py on this 2-core
VM (idle and with two busy processes, SCHED_FIFO granted): sleep p50 10-35 us / p99 25-140 us, spin p50 0.5 us / p99 0.5-20 us;
loop-thread CPU 1.3-2 % sleeping, 19-20 % spinning 200 us of every 1 ms. Only orderings with a wide
margin between those distributions are asserted, plus the CPU cost's upper bound, which follows from the
spin window itself (a thread can spin no longer than the window, plus ~2 % of work and syscalls).
CI once saw a spin segment whose sleeps overshot the 200 us window in >= 10 % of its cycles: a stretch in
which the hypervisor held the virtual CPU; that count is a tail bound too.
"""

from __future__ import annotations

import statistics
import time

import pytest
import robotlearn._rt as rt
from quiet_machine import on_a_quiet_machine

RATE = 1000.0
SPIN_US = 200.0
LIMITS = dict(lower=[-2.0] * 3, upper=[2.0] * 3, max_velocity=[3.0] * 3, max_effort=[4.0] * 3)


def run_segment(spin_us: float, seconds: float = 0.4) -> dict:
    loop = rt.ControlLoop(None, rate_hz=RATE, limits=rt.JointLimits(**LIMITS), watchdog_hold_ms=0.0,
                          watchdog_off_ms=0.0, spin_us=spin_us)
    loop.start()
    time.sleep(seconds)
    loop.stop()
    return loop.stats()


def test_spin_mode_runs_reports_itself_and_is_not_later_than_sleeping() -> None:
    on_a_quiet_machine(alternate_sleep_and_spin, tails_of_sleep_and_spin)


def alternate_sleep_and_spin() -> tuple[list[dict], list[dict]]:
    """Five rounds of a sleep and a spin segment; what holds on any machine is asserted here."""
    sleep, spin = [], []
    for _ in range(5):
        sleep.append(run_segment(0.0))
        spin.append(run_segment(SPIN_US))
    assert {s["wait_mode"] for s in sleep} == {"sleep"} and {s["wait_mode"] for s in spin} == {"sleep+spin"}
    assert all(s["spin_us"] == SPIN_US for s in spin)
    # Every period of a segment's run either ran or was counted as missed (a stall skips, never bursts).
    assert all(s["cycles"] > 0 and abs(s["cycles"] + s["missed_cycles"] - s["run_seconds"] * RATE) <= 2
               for s in sleep + spin), [(s["cycles"], s["missed_cycles"], s["run_seconds"]) for s in sleep + spin]
    p50 = [statistics.median(s["latency_p50_us"] for s in mode) for mode in (spin, sleep)]
    assert p50[0] <= p50[1], p50
    # CPU: the spin window costs about SPIN_US * RATE per second, and never more than that plus the work.
    cpu_spin = [s["cpu_fraction"] for s in spin]
    cpu_sleep = [s["cpu_fraction"] for s in sleep]
    assert max(cpu_spin) < SPIN_US * 1e-6 * RATE + 0.05
    assert statistics.median(cpu_spin) > 2 * statistics.median(cpu_sleep)
    assert all(s["late_wakes"] >= 0 for s in spin)
    return sleep, spin


def tails_of_sleep_and_spin(segments: tuple[list[dict], list[dict]]) -> None:
    """p99 on the least disturbed segment of each mode: a segment's p99 is its 4th-latest wake-up, and one
    VM hold (which neither mode can prevent) sets it; CI once saw two of five spin segments catch one."""
    sleep, spin = segments
    # CI once saw a segment run <= 300 of its 400 periods: the machine held the loop's CPU for > 0.1 s.
    assert all(s["cycles"] > 300 for s in sleep + spin), [s["cycles"] for s in sleep + spin]
    p99 = [min(s["latency_p99_us"] for s in mode) for mode in (spin, sleep)]
    assert p99[0] <= p99[1], (p99, [s["latency_p99_us"] for s in spin + sleep])
    # late_wakes counts the cycles whose sleep overshot the whole spin window: rare, but a count, not a flag
    assert all(s["late_wakes"] < s["cycles"] / 10 for s in spin), [s["late_wakes"] for s in spin]


def test_spin_window_must_fit_in_a_period() -> None:
    with pytest.raises(ValueError, match="spin_us must be >= 0 and shorter than one period"):
        rt.ControlLoop(None, rate_hz=RATE, limits=rt.JointLimits(**LIMITS), spin_us=1000.0)
    with pytest.raises(ValueError, match="spin_us"):
        rt.ControlLoop(None, rate_hz=RATE, limits=rt.JointLimits(**LIMITS), spin_us=-1.0)


def test_hardware_config_carries_the_spin_window() -> None:
    from robotlearn.core.config import ConfigError
    from robotlearn.hardware.calibration import load_hardware_config

    assert load_hardware_config("arm6_emulated").spin_us == 100.0
    with pytest.raises(ConfigError, match="spin_us .* must be shorter than one loop period"):
        load_hardware_config("arm6_emulated", ["spin_us=2000"])
