"""The compiled ControlLoop: timing, sim/real setpoint equivalence, and each safety function.

Every safety test drives the loop into the situation the safety exists for and checks the bus traffic
the servos received, so removing that safety from the loop makes the test fail.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass

import numpy as np
import pytest
import robotlearn._rt as rt
from quiet_machine import on_a_quiet_machine
from rt_device import PtyServoChain, eventually

from robotlearn.hardware.servo_tables import load_servo_table

N = 3
TPU = 4096 / (2 * math.pi)
SIGN = [1, -1, 1]
RATE = 250.0
LIMITS = dict(lower=[-2.0] * N, upper=[2.0] * N, max_velocity=[3.0] * N, max_effort=[4.0] * N)


@pytest.fixture
def chain():
    with PtyServoChain(load_servo_table("xm430_w350"), list(range(1, N + 1))) as c:
        yield c


def make_loop(chain: PtyServoChain | None, **kw) -> rt.ControlLoop:
    bus = None
    if chain is not None:
        # 20 ms: round trips to the compiled test device measured max 3.1 ms (loop thread) / 4.0 ms (Python
        # caller) with two CPU hogs; this VM also stalls 10-40 ms at times under heavy outside load.
        bus = rt.ServoBus(chain.port, 1_000_000, "dynamixel2", chain.ids, chain.table.host_table(), timeout_ms=20.0)
    args = dict(rate_hz=RATE, limits=rt.JointLimits(**LIMITS), interpolation=rt.Interpolation.MIN_JERK,
                target_duration_s=0.1, ticks_per_unit=[TPU] * N, offset_ticks=[2048.0] * N, sign=SIGN,
                watchdog_hold_ms=2000.0, watchdog_off_ms=0.0, record_setpoints=20000)
    args.update(kw)
    return rt.ControlLoop(bus, **args)


def run_for(loop: rt.ControlLoop, seconds: float) -> int:
    c = loop.wait_cycle(-1, 1.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c = loop.wait_cycle(c, 1.0)
    return c


def raw_goal(chain: PtyServoChain, sid: int) -> int:
    return chain.get(sid, "goal_position")


def _os_realtime_view() -> tuple[int, int]:
    """(threads of this process under SCHED_FIFO, locked memory in kB) as the kernel reports them."""
    fifo = 0
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on; policy is field 41
        fifo += int(fields[41 - 3]) == os.SCHED_FIFO
    with open("/proc/self/status") as f:
        locked_kb = next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))
    return fifo, locked_kb


def test_timing_only_loop_holds_its_period() -> None:
    loop = make_loop(None, rate_hz=500.0)
    loop.start()
    try:
        run_for(loop, 0.3)
        fifo_threads, locked_kb = _os_realtime_view()
        run_for(loop, 0.3)
    finally:
        loop.stop()
    s = loop.stats()
    assert s["cycles"] > 200
    assert 1900 < s["period_p50_us"] < 2100
    assert s["overrun_fraction"] < 0.15  # this VM stalls for ms at times; bench/rt_loop.py measures the real figure
    # The loop's report agrees with the kernel: its thread ran SCHED_FIFO, memory was locked (when granted).
    assert s["sched_fifo"] is (fifo_threads == 1) and s["mlockall"] is (locked_kb > 0), (s, fifo_threads, locked_kb)
    assert _os_realtime_view() == (0, 0)  # both released when the loop stops
    plain = make_loop(None, rate_hz=500.0, realtime=False)
    plain.start()
    try:
        run_for(plain, 0.1)
        assert _os_realtime_view() == (0, 0)
    finally:
        plain.stop()
    assert plain.stats()["sched_fifo"] is False and plain.stats()["mlockall"] is False


def test_state_and_wait_cycle(chain: PtyServoChain) -> None:
    chain.set(2, "present_position", 2048 + 100)
    loop = make_loop(chain)
    loop.start()
    try:
        c0 = loop.wait_cycle(-1, 1.0)
        c1 = loop.wait_cycle(c0, 1.0)
        assert c1 > c0 >= 0
        st = loop.state()
        assert set(st) >= {"position", "velocity", "effort", "timestamp", "cycle"}
        assert st["position"][1] == pytest.approx(-100 / TPU, abs=2 / TPU)  # sign -1
        assert abs(st["timestamp"] - time.monotonic()) < 0.5  # CLOCK_MONOTONIC, like time.monotonic
        assert chain.get(1, "torque_enable") == 1  # start() turned torque on
    finally:
        loop.stop()
        loop.stop()  # idempotent
    assert not loop.running and loop.fault is None
    assert eventually(lambda: all(chain.get(i, "torque_enable") == 0 for i in chain.ids))  # torque off on stop


@dataclass
class Stream:
    got: np.ndarray  # the goals each servo received, one row per cycle that ran (raw ticks)
    expected: np.ndarray  # the sim drive's setpoints at those cycles, in ticks
    clean: np.ndarray  # rows the comparison holds for: no skip since the stream last met the replay
    cycles: np.ndarray
    t_rx: np.ndarray
    skips: int


def _stream_the_targets() -> Stream:
    """12 targets through the loop over a fresh chain, and the sim drive's replay of the same targets
    applied at the same cycles."""
    with PtyServoChain(load_servo_table("xm430_w350"), list(range(1, N + 1))) as chain:
        loop = make_loop(chain)
        loop.start()
        rng = np.random.default_rng(0)
        try:
            c = loop.wait_cycle(-1, 1.0)
            for k in range(12):
                assert loop.set_target(rng.uniform(-0.8, 0.8, N) if k % 2 else rng.uniform(-0.05, 0.05, N))
                for _ in range(int(rng.integers(10, 30))):
                    c = loop.wait_cycle(c, 1.0)
        finally:
            loop.stop()
        t_rx, received = chain.device.goal_log()
    rec = loop.setpoints  # used for *when* each target was applied and which cycles ran, not for values
    # One sync-write per cycle that ran, after the start-up write of the measured pose.
    assert len(received) == 1 + len(rec["cycle"]) and len(rec["target_cycle"]) == 12
    assert np.array_equal(received[0], _ticks(np.asarray(rec["initial_position"])))
    drive = rt.JointDrive(rt.JointLimits(**LIMITS), [1.0] * N, [0.0] * N, rt.Interpolation.MIN_JERK, rec["dt"])
    drive.reset(rec["initial_position"])
    sim = {}
    j, zeros = 0, np.zeros(N)
    for k in range(int(rec["cycle"][-1]) + 1):
        while j < len(rec["target_cycle"]) and rec["target_cycle"][j] == k:
            drive.set_target(rec["target"][j], rec["target_duration"])
            j += 1
        drive.compute(zeros, zeros)
        sim[k] = drive.setpoint
    cycles = np.asarray(rec["cycle"])
    expected = _ticks(np.array([sim[int(k)] for k in cycles]))
    got = received[1:].astype(np.float64)
    # The replay runs every cycle; a loop that overran skipped some (never bursts), and one velocity-clamped
    # step over two periods can land where two one-period steps do not, until the clamp lets go and both
    # follow the same interpolated setpoint again. So the stream must equal the replay except from a skipped
    # cycle up to the first cycle at which they meet again.
    skipped_before = np.concatenate([[False], np.diff(cycles) > 1])
    met = np.all(got == expected, axis=1)
    clean = np.ones(len(got), dtype=bool)
    for i in range(1, len(got)):
        clean[i] = not skipped_before[i] and (clean[i - 1] or met[i])
    return Stream(got, expected, clean, cycles, np.asarray(t_rx), int(skipped_before.sum()))


def _ticks(q: np.ndarray) -> np.ndarray:
    return np.rint(2048.0 + np.array(SIGN) * q * TPU)


def _most_of_the_stream_compared(stream: Stream) -> None:
    """How much of the stream a comparison covers depends on how often the machine made the loop skip."""
    assert stream.clean.mean() > 0.5, f"after {stream.skips} skips the stream never met the replay again"


def test_servos_receive_the_sim_drives_setpoint_stream() -> None:
    """The goals the servos received (the device's own log, in raw ticks) are the setpoints a sim's
    JointDrive makes from the same targets applied at the same cycles, and they respect max_velocity.

    Targets jump up to 1.6 rad in 0.1 s (min-jerk peaks near 30 rad/s against a 3 rad/s limit), so the
    velocity clamp shapes most of the stream: a loop that skipped or mis-timed it would break the
    equality, and a clamp removed from the shared filter would break the speed bound. Where the loop did
    not skip (all of it on a machine that never stalled the loop) the two agree to the tick, one tick only
    where the setpoint sits on a rounding edge; that most of the stream is compared is a real-time bound,
    judged on a window the machine did not hold (CI once saw 18 skips on a stalling machine).
    """
    s = on_a_quiet_machine(_stream_the_targets, _most_of_the_stream_compared)
    assert np.ptp(s.got, axis=0).max() > 0.3 * TPU  # the stream actually moved
    assert s.clean.sum() > 20, s.skips
    assert np.abs(s.got - s.expected)[s.clean].max() <= 1, s.skips
    assert np.mean((s.got == s.expected)[s.clean]) > 0.99, (np.mean((s.got == s.expected)[s.clean]), s.skips)
    speed = np.abs(np.diff(s.got, axis=0)) / TPU / (np.diff(s.cycles)[:, None] / RATE)
    assert speed.max() <= LIMITS["max_velocity"][0] + 2 * RATE / TPU  # 3 rad/s, plus two ticks of rounding
    assert speed.max() > 0.9 * LIMITS["max_velocity"][0]  # the clamp was what limited it
    assert np.all(np.diff(s.t_rx) >= 0)


def _min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10.0 - 15.0 * s + 6.0 * s ** 2)


def test_a_target_computed_at_a_tick_runs_from_that_tick() -> None:
    """set_target(start_cycle=tick) runs its segment as if it had been applied at the tick, as a sim steps
    it, however many cycles the host took to compute it; one from longer ago than a target duration, or one
    without a start cycle, runs from the cycle that picks it up. A loop that ignored start_cycle would lag
    the first target by the host's delay (here >= 10 cycles, 0.006 rad); one that honoured a stale start
    would jump the setpoint. Each segment is compared from 30 cycles after its pickup: a pickup delayed by a
    held machine makes a jump the velocity clamp (shared with the sims) spreads over up to 25 cycles."""
    duration, size = 1.0, 0.3
    loop = make_loop(None, target_duration_s=duration)
    loop.start()
    try:
        tick = loop.wait_cycle(-1, 1.0)
        loop.wait_cycle(tick + 9, 1.0)  # the host "computes" for 10 cycles
        assert loop.set_target(np.array([size, 0.0, 0.0]), tick)
        c = loop.wait_cycle(tick + int(1.2 * duration * RATE), 2.0)
        assert loop.set_target(np.array([0.0, 0.0, 0.0]), c - int(1.5 * duration * RATE))  # stale: from pickup
        c = loop.wait_cycle(c + int(1.2 * duration * RATE), 2.0)
        assert loop.set_target(np.array([size, 0.0, 0.0]))  # no start cycle: from pickup
        loop.wait_cycle(c + int(1.2 * duration * RATE), 2.0)
    finally:
        loop.stop()
    rec = loop.setpoints
    cycles, setpoint, picked = np.asarray(rec["cycle"]), np.asarray(rec["setpoint"])[:, 0], rec["target_cycle"]
    assert len(picked) == 3 and picked[0] - tick >= 10
    starts = [tick, picked[1], picked[2]]
    ends = [picked[1], picked[2], cycles[-1] + 1]
    for i, (start, origin, goal) in enumerate(zip(starts, (0.0, size, 0.0), (size, 0.0, size), strict=True)):
        held = (cycles >= picked[i] + 30) & (cycles < ends[i])
        expected = origin + (goal - origin) * _min_jerk((cycles[held] - start) / (duration * RATE))
        np.testing.assert_allclose(setpoint[held], expected, atol=1e-9, err_msg=f"target {i}")
    # what ignoring the start cycle would have given the first target: measurably behind
    first = (cycles >= picked[0] + 30) & (cycles < picked[1])
    lagging = size * _min_jerk((cycles[first] - picked[0]) / (duration * RATE))
    assert np.abs(lagging - setpoint[first]).max() > 5e-3  # 0.0225 rad at 10 cycles' delay


def test_state_at_returns_a_recent_cycles_state() -> None:
    loop = make_loop(None)
    loop.start()
    try:
        c = loop.wait_cycle(loop.wait_cycle(-1, 1.0) + rt.ControlLoop.HISTORY + 5, 2.0)
        latest = loop.state()
        past = loop.state_at(int(latest["cycle"]) - 3)
        assert past is not None and past["cycle"] == latest["cycle"] - 3
        assert latest["timestamp"] - 0.5 < past["timestamp"] < latest["timestamp"]
        assert loop.state_at(c - rt.ControlLoop.HISTORY - 2) is None  # overwritten
        assert loop.state_at(c + 1000) is None and loop.state_at(-1) is None  # not yet, never
    finally:
        loop.stop()


def test_watchdog_holds_pose_when_targets_stop(chain: PtyServoChain) -> None:
    loop = make_loop(chain, target_duration_s=2.0, watchdog_hold_ms=60.0)
    loop.start()
    try:
        loop.wait_cycle(-1, 1.0)
        assert loop.set_target(np.array([1.0, 0.0, 0.0]))
        run_for(loop, 0.5)
        # A 2 s min-jerk move would be at ~0.10 rad after 0.5 s; held after 60 ms it is at ~0.001.
        assert loop.state()["setpoint"][0] < 0.01
        before = raw_goal(chain, 1)
        run_for(loop, 0.1)
        assert raw_goal(chain, 1) == before  # frozen
        s = loop.stats()
        assert s["watchdog"] == "hold" and s["watchdog_holds"] == 1
        assert loop.set_target(np.array([0.2, 0.0, 0.0]))  # a fresh target resumes
        run_for(loop, 0.02)
        assert loop.stats()["watchdog"] == "ok"
    finally:
        loop.stop()


def test_watchdog_turns_torque_off_then_recovers(chain: PtyServoChain) -> None:
    loop = make_loop(chain, watchdog_hold_ms=40.0, watchdog_off_ms=120.0)
    loop.start()
    try:
        loop.wait_cycle(-1, 1.0)
        assert chain.get(1, "torque_enable") == 1
        run_for(loop, 0.35)
        assert eventually(lambda: all(chain.get(i, "torque_enable") == 0 for i in chain.ids))
        assert loop.stats()["watchdog"] == "off" and loop.fault is None
        assert loop.set_target(np.zeros(N))
        run_for(loop, 0.05)
        assert eventually(lambda: chain.get(1, "torque_enable") == 1)
    finally:
        loop.stop()


def test_position_and_velocity_limits(chain: PtyServoChain) -> None:
    loop = make_loop(chain, target_duration_s=0.05)
    loop.start()
    try:
        loop.wait_cycle(-1, 1.0)
        assert not loop.set_target(np.array([np.nan, 0.0, 0.0]))  # NaN/inf never reach the loop
        assert not loop.set_target(np.array([0.0, np.inf, 0.0]))
        assert loop.set_target(np.array([5.0, -5.0, 0.0]))
        run_for(loop, 1.0)
    finally:
        loop.stop()
    rec = loop.setpoints
    sp, cyc = rec["setpoint"], rec["cycle"]
    assert sp[:, 0].max() <= 2.0 + 1e-12 and sp[:, 1].min() >= -2.0 - 1e-12
    assert sp[-1, 0] == pytest.approx(2.0)  # it got there, at the limit
    speed = np.abs(np.diff(sp, axis=0)) / (np.diff(cyc)[:, None] / RATE)
    assert speed.max() <= 3.0 + 1e-9  # max_velocity, although min-jerk over 50 ms asks ~75 rad/s
    goals = [g[0] for _, g in chain.goal_log]
    assert max(goals) <= 2048 + 2.0 * TPU + 1
    s = loop.stats()
    assert s["velocity_clamps"] > 0


def test_effort_limit_stops_pushing(chain: PtyServoChain) -> None:
    loop = make_loop(chain, effort_scale=[0.0048] * N)  # Nm per current tick; 4 Nm = 833 ticks
    loop.start()
    try:
        loop.wait_cycle(-1, 1.0)
        chain.set(1, "present_current", 1000)  # joint 0 pushes against something: 4.8 Nm
        run_for(loop, 0.05)
        assert loop.set_target(np.array([0.5, 0.5, 0.0]))
        run_for(loop, 0.4)
        q = loop.state()["position"]
    finally:
        loop.stop()
    assert abs(q[0]) < 0.02  # held where it was measured
    assert q[1] == pytest.approx(0.5, abs=0.02)  # the joint within its effort limit moved on
    assert loop.stats()["effort_holds"] > 0


def test_estop_from_python(chain: PtyServoChain) -> None:
    loop = make_loop(chain)
    loop.start()
    loop.wait_cycle(-1, 1.0)
    assert loop.set_target(np.array([0.3, 0.0, 0.0]))
    t = time.monotonic()
    loop.estop()
    assert time.monotonic() - t < 0.25  # typically one cycle (4 ms) plus the torque-off write
    assert loop.fault.startswith("e-stop") and not loop.running
    assert eventually(lambda: all(chain.get(i, "torque_enable") == 0 for i in chain.ids))
    n_goals = len(chain.goal_log)
    time.sleep(0.05)
    assert len(chain.goal_log) == n_goals  # nothing commanded after the e-stop
    assert not loop.set_target(np.zeros(N))
    with pytest.raises(RuntimeError, match="e-stop"):
        loop.wait_cycle(0, 0.1)
    with pytest.raises(RuntimeError, match="faulted"):
        loop.start()


def test_estop_from_signal(chain: PtyServoChain) -> None:
    received = []
    previous = signal.signal(signal.SIGTERM, lambda s, f: received.append(s))
    try:
        loop = make_loop(chain, handle_signals=True)  # installs its handler, chained to ours
        loop.start()
        loop.wait_cycle(-1, 1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        end = time.monotonic() + 1.0
        while loop.running and time.monotonic() < end:
            time.sleep(0.005)
        assert loop.fault == "e-stop: signal SIGTERM"
        assert eventually(lambda: all(chain.get(i, "torque_enable") == 0 for i in chain.ids))
        time.sleep(0.01)
        assert received == [signal.SIGTERM]  # the previous (Python) handler still ran
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_unplugged_port_faults_at_once(chain: PtyServoChain) -> None:
    """EIO from a vanished port is not retried: the loop faults on the first failed cycle."""
    loop = make_loop(chain, max_consecutive_timeouts=5)
    loop.start()
    c = loop.wait_cycle(-1, 1.0)
    t = time.monotonic()
    chain.close()  # unplug
    with pytest.raises(RuntimeError, match="link lost: I/O error"):
        for _ in range(100):
            c = loop.wait_cycle(c, 0.5)
    assert time.monotonic() - t < 0.1  # typically one cycle, 4 ms
    assert not loop.running and loop.fault.startswith("link lost")
    loop.stop()


def test_silent_servos_fault_after_consecutive_timeouts(chain: PtyServoChain) -> None:
    """A bus that stays open but stops answering (power cut on the servo side) faults after N timeouts."""
    loop = make_loop(chain, max_consecutive_timeouts=5)
    loop.start()
    c = loop.wait_cycle(-1, 1.0)
    t = time.monotonic()
    chain.silent.update(chain.ids)
    with pytest.raises(RuntimeError, match="link lost: 5 consecutive timeouts"):
        for _ in range(100):
            c = loop.wait_cycle(c, 0.5)
    assert time.monotonic() - t < 0.5
    assert not loop.running and loop.fault.startswith("link lost")
    loop.stop()
