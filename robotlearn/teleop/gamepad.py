"""Gamepad teleop through pygame's joystick API (SDL: Xbox, PlayStation and generic HID pads).

Left stick: x/y, right stick vertical: z, right stick horizontal: yaw, A/cross: toggle gripper,
START: save episode, BACK/SELECT: discard, B/circle: quit; RaC: LB held = clutch, X/square = assisted rewind. Axis/button numbers follow SDL's common mapping
and can be changed with `axes=` / `buttons=`.
"""

from __future__ import annotations

import os

import numpy as np

from robotlearn.teleop.base import CartesianDevice, require

DEFAULT_AXES = {"x": (1, -1.0), "y": (0, -1.0), "z": (4, -1.0), "yaw": (3, -1.0)}  # axis index, sign
DEFAULT_BUTTONS = {"gripper": 0, "quit": 1, "discard": 6, "save": 7, "clutch": 4, "rewind": 2}


class GamepadDevice(CartesianDevice):
    def __init__(self, env, index: int = 0, deadzone: float = 0.1, axes=None, buttons=None):
        super().__init__(env)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window needed (works over SSH)
        self.pg = require("pygame", "pygame", "gamepad")
        self.pg.init()
        self.pg.joystick.init()
        if self.pg.joystick.get_count() <= index:
            raise RuntimeError(f"no gamepad #{index} found ({self.pg.joystick.get_count()} connected)")
        self.pad = self.pg.joystick.Joystick(index)
        self.deadzone = deadzone
        self.axes = axes or DEFAULT_AXES
        self.buttons = buttons or DEFAULT_BUTTONS

    def twist(self) -> np.ndarray:
        for event in self.pg.event.get():
            if event.type == self.pg.JOYBUTTONDOWN:
                if event.button == self.buttons["gripper"]:
                    self.gripper = -self.gripper
                for name in ("save", "discard", "quit", "rewind"):
                    if event.button == self.buttons.get(name):
                        self.events.add(name)
        if "clutch" in self.buttons:
            self.clutch = bool(self.pad.get_button(self.buttons["clutch"]))
        v = np.array([sign * self.pad.get_axis(axis) for axis, sign in
                      (self.axes[k] for k in ("x", "y", "z", "yaw"))])
        v[np.abs(v) < self.deadzone] = 0.0
        return v

    def close(self) -> None:
        self.pg.joystick.quit()
