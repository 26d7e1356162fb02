"""The ArduCopter flavour of the emulated vehicle, modelled on recorded sessions with the real autopilot.

Source of every number: shared/fixtures/ardupilot-sitl (ArduCopter V4.7.0-dev SITL, tlogs of both
directions) and the data file `ardupilot_copter.yaml` next to this module. What it reproduces:

* Cold start: HEARTBEAT (BOOT) from 1.0 s, "ArduPilot Ready" at 2.44 s (STANDBY; the streams start;
  a GUIDED set before this reverts to STABILIZE), EKF origin at 20 s (GPS_GLOBAL_ORIGIN, HOME_POSITION),
  LOCAL_POSITION_NED only from 41.6 s ("EKF3 IMU0 is using GPS"). All boot times scale with `boot_scale`.
* Arming refusals with the recorded reasons ("Arm: System not initialised", "Arm: Accels/Gyros
  inconsistent", "Arm: AHRS: waiting for home", "Arm: Need Position Estimate" in GUIDED), MAV_RESULT_FAILED;
  the SYS_STATUS prearm-check bit; "PreArm: ..." every 30 s while disarmed and not ready.
* GUIDED takeoff (MAV_CMD_NAV_TAKEOFF): 3.3 s of spool-up on the ground, then a climb to the altitude.
  Any guided target received while still landed drops the takeoff sub-mode: the vehicle stays on the
  ground and DISARM_DELAY (10 s) later auto-disarms.
* SET_ATTITUDE_TARGET thrust: a climb-rate demand (0.5 = hold altitude, PILOT_SPEED_UP at 1) unless
  GUID_OPTIONS bit 3 is set, then collective thrust. Velocity and attitude targets older than
  GUID_TIMEOUT are dropped (stop / level with zero climb); position targets are held forever.
* FS_GCS_ENABLE: with 0 (default) GCS silence changes nothing; otherwise FS_GCS_TIMEOUT s after the last
  HEARTBEAT from MAV_GCS_SYSID: LAND, system_status CRITICAL, "GCS Failsafe", a 4 s pause before the
  descent, "GCS Failsafe Cleared" when heartbeats return.
* LAND: 1.5 m/s above 10 m, 0.5 m/s below; touchdown ("SIM Hit ground at ... m/s"), land detected 1.6 s
  later (ON_GROUND), disarm 0.4 s after that.
* Parameters over the MAVLink parameter protocol (named reads answered 0.1 s later, sets echoed at once,
  unknown names unanswered), AUTOPILOT_VERSION, the banner, TIMESYNC every 10 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from robotlearn.core.rotations import yaw_of
from robotlearn.emulators.mavlink_vehicle import PREARM_CHECK, MavlinkVehicle, mav

DATA = yaml.safe_load((Path(__file__).with_name("ardupilot_copter.yaml")).read_text())
STABILIZE, GUIDED, LAND = 0, 4, 9
MODES = (STABILIZE, GUIDED, LAND)
MAV_CMD_DO_SEND_BANNER = 42428  # ardupilotmega dialect
THRUST_IS_THRUST = 8  # GUID_OPTIONS bit 3
BASE_MODE = 89  # CUSTOM_MODE_ENABLED | GUIDED_ENABLED | STABILIZE_ENABLED | MANUAL_INPUT_ENABLED (recorded)
SENSORS_BOOT = (0x5331FC0F, 0x53017C0F, 0x4511FC0B)  # SYS_STATUS present/enabled/health before the EKF uses GPS
SENSORS_GPS = (0x5371FC2F, 0x5361FC2F, 0x4771FC2F)  # ... after (health without the prearm bit)
TAKEOFF_SPOOL_S = 3.3  # NAV_TAKEOFF ACK -> climb starts (recorded 3.3 s)
TAKEOFF_SPEED, TAKEOFF_ACCEL = 1.1, 1.5  # m/s, m/s^2: fits the recorded 1 m climb in 1.8 s
LAND_DETECT_S, LAND_DISARM_S = 1.7, 0.4  # touchdown -> ON_GROUND -> disarmed (recorded 1.6-1.8, 0.3-0.5)
FAILSAFE_LAND_PAUSE_S = 4.2  # a failsafe LAND hovers this long before descending (recorded)
FAILSAFE_LATENCY_S = 0.3  # reported FS_GCS_TIMEOUT + this after the last heartbeat (recorded 5.31 s)
PARAM_READ_DELAY_S = 0.1
PREARM_PERIOD_S, PREARM_REPORT_S, STAT_PERIOD_S = 1.0, 30.0, 30.0


class ArduCopterVehicle(MavlinkVehicle):
    autopilot = "ardupilot"
    mav_autopilot = mav.MAV_AUTOPILOT_ARDUPILOTMEGA
    # Without SET_MESSAGE_INTERVAL the real vehicle streams at its SRn_ rates; 4 Hz stands in (not recorded).
    default_streams = {"HEARTBEAT": 1.0, "ATTITUDE": 0.25, "ATTITUDE_QUATERNION": 0.25, "LOCAL_POSITION_NED": 0.25,
                       "GLOBAL_POSITION_INT": 0.25, "SYS_STATUS": 0.25, "EXTENDED_SYS_STATE": 0.25, "TIMESYNC": 10.0}
    default_params = {name: (value, ptype) for name, (value, ptype) in DATA["params"].items()}

    def __init__(self, connection: str, boot_scale: float = 1.0, takeoff_spool_s: float = TAKEOFF_SPOOL_S, **kwargs):
        if boot_scale < 0:
            raise ValueError(f"boot_scale must be >= 0, got {boot_scale}")
        super().__init__(connection, **kwargs)
        self.milestones = {k: v * boot_scale for k, v in DATA["milestones"].items()}
        self._boot_events = [{**e, "t": e["t"] * boot_scale} for e in DATA["boot_events"]]
        self.takeoff_spool_s = takeoff_spool_s
        self.mode = STABILIZE
        self.set_before_ready = False
        self.land_complete = True
        self.takeoff: dict | None = None  # {"ack": t, "alt": m, "z": ramp z, "vz": ramp speed, "climbing": bool}
        self.gcs_failsafe = False
        self.land_pause_until = -1.0
        self._vz_sp = 0.0
        self._touchdown_at: float | None = None
        self._prev_airborne = False
        self._prev_vz = 0.0
        self._prearm_ok = False
        self._tick_state = (STABILIZE, False)  # (mode, position estimate) at the previous prearm tick
        self._next_prearm = self.milestones["ready"] + 0.2
        self._next_report = PREARM_REPORT_S + 0.44
        self._next_send["TIMESYNC"] = 9.99

    # ---- boot and readiness ------------------------------------------------------------------------
    def _after(self, milestone: str) -> bool:
        return self.now() >= self.milestones[milestone]

    def _prearm_reasons(self, mode: int | None = None, position: bool | None = None) -> list[str]:
        """Why ARM is refused now, in ArduCopter's words (empty = armable); `mode`/`position` override
        the current mode and position-estimate state (the prearm bit looks at them as of 1 s before)."""
        mode = self.mode if mode is None else mode
        position = self._after("position") if position is None else position
        if not self._after("ready"):
            return ["System not initialised"]
        reasons = []
        if not self._after("accels_consistent"):
            reasons.append("Accels inconsistent")
        elif not self._after("gyros_consistent"):
            reasons.append("Gyros inconsistent")
        if not self._after("origin"):
            reasons.append("AHRS: waiting for home")
        elif mode == GUIDED and not position:
            reasons.append("Need Position Estimate")
        if self.gcs_failsafe:
            reasons.append("GCS failsafe on")
        return reasons

    def _boot(self) -> None:
        now = self.now()
        while self._boot_events and self._boot_events[0]["t"] <= now:
            event = self._boot_events.pop(0)
            if "text" in event:
                self._statustext(event["severity"], event["text"])
            elif "param" in event:
                self._send_param(event["param"], 65535, DATA["param_count"])
            elif "origin" in event:
                self._send_origin()
        if self.set_before_ready and self._after("ready"):
            self.mode, self.set_before_ready = STABILIZE, False  # reverts at boot end
        if self._after("ready") and now >= self._next_prearm:
            self._next_prearm += PREARM_PERIOD_S
            if not self.armed:
                self._prearm_ok = not self._prearm_reasons(*self._tick_state)
            self._tick_state = (self.mode, self._after("position"))
        if now >= self._next_report:
            self._next_report += PREARM_REPORT_S
            reasons = self._prearm_reasons()
            if not self.armed and reasons:
                self._statustext(mav.MAV_SEVERITY_CRITICAL, f"PreArm: {reasons[0]}")
            self.params["STAT_RUNTIME"][0] = float(int(now))
            self._send_param("STAT_RUNTIME", 65535, DATA["param_count"])

    def _send_origin(self) -> None:
        home, usec = DATA["home"], int(self.now() * 1e6)
        self.conn.mav.gps_global_origin_send(home["lat"], home["lon"], home["alt_mm"], usec)
        pos = self._state()["pos"]
        self.conn.mav.home_position_send(home["lat"], home["lon"], home["alt_mm"], pos[1], pos[0], -pos[2],
                                         [float("nan")] * 4, 0, 0, 0, usec)

    # ---- parameters --------------------------------------------------------------------------------
    def _on_param_request(self, name: str) -> None:
        self.later(PARAM_READ_DELAY_S, lambda: self._send_param(name, 65535, DATA["param_count"]))

    def _on_param_set(self, name: str, raw: float) -> None:
        value = float(round(raw)) if self.params[name][1] != mav.MAV_PARAM_TYPE_REAL32 else float(raw)
        self.params[name][0] = value
        self._send_param(name, 65535, DATA["param_count"])

    # ---- commands --------------------------------------------------------------------------------
    def _arm(self, arm: bool, force: bool) -> int:
        if not arm:
            if not self.land_complete and not force:
                return mav.MAV_RESULT_FAILED
            self.later(0.0, self._disarm)
            return mav.MAV_RESULT_ACCEPTED
        if self.armed:
            return mav.MAV_RESULT_ACCEPTED
        reasons = self._prearm_reasons()
        if reasons:
            for reason in reasons:
                self._statustext(mav.MAV_SEVERITY_CRITICAL, f"Arm: {reason}")
            return mav.MAV_RESULT_FAILED
        self._arm_motors()
        self.land_complete, self.takeoff = True, None

        def announce():
            self._send_origin()
            self._statustext(mav.MAV_SEVERITY_INFO, "Arming motors")
        self.later(0.0, announce)
        return mav.MAV_RESULT_ACCEPTED

    def _disarm(self) -> None:
        if not self.armed:
            return
        self._disarm_motors()
        self.takeoff, self._setpoint = None, None
        self._statustext(mav.MAV_SEVERITY_INFO, "Disarming motors")
        self.params["MOT_THST_HOVER"][0] = self.true_airframe.hover_thrust
        self._send_param("MOT_THST_HOVER", 65535, DATA["param_count"])

    def _set_mode(self, mode: int, failsafe: bool = False) -> int:
        if mode not in MODES:
            return mav.MAV_RESULT_UNSUPPORTED
        if mode == self.mode and not failsafe:
            return mav.MAV_RESULT_ACCEPTED  # ArduCopter: setting the current mode changes nothing
        state = self._state()
        self._set_hold(state["pos"], yaw_of(state["quat"]))
        self._vz_sp = float(state["vel"][2])
        self.takeoff, self._setpoint = None, None
        self.land_pause_until = self.now() + FAILSAFE_LAND_PAUSE_S if failsafe else -1.0
        self.mode = mode
        self.set_before_ready = not self._after("ready")
        self._next_send["HEARTBEAT"] = 0.0
        return mav.MAV_RESULT_ACCEPTED

    def _takeoff(self, altitude: float) -> int:
        if not (self.armed and self.mode == GUIDED and self.land_complete):
            return mav.MAV_RESULT_FAILED
        self.takeoff = {"ack": self.now(), "alt": max(float(altitude), 0.3), "z": self._state()["pos"][2], "vz": 0.0,
                        "climbing": False}
        return mav.MAV_RESULT_ACCEPTED

    def _request_message(self, msg_id: int) -> int:
        if msg_id != mav.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
            return mav.MAV_RESULT_UNSUPPORTED
        v = DATA["version"]
        self.later(0.0, lambda: self.conn.mav.autopilot_version_send(
            v["capabilities"], v["flight_sw_version"], 0, 0, 0, list(v["flight_custom_version"].encode()),
            [0] * 8, [0] * 8, 0, 0, 0, list(v["uid2"].encode().ljust(18, b"\0"))))
        return mav.MAV_RESULT_ACCEPTED

    def _on_command(self, msg) -> int | None:
        cmd = msg.command
        if cmd == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            return self._arm(msg.param1 > 0.5, int(msg.param2) == 21196)
        if cmd == mav.MAV_CMD_DO_SET_MODE:
            return self._set_mode(int(msg.param2))
        if cmd == mav.MAV_CMD_NAV_LAND:
            return self._set_mode(LAND)
        if cmd == mav.MAV_CMD_NAV_TAKEOFF:
            return self._takeoff(msg.param7)
        if cmd == MAV_CMD_DO_SEND_BANNER:
            for text in DATA["banner"]:
                self._statustext(mav.MAV_SEVERITY_INFO, text)
            return mav.MAV_RESULT_ACCEPTED
        return None

    def _on_setpoint(self, kind: str, value: np.ndarray) -> bool:
        if self.mode != GUIDED or not self.armed:
            return False
        if self.land_complete:
            self.takeoff = None  # a new target while landed drops the takeoff sub-mode
        return True

    # ---- flight controller -------------------------------------------------------------------------
    def _gcs_failsafe(self) -> None:
        last = self.last_gcs_heartbeat.get(int(self.param("MAV_GCS_SYSID")))
        if last is None:
            return
        silent = self.now() - last > self.param("FS_GCS_TIMEOUT") + FAILSAFE_LATENCY_S
        if silent and not self.gcs_failsafe and self.armed and self.param("FS_GCS_ENABLE") != 0:
            self.gcs_failsafe = True
            self._set_mode(LAND, failsafe=True)
            self._statustext(mav.MAV_SEVERITY_WARNING, "GCS Failsafe")
        elif not silent and self.gcs_failsafe:
            self.gcs_failsafe = False
            self._next_send["HEARTBEAT"] = 0.0
            self._statustext(mav.MAV_SEVERITY_WARNING, "GCS Failsafe Cleared")

    def _land_detector(self, state) -> None:
        now, airborne = self.now(), state["pos"][2] > self.ground_z + 0.05
        if self._prev_airborne and not airborne:
            self._touchdown_at = now
            self._statustext(mav.MAV_SEVERITY_INFO, f"SIM Hit ground at {abs(self._prev_vz):.6f} m/s")
        if airborne:
            self._touchdown_at = None
        self._prev_airborne, self._prev_vz = airborne, float(state["vel"][2])
        if not self.land_complete and self._touchdown_at is not None and now - self._touchdown_at > LAND_DETECT_S:
            self.land_complete, self._landed_since = True, now
            self._next_send["HEARTBEAT"] = 0.0
        if self.land_complete and self.armed:
            delay = LAND_DISARM_S if self.mode == LAND else self.param("DISARM_DELAY")
            if now - self._landed_since > delay and self.takeoff is None:
                self._disarm()

    def _slew_vz(self, target: float) -> float:
        step = self.param("PILOT_ACCEL_Z") / 100.0 * self.loop_dt
        self._vz_sp += float(np.clip(target - self._vz_sp, -step, step))
        return self._vz_sp

    def _fly_takeoff(self, state) -> None:
        tk = self.takeoff
        if not tk["climbing"]:
            if self.now() - tk["ack"] < self.takeoff_spool_s:
                self.sim.command(np.zeros(4))  # spooling up on the ground
                return
            tk["climbing"], self.land_complete = True, False
        # A trapezoidal climb profile to the takeoff altitude, tracked by the position loop.
        remaining = tk["alt"] - tk["z"]
        v_brake = np.sqrt(max(2.0 * TAKEOFF_ACCEL * remaining, 0.0))
        tk["vz"] = min(tk["vz"] + TAKEOFF_ACCEL * self.loop_dt, TAKEOFF_SPEED, v_brake)
        tk["z"] = min(tk["z"] + tk["vz"] * self.loop_dt, tk["alt"])
        self._fly_setpoint(state, np.array([*self._hold[:2], tk["z"]]), self._hold[3], np.array([0, 0, tk["vz"]]))
        if state["pos"][2] >= tk["alt"] - 0.05:
            self._set_hold(np.array([*self._hold[:2], tk["alt"]]), self._hold[3])
            self.takeoff = None  # takeoff complete: GUIDED holds the altitude

    def _fly_ctbr(self, state, target: np.ndarray) -> None:
        if int(self.param("GUID_OPTIONS")) & THRUST_IS_THRUST:
            self.sim.command(target)
            return
        up = self.param("PILOT_SPEED_UP") / 100.0
        down = (self.param("PILOT_SPEED_DN") or self.param("PILOT_SPEED_UP")) / 100.0
        climb = (target[0] - 0.5) * 2.0 * (up if target[0] >= 0.5 else down)
        thrust = self.position_ctrl.ctbr(state, np.array([*state["vel"][:2], climb]), yaw_of(state["quat"]))[0]
        self.sim.command(np.array([thrust, *target[1:]]))

    def _control(self) -> None:
        state = self._state()
        self._boot()
        self._gcs_failsafe()
        self._land_detector(state)
        if not self.armed:
            return
        if self.land_complete and not self.takeoff:
            self.sim.command(np.zeros(4))  # on the ground: targets do not lift it
            self.position_ctrl.reset()
            return
        if self.mode == LAND:
            pause = self.now() < self.land_pause_until
            fast = state["pos"][2] > self.param("LAND_ALT_LOW") / 100.0
            speed = (self.param("LAND_SPEED_HIGH") or self.param("WPNAV_SPEED_DN")) if fast else self.param("LAND_SPEED")
            vz = self._slew_vz(0.0 if pause else -speed / 100.0)
            self._fly_setpoint(state, np.array([*self._hold[:2], state["pos"][2]]), self._hold[3],
                               np.array([0.0, 0.0, vz]), vz_limit=vz)
            return
        if self.mode == GUIDED and self.takeoff:
            self._fly_takeoff(state)
            return
        if self.mode == GUIDED and self._setpoint is not None:
            kind, target = self._setpoint
            if kind != "position" and self.now() - self._setpoint_time > self.param("GUID_TIMEOUT"):
                if kind == "ctbr":  # level, zero climb rate
                    self._fly_setpoint(state, state["pos"], yaw_of(state["quat"]), np.array([*state["vel"][:2], 0]),
                                       vz_limit=0.0)
                    return
                self._set_hold(state["pos"], yaw_of(state["quat"]))  # velocity target timed out: stop
                self._setpoint = None
            elif kind == "ctbr":
                self._fly_ctbr(state, target)
                return
            else:
                self._fly_active_setpoint(state)
                return
        self._fly_setpoint(state, self._hold[:3], self._hold[3], np.zeros(3))

    # ---- MAVLink out -----------------------------------------------------------------------------
    def _heartbeat(self) -> tuple[int, int, int]:
        if not self._after("ready"):
            status = mav.MAV_STATE_BOOT
        elif self.gcs_failsafe:
            status = mav.MAV_STATE_CRITICAL
        elif self.armed and not self.land_complete:
            status = mav.MAV_STATE_ACTIVE
        else:
            status = mav.MAV_STATE_STANDBY
        return BASE_MODE | (mav.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0), self.mode, status

    def _landed_state(self) -> int:
        if self.land_complete:
            return mav.MAV_LANDED_STATE_ON_GROUND
        if self.mode == LAND:
            return mav.MAV_LANDED_STATE_LANDING
        return mav.MAV_LANDED_STATE_TAKEOFF if self.takeoff else mav.MAV_LANDED_STATE_IN_AIR

    def _stream_ready(self, name: str) -> bool:
        if name == "HEARTBEAT":
            return self._after("first_heartbeat")
        if name == "LOCAL_POSITION_NED":
            return self._after("position")
        return self._after("ready")

    def _sys_status_sensors(self) -> tuple[int, int, int]:
        present, enabled, health = SENSORS_GPS if self._after("position") else SENSORS_BOOT
        return present, enabled, (health | PREARM_CHECK) if self._prearm_ok else health & ~PREARM_CHECK

    def _global_position(self, pos_ned: np.ndarray) -> tuple[int, int, int]:
        if not self._after("origin"):
            return 0, 0, 0
        home = DATA["home"]
        lat = home["lat"] + pos_ned[0] / 111319.5 * 1e7
        lon = home["lon"] + pos_ned[1] / (111319.5 * np.cos(np.radians(home["lat"] * 1e-7))) * 1e7
        return int(lat), int(lon), int(home["alt_mm"] - pos_ned[2] * 1000)
