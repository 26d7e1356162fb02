"""The real quadrotor backend: a PX4 or ArduPilot vehicle over MAVLink (pymavlink, UDP, TCP or serial).

* State comes from ATTITUDE_QUATERNION + LOCAL_POSITION_NED, or ODOMETRY when the vehicle sends it,
  converted to our frames in `robotlearn.hardware.frames` (NED/FRD -> ENU/FLU).
* Connect waits, with progress in the log, until the vehicle is ready to arm: heartbeat out of BOOT,
  attitude telemetry, position telemetry (ArduPilot sends LOCAL_POSITION_NED only once its EKF uses
  GPS, ~42 s after a cold start) and the SYS_STATUS prearm-check bit; a timeout names what is missing.
* `command()` sends the CTBR target at once as SET_ATTITUDE_TARGET (body rates + thrust);
  `advance()` returns at the next control tick, so the policy streams setpoints at `control_hz`.
* Ticks follow the telemetry (`tick_on_telemetry`, robotlearn.hardware.stream_clock): a tick fires just
  after a state sample arrives, so every step reads a fresh sample, as a sim's step does.
* Thrust semantics: PX4 reads SET_ATTITUDE_TARGET's thrust as collective thrust. ArduCopter reads it as
  a climb-rate demand (0.5 = hold altitude) unless GUID_OPTIONS bit 3 is set, so with the default
  `ardupilot_thrust="thrust"` the driver sets that bit at connect (checked by its echo) and CTBR means
  the same on both autopilots and in the sims. `"climb_rate"` clears it and passes ArduPilot's meaning on.
* `reset()`: PX4 streams setpoints, then OFFBOARD (MAV_CMD_DO_SET_MODE, custom main mode 6), arms and
  flies to the start. ArduPilot: GUIDED, arm, MAV_CMD_NAV_TAKEOFF and *nothing* sent while it climbs
  (ArduCopter drops the takeoff if a target arrives while it is still landed, then auto-disarms), then
  SET_POSITION_TARGET_LOCAL_NED to the episode's start.
* A receive thread keeps the latest state and, if the policy pauses for longer than `hold_after`
  (a training update, say), streams a position hold so OFFBOARD/GUIDED does not time out mid-air.
* Failsafes: what the autopilot does when this process dies is the autopilot's configuration, not
  ours. Connect reads and logs it (ArduPilot FS_GCS_ENABLE, FS_GCS_TIMEOUT, GUID_TIMEOUT; PX4
  COM_OF_LOSS_T, COM_OBL_RC_ACT) and warns when nothing would land the vehicle (ArduPilot's default
  FS_GCS_ENABLE=0 keeps holding in GUIDED forever); `set_failsafe=True` makes it land.
* Link loss: nothing from the vehicle for `link_timeout` s (socket errors included) -> the driver
  stops streaming, sends a best-effort LAND and raises `LinkLostError` from every later call.

Both autopilots are tested against the emulator (`robotlearn emulate quadrotor --autopilot px4|ardupilot`);
the ArduPilot flavour is checked against recorded sessions with the real ArduCopter SITL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field
from pymavlink import mavutil

from robotlearn.core.backend import Backend, BackendOptions, State
from robotlearn.core.rotations import quat_to_rot, yaw_of
from robotlearn.core.spec import RobotSpec
from robotlearn.hardware import frames
from robotlearn.hardware.mavlink_params import ParamClient, ParamError
from robotlearn.hardware.stream_clock import StreamClock

log = logging.getLogger(__name__)
mav = frames.mavlink2_common()
ATT_RATES_ONLY = mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE
POS_YAW_ONLY = 0b0000_1001_1111_1000  # ignore velocity, acceleration, yaw rate
PX4_OFFBOARD = 6  # PX4 custom main mode (px4_custom_mode.h)
ARDUPILOT_GUIDED = {name: num for num, name in mavutil.mode_mapping_acm.items()}["GUIDED"]
GUID_OPTIONS_THRUST = 8  # ArduCopter GUID_OPTIONS bit 3: SetAttitudeTarget interprets thrust as thrust
ARDUPILOT_FS_LAND = 5  # FS_GCS_ENABLE = Land
PX4_OBL_LAND, PX4_OBL_RETURN = 4, 3  # COM_OBL_RC_ACT values that bring the vehicle down
FAILSAFE_PARAMS = {"ardupilot": ("FS_GCS_ENABLE", "FS_GCS_TIMEOUT", "GUID_TIMEOUT"),
                   "px4": ("COM_OF_LOSS_T", "COM_OBL_RC_ACT")}


class LinkLostError(ConnectionError):
    """The vehicle stopped talking: nothing received for longer than the link timeout."""


class CommandRejected(RuntimeError):
    """The autopilot answered a command with something other than MAV_RESULT_ACCEPTED."""


class NotReadyError(ConnectionError):
    """The vehicle talks but did not become ready to arm within `ready_timeout`."""


class MavlinkOptions(BackendOptions):
    """Options of the MAVLink vehicle."""

    #: pymavlink connection string (udpin:HOST:PORT, udpout:..., tcp:HOST:PORT, /dev/ttyACM0)
    connection: str = "udpin:127.0.0.1:14550"
    #: serial baud (serial connections only)
    baud: int = Field(57600, gt=0)
    #: no message from the vehicle for this long -> LinkLostError (s); 2.5 s while it boots (1 Hz heartbeats)
    link_timeout: float = Field(0.5, gt=0)
    #: how long to wait for the vehicle's first heartbeat (s)
    connect_timeout: float = Field(10.0, gt=0)
    #: how long to wait, after the heartbeat, until it is ready to arm (s); ArduPilot cold start ~42 s
    ready_timeout: float = Field(90.0, gt=0)
    #: "auto" = from the HEARTBEAT's autopilot field; or force "px4" / "ardupilot"
    autopilot: Literal["auto", "px4", "ardupilot"] = "auto"
    #: ArduPilot: meaning of CTBR thrust. "thrust": set GUID_OPTIONS bit 3 (collective thrust, as PX4 and
    #: the sims); "climb_rate": clear it (ArduCopter's default: 0.5 = hold altitude)
    ardupilot_thrust: Literal["thrust", "climb_rate"] = "thrust"
    #: ArduPilot NAV_TAKEOFF altitude (m above home); None = the episode start's height
    takeoff_altitude: float | None = Field(None, gt=0)
    #: how long the ArduPilot takeoff climb may take, spool-up included (s)
    takeoff_timeout: float = Field(15.0, gt=0)
    #: write a landing failsafe at connect: ArduPilot FS_GCS_ENABLE=5 (Land), PX4 COM_OBL_RC_ACT=4 (Land)
    set_failsafe: bool = False
    #: with set_failsafe: FS_GCS_TIMEOUT (ArduPilot) / COM_OF_LOSS_T (PX4) in s; None = leave as is
    failsafe_timeout: float | None = Field(None, gt=0)
    #: reset succeeds within this distance of the start position (m)
    reset_tolerance: float = Field(0.15, gt=0)
    #: ... and below this speed (m/s), both held for `settle_s`: a vehicle passing slowly through the turning
    #: point of an oscillation meets the distance but not the dwell, so an episode starts at rest
    settle_speed: float = Field(0.1, gt=0)
    #: how long the vehicle must stay settled before reset returns (s)
    settle_s: float = Field(0.5, ge=0)
    #: how long reset may take to fly to the start, takeoff excluded (s)
    reset_timeout: float = Field(20.0, gt=0)
    #: when the policy sends nothing for this long, the receive thread streams a position hold (s)
    hold_after: float = Field(0.3, ge=0)
    #: lock control ticks to the state stream's arrivals (see the module doc); off = a free-running clock
    tick_on_telemetry: bool = True


class MavlinkQuadBackend(Backend):
    """`backend="real"` for quadrotors (see MavlinkOptions)."""

    name = "real"
    deterministic = False
    Options = MavlinkOptions

    def __init__(self, spec: RobotSpec, options: MavlinkOptions | None = None):
        super().__init__(spec, options)
        opts = self.options
        if spec.kind != "quadrotor":
            raise ValueError(f"MavlinkQuadBackend needs a quadrotor spec, got kind {spec.kind!r}")
        self.connection, self.link_timeout = opts.connection, float(opts.link_timeout)
        self.reset_tolerance, self.reset_timeout, self.hold_after = (opts.reset_tolerance, opts.reset_timeout,
                                                                     opts.hold_after)
        self.dt = 1.0 / spec.control_hz
        self.conn = mavutil.mavlink_connection(opts.connection, baud=opts.baud, source_system=255,
                                               source_component=mav.MAV_COMP_ID_ONBOARD_COMPUTER, dialect="common")
        self._lock = threading.Lock()
        self._tx_lock = threading.Lock()  # pymavlink's sender (sequence number, socket) is not thread-safe
        self._state: dict[str, np.ndarray] = {}
        self._clock = StreamClock(self.dt, ("attitude", "position"), self._lock)
        self._acks: dict[int, int] = {}
        self._texts: deque[tuple[float, str]] = deque(maxlen=20)  # (time, STATUSTEXT)
        self._heartbeat = None
        self._sys_status = None
        self._landed_state: int | None = None
        self._last_rx = time.monotonic()
        self._booting = True  # until ready: a longer link timeout (booting vehicles send 1 Hz heartbeats)
        self._lost: str | None = None  # why the link was declared lost (latched)
        self._socket_error: OSError | None = None
        self._stop = threading.Event()
        self._last_tx = self._last_heartbeat_tx = 0.0
        self._hold_pos: np.ndarray | None = None
        self._tick_next = 0.0
        self._t0 = self._t0_episode = time.monotonic()
        self._overruns = 0
        try:
            self._connect(opts)
        except BaseException:
            self._stop.set()
            if hasattr(self, "_rx"):
                self._rx.join(timeout=1.0)
            self.conn.close()
            raise

    def _connect(self, opts: MavlinkOptions) -> None:
        hb, deadline = None, time.monotonic() + opts.connect_timeout
        while hb is None and time.monotonic() < deadline:
            self._send_heartbeat()  # lets a vehicle listening on udpin learn our address
            hb = self.conn.wait_heartbeat(blocking=True, timeout=0.5)
            if hb is not None and hb.type == mav.MAV_TYPE_GCS:
                hb = None
        if hb is None:
            raise ConnectionError(f"no MAVLink heartbeat from a vehicle on {opts.connection!r} within "
                                  f"{opts.connect_timeout} s")
        self.target = (hb.get_srcSystem(), hb.get_srcComponent())
        detected = "px4" if hb.autopilot == mav.MAV_AUTOPILOT_PX4 else "ardupilot"
        self.autopilot = detected if opts.autopilot == "auto" else opts.autopilot
        self._heartbeat = hb
        self.params = ParamClient(self._send, self.target, bytewise=self.autopilot == "px4")
        self._last_rx = time.monotonic()
        self._rx = threading.Thread(target=self._receive_loop, name="mavlink-rx", daemon=True)
        self._rx.start()
        fast_us, slow_us = int(1e6 / max(self.spec.control_hz, 50.0)), 200_000
        for msg_id, interval in ((mav.MAVLINK_MSG_ID_HEARTBEAT, fast_us), (mav.MAVLINK_MSG_ID_ATTITUDE_QUATERNION, fast_us),
                                 (mav.MAVLINK_MSG_ID_LOCAL_POSITION_NED, fast_us), (mav.MAVLINK_MSG_ID_SYS_STATUS, slow_us),
                                 (mav.MAVLINK_MSG_ID_EXTENDED_SYS_STATE, slow_us)):
            self._command_long(mav.MAV_CMD_SET_MESSAGE_INTERVAL, msg_id, interval)
        self._wait_ready(opts.ready_timeout)
        self._booting = False
        if self.autopilot == "ardupilot":
            self.set_thrust_semantics(opts.ardupilot_thrust)
        else:
            self.thrust_semantics = "thrust"
        self._check_failsafe(opts.set_failsafe, opts.failsafe_timeout)

    # ---- receive thread ---------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        """Never dies of a socket error: errors are kept, and silence becomes link loss (`_declare_lost`)."""
        while not self._stop.is_set() and self._lost is None:
            try:
                msg = self.conn.recv_match(blocking=True, timeout=0.02)
            except OSError as err:  # ConnectionResetError on TCP, ENETDOWN, a vanished serial adapter, ...
                if self._stop.is_set():
                    return
                self._socket_error, msg = err, None
                time.sleep(0.02)
            if msg is not None and msg.get_srcSystem() == self.target[0]:
                self._handle(msg)
            silent = time.monotonic() - self._last_rx
            if silent > self._link_timeout():
                self._declare_lost(silent)
                return
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
                self._clock.part_arrived("attitude", self._last_rx)
            elif kind == "LOCAL_POSITION_NED":
                self._state["pos"] = frames.ned_to_enu([msg.x, msg.y, msg.z])
                self._state["vel"] = frames.ned_to_enu([msg.vx, msg.vy, msg.vz])
                self._state["sample_time"] = np.array(1e-3 * msg.time_boot_ms)
                self._clock.part_arrived("position", self._last_rx)
            elif kind == "ODOMETRY" and msg.frame_id == mav.MAV_FRAME_LOCAL_NED:
                q_ned = np.asarray(msg.q, dtype=np.float64)
                vel = np.array([msg.vx, msg.vy, msg.vz])
                if msg.child_frame_id == mav.MAV_FRAME_BODY_FRD:
                    vel = quat_to_rot(q_ned) @ vel
                self._state["pos"] = frames.ned_to_enu([msg.x, msg.y, msg.z])
                self._state["vel"] = frames.ned_to_enu(vel)
                self._state["quat"] = frames.quat_ned_frd_to_enu_flu(q_ned)
                self._state["omega"] = frames.frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])
                self._state["sample_time"] = np.array(1e-6 * msg.time_usec)
                self._clock.part_arrived("attitude", self._last_rx)
                self._clock.part_arrived("position", self._last_rx)
            elif kind == "COMMAND_ACK":
                self._acks[msg.command] = msg.result
            elif kind == "SYS_STATUS":
                self._sys_status = msg
            elif kind == "EXTENDED_SYS_STATE":
                self._landed_state = msg.landed_state
            elif kind == "STATUSTEXT":
                self._texts.append((time.monotonic(), msg.text))
        if kind == "PARAM_VALUE":
            self.params.on_param_value(msg)

    def _send(self, send: Callable[..., None], args: tuple = ()) -> None:
        """Every transmission: one at a time, and a socket error is kept for the link-loss message, not raised."""
        with self._tx_lock:
            try:
                send(self.conn.mav, *args)
            except OSError as err:
                self._socket_error = err

    def _send_heartbeat(self) -> None:
        """1 Hz, as any companion computer: autopilots use it for their data-link-loss failsafe."""
        self._send(lambda m: m.heartbeat_send(mav.MAV_TYPE_ONBOARD_CONTROLLER, mav.MAV_AUTOPILOT_INVALID, 0, 0,
                                              mav.MAV_STATE_ACTIVE))
        self._last_heartbeat_tx = time.monotonic()

    def _keepalive(self) -> None:
        """Position hold while the policy is paused, so OFFBOARD/GUIDED is not lost mid-air."""
        if self._hold_pos is None or not self.armed:
            return
        now = time.monotonic()
        if now - self._last_tx > self.hold_after:
            self._send_position(self._hold_pos[:3], self._hold_pos[3])

    # ---- link and state ---------------------------------------------------------------------------
    def _link_timeout(self) -> float:
        return max(self.link_timeout, 2.5) if self._booting else self.link_timeout

    def _declare_lost(self, silent: float) -> None:
        """Safe state on link loss: stop streaming (the autopilot's failsafe takes over) and ask for a LAND."""
        if self._lost is not None:
            return
        error = f"; socket error: {self._socket_error!r}" if self._socket_error is not None else ""
        self._lost = (f"MAVLink link lost: nothing from the vehicle on {self.connection!r} for {silent:.2f} s "
                      f"(link_timeout {self._link_timeout()} s{error})")
        self._hold_pos = None
        if self.armed:
            self.land()  # best effort: if only the downlink is gone, the vehicle still hears this
        log.error("%s; stopped streaming setpoints and sent LAND", self._lost)

    def _check_link(self) -> None:
        silent = time.monotonic() - self._last_rx
        if self._lost is None and silent > self._link_timeout():
            self._declare_lost(silent)
        if self._lost is not None:
            raise LinkLostError(self._lost)

    def _ready_pieces(self) -> list[tuple[str, bool]]:
        """What the vehicle must show before it can arm, in the order it comes after a cold start."""
        with self._lock:
            hb, status, state = self._heartbeat, self._sys_status, dict(self._state)
        booted = hb is not None and hb.system_status not in (mav.MAV_STATE_UNINIT, mav.MAV_STATE_BOOT)
        prearm_known = status is not None and status.onboard_control_sensors_present & mav.MAV_SYS_STATUS_PREARM_CHECK
        prearm_ok = status is not None and (not prearm_known
                                            or status.onboard_control_sensors_health & mav.MAV_SYS_STATUS_PREARM_CHECK)
        return [("the vehicle to finish booting (HEARTBEAT system_status BOOT)", booted),
                ("attitude telemetry (ATTITUDE_QUATERNION or ODOMETRY)", "quat" in state),
                ("a position estimate (LOCAL_POSITION_NED; ArduPilot sends it once its EKF has a GPS origin and "
                 "uses GPS)", "pos" in state),
                ("SYS_STATUS", status is not None),
                ("the prearm checks (SYS_STATUS prearm-check health bit)", bool(prearm_ok))]

    def _wait_ready(self, timeout: float) -> None:
        """Block until the vehicle is ready to arm, logging each piece as it arrives; NotReadyError names the missing one."""
        t0 = time.monotonic()
        done: set[str] = set()
        next_progress = t0 + 5.0
        while True:
            self._check_link()
            pieces = self._ready_pieces()
            for what, ok in pieces:
                if ok and what not in done:
                    done.add(what)
                    log.info("vehicle on %s: got %s after %.1f s", self.connection, what, time.monotonic() - t0)
            missing = [what for what, ok in pieces if not ok]
            if not missing:
                return
            now = time.monotonic()
            if now - t0 > timeout:
                raise NotReadyError(f"vehicle on {self.connection!r} not ready to arm after {timeout:g} s: waiting for "
                                    f"{missing[0]}{self._last_text_note()}")
            if now >= next_progress:
                next_progress = now + 5.0
                log.info("vehicle on %s: waiting for %s (%.0f s of %g s)%s", self.connection, missing[0], now - t0,
                         timeout, self._last_text_note())
            time.sleep(0.02)

    def _last_text_note(self, since: float = 0.0) -> str:
        texts = [text for t, text in list(self._texts) if t >= since]
        return f"; vehicle says {texts[-1]!r}" if texts else ""

    def set_thrust_semantics(self, semantics: Literal["thrust", "climb_rate"]) -> None:
        """ArduPilot: make SET_ATTITUDE_TARGET's thrust mean `semantics` (GUID_OPTIONS bit 3, echo-checked)."""
        options = int(self.params.get("GUID_OPTIONS"))
        wanted = options | GUID_OPTIONS_THRUST if semantics == "thrust" else options & ~GUID_OPTIONS_THRUST
        if wanted != options:
            self.params.set("GUID_OPTIONS", wanted)
        self.thrust_semantics = semantics
        log.info("ArduPilot GUID_OPTIONS=%d: SET_ATTITUDE_TARGET thrust is %s", wanted,
                 "collective thrust" if semantics == "thrust" else "a climb-rate demand (0.5 = hold altitude)")

    def _check_failsafe(self, set_failsafe: bool, failsafe_timeout: float | None) -> None:
        """Read (and with set_failsafe, write) what the autopilot does when this driver goes silent."""
        if set_failsafe:
            action, timeout = (("FS_GCS_ENABLE", ARDUPILOT_FS_LAND), "FS_GCS_TIMEOUT") if self.autopilot == "ardupilot" \
                else (("COM_OBL_RC_ACT", PX4_OBL_LAND), "COM_OF_LOSS_T")
            self.params.set(*action)
            if failsafe_timeout is not None:
                self.params.set(timeout, failsafe_timeout)
        self.failsafe: dict[str, float | None] = {}
        for name in FAILSAFE_PARAMS[self.autopilot]:
            try:
                self.failsafe[name] = self.params.get(name)
            except ParamError:
                self.failsafe[name] = None
        if self.autopilot == "ardupilot":
            self.failsafe_armed = bool(self.failsafe["FS_GCS_ENABLE"])
            consequence = "with FS_GCS_ENABLE=0 ArduCopter keeps holding in GUIDED if this driver dies"
        else:
            self.failsafe_armed = self.failsafe["COM_OBL_RC_ACT"] in (PX4_OBL_LAND, PX4_OBL_RETURN)
            consequence = "PX4 will not land or return when the setpoint stream stops (COM_OBL_RC_ACT)"
        report = ", ".join(f"{k}={'unreadable' if v is None else f'{v:g}'}" for k, v in self.failsafe.items())
        log.info("vehicle on %s failsafe parameters: %s", self.connection, report)
        if not self.failsafe_armed:
            log.warning("no failsafe armed on %s (%s): %s; pass set_failsafe=True to make it land",
                        self.connection, report, consequence)

    @property
    def armed(self) -> bool:
        hb = self._heartbeat
        return bool(hb is not None and hb.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)

    @property
    def custom_mode(self) -> int:
        return int(self._heartbeat.custom_mode) if self._heartbeat is not None else -1

    @property
    def landed(self) -> bool:
        """On the ground: EXTENDED_SYS_STATE's landed state when the vehicle reports one, else below 0.2 m."""
        if self._landed_state not in (None, mav.MAV_LANDED_STATE_UNDEFINED):
            return self._landed_state == mav.MAV_LANDED_STATE_ON_GROUND
        return self.read()["pos"][2] < 0.2

    def read(self) -> State:
        """The newest state, and `sample_time`: the vehicle's clock (s since its boot) at the position
        sample, which tells a recording whether consecutive ticks read consecutive samples."""
        self._check_link()
        with self._lock:
            return {k: self._state[k].copy() for k in ("pos", "vel", "quat", "omega", "sample_time")}

    # ---- commands --------------------------------------------------------------------------------
    def _command_long(self, command: int, *params: float) -> None:
        p = [float(x) for x in params] + [0.0] * (7 - len(params))
        with self._lock:
            self._acks.pop(command, None)
        self._send(lambda m: m.command_long_send(self.target[0], self.target[1], command, 0, *p))

    def _command(self, command: int, *params: float, timeout: float = 1.5, what: str = "") -> None:
        """COMMAND_LONG and wait for its ACK (resent every 0.3 s); CommandRejected on a refusal."""
        deadline, sent = time.monotonic() + timeout, time.monotonic()
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
                        time.sleep(0.1)  # the reasons (STATUSTEXT) may come just after the ACK
                        raise CommandRejected(f"vehicle rejected {what or command}: {name}"
                                              f"{self._last_text_note(sent)}")
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

    def land(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Command a landing; with `wait`, block until the vehicle has landed and disarmed."""
        self._hold_pos = None
        self._command_long(mav.MAV_CMD_NAV_LAND)
        if wait:
            self._wait_heartbeat(lambda: not self.armed, "disarmed after landing", timeout)

    def _send_position(self, pos_enu: np.ndarray, yaw_enu: float) -> None:
        ned = frames.enu_to_ned(pos_enu)
        self._send(lambda m: m.set_position_target_local_ned_send(
            self._boot_ms(), *self.target, mav.MAV_FRAME_LOCAL_NED, POS_YAW_ONLY, *ned, 0, 0, 0, 0, 0, 0,
            frames.yaw_enu_to_ned(yaw_enu), 0))
        self._last_tx = time.monotonic()

    def _send_ctbr(self, cmd: np.ndarray) -> None:
        rates = frames.flu_to_frd(cmd[1:])
        self._send(lambda m: m.set_attitude_target_send(self._boot_ms(), *self.target, ATT_RATES_ONLY,
                                                        [1.0, 0, 0, 0], *rates, float(cmd[0])))
        self._last_tx = time.monotonic()

    def _boot_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF

    def _takeoff(self, altitude: float) -> None:
        """ArduPilot GUIDED takeoff: NAV_TAKEOFF, then silence (no targets) until the climb is done."""
        self._hold_pos = None
        self._command(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, float(altitude), what="takeoff")
        t0 = time.monotonic()
        deadline = t0 + self.options.takeoff_timeout
        next_progress = t0 + 2.0
        while True:
            z = self.read()["pos"][2]
            if z >= altitude - self.reset_tolerance:
                log.info("takeoff to %.2f m done in %.1f s", altitude, time.monotonic() - t0)
                return
            if not self.armed:
                raise CommandRejected(f"takeoff: the vehicle disarmed at {z:.2f} m before reaching {altitude:.2f} m"
                                      f"{self._last_text_note(t0)}")
            if not self.in_offboard():
                raise CommandRejected(f"takeoff: the vehicle left GUIDED (mode {self.custom_mode}) at {z:.2f} m")
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"takeoff: at {z:.2f} m after {self.options.takeoff_timeout:g} s, asked "
                                   f"{altitude:.2f} m (landed_state {self._landed_state})")
            if now >= next_progress:
                next_progress = now + 2.0
                log.info("takeoff: %.2f m of %.2f m after %.1f s", z, altitude, now - t0)
            time.sleep(self.dt)

    # ---- Backend contract ------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        """Arm, enter OFFBOARD/GUIDED and fly to initial["pos"] (yaw from initial["quat"]).

        Velocity, attitude and rate randomization cannot be imposed on a real vehicle and are ignored.
        """
        target = np.asarray(initial.get("pos", (0.0, 0.0, 1.0)), dtype=np.float64)
        yaw = yaw_of(np.asarray(initial["quat"], dtype=np.float64)) if "quat" in initial else 0.0
        if not np.all(np.isfinite(target)):
            raise ValueError(f"reset: initial pos is not finite: {target}")
        self._hold_pos = None  # nothing streams while modes change and, on ArduPilot, while it takes off
        if self.autopilot == "px4":
            # PX4 accepts OFFBOARD only once setpoints stream; send a few before switching.
            for _ in range(5):
                self._send_position(target, yaw)
                time.sleep(self.dt)
            if not self.in_offboard():
                self.set_offboard()
            if not self.armed:
                self.arm()
        else:
            if not self.in_offboard():
                self.set_offboard()  # GUIDED needs no stream
            if self.landed:
                if not self.armed:
                    self.arm()
                # ArduCopter leaves the ground only on NAV_TAKEOFF, and any target sent before the climb
                # starts cancels it: hand over to position targets only once the climb is complete.
                self._takeoff(self.options.takeoff_altitude or float(target[2]))
        self._fly_to(target, yaw)
        self._hold_pos = np.array([*target, yaw])
        self._t0_episode = time.monotonic()
        self._tick_next = self._t0_episode + self.dt
        self._overruns = 0

    def _fly_to(self, target: np.ndarray, yaw: float) -> None:
        """Stream a position target until the vehicle has settled at it (reset_tolerance, settle_speed, settle_s)."""
        deadline = time.monotonic() + self.reset_timeout
        settled_since = None
        while True:
            self._check_link()
            self._send_position(target, yaw)
            s = self.read()
            near = (np.linalg.norm(s["pos"] - target) < self.reset_tolerance
                    and np.linalg.norm(s["vel"]) < self.options.settle_speed)
            settled_since = (settled_since or time.monotonic()) if near else None
            if settled_since is not None and time.monotonic() - settled_since > self.options.settle_s:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"reset: vehicle did not reach {target.round(2).tolist()} within "
                                   f"{self.reset_timeout} s (at {s['pos'].round(2).tolist()})")
            if not self.armed or not self.in_offboard():
                raise CommandRejected(f"reset: vehicle left OFFBOARD/GUIDED or disarmed while flying to the start"
                                      f"{self._last_text_note()}")
            time.sleep(self.dt)

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
        locked = self._clock.tick(self._tick_next) if self.options.tick_on_telemetry else None
        if locked is None:
            time.sleep(max(0.0, self._tick_next - time.monotonic()))
            tick = anchor = self._tick_next
        else:
            tick, anchor = locked
        self._tick_next = anchor + self.dt
        self._check_link()
        with self._lock:
            age = time.monotonic() - self._last_rx
        return {"timestamp": tick - self._t0_episode,
                "loop_stats": {"overruns": self._overruns, "late_s": max(late, 0.0), "link_age_s": age,
                               "state_age_s": self._clock.age(time.monotonic())}}

    def close(self) -> None:
        """Command a landing (while the link is up) and release the link."""
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
