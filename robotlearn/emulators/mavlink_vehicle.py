"""An emulated PX4-style quadrotor that speaks MAVLink over UDP or serial, backed by our physics.

The device side of `robotlearn.hardware.quadrotor`: what a flight controller running PX4 does at the
MAVLink boundary, small enough to read in one sitting.

* Telemetry: HEARTBEAT (PX4 custom mode encoding), ATTITUDE_QUATERNION, LOCAL_POSITION_NED, ODOMETRY,
  EXTENDED_SYS_STATE; rates changeable with MAV_CMD_SET_MESSAGE_INTERVAL.
* Commands: MAV_CMD_COMPONENT_ARM_DISARM (with arming checks), MAV_CMD_DO_SET_MODE (PX4 main/sub
  modes POSCTL, AUTO.LOITER, AUTO.TAKEOFF, AUTO.LAND, OFFBOARD), MAV_CMD_NAV_LAND/TAKEOFF.
* OFFBOARD is accepted only while setpoints stream (SET_ATTITUDE_TARGET with body rates + thrust, or
  SET_POSITION_TARGET_LOCAL_NED); when they stop for `offboard_loss_timeout` the vehicle lands
  (PX4's COM_OF_LOSS_T / COM_OBL_RC_ACT = land) and disarms on the ground.
* `autopilot="ardupilot"` switches to ArduCopter's dialect of the same behaviour: mode numbers
  (GUIDED = 4), GUIDED needs no stream but ignores setpoints until MAV_CMD_NAV_TAKEOFF, and a lost
  stream makes it hold position instead of landing.
* Physics: the MuJoCo quadrotor backend with the compiled rate loop and mixer, on a perturbed
  airframe (`QuadGap`: mass, thrust coefficient, drag, latency, wind) the driver cannot see.
"""

from __future__ import annotations

import os
import time
import tty
from collections import deque
from pathlib import Path

import numpy as np
from pydantic import Field
from pymavlink import mavutil

from robotlearn.core.config import load_config
from robotlearn.core.description import load_airframe
from robotlearn.core.robot_config import load_robot_spec
from robotlearn.core.rotations import quat_to_rot, yaw_of
from robotlearn.hardware import frames
from robotlearn.robots.quadrotor import CascadedController
from robotlearn.sim.physical import QuadPhysicalParams, apply_quad_params
from robotlearn.sim.quad_mujoco import MujocoQuadBackend

mav = frames.mavlink2_common()
PX4_MODES = mavutil.px4_map  # name -> (base_mode, main_mode, sub_mode), pymavlink's table
SUPPORTED_MODES = ("POSCTL", "LOITER", "TAKEOFF", "LAND", "OFFBOARD")
# The ArduCopter flavour reports the same internal modes with ArduCopter's numbers: OFFBOARD is
# GUIDED (taking off is GUIDED too), POSCTL is POSHOLD.
ACM_NUMBERS = {"OFFBOARD": 4, "TAKEOFF": 4, "LAND": 9, "LOITER": 5, "POSCTL": 16}
ACM_MODES = {4: "OFFBOARD", 9: "LAND", 5: "LOITER", 16: "POSCTL"}
ATT_IGNORE = mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE


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
    """Hidden differences between the emulated vehicle and the nominal airframe (1.0 / 0 = none); the
    physical part is `QuadPhysicalParams`, applied by sim/physical.py as sysid applies its estimate."""

    latency_s: float = Field(0.0, ge=0, le=0.5)
    wind: tuple[float, float, float] = (0.0, 0.0, 0.0)


def load_gap(name: str | Path | None, overrides=None) -> QuadGap:
    """configs/hardware/<name>.yaml (or a path) + overrides; None = no gap."""
    if name is None:
        return QuadGap.model_validate(dict(overrides or {}))
    return load_config(QuadGap, "hardware", name, overrides)


def px4_custom_mode(name: str) -> int:
    _, main, sub = PX4_MODES[name]
    return (main << 16) | (sub << 24)


class MavlinkVehicle:
    """One emulated vehicle on one MAVLink endpoint (pymavlink connection string or serial device)."""

    def __init__(self, connection: str, robot: str = "cf2x", gap: QuadGap | None = None, baud: int = 57600,
                 autopilot: str = "px4",
                 loop_hz: float = 100.0, telemetry_hz: float = 50.0, heartbeat_hz: float = 2.0,
                 offboard_loss_timeout: float = 0.5, takeoff_altitude: float = 1.0, land_speed: float = 0.6,
                 system_id: int = 1):
        if autopilot not in ("px4", "ardupilot"):
            raise ValueError(f"autopilot must be 'px4' or 'ardupilot', got {autopilot!r}")
        self.px4 = autopilot == "px4"
        self.gap = gap or QuadGap()
        spec = load_robot_spec(robot)
        nominal = load_airframe(spec.description)
        true_af = apply_quad_params(nominal, self.gap)
        self.ticks = max(1, int(round(spec.physics_hz / loop_hz)))
        self.loop_dt = self.ticks / spec.physics_hz
        self.sim = MujocoQuadBackend(spec, airframe=true_af)
        self.sim.set_wind(np.asarray(self.gap.wind, dtype=np.float64))
        self.ground_z = true_af.collision_box[2]
        # The flight controller only knows the nominal airframe (like PX4's MPC_THR_HOVER).
        self.position_ctrl = CascadedController(nominal.hover_thrust, np.asarray(nominal.max_rate), self.loop_dt,
                                                spec.params)
        self.offboard_loss_timeout, self.takeoff_altitude = offboard_loss_timeout, takeoff_altitude
        self.land_speed = land_speed
        self.intervals = {"HEARTBEAT": 1.0 / heartbeat_hz, "ATTITUDE_QUATERNION": 1.0 / telemetry_hz,
                          "LOCAL_POSITION_NED": 1.0 / telemetry_hz, "ODOMETRY": 1.0 / telemetry_hz,
                          "EXTENDED_SYS_STATE": 0.2}
        self._msg_ids = {name: getattr(mav, f"MAVLINK_MSG_ID_{name}") for name in self.intervals}
        if connection == "pty":
            self.conn = PtyLink(system_id)
            self.endpoint = self.conn.path
        else:
            self.conn = mavutil.mavlink_connection(connection, baud=baud, source_system=system_id,
                                                   source_component=1, dialect="common")
            self.endpoint = connection
        self.t0 = time.monotonic()
        self._next_send = dict.fromkeys(self.intervals, 0.0)
        self._pending: deque[tuple[float, str, np.ndarray]] = deque()
        self.armed = False
        self.mode = "POSCTL"
        self.landed = True
        self.last_setpoint_rx = -1e9  # emulator time of the latest offboard setpoint received
        self._setpoint: tuple[str, np.ndarray] | None = None  # active offboard setpoint (after latency)
        self._hold = np.zeros(4)  # x, y, z, yaw for the position-holding modes
        self._landed_since = 0.0
        self.sim.reset(np.random.default_rng(0), {"pos": np.array([0.0, 0.0, self.ground_z])})
        self.sim.set_armed(False)

    # ---- time and state ---------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def _boot_ms(self) -> int:
        return int(self.now() * 1000) & 0xFFFFFFFF

    def _state(self) -> dict[str, np.ndarray]:
        return self.sim.read()

    def _set_hold(self, pos: np.ndarray, yaw: float) -> None:
        self._hold = np.array([*pos, yaw])

    # ---- MAVLink in ------------------------------------------------------------------------------
    def _statustext(self, severity: int, text: str) -> None:
        self.conn.mav.statustext_send(severity, text.encode()[:50])

    def _ack(self, command: int, result: int) -> None:
        self.conn.mav.command_ack_send(command, result)
        self._next_send["HEARTBEAT"] = 0.0  # announce the new mode / arming state right away

    def _set_mode(self, name: str) -> int:
        if name not in SUPPORTED_MODES:
            return mav.MAV_RESULT_UNSUPPORTED
        now, state = self.now(), self._state()
        if self.px4 and name == "OFFBOARD" and now - self.last_setpoint_rx > self.offboard_loss_timeout:
            self._statustext(mav.MAV_SEVERITY_WARNING, "Switching to Offboard denied: no setpoints")
            return mav.MAV_RESULT_DENIED
        if name in ("POSCTL", "LOITER", "LAND"):
            self._set_hold(state["pos"], yaw_of(state["quat"]))
        elif name == "TAKEOFF":
            self._set_hold(state["pos"] + np.array([0.0, 0.0, self.takeoff_altitude]), yaw_of(state["quat"]))
        self.mode = name
        return mav.MAV_RESULT_ACCEPTED

    def _arm(self, arm: bool, force: bool) -> int:
        if not arm:
            if not self.landed and not force:
                self._statustext(mav.MAV_SEVERITY_WARNING, "Disarming denied: not landed")
                return mav.MAV_RESULT_DENIED
            self._disarm()
            return mav.MAV_RESULT_ACCEPTED
        tilt = np.arccos(np.clip(1 - 2 * np.sum(self._state()["quat"][1:3] ** 2), -1, 1))
        if tilt > 0.5:
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Arming denied: vehicle tilted")
            return mav.MAV_RESULT_DENIED
        if self.px4 and self.mode == "OFFBOARD" and self.now() - self.last_setpoint_rx > self.offboard_loss_timeout:
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Arming denied: offboard setpoints not streaming")
            return mav.MAV_RESULT_DENIED
        if self.mode == "LAND":
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Arming denied: landing")
            return mav.MAV_RESULT_DENIED
        if not self.armed:
            self.armed = True
            self._landed_since = self.now()
            self.position_ctrl.reset()
            self.sim.set_armed(True)
            if self.mode in ("POSCTL", "LOITER"):
                state = self._state()
                self._set_hold(state["pos"], yaw_of(state["quat"]))
        return mav.MAV_RESULT_ACCEPTED

    def _takeoff(self, altitude: float) -> int:
        if self.px4:
            return self._set_mode("TAKEOFF")
        if not (self.armed and self.mode == "OFFBOARD"):  # ArduCopter: armed and in GUIDED
            self._statustext(mav.MAV_SEVERITY_WARNING, "Takeoff denied: arm in GUIDED first")
            return mav.MAV_RESULT_DENIED
        state = self._state()
        self._set_hold(np.array([*state["pos"][:2], max(altitude, 0.3)]), yaw_of(state["quat"]))
        self.mode = "TAKEOFF"
        return mav.MAV_RESULT_ACCEPTED

    def _disarm(self) -> None:
        self.armed = False
        self.sim.set_armed(False)
        if self.mode in ("LAND", "TAKEOFF"):
            self.mode = "LOITER"

    def _on_command(self, msg) -> None:
        cmd = msg.command
        if cmd == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            result = self._arm(msg.param1 > 0.5, int(msg.param2) == 21196)
        elif cmd == mav.MAV_CMD_DO_SET_MODE:
            main, sub = int(msg.param2), int(msg.param3)
            if self.px4:
                names = [n for n, (_, m, s) in PX4_MODES.items() if m == main and (s == sub or main != 4)]
            else:
                names = [ACM_MODES[main]] if main in ACM_MODES else []
            result = self._set_mode(names[0]) if names else mav.MAV_RESULT_UNSUPPORTED
        elif cmd == mav.MAV_CMD_NAV_LAND:
            result = self._set_mode("LAND")
        elif cmd == mav.MAV_CMD_NAV_TAKEOFF:
            result = self._takeoff(msg.param7)
        elif cmd == mav.MAV_CMD_SET_MESSAGE_INTERVAL:
            names = [n for n, i in self._msg_ids.items() if i == int(msg.param1)]
            if names and msg.param2 > 0:
                self.intervals[names[0]] = max(msg.param2 * 1e-6, 0.005)
            result = mav.MAV_RESULT_ACCEPTED if names else mav.MAV_RESULT_UNSUPPORTED
        else:
            result = mav.MAV_RESULT_UNSUPPORTED
        self._ack(cmd, result)

    def _receive(self) -> None:
        now = self.now()
        while (msg := self.conn.recv_msg()) is not None:
            kind = msg.get_type()
            if kind == "COMMAND_LONG" and msg.target_system in (0, self.conn.mav.srcSystem):
                self._on_command(msg)
            elif kind == "SET_ATTITUDE_TARGET" and msg.type_mask & ATT_IGNORE:
                rates = frames.frd_to_flu([msg.body_roll_rate, msg.body_pitch_rate, msg.body_yaw_rate])
                self._pending.append((now + self.gap.latency_s, "ctbr", np.array([msg.thrust, *rates])))
                self.last_setpoint_rx = now
            elif kind == "SET_POSITION_TARGET_LOCAL_NED" and msg.coordinate_frame == mav.MAV_FRAME_LOCAL_NED:
                pos = frames.ned_to_enu([msg.x, msg.y, msg.z])
                vel = frames.ned_to_enu([msg.vx, msg.vy, msg.vz])
                if msg.type_mask & 0b111000:  # velocity fields ignored
                    vel = np.zeros(3)
                target = np.array([*pos, frames.yaw_ned_to_enu(msg.yaw), *vel])
                self._pending.append((now + self.gap.latency_s, "position", target))
                self.last_setpoint_rx = now
        while self._pending and self._pending[0][0] <= now:
            _, kind, value = self._pending.popleft()
            self._setpoint = (kind, value)

    # ---- flight controller -------------------------------------------------------------------------
    def _control(self) -> None:
        now, state = self.now(), self._state()
        self.landed = bool(state["pos"][2] < self.ground_z + 0.03 and abs(state["vel"][2]) < 0.2)
        lost = self.mode == "OFFBOARD" and now - self.last_setpoint_rx > self.offboard_loss_timeout
        if lost and self.px4:
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Failsafe: offboard setpoints lost, landing")
            self._set_mode("LAND")
        elif lost and self._setpoint is not None:  # ArduCopter GUIDED: stop and hold where it is
            self._setpoint = None
            self._set_hold(state["pos"], yaw_of(state["quat"]))
        if not self.armed:
            return
        disarm_delay = 2.0 if self.mode == "LAND" else 10.0  # PX4 COM_DISARM_LAND / COM_DISARM_PRFLT
        if self.landed and self.mode in ("LAND", "POSCTL", "LOITER") and now - self._landed_since > disarm_delay:
            self._disarm()  # PX4 auto-disarm after landing (COM_DISARM_LAND)
            self._statustext(mav.MAV_SEVERITY_INFO, "Landing detected, disarmed")
            return
        if not self.landed:
            self._landed_since = now
        if not self.px4 and self.mode == "OFFBOARD" and self.landed:
            self.sim.command(np.zeros(4))  # ArduCopter GUIDED waits on the ground for NAV_TAKEOFF
            return
        if self.mode == "OFFBOARD" and self._setpoint is not None and self._setpoint[0] == "ctbr":
            self.sim.command(self._setpoint[1])
            return
        if self.mode == "OFFBOARD" and self._setpoint is not None:
            target = self._setpoint[1]
            pos_sp, yaw_sp, vel_ff = target[:3], target[3], target[4:]
        elif self.mode == "LAND":
            pos_sp = np.array([self._hold[0], self._hold[1], state["pos"][2]])
            yaw_sp, vel_ff = self._hold[3], np.array([0.0, 0.0, -self.land_speed])
        elif self.mode == "TAKEOFF" and abs(state["pos"][2] - self._hold[2]) < 0.1:
            self.mode = "LOITER" if self.px4 else "OFFBOARD"
            pos_sp, yaw_sp, vel_ff = self._hold[:3], self._hold[3], np.zeros(3)
        else:
            pos_sp, yaw_sp, vel_ff = self._hold[:3], self._hold[3], np.zeros(3)
        if self.landed and pos_sp[2] <= state["pos"][2] + 0.05 and vel_ff[2] <= 0:
            self.sim.command(np.zeros(4))  # idle on the ground
            self.position_ctrl.reset()
            return
        vel_sp = self.position_ctrl.velocity_setpoint(state, pos_sp, vel_ff)
        if self.mode == "LAND":
            vel_sp[2] = -self.land_speed
        self.sim.command(self.position_ctrl.ctbr(state, vel_sp, yaw_sp))

    # ---- MAVLink out -----------------------------------------------------------------------------
    def _landed_state(self) -> int:
        if self.landed:
            return mav.MAV_LANDED_STATE_ON_GROUND
        if self.mode == "LAND":
            return mav.MAV_LANDED_STATE_LANDING
        return mav.MAV_LANDED_STATE_TAKEOFF if self.mode == "TAKEOFF" else mav.MAV_LANDED_STATE_IN_AIR

    def _send(self, name: str, state: dict[str, np.ndarray]) -> None:
        m, ms = self.conn.mav, self._boot_ms()
        if name == "HEARTBEAT":
            armed = mav.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0
            status = mav.MAV_STATE_ACTIVE if self.armed else mav.MAV_STATE_STANDBY
            if self.px4:
                m.heartbeat_send(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4, PX4_MODES[self.mode][0] | armed,
                                 px4_custom_mode(self.mode), status)
            else:
                m.heartbeat_send(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                 mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | armed, ACM_NUMBERS[self.mode], status)
            return
        if name == "EXTENDED_SYS_STATE":
            m.extended_sys_state_send(mav.MAV_VTOL_STATE_UNDEFINED, self._landed_state())
            return
        q = frames.quat_enu_flu_to_ned_frd(state["quat"])
        rates = frames.flu_to_frd(state["omega"])
        pos, vel = frames.enu_to_ned(state["pos"]), frames.enu_to_ned(state["vel"])
        if name == "ATTITUDE_QUATERNION":
            m.attitude_quaternion_send(ms, *q, *rates)
        elif name == "LOCAL_POSITION_NED":
            m.local_position_ned_send(ms, *pos, *vel)
        elif name == "ODOMETRY":
            vel_body = quat_to_rot(q).T @ vel  # ODOMETRY velocity is in the child (body FRD) frame
            nan = [float("nan")] * 21
            m.odometry_send(ms * 1000, mav.MAV_FRAME_LOCAL_NED, mav.MAV_FRAME_BODY_FRD, *pos, q, *vel_body, *rates,
                            nan, nan)

    def _telemetry(self) -> None:
        now, state = self.now(), self._state()
        for name, period in self.intervals.items():
            if now >= self._next_send[name]:
                self._next_send[name] = max(self._next_send[name] + period, now)
                self._send(name, state)

    # ---- main loop -------------------------------------------------------------------------------
    def step(self) -> None:
        """One flight-controller cycle: receive -> control -> physics (loop_dt) -> telemetry."""
        self._receive()
        self._control()
        self.sim.step_physics(self.ticks)
        self._telemetry()

    def run(self, duration: float | None = None, should_stop=None) -> None:
        """Run in real time until `duration` (s) elapses or `should_stop()` returns True."""
        next_t = self.now()
        while (duration is None or self.now() < duration) and not (should_stop and should_stop()):
            self.step()
            next_t += self.loop_dt
            delay = next_t - self.now()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:  # fell far behind (machine busy): resynchronize instead of bursting
                next_t = self.now()

    def close(self) -> None:
        self.conn.close()
        self.sim.close()
