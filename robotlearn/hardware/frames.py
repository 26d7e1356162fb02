"""Frame conversions between our convention and MAVLink's, in one tested place.

Ours: world ENU-like (x east/forward, y north/left, z up), body FLU (forward, left, up).
MAVLink/PX4/ArduPilot: local NED (x north, y east, z down), body FRD (forward, right, down).
Both changes of basis are 180-degree rotations, so every function here is its own inverse; the
pairs of names exist only so call sites read in the direction they convert.
Quaternions are (w, x, y, z) everywhere, as in MAVLink's `q` fields.
"""

from __future__ import annotations

import os

import numpy as np

from robotlearn.core.rotations import quat_mul

_S = np.sqrt(0.5)
_Q_ENU_NED = np.array([0.0, _S, _S, 0.0])  # world basis change: 180 deg about (x + y) / sqrt(2)
_Q_FLU_FRD = np.array([0.0, 1.0, 0.0, 0.0])  # body basis change: 180 deg about x


def enu_to_ned(v) -> np.ndarray:
    """World vector (position, velocity) ENU -> NED."""
    v = np.asarray(v, dtype=np.float64)
    return np.array([v[1], v[0], -v[2]])


ned_to_enu = enu_to_ned


def flu_to_frd(v) -> np.ndarray:
    """Body vector (angular rate, body velocity) FLU -> FRD."""
    v = np.asarray(v, dtype=np.float64)
    return np.array([v[0], -v[1], -v[2]])


frd_to_flu = flu_to_frd


def quat_enu_flu_to_ned_frd(q) -> np.ndarray:
    """Attitude (body FLU -> world ENU) to MAVLink attitude (body FRD -> world NED), w >= 0."""
    out = quat_mul(quat_mul(_Q_ENU_NED, np.asarray(q, dtype=np.float64)), _Q_FLU_FRD)
    out /= np.linalg.norm(out)
    return out if out[0] >= 0 else -out


quat_ned_frd_to_enu_flu = quat_enu_flu_to_ned_frd


def yaw_enu_to_ned(yaw: float) -> float:
    """Heading: ENU yaw (from east, counter-clockwise) -> NED yaw (from north, clockwise), in (-pi, pi]."""
    return float(np.angle(np.exp(1j * (np.pi / 2 - yaw))))


yaw_ned_to_enu = yaw_enu_to_ned


def mavlink2_common():
    """pymavlink's `common` dialect on MAVLink 2 (ODOMETRY and friends need v2; the default is v1 `all`).

    pymavlink selects the wire version from the MAVLINK20 environment variable when a dialect is set,
    so both the driver and the emulator call this once at import, before any connection is opened.
    """
    from pymavlink import mavutil

    os.environ["MAVLINK20"] = "1"
    mavutil.set_dialect("common")
    return mavutil.mavlink
