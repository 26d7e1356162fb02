"""Teleoperation devices. All produce the env's action; `make_device` builds one by name.

Device modules import their optional dependencies (pygame, pyspacemouse, the compiled bus) only when
chosen, so a missing SpaceMouse library never breaks keyboard teleop.
"""

from __future__ import annotations

import importlib

from robotlearn.teleop.base import EVENTS, CartesianDevice, ScriptedDevice, TeleopDevice

# device name -> "module:Class"
DEVICES: dict[str, str] = {
    "scripted": "robotlearn.teleop.base:ScriptedDevice",
    "keyboard": "robotlearn.teleop.keyboard:KeyboardDevice",
    "gamepad": "robotlearn.teleop.gamepad:GamepadDevice",
    "spacemouse": "robotlearn.teleop.spacemouse:SpaceMouseDevice",
    "leader_arm": "robotlearn.teleop.leader_arm:LeaderArmDevice",
}


def make_device(name: str, env, **options) -> TeleopDevice:
    if name not in DEVICES:
        raise ValueError(f"unknown teleop device {name!r}; available: {', '.join(DEVICES)}")
    module, cls = DEVICES[name].split(":")
    return getattr(importlib.import_module(module), cls)(env, **options)


__all__ = ["DEVICES", "EVENTS", "CartesianDevice", "ScriptedDevice", "TeleopDevice", "make_device"]
