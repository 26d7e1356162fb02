"""The real quadrotor backend: a PX4 or ArduPilot vehicle over MAVLink (pymavlink, UDP or serial).

* State comes from ATTITUDE_QUATERNION + LOCAL_POSITION_NED, or ODOMETRY when the vehicle sends it,
  converted to our frames in `robotlearn.hardware.frames` (NED/FRD -> ENU/FLU).
* `command()` sends the CTBR target at once as SET_ATTITUDE_TARGET (body rates + thrust);
  `advance()` returns at the next control tick, so the policy streams setpoints at `control_hz`.
* `reset()` arms, enters PX4 OFFBOARD (MAV_CMD_DO_SET_MODE, custom main mode 6) or ArduPilot GUIDED,
  and flies to the episode's start with SET_POSITION_TARGET_LOCAL_NED.
* A receive thread keeps the latest state and, if the policy pauses for longer than `hold_after`
  (a training update, say), streams a position hold so OFFBOARD is not lost mid-air. If the process
  dies the stream stops and the autopilot's own failsafe lands the vehicle.
* Link loss: no message from the vehicle for `link_timeout` s -> `LinkLostError` from every call.

ArduPilot note: ArduCopter reads SET_ATTITUDE_TARGET's thrust as a climb rate unless GUID_OPTIONS
bit 3 ("SetAttitudeTarget interprets Thrust As Thrust") is set; set it for CTBR control. Both paths
are tested against the emulator (`--autopilot px4|ardupilot`), not against the real autopilots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field
from pymavlink import mavutil

from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.rotations import quat_to_rot, yaw_of
from robotlearn.core.spec import RobotSpec
from robotlearn.hardware import frames

mav = frames.mavlink2_common()
ATT_RATES_ONLY = mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE
POS_YAW_ONLY = 0b0000_1001_1111_1000  # ignore velocity, acceleration, yaw rate
PX4_OFFBOARD = 6  # PX4 custom main mode (px4_custom_mode.h)
ARDUPILOT_GUIDED = {name: num for num, name in mavutil.mode_mapping_acm.items()}["GUIDED"]


class LinkLostError(ConnectionError):
    """The vehicle stopped talking: nothing received for longer than the link timeout."""


class CommandRejected(RuntimeError):
    """The autopilot answered a command with something other than MAV_RESULT_ACCEPTED."""


class MavlinkOptions(BackendOptions):
    """Options of the MAVLink vehicle."""

    #: pymavlink connection string (udpin:HOST:PORT, udpout:..., tcp:..., /dev/ttyACM0)
    connection: str = "udpin:127.0.0.1:14550"
    #: serial baud (serial connections only)
    baud: int = Field(57600, gt=0)
    #: no message from the vehicle for this long -> LinkLostError (s)
    link_timeout: float = Field(0.5, gt=0)
    #: how long to wait for the vehicle's heartbeat and telemetry at connect (s)
    connect_timeout: float = Field(10.0, gt=0)
    #: reset succeeds within this distance of the start position (m)
    reset_tolerance: float = Field(0.15, gt=0)
    #: how long reset may take (takeoff and fly to start) (s)
    reset_timeout: float = Field(20.0, gt=0)
    #: hold the start position this long before an episode starts (s)
    hold_after: float = Field(0.3, ge=0)


class MavlinkQuadBackend(Backend):
    """`backend="real"` for quadrotors (see MavlinkOptions)."""

    name = "real"
    deterministic = False
    Options = MavlinkOptions

    def __init__(self, spec: RobotSpec, options: MavlinkOptions | None = None):
        super().__init__(spec, options)
        opts = self.options
        connection, baud, link_timeout, connect_timeout = (opts.connection, opts.baud, opts.link_timeout,
                                                           opts.connect_timeout)
        reset_tolerance, reset_timeout, hold_after = opts.reset_tolerance, opts.reset_timeout, opts.hold_after
        if spec.kind != "quadrotor":
            raise ValueError(f"MavlinkQuadBackend needs a quadrotor spec, got kind {spec.kind!r}")
        self.connection, self.link_timeout = connection, float(link_timeout)
        self.reset_tolerance, self.reset_timeout, self.hold_after = reset_tolerance, reset_timeout, hold_after
        self.dt = 1.0 / spec.control_hz
        self.conn = mavutil.mavlink_connection(connection, baud=baud, source_system=255,
                                               source_component=mav.MAV_COMP_ID_ONBOARD_COMPUTER, dialect="common")
        self._lock = threading.Lock()
        self._tx_lock = threading.Lock()  # pymavlink's sender (sequence number, socket) is not thread-safe
        self._state: dict[str, np.ndarray] = {}
        self._acks: dict[int, int] = {}
        self._heartbeat = None
        self._last_rx = time.monotonic()
        self._stop = threading.Event()
        self._last_tx = self._last_heartbeat_tx = 0.0
        self._hold_pos: np.ndarray | None = None
        self._tick_next = 0.0
        self._t0 = self._t0_episode = time.monotonic()
        self._overruns = 0
        hb, deadline = None, time.monotonic() + connect_timeout
        while hb is None and time.monotonic() < deadline:
            self._send_heartbeat()  # lets a vehicle listening on udpin learn our address
            hb = self.conn.wait_heartbeat(blocking=True, timeout=0.5)
            if hb is not None and hb.type == mav.MAV_TYPE_GCS:
                hb = None
        if hb is None:
            self.conn.close()
            raise ConnectionError(f"no MAVLink heartbeat from a vehicle on {connection!r} within {connect_timeout} s")
        self.target = (hb.get_srcSystem(), hb.get_srcComponent())
        self.autopilot = "px4" if hb.autopilot == mav.MAV_AUTOPILOT_PX4 else "ardupilot"
        self._heartbeat = hb
        self._last_rx = time.monotonic()
        self._rx = threading.Thread(target=self._receive_loop, name="mavlink-rx", daemon=True)
        self._rx.start()
        rate_us = int(1e6 / max(spec.control_hz, 50.0))
        for msg_id in (mav.MAVLINK_MSG_ID_ATTITUDE_QUATERNION, mav.MAVLINK_MSG_ID_LOCAL_POSITION_NED):
            self._command_long(mav.MAV_CMD_SET_MESSAGE_INTERVAL, msg_id, rate_us)
        self._wait_state(connect_timeout)

    # ---- receive thread ---------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.conn.recv_match(blocking=True, timeout=0.02)
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if msg is not None and msg.get_srcSystem() == self.target[0]:
                self._handle(msg)
            self._keepalive()
            if time.monotonic() - self._last_heartbeat_tx > 1.0:
                self._send_heartbeat()

    def _handle(self, msg) -> None:
        kind = msg.get_type()
        with self._lock:
            self._last_rx = time.monotonic()
            if kind == "HEARTBEAT":
                self._heartbeat = msg
            elif kind == "ATTITUDE_QUATERNION":
                self._state["quat"] = frames.quat_ned_frd_to_enu_flu([msg.q1, msg.q2, msg.q3, msg.q4])
                self._state["omega"] = frames.frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])
            elif kind == "LOCAL_POSITION_NED":
                self._state["pos"] = frames.ned_to_enu([msg.x, msg.y, msg.z])
                self._state["vel"] = frames.ned_to_enu([msg.vx, msg.vy, msg.vz])
            elif kind == "ODOMETRY" and msg.frame_id == mav.MAV_FRAME_LOCAL_NED:
                q_ned = np.asarray(msg.q, dtype=np.float64)
                vel = np.array([msg.vx, msg.vy, msg.vz])
                if msg.child_frame_id == mav.MAV_FRAME_BODY_FRD:
                    vel = quat_to_rot(q_ned) @ vel
                self._state["pos"] = frames.ned_to_enu([msg.x, msg.y, msg.z])
                self._state["vel"] = frames.ned_to_enu(vel)
                self._state["quat"] = frames.quat_ned_frd_to_enu_flu(q_ned)
                self._state["omega"] = frames.frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])
            elif kind == "COMMAND_ACK":
                self._acks[msg.command] = msg.result

    def _send_heartbeat(self) -> None:
        """1 Hz, as any companion computer: autopilots use it for their data-link-loss failsafe."""
        with self._tx_lock:
            self.conn.mav.heartbeat_send(mav.MAV_TYPE_ONBOARD_CONTROLLER, mav.MAV_AUTOPILOT_INVALID, 0, 0,
                                         mav.MAV_STATE_ACTIVE)
        self._last_heartbeat_tx = time.monotonic()

    def _keepalive(self) -> None:
        """Position hold while the policy is paused, so OFFBOARD/GUIDED is not lost mid-air."""
        if self._hold_pos is None or not self.armed:
            return
        now = time.monotonic()
        if now - self._last_tx > self.hold_after:
            self._send_position(self._hold_pos[:3], self._hold_pos[3])

    # ---- link and state ---------------------------------------------------------------------------
    def _check_link(self) -> None:
        silent = time.monotonic() - self._last_rx
        if silent > self.link_timeout:
            raise LinkLostError(f"MAVLink link lost: nothing from the vehicle on {self.connection!r} for "
                                f"{silent:.2f} s (link_timeout {self.link_timeout} s)")
        if not self._rx.is_alive() and not self._stop.is_set():
            raise LinkLostError(f"MAVLink receive thread on {self.connection!r} died")

    def _wait_state(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(k in self._state for k in ("pos", "vel", "quat", "omega")):
                    return
            self._check_link()
            time.sleep(0.01)
        raise ConnectionError(f"vehicle on {self.connection!r} sends no attitude/position telemetry")

    @property
    def armed(self) -> bool:
        hb = self._heartbeat
        return bool(hb is not None and hb.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)

    @property
    def custom_mode(self) -> int:
        return int(self._heartbeat.custom_mode) if self._heartbeat is not None else -1

    def read(self) -> State:
        self._check_link()
        with self._lock:
            return {k: self._state[k].copy() for k in ("pos", "vel", "quat", "omega")}

    # ---- commands --------------------------------------------------------------------------------
    def _command_long(self, command: int, *params: float) -> None:
        p = [float(x) for x in params] + [0.0] * (7 - len(params))
        with self._lock:
            self._acks.pop(command, None)
        with self._tx_lock:
            self.conn.mav.command_long_send(self.target[0], self.target[1], command, 0, *p)

    def _command(self, command: int, *params: float, timeout: float = 1.5, what: str = "") -> None:
        """COMMAND_LONG and wait for its ACK (resent every 0.3 s); CommandRejected on a refusal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._command_long(command, *params)
            resend = time.monotonic() + 0.3
            while time.monotonic() < min(resend, deadline):
                self._check_link()
                with self._lock:
                    result = self._acks.get(command)
                if result is not None:
                    if result != mav.MAV_RESULT_ACCEPTED:
                        name = mav.enums["MAV_RESULT"][result].name if result in mav.enums["MAV_RESULT"] else result
                        raise CommandRejected(f"vehicle rejected {what or command}: {name}")
                    return
                time.sleep(0.01)
        raise TimeoutError(f"no COMMAND_ACK for {what or command} within {timeout} s")

    def _wait_heartbeat(self, predicate, what: str, timeout: float = 2.5) -> None:
        """Wait until a HEARTBEAT confirms a state change (ACKs arrive before the next heartbeat)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check_link()
            if time.monotonic() > deadline:
                raise TimeoutError(f"vehicle heartbeat does not show {what} within {timeout} s")
            time.sleep(0.01)

    def arm(self) -> None:
        self._command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1, what="arm")
        self._wait_heartbeat(lambda: self.armed, "armed")

    def disarm(self, force: bool = False) -> None:
        self._command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, 21196 if force else 0, what="disarm")

    def offboard_mode(self) -> tuple[int, int]:
        """(main, sub) custom mode that accepts external setpoints: PX4 OFFBOARD or ArduPilot GUIDED."""
        return (PX4_OFFBOARD, 0) if self.autopilot == "px4" else (ARDUPILOT_GUIDED, 0)

    def in_offboard(self) -> bool:
        main, _ = self.offboard_mode()
        mode = self.custom_mode
        return ((mode >> 16) & 0xFF) == main if self.autopilot == "px4" else mode == main

    def set_offboard(self) -> None:
        main, sub = self.offboard_mode()
        self._command(mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main, sub, what="set mode")
        self._wait_heartbeat(self.in_offboard, "OFFBOARD/GUIDED mode")

    def land(self) -> None:
        self._command_long(mav.MAV_CMD_NAV_LAND)

    def _send_position(self, pos_enu: np.ndarray, yaw_enu: float) -> None:
        ned = frames.enu_to_ned(pos_enu)
        with self._tx_lock:
            self.conn.mav.set_position_target_local_ned_send(
                self._boot_ms(), *self.target, mav.MAV_FRAME_LOCAL_NED, POS_YAW_ONLY, *ned, 0, 0, 0, 0, 0, 0,
                frames.yaw_enu_to_ned(yaw_enu), 0)
        self._last_tx = time.monotonic()

    def _send_ctbr(self, cmd: np.ndarray) -> None:
        rates = frames.flu_to_frd(cmd[1:])
        with self._tx_lock:
            self.conn.mav.set_attitude_target_send(self._boot_ms(), *self.target, ATT_RATES_ONLY, [1.0, 0, 0, 0],
                                                   *rates, float(cmd[0]))
        self._last_tx = time.monotonic()

    def _boot_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF

    # ---- Backend contract ------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        """Arm, enter OFFBOARD/GUIDED and fly to initial["pos"] (yaw from initial["quat"]).

        Velocity, attitude and rate randomization cannot be imposed on a real vehicle and are ignored.
        """
        target = np.asarray(initial.get("pos", (0.0, 0.0, 1.0)), dtype=np.float64)
        yaw = yaw_of(np.asarray(initial["quat"], dtype=np.float64)) if "quat" in initial else 0.0
        if not np.all(np.isfinite(target)):
            raise ValueError(f"reset: initial pos is not finite: {target}")
        self._hold_pos = np.array([*target, yaw])
        deadline = time.monotonic() + self.reset_timeout
        # PX4 accepts OFFBOARD only once setpoints stream; send a few before switching.
        for _ in range(5):
            self._send_position(target, yaw)
            time.sleep(self.dt)
        if not self.in_offboard():
            self.set_offboard()
        if not self.armed:
            self.arm()
        if self.autopilot == "ardupilot" and self.read()["pos"][2] < 0.2:
            # ArduCopter's GUIDED mode ignores position targets until a takeoff command has lifted it.
            self._command(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, float(target[2]), what="takeoff")
        settled_since = None
        while True:
            self._check_link()
            self._send_position(target, yaw)
            s = self.read()
            near = np.linalg.norm(s["pos"] - target) < self.reset_tolerance and np.linalg.norm(s["vel"]) < 0.2
            settled_since = (settled_since or time.monotonic()) if near else None
            if settled_since is not None and time.monotonic() - settled_since > 0.2:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"reset: vehicle did not reach {target.round(2).tolist()} within "
                                   f"{self.reset_timeout} s (at {s['pos'].round(2).tolist()})")
            if not self.armed or not self.in_offboard():
                raise CommandRejected("reset: vehicle left OFFBOARD/GUIDED or disarmed while flying to the start")
            time.sleep(self.dt)
        self._t0_episode = time.monotonic()
        self._tick_next = self._t0_episode + self.dt
        self._overruns = 0

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4,):
            raise ValueError(f"quadrotor command must be [thrust, p, q, r], got shape {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"quadrotor command contains NaN/inf: {target}")
        self._check_link()
        cmd = target.copy()
        cmd[0] = np.clip(cmd[0], 0.0, 1.0)
        self._send_ctbr(cmd)
        with self._lock:
            self._hold_pos = np.array([*self._state["pos"], yaw_of(self._state["quat"])])

    def advance(self) -> dict[str, Any]:
        now = time.monotonic()
        late = now - self._tick_next
        if late > 0.5 * self.dt:
            self._overruns += 1
            self._tick_next = now
        else:
            time.sleep(max(0.0, self._tick_next - now))
        tick = self._tick_next
        self._tick_next += self.dt
        self._check_link()
        with self._lock:
            age = time.monotonic() - self._last_rx
        return {"timestamp": tick - self._t0_episode,
                "loop_stats": {"overruns": self._overruns, "late_s": max(late, 0.0), "link_age_s": age}}

    def close(self) -> None:
        """Command a landing (the vehicle would also fail safe on setpoint loss) and release the link."""
        if self._stop.is_set():
            return
        self._hold_pos = None
        try:
            if self.armed and time.monotonic() - self._last_rx < self.link_timeout:
                self.land()
        finally:
            self._stop.set()
            self._rx.join(timeout=1.0)
            self.conn.close()
