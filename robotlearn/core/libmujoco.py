"""Addresses of functions in the libmujoco that the `mujoco` package has loaded.

The compiled core (`_rt.MujocoStepper`, `_rt.MujocoArmIK`) calls MuJoCo's C API directly so that inner
loops (a physics tick, an IK iteration) never return to Python. `ctypes.CDLL` on the already-loaded
library file returns the same handle, so these are the very functions the Python bindings call.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import mujoco


@functools.cache
def _library() -> ctypes.CDLL:
    libdir = Path(mujoco.__file__).parent
    candidates = sorted(libdir.glob("libmujoco.so*"))
    if not candidates:
        raise RuntimeError(f"no libmujoco.so* next to the mujoco package in {libdir}")
    return ctypes.CDLL(str(candidates[0]))


def function_address(name: str) -> int:
    """Address of the C function `name` (e.g. "mj_step") in the loaded libmujoco."""
    return ctypes.cast(getattr(_library(), name), ctypes.c_void_p).value
