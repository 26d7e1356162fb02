"""3Dconnexion SpaceMouse teleop via pyspacemouse (hidapi): translation -> x/y/z, twist -> yaw.

Left button toggles the gripper, right button saves the episode. With ``rac_buttons`` (RaC collection,
robotlearn/correction/): left button held = clutch; right button toggles the gripper while clutched and
asks for an assisted rewind otherwise (a SpaceMouse has two buttons).
"""

from __future__ import annotations

import numpy as np

from robotlearn.teleop.base import CartesianDevice, require


class SpaceMouseDevice(CartesianDevice):
    def __init__(self, env, deadzone: float = 0.05, gain: float = 1.5, rac_buttons: bool = False):
        super().__init__(env)
        self.rac_buttons = rac_buttons
        self.sm = require("pyspacemouse", "pyspacemouse", "SpaceMouse")
        if not self.sm.open():
            raise RuntimeError("no SpaceMouse found (check USB and hidraw permissions, e.g. a udev rule)")
        self.deadzone, self.gain = deadzone, gain
        self._buttons = [0, 0]

    def twist(self) -> np.ndarray:
        state = self.sm.read()
        buttons = list(state.buttons)[:2] + [0] * max(0, 2 - len(state.buttons))
        pressed = [b and not was for b, was in zip(buttons, self._buttons, strict=True)]
        if self.rac_buttons:
            self.clutch = bool(buttons[0])
            if pressed[1]:
                if self.clutch:
                    self.gripper = -self.gripper
                else:
                    self.events.add("rewind")
        else:
            if pressed[0]:
                self.gripper = -self.gripper
            if pressed[1]:
                self.events.add("save")
        self._buttons = buttons
        v = np.array([state.y, -state.x, state.z, -state.yaw]) * self.gain
        v[np.abs(v) < self.deadzone] = 0.0
        return v

    def close(self) -> None:
        self.sm.close()
