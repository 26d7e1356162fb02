"""Terminal keyboard teleop: raw stdin via termios, so it works over SSH with no X server.

A terminal delivers key *presses* (with auto-repeat while held), never releases, so a key drives its axis
for `hold_s` after its last repeat; holding a key therefore moves smoothly and letting go stops within
`hold_s`. Keys::

    w/s  +x/-x     a/d  +y/-y     r/f  +z/-z     q/e  yaw +/-
    space  toggle gripper     enter  end episode (keep)     backspace  end episode (discard)     esc / ctrl-c  quit
    c  toggle the RaC clutch (a terminal has no key releases, so it toggles)     z  assisted rewind
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty

import numpy as np

from robotlearn.teleop.base import CartesianDevice

# key -> (axis, sign) over (x, y, z, yaw)
KEYMAP: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0),
    "r": (2, 1.0), "f": (2, -1.0), "q": (3, 1.0), "e": (3, -1.0),
}
HELP = "keys: w/s x  a/d y  r/f z  q/e yaw  space gripper  enter save  backspace discard  esc quit  c clutch  z rewind"


class KeyboardDevice(CartesianDevice):
    """Reads keys from a terminal file descriptor (stdin by default) put in raw mode for the session."""

    def __init__(self, env, fd: int | None = None, hold_s: float = 0.25, speed: float = 1.0):
        super().__init__(env)
        self.fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self.fd):
            raise RuntimeError("keyboard teleop needs a terminal on stdin (run it in a shell, not piped)")
        self.hold_s, self.speed = hold_s, speed
        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)
        self._last_press: dict[str, float] = {}

    def _read_keys(self) -> list[str]:
        keys: list[str] = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:
                break
            text = data.decode(errors="ignore")
            i = 0
            while i < len(text):
                if text[i] == "\x1b" and i + 1 < len(text) and text[i + 1] == "[":
                    i += 3  # arrow/escape sequence: ignored
                    continue
                keys.append(text[i])
                i += 1
        return keys

    def twist(self) -> np.ndarray:
        now = time.monotonic()
        for key in self._read_keys():
            if key in KEYMAP:
                self._last_press[key] = now
            elif key == " ":
                self.gripper = -self.gripper
            elif key == "c":
                self.clutch = not self.clutch
            elif key == "z":
                self.events.add("rewind")
            elif key in ("\r", "\n"):
                self.events.add("save")
            elif key in ("\x7f", "\x08"):
                self.events.add("discard")
            elif key in ("\x1b", "\x03"):
                self.events.add("quit")
        v = np.zeros(4)
        for key, t in self._last_press.items():
            if now - t <= self.hold_s:
                axis, sign = KEYMAP[key]
                v[axis] += sign * self.speed
        return v

    def close(self) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
