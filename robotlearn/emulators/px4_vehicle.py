"""The PX4 flavour of the emulated vehicle: what PX4 does at the MAVLink boundary, in one sitting.

* HEARTBEAT with PX4's custom-mode encoding (main mode << 16 | sub mode << 24), modes POSCTL,
  AUTO.LOITER, AUTO.TAKEOFF, AUTO.LAND, OFFBOARD (MAV_CMD_DO_SET_MODE), MAV_CMD_NAV_LAND/TAKEOFF.
* OFFBOARD is accepted (and arming in OFFBOARD allowed) only while setpoints stream: SET_ATTITUDE_TARGET
  with body rates + thrust, or SET_POSITION_TARGET_LOCAL_NED.
* Offboard-loss failsafe: no setpoint for COM_OF_LOSS_T s in OFFBOARD -> COM_OBL_RC_ACT (4 = Land, then
  disarm on the ground; 0 Position / 5 Hold = hold where it is). Parameters are served with PX4's
  bytewise integer encoding.
* Auto-disarm on the ground: 2 s after landing in LAND, 10 s when armed and never taking off
  (COM_DISARM_LAND, COM_DISARM_PRFLT).
"""

from __future__ import annotations

import numpy as np
from pymavlink import mavutil

from robotlearn.core.rotations import yaw_of
from robotlearn.emulators.mavlink_vehicle import MavlinkVehicle, mav

PX4_MODES = mavutil.px4_map  # name -> (base_mode, main_mode, sub_mode), pymavlink's table
SUPPORTED_MODES = ("POSCTL", "LOITER", "TAKEOFF", "LAND", "OFFBOARD")
OBL_LAND, OBL_HOLD, OBL_POSITION = 4, 5, 0  # COM_OBL_RC_ACT values we model


def px4_custom_mode(name: str) -> int:
    _, main, sub = PX4_MODES[name]
    return (main << 16) | (sub << 24)


class Px4Vehicle(MavlinkVehicle):
    autopilot = "px4"
    mav_autopilot = mav.MAV_AUTOPILOT_PX4
    default_streams = {"HEARTBEAT": 0.5, "ATTITUDE_QUATERNION": 0.02, "LOCAL_POSITION_NED": 0.02, "ODOMETRY": 0.02,
                       "EXTENDED_SYS_STATE": 0.2, "SYS_STATUS": 0.2}
    default_params = {"COM_OF_LOSS_T": (0.5, mav.MAV_PARAM_TYPE_REAL32),
                      "COM_OBL_RC_ACT": (OBL_LAND, mav.MAV_PARAM_TYPE_INT32),
                      "COM_DISARM_LAND": (2.0, mav.MAV_PARAM_TYPE_REAL32),
                      "COM_DISARM_PRFLT": (10.0, mav.MAV_PARAM_TYPE_REAL32)}
    param_bytewise = True

    def __init__(self, connection: str, **kwargs):
        super().__init__(connection, **kwargs)
        self.mode = "POSCTL"

    # ---- commands --------------------------------------------------------------------------------
    def _streaming(self) -> bool:
        return self.now() - self.last_setpoint_rx <= self.param("COM_OF_LOSS_T")

    def _set_mode(self, name: str) -> int:
        if name not in SUPPORTED_MODES:
            return mav.MAV_RESULT_UNSUPPORTED
        state = self._state()
        if name == "OFFBOARD" and not self._streaming():
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
        if self.mode == "OFFBOARD" and not self._streaming():
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Arming denied: offboard setpoints not streaming")
            return mav.MAV_RESULT_DENIED
        if self.mode == "LAND":
            self._statustext(mav.MAV_SEVERITY_CRITICAL, "Arming denied: landing")
            return mav.MAV_RESULT_DENIED
        if not self.armed:
            self._arm_motors()
            if self.mode in ("POSCTL", "LOITER"):
                state = self._state()
                self._set_hold(state["pos"], yaw_of(state["quat"]))
        return mav.MAV_RESULT_ACCEPTED

    def _disarm(self) -> None:
        self._disarm_motors()
        if self.mode in ("LAND", "TAKEOFF"):
            self.mode = "LOITER"

    def _on_command(self, msg) -> int | None:
        cmd = msg.command
        if cmd == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            return self._arm(msg.param1 > 0.5, int(msg.param2) == 21196)
        if cmd == mav.MAV_CMD_DO_SET_MODE:
            main, sub = int(msg.param2), int(msg.param3)
            names = [n for n, (_, m, s) in PX4_MODES.items() if m == main and (s == sub or main != 4)]
            return self._set_mode(names[0]) if names else mav.MAV_RESULT_UNSUPPORTED
        if cmd == mav.MAV_CMD_NAV_LAND:
            return self._set_mode("LAND")
        if cmd == mav.MAV_CMD_NAV_TAKEOFF:
            return self._set_mode("TAKEOFF")
        return None

    # ---- flight controller -------------------------------------------------------------------------
    def _control(self) -> None:
        now, state = self.now(), self._state()
        if self.mode == "OFFBOARD" and not self._streaming():
            action = int(self.param("COM_OBL_RC_ACT"))
            if action == OBL_LAND:
                self._statustext(mav.MAV_SEVERITY_CRITICAL, "Failsafe: offboard setpoints lost, landing")
                self._set_mode("LAND")
            else:
                self._statustext(mav.MAV_SEVERITY_CRITICAL, "Failsafe: offboard setpoints lost, holding")
                self._set_mode("LOITER")
            self._setpoint = None
        if not self.armed:
            return
        disarm_delay = self.param("COM_DISARM_LAND") if self.mode == "LAND" else self.param("COM_DISARM_PRFLT")
        if self.landed and self.mode in ("LAND", "POSCTL", "LOITER") and now - self._landed_since > disarm_delay:
            self._disarm()
            self._statustext(mav.MAV_SEVERITY_INFO, "Landing detected, disarmed")
            return
        if not self.landed:
            self._landed_since = now
        if self.mode == "OFFBOARD" and self._fly_active_setpoint(state):
            return
        if self.mode == "LAND":
            pos_sp = np.array([self._hold[0], self._hold[1], state["pos"][2]])
            self._fly_setpoint(state, pos_sp, self._hold[3], np.array([0.0, 0.0, -self.land_speed]),
                               vz_limit=-self.land_speed)
            return
        if self.mode == "TAKEOFF" and abs(state["pos"][2] - self._hold[2]) < 0.1:
            self.mode = "LOITER"
        self._fly_setpoint(state, self._hold[:3], self._hold[3], np.zeros(3))

    # ---- MAVLink out -----------------------------------------------------------------------------
    def _heartbeat(self) -> tuple[int, int, int]:
        armed = mav.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0
        status = mav.MAV_STATE_ACTIVE if self.armed else mav.MAV_STATE_STANDBY
        return PX4_MODES[self.mode][0] | armed, px4_custom_mode(self.mode), status

    def _landed_state(self) -> int:
        if self.landed:
            return mav.MAV_LANDED_STATE_ON_GROUND
        if self.mode == "LAND":
            return mav.MAV_LANDED_STATE_LANDING
        return mav.MAV_LANDED_STATE_TAKEOFF if self.mode == "TAKEOFF" else mav.MAV_LANDED_STATE_IN_AIR
