"""3Dconnexion SpaceMouse teleop via pyspacemouse (hidapi): translation -> x/y/z, twist -> yaw.

Left button toggles the gripper, right button saves the episode.
"""

from __future__ import annotations

import numpy as np

from robotlearn.teleop.base import CartesianDevice, require


class SpaceMouseDevice(CartesianDevice):
    def __init__(self, env, deadzone: float = 0.05, gain: float = 1.5):
        super().__init__(env)
        self.sm = require("pyspacemouse", "pyspacemouse", "SpaceMouse")
        if not self.sm.open():
            raise RuntimeError("no SpaceMouse found (check USB and hidraw permissions, e.g. a udev rule)")
        self.deadzone, self.gain = deadzone, gain
        self._buttons = [0, 0]

    def twist(self) -> np.ndarray:
        state = self.sm.read()
        buttons = list(state.buttons)[:2] + [0] * max(0, 2 - len(state.buttons))
        if buttons[0] and not self._buttons[0]:
            self.gripper = -self.gripper
        if buttons[1] and not self._buttons[1]:
            self.events.add("save")
        self._buttons = buttons
        v = np.array([state.y, -state.x, state.z, -state.yaw]) * self.gain
        v[np.abs(v) < self.deadzone] = 0.0
        return v

    def close(self) -> None:
        self.sm.close()
