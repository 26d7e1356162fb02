"""The ArduCopter flavour against the recorded sessions with the real autopilot (shared/fixtures/ardupilot-sitl).

Each tlog's ground-station side (every packet sysid 255 sent, byte for byte, at its recorded time) is
replayed to a fresh emulated vehicle booting with the recorded (default) timings, run at `SPEEDUP` x real
time. The vehicle's answers are reduced by one function, `features`, to what must not drift from the
real autopilot: which messages arrive, their rates, the order and times of ACKs, mode/arming/status/
landed-state changes, STATUSTEXTs, parameter answers, the prearm bit, and a few flight checkpoints.
Tolerances are stated per item (`TOL`).
"""

from __future__ import annotations

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
SPEEDUP = 6.0  # the test process must keep up with the vehicle: slower under heavy load
STREAMS = ("HEARTBEAT", "ATTITUDE", "ATTITUDE_QUATERNION", "LOCAL_POSITION_NED", "GLOBAL_POSITION_INT", "SYS_STATUS",
           "EXTENDED_SYS_STATE", "TIMESYNC")
# STATUSTEXTs of the real vehicle the flavour does not model (see the notes of issue 19).
UNMODELLED_TEXTS = {"EKF3 IMU0 MAG0 in-flight yaw alignment complete", "EKF3 IMU1 MAG0 in-flight yaw alignment complete"}
TOL = {"ack": 0.3, "mode": 0.3, "armed": 0.5, "status": 0.6, "landed": 1.2, "prearm": 1.1, "text": 0.6, "param": 0.3,
       "first": 0.3, "rate": 0.10}
# guided_flight's thrust-0.5 climb after GUID_OPTIONS=8 is weaker on the emulated airframe (peak 20 m, not
# 30.8 m), so its LAND from the peak ends ~9 s sooner: events after this time get UNTIL_LANDED s of slack.
CLIMB_DIFFERS = {"guided_flight": 70.2}
UNTIL_LANDED = 10.0


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
    asked = {m.param_id for _, m in tx if m.get_type() in ("PARAM_REQUEST_READ", "PARAM_SET")} | {"MOT_THST_HOVER"}
    f = {"types": {m.get_type() for _, m in rx}, "ack": [], "mode": [], "armed": [], "status": [], "landed": [],
         "prearm": [], "text": [], "param": [], "first": {}, "times": {}, "z": []}
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
            value = round(m.param_value, 1) if m.param_id != "MOT_THST_HOVER" else None
            f["param"].append((t, (m.param_id, value)))
        elif kind == "LOCAL_POSITION_NED":
            f["z"].append((t, -m.z, m.x))
    f["rates"] = {k: (len(ts) - 1) / (ts[-1] - ts[0]) for k, ts in f["times"].items() if k in STREAMS and len(ts) > 2}
    return f


def replay(path: Path, tmp_path: Path, extra: tuple[str, ...] = ()) -> list[tuple[float, object]]:
    """Send the recorded ground-station packets to a fresh emulated ArduCopter; record what it sends back.

    Times are the vehicle's own clock: time_boot_ms of its telemetry (extrapolated between messages and
    before the first one from the emulator's start), so a busy machine slows the replay but cannot skew it."""
    recorded = load_session(path)
    script = [(t, m.get_msgbuf()) for t, m in recorded if m.get_srcSystem() == 255]
    end = recorded[-1][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / f"{path.stem}.log", "w+")  # noqa: SIM115 - read back on failure
    proc = subprocess.Popen([sys.executable, "-m", "robotlearn.cli.emulate_quadrotor", "--autopilot", "ardupilot",
                             "--mavlink", f"udpin:127.0.0.1:{port}", "--speedup", str(SPEEDUP), "thrust_scale=1.17",
                             *extra], stdout=subprocess.PIPE, stderr=log, text=True)
    conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=255, dialect="common")
    conn.port.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # a busy test process must not drop packets
    out: list[tuple[float, object]] = []
    try:
        assert proc.stdout.readline().startswith("emulated quadrotor"), "emulator did not start"
        anchor = time.monotonic()  # vehicle time 0 (its loop starts right after that line)

        def vehicle_time() -> float:
            return (time.monotonic() - anchor) * SPEEDUP

        i = 0
        while (now := vehicle_time()) < end:
            while i < len(script) and script[i][0] <= now:
                conn.write(script[i][1])
                i += 1
            msg = conn.recv_match(blocking=True, timeout=0.002)
            while msg is not None:
                if msg.get_type() != "BAD_DATA":
                    boot_ms = getattr(msg, "time_boot_ms", None)
                    if boot_ms is not None:  # re-anchor on the vehicle's clock
                        anchor = time.monotonic() - boot_ms / 1000.0 / SPEEDUP
                    out.append((boot_ms / 1000.0 if boot_ms is not None else vehicle_time(), msg))
                msg = conn.recv_match(blocking=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        conn.close()
        log.seek(0)
        print(log.read())
        log.close()
    return out


def assert_timeline(name: str, got: list, want: list, tol: float, slack_after: float = np.inf) -> None:
    assert [v for _, v in got] == [v for _, v in want], f"{name}: {[v for _, v in got]} != recorded {[v for _, v in want]}"
    for (tg, v), (tw, _) in zip(got, want, strict=True):
        assert abs(tg - tw) <= (tol if tw < slack_after else UNTIL_LANDED), f"{name} {v!r}: at {tg:.2f} s, recorded {tw:.2f} s (tolerance {tol} s)"


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
    emulated = replay(path, tmp_path)
    got = features(emulated + [(t, m) for t, m in recorded if m.get_srcSystem() == 255])  # + the same script
    print(f"{name}: replayed {max(t for t, _ in emulated):.0f} s of vehicle time in "
          f"{time.monotonic() - t0:.1f} s")
    assert got["types"] == want["types"], f"message types: extra {got['types'] - want['types']}, " \
                                          f"missing {want['types'] - got['types']}"
    for stream, rate in want["rates"].items():
        assert got["rates"][stream] == pytest.approx(rate, rel=TOL["rate"]), f"{stream} rate"
    for kind in ("ATTITUDE", "LOCAL_POSITION_NED", "GPS_GLOBAL_ORIGIN", "HEARTBEAT"):
        assert abs(got["first"][kind] - want["first"][kind]) <= TOL["first"], f"first {kind}"
    for channel in ("ack", "mode", "armed", "status", "landed", "prearm", "text", "param"):
        assert_timeline(channel, got[channel], want[channel], TOL[channel], CLIMB_DIFFERS.get(name, np.inf))
    zs_got, zs_want = np.array([z for _, z, _ in got["z"]]), np.array([z for _, z, _ in want["z"]])
    if zs_want.max() < 0.1:  # never left the ground
        assert zs_got.max() < 0.1
    else:
        assert abs(first_above(got["z"], 0.95) - first_above(want["z"], 0.95)) < 0.6, "takeoff to 0.95 m"
        if name in CLIMB_DIFFERS:  # thrust 0.5 is real thrust after GUID_OPTIONS=8: it climbs far above 1 m
            assert zs_got.max() > 10.0 and zs_want.max() > 10.0
        else:
            assert zs_got.max() == pytest.approx(zs_want.max(), abs=0.1), "peak altitude"
