"""Autopilot parameters over MAVLink: PARAM_REQUEST_READ / PARAM_SET, each checked against the PARAM_VALUE echo.

Written by hand because pymavlink decodes the messages but has no request/retry/echo client (mavutil's
`param_fetch_all` downloads the whole table, ~1300 values on ArduCopter, without confirming anything).
Integer parameters travel in the float field: PX4 copies their bytes (bytewise encoding), ArduPilot
converts the number; `bytewise` selects which.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable

import numpy as np

from robotlearn.hardware.frames import mavlink2_common

mav = mavlink2_common()
INT_TYPES = {mav.MAV_PARAM_TYPE_UINT8, mav.MAV_PARAM_TYPE_INT8, mav.MAV_PARAM_TYPE_UINT16, mav.MAV_PARAM_TYPE_INT16,
             mav.MAV_PARAM_TYPE_UINT32, mav.MAV_PARAM_TYPE_INT32}


def encode_param(value: float, param_type: int, bytewise: bool) -> float:
    """The float that carries `value` in PARAM_SET / PARAM_VALUE."""
    if bytewise and param_type in INT_TYPES:
        return struct.unpack("<f", struct.pack("<i", int(round(value))))[0]
    return float(value)


def decode_param(raw: float, param_type: int, bytewise: bool) -> float:
    if bytewise and param_type in INT_TYPES:
        return float(struct.unpack("<i", struct.pack("<f", raw))[0])
    return float(raw)


class ParamError(RuntimeError):
    """A parameter could not be read, or the vehicle did not take the value written."""


class ParamClient:
    """Named parameter reads and writes for one vehicle. `on_param_value` is fed by the receive thread."""

    def __init__(self, send: Callable[[Callable[..., None], tuple], None], target: tuple[int, int], bytewise: bool,
                 timeout: float = 0.5, retries: int = 3):
        self._send, self.target, self.bytewise = send, target, bytewise
        self.timeout, self.retries = timeout, retries
        self._values: dict[str, tuple[float, int, float]] = {}  # name -> (value, type, time received)
        self._cond = threading.Condition()

    def on_param_value(self, msg) -> None:
        name = msg.param_id
        with self._cond:
            self._values[name] = (decode_param(msg.param_value, msg.param_type, self.bytewise), msg.param_type, time.monotonic())
            self._cond.notify_all()

    def _wait(self, name: str, since: float, timeout: float) -> tuple[float, int] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._values.get(name)
                if got is not None and got[2] >= since:
                    return got[0], got[1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def get(self, name: str) -> float:
        return self._read(name)[0]

    def _read(self, name: str) -> tuple[float, int]:
        for _ in range(self.retries):
            since = time.monotonic()
            self._send(lambda m: m.param_request_read_send(*self.target, name.encode(), -1), ())
            got = self._wait(name, since, self.timeout)
            if got is not None:
                return got
        raise ParamError(f"no PARAM_VALUE for {name!r} after {self.retries} requests: the autopilot has no such "
                         f"parameter (or the link drops its answers)")

    def set(self, name: str, value: float) -> float:
        """Write `name` and return the value the vehicle echoes; ParamError unless it equals `value`."""
        _, ptype = self._read(name)
        want = float(np.float32(round(value) if ptype in INT_TYPES else value))
        got = None
        for _ in range(self.retries):
            since = time.monotonic()
            self._send(lambda m: m.param_set_send(*self.target, name.encode(), encode_param(want, ptype, self.bytewise), ptype), ())
            echo = self._wait(name, since, self.timeout)
            if echo is not None:
                got = echo[0]
                if float(np.float32(got)) == want:
                    return got
        if got is None:
            raise ParamError(f"setting {name}={want:g}: no PARAM_VALUE echo after {self.retries} tries")
        raise ParamError(f"setting {name}={want:g}: the vehicle kept {name}={got:g}")
