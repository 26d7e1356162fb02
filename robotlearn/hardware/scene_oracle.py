"""Scene oracles: how the real arm learns where objects are, and places them.

A sim knows its scene; a real robot needs a source. The backend receives a `SceneOracle` and never
asks what it is. Today's source is the emulator's ground-truth side channel (`EmulatorOracle`): the
announcement file `robotlearn emulate arm` writes next to its link, and a localhost UDP JSON request.
This module is the host-side *client* of that channel; the emulator (device side, emulators/arm.py)
imports the shared announcement path from here, never the other way round. Perception oracles (fiducial
markers on a camera) implement the same protocol.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class SceneOracle(Protocol):
    """Object poses (and, where someone can do it, placing objects) for a real robot's scene."""

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(pos, quat wxyz) of scene object `name` in the world frame."""

    def place(self, scene: dict[str, list[float]]) -> None:
        """Put scene objects/markers at the poses of Backend.reset's scene keys."""


def info_path(link: str | Path) -> Path:
    """Where the emulator announces itself (pty, cameras, side channel) for a given link."""
    return Path(str(link) + ".json")


def read_emulator_info(link: str | Path, timeout_s: float = 0.0) -> dict[str, Any]:
    """The announcement of a running emulator at `link`, waiting up to `timeout_s` for it to appear."""
    path, deadline = info_path(link), time.monotonic() + timeout_s
    while True:
        try:
            info = json.loads(path.read_text())
            os.kill(int(info["pid"]), 0)  # a file left by a killed emulator is not an announcement
            return info
        except (FileNotFoundError, json.JSONDecodeError, ProcessLookupError, KeyError):
            if time.monotonic() >= deadline:
                raise FileNotFoundError(f"no emulator announced at {path} (is `robotlearn emulate arm` running?)"
                                        ) from None
            time.sleep(0.05)


def side_channel_request(address: tuple[str, int], request: dict, timeout_s: float = 1.0) -> dict:
    """One JSON request/response to an emulator's ground-truth endpoint."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(json.dumps(request).encode(), tuple(address))
        try:
            reply = json.loads(sock.recv(65536))
        except TimeoutError:
            raise TimeoutError(f"emulator side channel {address} did not answer {request.get('op')!r}") from None
    if "error" in reply:
        raise RuntimeError(f"emulator side channel: {reply['error']}")
    return reply



class EmulatorOracle:
    """The emulator's ground truth, through its announced side channel. Exists only for an emulated arm."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.address = tuple(info["side_channel"])

    @classmethod
    def discover(cls, link: str | Path) -> EmulatorOracle | None:
        """The oracle of the emulator announced at `link`, or None when nothing is announced there."""
        try:
            return cls(read_emulator_info(link, timeout_s=0.0))
        except FileNotFoundError:
            return None

    @property
    def cameras(self) -> dict[str, str]:
        """The emulator's camera stream URLs (camera name -> MJPEG URL)."""
        return dict(self.info.get("cameras", {}))

    def request(self, request: dict) -> dict:
        return side_channel_request(self.address, request)

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        reply = self.request({"op": "object_pose", "name": name})
        return np.asarray(reply["pos"], dtype=np.float64), np.asarray(reply["quat"], dtype=np.float64)

    def place(self, scene: dict[str, list[float]]) -> None:
        self.request({"op": "place", "scene": scene})
