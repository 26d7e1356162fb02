"""The ArduCopter flavour against the recorded sessions with the real autopilot (shared/fixtures/ardupilot-sitl).

Each tlog's ground-station side (every packet sysid 255 sent, byte for byte, at its recorded time) is
replayed to a fresh emulated vehicle booting with the recorded (default) timings, run at `SPEEDUPS[0]` x real
time (slower on a retry). The vehicle's answers are reduced by one function, `features`, to what must not drift from the
real autopilot: which messages arrive, their rates, the order and times of ACKs, mode/arming/status/
landed-state changes, STATUSTEXTs, parameter answers, the prearm bit, and a few flight checkpoints.
Tolerances are stated per item (`TOL`).
"""

from __future__ import annotations

import gc
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pymavlink import mavutil

from robotlearn.hardware.frames import mavlink2_common

mav = mavlink2_common()
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ardupilot-sitl"
if not FIXTURES.is_dir():  # a checkout beside shared/ (the usual layout), or the integrator's tree
    FIXTURES = Path("/work/shared/fixtures/ardupilot-sitl")
COMMANDS = ("COMMAND_LONG", "PARAM_REQUEST_READ", "PARAM_SET")
# s of vehicle time: a later command may land in another phase of the boot, a gap in setpoints or heartbeats
# may trip GUID_TIMEOUT (3 s) or FS_GCS_TIMEOUT: replay again
MAX_COMMAND_LATENESS, MAX_LATENESS = 0.5, 1.5
# Late packets (a starved test process) are accounted for in the tolerances, in vehicle time. At 10x the test
# process parses ~4000 telemetry messages per wall second and a 0.15-0.3 s stall of it (GC, a busy core) became
# 1.5-2.9 s of vehicle time: guided_flight failed its 3 attempts in a full CI run at load ~1. At 5x the same stall
# costs half as much vehicle time and the message rate halves. Under two CPU hogs 5x still failed 3 attempts
# once (a full run). Measured since: the test process's own full garbage collections (77 ms at idle, over the
# parsed messages) were most of those stalls, so the replay runs with the collector off (max lateness 0.38 s ->
# 0.011 s idle, guided_flight at 5x). A busy core remains, so each retry halves the speed-up: a stall costs half
# the vehicle time again, and the test process has half the messages to parse per wall second. Worst case for guided_flight (114 s): 23 + 46 + 92 s.
SPEEDUPS = (5.0, 2.5, 1.25)
STREAMS = ("HEARTBEAT", "ATTITUDE", "ATTITUDE_QUATERNION", "LOCAL_POSITION_NED", "GLOBAL_POSITION_INT", "SYS_STATUS",
           "EXTENDED_SYS_STATE", "TIMESYNC")
# STATUSTEXTs of the real vehicle the flavour does not model (see the notes of issue 19).
UNMODELLED_TEXTS = {"EKF3 IMU0 MAG0 in-flight yaw alignment complete", "EKF3 IMU1 MAG0 in-flight yaw alignment complete"}
TOL = {"ack": 0.3, "mode": 0.3, "armed": 0.5, "status": 0.6, "landed": 1.2, "prearm": 1.1, "text": 0.6, "param": 0.3, "hover_param": 0.5,
       "first": 0.3, "rate": 0.10}
# The SITL airframe seen through the emulator's cf2x: hover throttle 0.38 (MOT_THST_HOVER 0.377-0.390 in the
# recordings) and drag fitted to guided_flight's thrust-0.5 climb (23.3 m and 5.96 m/s after 5 s).
SITL_AIRFRAME = ("thrust_scale=1.17", "drag_scale=1.6")
# After guided_flight's 30 m climb, LAND takes 41 s: small differences in the climb add up to seconds.
SLACK_AFTER = {"guided_flight": (70.2, 4.0)}


def load_session(path: Path) -> list[tuple[float, object]]:
    conn = mavutil.mavlink_connection(str(path), dialect="common")
    out, t0 = [], None
    while (msg := conn.recv_match()) is not None:
        t0 = msg._timestamp if t0 is None else t0
        out.append((msg._timestamp - t0, msg))
    conn.close()
    return out


def features(session: list[tuple[float, object]]) -> dict:
    """What the comparison looks at, from (t, message) pairs of both directions."""
    rx = [(t, m) for t, m in session if m.get_srcSystem() == 1]
    tx = [(t, m) for t, m in session if m.get_srcSystem() == 255]
    asked = {m.param_id for _, m in tx if m.get_type() in ("PARAM_REQUEST_READ", "PARAM_SET")}
    f = {"types": {m.get_type() for _, m in rx}, "ack": [], "mode": [], "armed": [], "status": [], "landed": [],
         "prearm": [], "text": [], "param": [], "hover_param": [], "first": {}, "times": {}, "z": []}
    last: dict[str, object] = {}

    def change(key, t, value):
        if last.get(key, object()) != value:
            last[key] = value
            f[key].append((t, value))

    for t, m in rx:
        kind = m.get_type()
        f["times"].setdefault(kind, []).append(t)
        f["first"].setdefault(kind, t)
        if kind == "HEARTBEAT":
            change("mode", t, m.custom_mode)
            change("armed", t, bool(m.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED))
            change("status", t, m.system_status)
        elif kind == "EXTENDED_SYS_STATE":
            change("landed", t, m.landed_state)
        elif kind == "SYS_STATUS":
            change("prearm", t, bool(m.onboard_control_sensors_health & mav.MAV_SYS_STATUS_PREARM_CHECK))
        elif kind == "COMMAND_ACK":
            f["ack"].append((t, (m.command, m.result)))
        elif kind == "STATUSTEXT" and m.text not in UNMODELLED_TEXTS:
            f["text"].append((t, re.sub(r"[0-9.]+ m/s", "# m/s", m.text)))
        elif kind == "PARAM_VALUE" and m.param_id in asked:
            f["param"].append((t, (m.param_id, round(m.param_value, 1))))
        elif kind == "PARAM_VALUE" and m.param_id == "MOT_THST_HOVER":  # unrequested, at each disarm
            f["hover_param"].append((t, round(m.param_value, 1)))
        elif kind == "LOCAL_POSITION_NED":
            f["z"].append((t, -m.z, m.x))
    f["rates"] = {k: (len(ts) - 1) / (ts[-1] - ts[0]) for k, ts in f["times"].items() if k in STREAMS and len(ts) > 2}
    return f


def replay(path: Path, tmp_path: Path, speedup: float, extra: tuple[str, ...] = ()) -> tuple[list[tuple[float, object]], list]:
    """Send the recorded ground-station packets to a fresh emulated ArduCopter; record what it sends back.

    Times are the vehicle's own clock: time_boot_ms of its telemetry (extrapolated between messages and
    before the first one from the emulator's start), so a busy machine slows the replay but cannot skew it."""
    recorded = load_session(path)
    script = [(t, m.get_msgbuf(), m.get_type() in COMMANDS) for t, m in recorded if m.get_srcSystem() == 255]
    end = recorded[-1][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / f"{path.stem}.log", "w+")  # noqa: SIM115 - read back on failure
    proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.emulate_quadrotor", "--autopilot", "ardupilot",
                             "--mavlink", f"udpin:127.0.0.1:{port}", "--speedup", str(speedup), *SITL_AIRFRAME,
                             *extra], stdout=subprocess.PIPE, stderr=log, text=True)
    conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=255, dialect="common")
    conn.port.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # a busy test process must not drop packets
    out: list[tuple[float, object]] = []
    sent: list[tuple[float, float, bool]] = []  # (vehicle time it went out, recorded time, is a command)
    gc.disable()  # a full collection over the tens of thousands of parsed messages held in `out` stalls the
    # sender by 0.1-0.2 s, 0.5-1 s of a 5x vehicle's time; reference counting still frees everything else
    try:
        assert proc.stdout.readline().startswith("emulated quadrotor"), "emulator did not start"
        anchor = time.monotonic()  # vehicle time 0 (its loop starts right after that line)

        def vehicle_time() -> float:
            return (time.monotonic() - anchor) * speedup

        i = 0
        while (now := vehicle_time()) < end:
            while i < len(script) and script[i][0] <= now:
                conn.write(script[i][1])
                sent.append((now, script[i][0], script[i][2]))
                i += 1
            msg = conn.recv_match(blocking=True, timeout=0.002)
            while msg is not None:
                if msg.get_type() != "BAD_DATA":
                    boot_ms = getattr(msg, "time_boot_ms", None)
                    if boot_ms is not None:  # re-anchor on the vehicle's clock
                        anchor = time.monotonic() - boot_ms / 1000.0 / speedup
                    out.append((boot_ms / 1000.0 if boot_ms is not None else vehicle_time(), msg))
                msg = conn.recv_match(blocking=False)
    finally:
        gc.enable()
        proc.terminate()
        proc.wait(timeout=10)
        conn.close()
        log.seek(0)
        print(log.read())
        log.close()
    return out, sent


def assert_timeline(name: str, got: list, want: list, tol: float, lateness, slack=(np.inf, 0.0)) -> None:
    """Same values in the same order, each within `tol` s of its recorded time, plus how late the replay sent
    the packet before it (`lateness(t)`: a starved test process cannot send on time), plus `slack` after a time."""
    assert [v for _, v in got] == [v for _, v in want], f"{name}: {[v for _, v in got]} != recorded {[v for _, v in want]}"
    for (tg, v), (tw, _) in zip(got, want, strict=True):
        allowed = tol + lateness(tg) + (slack[1] if tw > slack[0] else 0.0)
        assert abs(tg - tw) <= allowed, f"{name} {v!r}: at {tg:.2f} s, recorded {tw:.2f} s (allowed {allowed:.2f} s)"


def first_above(z: list, height: float) -> float:
    return next(t for t, up, _ in z if up > height)


NAMES = ["cold_start_to_armable", "takeoff_cancelled_by_early_setpoints", "guided_flight", "link_loss_gcs_silent",
         "link_loss_gcs_silent_fs_gcs_land"]


@pytest.mark.parametrize("name", NAMES)
def test_flavour_replays_the_recorded_session(name, tmp_path):
    path = FIXTURES / f"{name}.tlog"
    recorded = load_session(path)
    want = features(recorded)
    t0 = time.monotonic()
    for attempt, speedup in enumerate(SPEEDUPS):  # a process descheduled for 0.5 s misses 2.5 s of a 5x vehicle
        emulated, sent = replay(path, tmp_path, speedup)
        command_late = max(a - b for a, b, command in sent if command)
        any_late = max(a - b for a, b, _ in sent)
        on_time = command_late <= MAX_COMMAND_LATENESS and any_late <= MAX_LATENESS
        if on_time:
            break
        print(f"{name}: attempt {attempt + 1} at {speedup}x: packets went out up to {any_late:.2f} s late (commands "
              f"{command_late:.2f} s); replaying again")
    assert on_time, f"the machine is too busy to replay on time ({len(SPEEDUPS)} attempts, down to {SPEEDUPS[-1]}x)"
    sent_at, late = np.array([a for a, _, _ in sent]), np.maximum(0.0, [a - b for a, b, _ in sent])

    def lateness(t: float) -> float:
        i = np.searchsorted(sent_at, t) - 1
        return float(late[max(i - 5, 0):i + 1].max()) if i >= 0 else 0.0

    got = features(emulated + [(t, m) for t, m in recorded if m.get_srcSystem() == 255])  # + the same script
    print(f"{name}: replayed {max(t for t, _ in emulated):.0f} s of vehicle time in {time.monotonic() - t0:.1f} s; "
          f"packets sent late by median {np.median(late):.3f} s, max {late.max():.3f} s")
    assert got["types"] == want["types"], f"message types: extra {got['types'] - want['types']}, " \
                                          f"missing {want['types'] - got['types']}"
    for stream, rate in want["rates"].items():
        assert got["rates"][stream] == pytest.approx(rate, rel=TOL["rate"]), f"{stream} rate"
    for kind in ("ATTITUDE", "LOCAL_POSITION_NED", "GPS_GLOBAL_ORIGIN", "HEARTBEAT"):
        assert abs(got["first"][kind] - want["first"][kind]) <= TOL["first"], f"first {kind}"
    for channel in ("ack", "mode", "armed", "status", "landed", "prearm", "text", "param", "hover_param"):
        assert_timeline(channel, got[channel], want[channel], TOL[channel], lateness, SLACK_AFTER.get(name, (np.inf, 0)))
    zs_got, zs_want = np.array([z for _, z, _ in got["z"]]), np.array([z for _, z, _ in want["z"]])
    if zs_want.max() < 0.1:  # never left the ground
        assert zs_got.max() < 0.1
    else:
        assert abs(first_above(got["z"], 0.95) - first_above(want["z"], 0.95)) < 0.6, "takeoff to 0.95 m"
        tol = 0.15 * zs_want.max() if zs_want.max() > 5 else 0.1  # guided_flight climbs to 30.8 m
        assert zs_got.max() == pytest.approx(zs_want.max(), abs=tol), "peak altitude"
