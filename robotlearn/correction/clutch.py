"""The clutch + intervention controller: a person on a teleop device as RaC's operator.

While the clutch is engaged the operator drives; released, the policy does. Commands are **relative to
where the clutch engaged**: at engagement (and again after an assisted rewind) the controller anchors to
the follower's current tool pose — and, for a leader arm, to the leader's current joints — and from then on
commands anchor + the device's motion since. Nobody has to re-align a leader arm with the follower, or
steer a SpaceMouse back to where the policy left the tool.

Clutch and rewind inputs (teleop devices keep them in ``device.clutch`` and the "rewind" event):
keyboard ``c`` (toggles: a terminal reports no key releases) and ``z``; gamepad LB held and X;
SpaceMouse (``rac_buttons``) left button held and right button; a leader arm has no buttons, so its
clutch and rewind come from a second device, the `switch` (a keyboard or a gamepad: a foot pedal is a
keyboard too).
"""

from __future__ import annotations

import numpy as np

from robotlearn.teleop.base import CartesianDevice, TeleopDevice

LOOP_EVENTS = {"save", "discard", "quit"}


class ClutchOperator:
    """`Operator` (correction/rac.py) over a teleop device, with commands relative to the clutch point."""

    human = True

    def __init__(self, env, device: TeleopDevice, switch: TeleopDevice | None = None):
        self.env, self.device, self.switch = env, device, switch or device
        self.robot, self.backend = env.unwrapped.robot, env.unwrapped.backend
        self.cartesian = isinstance(device, CartesianDevice)
        if not self.cartesian and not hasattr(device, "read_joints"):
            raise TypeError(f"{type(device).__name__}: the clutch controller needs a Cartesian device or a leader arm")
        self._polled: int | None = None
        self._twist = np.zeros(4)
        self._leader = np.zeros(0)
        self._events: set[str] = set()
        self.target, self.yaw = np.zeros(3), 0.0
        self._leader0 = self._follower0 = np.zeros(0)

    @classmethod
    def for_device(cls, kind: str, env, switch: str | None = None, **options) -> ClutchOperator:
        """A device by name (robotlearn.teleop.DEVICES); `switch` names the clutch device for a leader arm
        (default keyboard)."""
        from robotlearn.teleop import make_device

        if kind == "spacemouse":
            options.setdefault("rac_buttons", True)
        device = make_device(kind, env, **options)
        if kind == "leader_arm" or switch:
            return cls(env, device, make_device(switch or "keyboard", env))
        return cls(env, device)

    # ---- one poll per control step ----------------------------------------------------------------------
    def _poll(self, obs: dict[str, np.ndarray]) -> None:
        if self._polled == id(obs):
            return
        self._polled = id(obs)
        if self.cartesian:
            self._twist = np.asarray(self.device.twist(), np.float64)
        else:
            self._leader = self.device.read_joints()
        if self.switch is not self.device:
            self.switch.twist()
        for dev in {id(self.device): self.device, id(self.switch): self.switch}.values():
            self._events |= dev.pop_events()

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self._polled = None

    def engage(self, obs: dict[str, np.ndarray]) -> bool:
        """The clutch engaged, or a rewind asked for (rewinding is taking over)."""
        self._poll(obs)
        return bool(self.switch.clutch) or "rewind" in self._events

    def engaged(self, obs: dict[str, np.ndarray]) -> bool:
        self._poll(obs)
        return bool(self.switch.clutch)

    def rewind_request(self, obs: dict[str, np.ndarray]) -> str | None:
        self._poll(obs)
        if "rewind" in self._events:
            self._events.discard("rewind")
            return "auto"
        return None

    def anchor(self, obs: dict[str, np.ndarray]) -> None:
        """Commands from now on are relative to this state of the follower (and of the leader)."""
        self.target = np.asarray(obs["ee_pos"], np.float64).copy()
        self.yaw = self.robot.kin.tool_yaw(np.asarray(obs["ee_quat"], np.float64))
        if self.cartesian:
            self.device.gripper = 1.0 if float(obs["gripper"][0]) > 0.5 else -1.0
        else:
            self._poll(obs)
            self._leader0 = self._leader.copy()
            self._follower0 = np.asarray(obs["joint_pos"], np.float64).copy()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self._poll(obs)
        state = self.backend.read()
        if self.cartesian:
            p = self.robot.p
            v = np.clip(self._twist, -1.0, 1.0)
            self.target = self.target + v[:3] * p["max_ee_delta"]
            self.yaw = float(self.yaw + v[3] * p["max_yaw_delta"])
            return self.robot.action_toward(self.target, self.yaw, self.device.gripper, state)
        n = self.robot.n_arm
        q = self._follower0[:n] + (self._leader[:n] - self._leader0[:n])
        pos, quat = self.robot.kin.forward(q)
        fingers = self._leader[n:]
        grip = 2.0 * float(np.mean(fingers)) / self.robot.finger_open - 1.0 if len(fingers) else 1.0
        return self.robot.action_toward(pos, self.robot.kin.tool_yaw(quat), grip, state)

    def pop_events(self) -> set[str]:
        out = self._events & LOOP_EVENTS
        self._events -= LOOP_EVENTS
        return out

    def close(self) -> None:
        try:
            self.device.close()
        finally:
            if self.switch is not self.device:
                self.switch.close()
