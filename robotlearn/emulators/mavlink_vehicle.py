"""An emulated quadrotor flight controller that speaks MAVLink over UDP, TCP or serial, backed by our physics.

The device side of `robotlearn.hardware.quadrotor`. This module holds what every autopilot shares:
the link, a simulated clock (`speedup` like SITL's), the physics, telemetry streams with rates set by
MAV_CMD_SET_MESSAGE_INTERVAL, the MAVLink parameter protocol and setpoint decoding. What differs
between autopilots (modes, arming rules, takeoff, failsafes, boot) is a *flavour* subclass:

* `robotlearn.emulators.px4_vehicle.Px4Vehicle`: PX4 (OFFBOARD needs a setpoint stream, offboard-loss
  failsafe COM_OF_LOSS_T / COM_OBL_RC_ACT).
* `robotlearn.emulators.ardupilot_vehicle.ArduCopterVehicle`: ArduCopter in GUIDED, modelled on the
  recorded SITL sessions in shared/fixtures/ardupilot-sitl (cold start, takeoff sub-mode, GUID_OPTIONS,
  GUID_TIMEOUT, FS_GCS_ENABLE, auto-disarm).

`make_vehicle(connection, autopilot=...)` builds one. Physics: the MuJoCo quadrotor backend with the
compiled rate loop and mixer, on a perturbed airframe (`QuadGap`) the driver cannot see.
"""

from __future__ import annotations

import os
import time
import tty
from collections import deque
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from pymavlink import mavutil

from robotlearn.core.config import load_config
from robotlearn.core.cpu_latency import CpuLatencyRequest
from robotlearn.core.description import load_airframe
from robotlearn.core.realtime import RealtimePriority
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.core.rotations import quat_to_rot, yaw_of
from robotlearn.hardware import frames
from robotlearn.hardware.mavlink_params import INT_TYPES, decode_param, encode_param
from robotlearn.robots.quadrotor import CascadedController
from robotlearn.sim.physical import QuadPhysicalParams, apply_quad_params
from robotlearn.sim.quad_mujoco import MujocoQuadBackend

mav = frames.mavlink2_common()
ATT_IGNORE = mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE
POS_IGNORED = 0b0000_0000_0111  # SET_POSITION_TARGET type_mask bits: x, y, z ignored
VEL_IGNORED = 0b0000_0011_1000  # vx, vy, vz ignored
YAW_IGNORED = 0b0100_0000_0000
PREARM_CHECK = mav.MAV_SYS_STATUS_PREARM_CHECK
# SCHED_FIFO priority of the vehicle loop: above a host's control loop (80), as for the emulated servos
# (servo_bus.DEVICE_PRIORITY), because the vehicle is hardware to the host.
VEHICLE_PRIORITY = 90
RESYNC_S = 0.1  # physics this far behind the wall clock restarts the clock rather than bursting to catch up
LAG_WINDOW = 60_000  # steps of physics lag kept for the timing report (10 min at 100 Hz)


class VehicleTiming:
    """How well the vehicle loop kept real time: physics lag (a step done after its wall-clock deadline)."""

    def __init__(self, sched_fifo: bool, cpu_latency: str) -> None:
        self.sched_fifo, self.cpu_latency = sched_fifo, cpu_latency
        self.lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self.steps = self.late_steps = self.resyncs = 0
        self.max_lag_s = 0.0

    def step_done(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        self.steps += 1
        self.late_steps += lag_s > 0.0
        self.max_lag_s = max(self.max_lag_s, lag_s)
        self.lags.append(lag_s)

    def line(self, loop_dt: float) -> str:
        p50, p99 = np.percentile(self.lags, [50, 99]) if self.lags else (0.0, 0.0)
        return (f"vehicle timing: physics lag p50 {1e3 * p50:.2f} ms p99 {1e3 * p99:.2f} ms max "
                f"{1e3 * self.max_lag_s:.2f} ms ({self.late_steps}/{self.steps} steps of {1e3 * loop_dt:.0f} ms "
                f"late, {self.resyncs} resyncs); sched_fifo {self.sched_fifo}; {self.cpu_latency}")


class PtyLink(mavutil.mavfile):
    """The vehicle end of a pseudo-terminal: the driver opens `path` as a serial device, as it would
    a USB/telemetry-radio port. Writes with no reader are dropped, like a UART with nobody listening."""

    def __init__(self, source_system: int):
        master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(master, False)
        self.path = os.ttyname(self._slave)
        super().__init__(master, self.path, source_system=source_system, source_component=1)

    def recv(self, n=None) -> bytes:
        try:
            return os.read(self.fd, n or self.mav.bytes_needed())
        except OSError:  # EAGAIN: nothing to read; EIO: the other side is not open
            return b""

    def write(self, buf) -> int:
        try:
            return os.write(self.fd, bytes(buf))
        except OSError:
            return 0

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._slave)


class QuadGap(QuadPhysicalParams):
    """Hidden differences between the emulated vehicle and the nominal airframe (1.0 / 0 = none): all of
    `QuadPhysicalParams` (airframe scales applied by sim/physical.py, latency and wind applied here), the
    keys sysid estimates."""


def load_gap(name: str | Path | None, overrides=None) -> QuadGap:
    """configs/hardware/<name>.yaml (or a path) + overrides; None = no gap."""
    if name is None:
        return QuadGap.model_validate(dict(overrides or {}))
    return load_config(QuadGap, "hardware", name, overrides)


class MavlinkVehicle:
    """One emulated vehicle on one MAVLink endpoint; subclasses give the autopilot's behaviour.

    Time is simulated: `now()` advances by `loop_dt` per `step()`, and `run()` paces the steps at
    `speedup` times real time (SITL's --speedup). Telemetry rates and every timer use that clock, so a
    sped-up run behaves like a real-time one, just sooner.
    """

    autopilot = "generic"
    mav_autopilot = mav.MAV_AUTOPILOT_GENERIC
    #: stream name -> default period (s); None = off until requested
    default_streams: dict[str, float | None] = {}
    #: parameter name -> (default value, MAV_PARAM_TYPE)
    default_params: dict[str, tuple[float, int]] = {}
    param_bytewise = False

    def __init__(self, connection: str, robot: str = "cf2x", gap: QuadGap | None = None, baud: int = 57600,
                 loop_hz: float = 100.0, system_id: int = 1, speedup: float = 1.0,
                 params: dict[str, float] | None = None, takeoff_altitude: float = 1.0, land_speed: float = 0.6):
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.gap = gap or QuadGap()
        spec = load_robot_spec(robot)
        nominal = load_airframe(spec.description)
        self.true_airframe = apply_quad_params(nominal, self.gap)
        self.ticks = max(1, int(round(spec.physics_hz / loop_hz)))
        self.loop_dt = self.ticks / spec.physics_hz
        self.speedup = float(speedup)
        self.sim = MujocoQuadBackend(spec, airframe=self.true_airframe)
        self.sim.set_wind(np.asarray(self.gap.wind, dtype=np.float64))
        self.ground_z = self.true_airframe.collision_box[2]
        # The flight controller only knows the nominal airframe (like PX4's MPC_THR_HOVER).
        self.position_ctrl = CascadedController(nominal.hover_thrust, np.asarray(nominal.max_rate), self.loop_dt,
                                                spec.params)
        self.takeoff_altitude, self.land_speed = takeoff_altitude, land_speed
        self.params: dict[str, list] = {name: [float(v), t] for name, (v, t) in self.default_params.items()}
        for name, value in (params or {}).items():
            if name not in self.params:
                raise ValueError(f"{self.autopilot} vehicle has no parameter {name!r}; known: {sorted(self.params)}")
            self.params[name][0] = float(value)
        self.intervals = dict(self.default_streams)
        self._msg_ids = {name: getattr(mav, f"MAVLINK_MSG_ID_{name}") for name in self.intervals}
        if connection == "pty":
            self.conn = PtyLink(system_id)
            self.endpoint = self.conn.path
        else:
            self.conn = mavutil.mavlink_connection(connection, baud=baud, source_system=system_id,
                                                   source_component=1, dialect="common")
            self.endpoint = connection
        self.clock = 0.0
        self._next_send = dict.fromkeys(self.intervals, 0.0)
        self._pending: deque[tuple[float, str, np.ndarray]] = deque()
        self._delayed: list[tuple[float, object]] = []  # (time, callable) for replies sent later
        self.armed = False
        self.landed = True
        self.last_setpoint_rx = -1e9  # time of the latest setpoint received
        self.last_gcs_heartbeat: dict[int, float] = {}  # sysid -> time of its latest HEARTBEAT
        self._setpoint: tuple[str, np.ndarray] | None = None  # active setpoint (after latency)
        self._setpoint_time = -1e9  # when the active setpoint arrived
        self._hold = np.zeros(4)  # x, y, z, yaw for the position-holding modes
        self._landed_since = 0.0
        self.run_timing: VehicleTiming | None = None  # set by run()
        self.sim.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, self.ground_z])})
        self.sim.set_armed(False)

    # ---- time and state ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock

    def _boot_ms(self) -> int:
        return int(self.now() * 1000) & 0xFFFFFFFF

    def _state(self) -> dict[str, np.ndarray]:
        return self.sim.read()

    def _set_hold(self, pos: np.ndarray, yaw: float) -> None:
        self._hold = np.array([*pos, yaw])

    def param(self, name: str) -> float:
        return self.params[name][0]

    def later(self, delay: float, action) -> None:
        """Run `action()` `delay` s from now (simulated time): replies that real autopilots delay."""
        self._delayed.append((self.now() + delay, action))

    # ---- MAVLink in ------------------------------------------------------------------------------
    def _statustext(self, severity: int, text: str) -> None:
        self.conn.mav.statustext_send(severity, text.encode()[:50])

    def _ack(self, command: int, result: int) -> None:
        self.conn.mav.command_ack_send(command, result)
        self._next_send["HEARTBEAT"] = 0.0  # announce the new mode / arming state right away

    def _send_param(self, name: str, index: int, count: int) -> None:
        value, ptype = self.params[name]
        self.conn.mav.param_value_send(name.encode(), encode_param(value, ptype, self.param_bytewise), ptype, count,
                                       index)

    def _param_index(self, name: str) -> int:
        return list(self.params).index(name)

    def _on_param_request(self, name: str) -> None:
        self._send_param(name, self._param_index(name), len(self.params))

    def _on_param_set(self, name: str, raw: float) -> None:
        value = decode_param(raw, self.params[name][1], self.param_bytewise)
        if self.params[name][1] in INT_TYPES:
            value = float(round(value))
        self.params[name][0] = value
        self._send_param(name, self._param_index(name), len(self.params))

    def _on_command(self, msg) -> int | None:
        """Flavour hook: handle a COMMAND_LONG and return its MAV_RESULT (None = not handled here)."""
        return None

    def _on_setpoint(self, kind: str, value: np.ndarray) -> bool:
        """Flavour hook: a setpoint became active (after latency). False drops it."""
        return True

    def _request_message(self, msg_id: int) -> int:
        return mav.MAV_RESULT_UNSUPPORTED

    def _command(self, msg) -> None:
        cmd = msg.command
        result = self._on_command(msg)
        if result is None:
            if cmd == mav.MAV_CMD_SET_MESSAGE_INTERVAL:
                names = [n for n, i in self._msg_ids.items() if i == int(msg.param1)]
                if names and msg.param2 > 0:
                    self.intervals[names[0]] = max(msg.param2 * 1e-6, 0.005)
                elif names and msg.param2 < 0:
                    self.intervals[names[0]] = None
                result = mav.MAV_RESULT_ACCEPTED if names else mav.MAV_RESULT_UNSUPPORTED
            elif cmd == mav.MAV_CMD_REQUEST_MESSAGE:
                result = self._request_message(int(msg.param1))
            else:
                result = mav.MAV_RESULT_UNSUPPORTED
        self._ack(cmd, result)

    def _receive(self) -> None:
        now = self.now()
        while (msg := self.conn.recv_msg()) is not None:
            kind = msg.get_type()
            if kind == "HEARTBEAT" and msg.type != mav.MAV_TYPE_QUADROTOR:
                self.last_gcs_heartbeat[msg.get_srcSystem()] = now
            elif kind == "COMMAND_LONG" and msg.target_system in (0, self.conn.mav.srcSystem):
                self._command(msg)
            elif kind == "PARAM_REQUEST_READ" and msg.target_system == self.conn.mav.srcSystem:
                name = msg.param_id if msg.param_index < 0 else (list(self.params)[msg.param_index]
                                                                 if msg.param_index < len(self.params) else "")
                if name in self.params:
                    self._on_param_request(name)  # an unknown name gets no answer, as on both autopilots
            elif kind == "PARAM_SET" and msg.target_system == self.conn.mav.srcSystem and msg.param_id in self.params:
                self._on_param_set(msg.param_id, msg.param_value)
            elif kind == "SET_ATTITUDE_TARGET" and msg.type_mask & ATT_IGNORE:
                rates = frames.frd_to_flu([msg.body_roll_rate, msg.body_pitch_rate, msg.body_yaw_rate])
                self._pending.append((now + self.gap.latency_s, "ctbr", np.array([msg.thrust, *rates])))
                self.last_setpoint_rx = now
            elif kind == "SET_POSITION_TARGET_LOCAL_NED" and msg.coordinate_frame == mav.MAV_FRAME_LOCAL_NED:
                pos = frames.ned_to_enu([msg.x, msg.y, msg.z])
                vel = np.zeros(3) if msg.type_mask & VEL_IGNORED else frames.ned_to_enu([msg.vx, msg.vy, msg.vz])
                yaw = np.nan if msg.type_mask & YAW_IGNORED else frames.yaw_ned_to_enu(msg.yaw)
                kind = "velocity" if msg.type_mask & POS_IGNORED else "position"
                self._pending.append((now + self.gap.latency_s, kind, np.array([*pos, yaw, *vel])))
                self.last_setpoint_rx = now
        while self._pending and self._pending[0][0] <= now:
            _, kind, value = self._pending.popleft()
            if self._on_setpoint(kind, value):
                self._setpoint, self._setpoint_time = (kind, value), now
        due = [a for a in self._delayed if a[0] <= now]
        self._delayed = [a for a in self._delayed if a[0] > now]
        for _, action in due:
            action()

    # ---- flight control helpers ------------------------------------------------------------------
    def _arm_motors(self) -> None:
        self.armed = True
        self._landed_since = self.now()
        self.position_ctrl.reset()
        self.sim.set_armed(True)

    def _disarm_motors(self) -> None:
        self.armed = False
        self.sim.set_armed(False)

    def _fly_setpoint(self, state, pos_sp, yaw_sp, vel_ff, vz_limit: float | None = None) -> None:
        """Position/velocity setpoint -> CTBR via the cascaded controller; idle on the ground."""
        if self.landed and pos_sp[2] <= state["pos"][2] + 0.05 and vel_ff[2] <= 0:
            self.sim.command(np.zeros(4))  # idle on the ground
            self.position_ctrl.reset()
            return
        vel_sp = self.position_ctrl.velocity_setpoint(state, pos_sp, vel_ff)
        if vz_limit is not None:
            vel_sp[2] = vz_limit
        self.sim.command(self.position_ctrl.ctbr(state, vel_sp, yaw_sp))

    def _fly_active_setpoint(self, state) -> bool:
        """Track the active external setpoint; False when there is none."""
        if self._setpoint is None:
            return False
        kind, target = self._setpoint
        if kind == "ctbr":
            self.sim.command(target)
            return True
        yaw = self._hold[3] if np.isnan(target[3]) else target[3]
        if kind == "velocity":
            self._fly_setpoint(state, state["pos"], yaw, target[4:])
        else:
            self._fly_setpoint(state, target[:3], yaw, target[4:])
        return True

    def _control(self) -> None:
        raise NotImplementedError

    # ---- MAVLink out -----------------------------------------------------------------------------
    def _heartbeat(self) -> tuple[int, int, int]:
        """(base_mode, custom_mode, system_status) of the flavour."""
        raise NotImplementedError

    def _landed_state(self) -> int:
        raise NotImplementedError

    def _stream_ready(self, name: str) -> bool:
        """Flavour hook: whether stream `name` may be sent now (e.g. no position before the estimator has one)."""
        return True

    def _sys_status_sensors(self) -> tuple[int, int, int]:
        """(present, enabled, health) sensor bitmasks of SYS_STATUS."""
        return PREARM_CHECK, PREARM_CHECK, PREARM_CHECK

    def _send(self, name: str, state: dict[str, np.ndarray]) -> None:
        m, ms = self.conn.mav, self._boot_ms()
        if name == "HEARTBEAT":
            m.heartbeat_send(mav.MAV_TYPE_QUADROTOR, self.mav_autopilot, *self._heartbeat())
            return
        if name == "EXTENDED_SYS_STATE":
            m.extended_sys_state_send(mav.MAV_VTOL_STATE_UNDEFINED, self._landed_state())
            return
        if name == "SYS_STATUS":
            present, enabled, health = self._sys_status_sensors()
            m.sys_status_send(present, enabled, health, 200, 12600, -1, -1, 0, 0, 0, 0, 0, 0)
            return
        if name == "TIMESYNC":
            m.timesync_send(0, int(self.now() * 1e9))
            return
        q = frames.quat_enu_flu_to_ned_frd(state["quat"])
        rates = frames.flu_to_frd(state["omega"])
        pos, vel = frames.enu_to_ned(state["pos"]), frames.enu_to_ned(state["vel"])
        if name == "ATTITUDE_QUATERNION":
            m.attitude_quaternion_send(ms, *q, *rates)
        elif name == "ATTITUDE":
            w, x, y, z = q
            roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
            pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1, 1))
            m.attitude_send(ms, roll, pitch, yaw_of(q), *rates)
        elif name == "LOCAL_POSITION_NED":
            m.local_position_ned_send(ms, *pos, *vel)
        elif name == "GLOBAL_POSITION_INT":
            lat, lon, alt = self._global_position(pos)
            hdg = int(np.degrees(yaw_of(q)) % 360 * 100)
            m.global_position_int_send(ms, lat, lon, alt, int(-pos[2] * 1000), *(int(v * 100) for v in vel), hdg)
        elif name == "ODOMETRY":
            vel_body = quat_to_rot(q).T @ vel  # ODOMETRY velocity is in the child (body FRD) frame
            nan = [float("nan")] * 21
            m.odometry_send(ms * 1000, mav.MAV_FRAME_LOCAL_NED, mav.MAV_FRAME_BODY_FRD, *pos, q, *vel_body, *rates,
                            nan, nan)

    def _global_position(self, pos_ned: np.ndarray) -> tuple[int, int, int]:
        return 0, 0, 0

    def _telemetry(self) -> None:
        now, state = self.now(), self._state()
        for name, period in self.intervals.items():
            if period is None or not self._stream_ready(name):
                continue
            if now >= self._next_send[name]:
                self._next_send[name] = max(self._next_send[name] + period, now)
                self._send(name, state)

    # ---- main loop -------------------------------------------------------------------------------
    def _update_landed(self, state) -> None:
        self.landed = bool(state["pos"][2] < self.ground_z + 0.03 and abs(state["vel"][2]) < 0.2)

    def step(self) -> None:
        """One flight-controller cycle: receive -> control -> physics (loop_dt) -> telemetry."""
        self._receive()
        self._update_landed(self._state())
        self._control()
        self.sim.step_physics(self.ticks)
        self.clock += self.loop_dt
        self._telemetry()

    def run(self, duration: float | None = None, should_stop=None, priority: int = VEHICLE_PRIORITY) -> None:
        """Run at `speedup` x real time until `duration` (simulated s) elapses or `should_stop()` is True.
        A flight controller runs on its own board: idle CPUs are kept awake meanwhile (core/cpu_latency.py)
        and the loop runs at SCHED_FIFO when granted (core/realtime.py), so load elsewhere on the machine
        cannot make it fall behind and catch up in bursts, which would shift every later setpoint by whole
        cycles. (Before it and the driver's sample stamps, fits under two CPU hogs found 5-16 ms for the gap's
        10; bench/quad_sysid_load.py compares.) `priority=0` runs at ordinary priority."""
        fifo = RealtimePriority(priority) if priority else nullcontext(None)
        with CpuLatencyRequest(0) as cpu_latency, fifo as held:
            self.run_timing = VehicleTiming(held is not None and held.granted, cpu_latency.describe())
            wall0, sim0 = time.monotonic(), self.now()
            while (duration is None or self.now() < duration) and not (should_stop and should_stop()):
                self.step()
                delay = wall0 + (self.now() - sim0) / self.speedup - time.monotonic()
                self.run_timing.step_done(-delay)
                if delay > 0:
                    time.sleep(delay)
                elif delay < -RESYNC_S:  # fell far behind (machine busy): resynchronize instead of bursting
                    wall0, sim0 = time.monotonic(), self.now()
                    self.run_timing.resyncs += 1

    def close(self) -> None:
        self.conn.close()
        self.sim.close()


def make_vehicle(connection: str, autopilot: str = "px4", **kwargs) -> MavlinkVehicle:
    """The emulated vehicle of one autopilot flavour ('px4' or 'ardupilot')."""
    if autopilot == "px4":
        from robotlearn.emulators.px4_vehicle import Px4Vehicle
        return Px4Vehicle(connection, **kwargs)
    if autopilot == "ardupilot":
        from robotlearn.emulators.ardupilot_vehicle import ArduCopterVehicle
        return ArduCopterVehicle(connection, **kwargs)
    raise ValueError(f"autopilot must be 'px4' or 'ardupilot', got {autopilot!r}")
