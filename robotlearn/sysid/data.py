"""A sysid recording: the commands sent to the backend and the states it reported, as one .npz + meta.json.

Why not the episode dataset (robotlearn/data)? Sysid replays *backend-level* joint targets, every joint
including the mirrored finger, and the raw backend state at the control rate; a policy dataset stores
normalized actions and observations. The npz holds plain float arrays (loaded with
``allow_pickle=False``), and meta.json carries the env recipe, so a recording names the env it came from.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS = ("commands", "joint_pos", "joint_vel")
#: absent in older recordings: joint_effort before present current was read, timestamps before ticks were
OPTIONAL = ("joint_effort", "timestamps")
#: a step whose duration differs from the control period by more than this is irregular (the host missed a
#: tick): a replay, which steps exactly one period, cannot reproduce it. Smaller than the real arm's loop
#: cycle (2 ms, the smallest slip a tick can make) and far above the loop's publish jitter (~0.1 ms).
TICK_TOLERANCE_S = 1e-3
#: the same for a quadrotor's states, stamped by the vehicle's clock in whole ms: a tick that read no new
#: sample, or skipped one, is a whole period (10 ms) off; rounding to the ms moves a stamp by at most 1 ms.
SAMPLE_TOLERANCE_S = 2.5e-3
FILE, META = "sysid.npz", "meta.json"


def regular_steps(timestamps: np.ndarray | None, n: int, control_hz: float, tolerance_s: float) -> np.ndarray:
    """(n,) bool: the states before and after step k are one control period apart (within `tolerance_s`);
    all True without timestamps."""
    if timestamps is None:
        return np.ones(n, dtype=bool)
    return np.abs(np.diff(timestamps) - 1.0 / control_hz) <= tolerance_s


@dataclass
class SysidData:
    """`commands[k]` was sent at step k; `joint_pos[k]` / `joint_vel[k]` / `joint_effort[k]` were read before
    it (k = 0..N), at `timestamps[k]` (the backend's tick clock, s since reset). `joint_effort` (N m, the
    servos' present current / load) and `timestamps` are None in older recordings."""

    commands: np.ndarray       # (N, n_joints) backend joint targets
    joint_pos: np.ndarray      # (N + 1, n_joints)
    joint_vel: np.ndarray      # (N + 1, n_joints)
    control_hz: float
    robot: str
    meta: dict[str, Any] = field(default_factory=dict)  # recipe, excitation, backend
    joint_effort: np.ndarray | None = None  # (N + 1, n_joints)
    timestamps: np.ndarray | None = None  # (N + 1,)

    def __post_init__(self) -> None:
        n = len(self.commands)
        if n < 2 or self.joint_pos.shape != (n + 1, self.commands.shape[1]) or self.joint_vel.shape != self.joint_pos.shape:
            raise ValueError(f"sysid data: inconsistent shapes commands {self.commands.shape}, joint_pos "
                             f"{self.joint_pos.shape}, joint_vel {self.joint_vel.shape}")
        if self.joint_effort is not None and self.joint_effort.shape != self.joint_pos.shape:
            raise ValueError(f"sysid data: joint_effort {self.joint_effort.shape} does not match joint_pos "
                             f"{self.joint_pos.shape}")
        if self.timestamps is not None and self.timestamps.shape != (n + 1,):
            raise ValueError(f"sysid data: timestamps {self.timestamps.shape} needs one entry per state ({n + 1})")
        for name in ARRAYS + OPTIONAL:
            if getattr(self, name) is not None and not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"sysid data: {name} contains NaN/inf")

    @classmethod
    def from_states(cls, commands: list[np.ndarray], states: list[dict[str, np.ndarray]], control_hz: float,
                    robot: str, meta: dict[str, Any] | None = None, timestamps=None) -> SysidData:
        """From the commands sent and the backend states read (joint_effort kept where every state has it)."""
        effort = np.array([s["joint_effort"] for s in states]) if all("joint_effort" in s for s in states) else None
        return cls(np.array(commands), np.array([s["joint_pos"] for s in states]),
                   np.array([s["joint_vel"] for s in states]), control_hz, robot, meta or {}, effort,
                   None if timestamps is None else np.asarray(timestamps, dtype=np.float64))

    @property
    def seconds(self) -> float:
        return len(self.commands) / self.control_hz

    def head(self, seconds: float) -> SysidData:
        """The first `seconds` of the recording (for error-vs-data-length studies)."""
        n = max(2, min(len(self.commands), int(round(seconds * self.control_hz))))
        effort = None if self.joint_effort is None else self.joint_effort[:n + 1]
        stamps = None if self.timestamps is None else self.timestamps[:n + 1]
        return SysidData(self.commands[:n], self.joint_pos[:n + 1], self.joint_vel[:n + 1], self.control_hz,
                         self.robot, dict(self.meta), effort, stamps)

    def regular_steps(self) -> np.ndarray:
        """(N,) bool: step k lasted one control period (within TICK_TOLERANCE_S); all True without timestamps."""
        return regular_steps(self.timestamps, len(self.commands), self.control_hz, TICK_TOLERANCE_S)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / FILE, **{k: getattr(self, k) for k in ARRAYS + OPTIONAL
                                              if getattr(self, k) is not None})
        (folder / META).write_text(json.dumps({"control_hz": self.control_hz, "robot": self.robot, **self.meta},
                                              indent=1, sort_keys=True))
        return folder


QUAD_ARRAYS = ("commands", "states")
QUAD_OPTIONAL = ("timestamps",)  # absent from sims and from recordings before the driver read the stamps


@dataclass
class QuadSysidData:
    """A quadrotor recording: `commands[k]` (CTBR: thrust 0..1, body rates p, q, r) was sent at step k;
    `states[k]` = [pos, quat wxyz, vel world, omega body] (13) was read before it (k = 0..N), sampled at
    `timestamps[k]` (the vehicle's own clock, s; None from a sim or in older recordings)."""

    commands: np.ndarray  # (N, 4)
    states: np.ndarray    # (N + 1, 13)
    control_hz: float
    robot: str
    meta: dict[str, Any] = field(default_factory=dict)
    timestamps: np.ndarray | None = None  # (N + 1,)

    def __post_init__(self) -> None:
        n = len(self.commands)
        if n < 2 or self.commands.shape != (n, 4) or self.states.shape != (n + 1, 13):
            raise ValueError(f"quadrotor sysid data: inconsistent shapes commands {self.commands.shape}, "
                             f"states {self.states.shape}")
        if self.timestamps is not None and self.timestamps.shape != (n + 1,):
            raise ValueError(f"sysid data: timestamps {self.timestamps.shape} needs one entry per state ({n + 1})")
        for name in (*QUAD_ARRAYS, *QUAD_OPTIONAL):
            if getattr(self, name) is not None and not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"sysid data: {name} contains NaN/inf")

    @property
    def seconds(self) -> float:
        return len(self.commands) / self.control_hz

    def head(self, seconds: float) -> QuadSysidData:
        n = max(2, min(len(self.commands), int(round(seconds * self.control_hz))))
        stamps = None if self.timestamps is None else self.timestamps[:n + 1]
        return QuadSysidData(self.commands[:n], self.states[:n + 1], self.control_hz, self.robot, dict(self.meta),
                             stamps)

    def regular_steps(self) -> np.ndarray:
        """(N,) bool: step k read the vehicle's next sample (within SAMPLE_TOLERANCE_S); all True without stamps."""
        return regular_steps(self.timestamps, len(self.commands), self.control_hz, SAMPLE_TOLERANCE_S)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / FILE, **{k: getattr(self, k) for k in (*QUAD_ARRAYS, *QUAD_OPTIONAL)
                                              if getattr(self, k) is not None})
        (folder / META).write_text(json.dumps({"control_hz": self.control_hz, "robot": self.robot,
                                               **self.meta, "kind": "quadrotor"}, indent=1, sort_keys=True))
        return folder


def load_sysid_data(folder: str | Path) -> SysidData | QuadSysidData:
    """Read a `robotlearn sysid collect` folder; a missing, truncated or corrupt file is a one-line ValueError."""
    folder = Path(folder)
    if not (folder / FILE).is_file() or not (folder / META).is_file():
        raise FileNotFoundError(f"{folder}: not a sysid recording (needs {FILE} and {META}; "
                                "make one with `robotlearn sysid collect`)")
    try:
        meta = json.loads((folder / META).read_text())
        quad = meta.get("kind") == "quadrotor"
        names, optional = (QUAD_ARRAYS, QUAD_OPTIONAL) if quad else (ARRAYS, OPTIONAL)
        with np.load(folder / FILE, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in names}
            arrays.update({k: np.asarray(npz[k], dtype=np.float64) for k in optional if k in npz.files})
    except (json.JSONDecodeError, zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise ValueError(f"{folder}: corrupt sysid recording ({type(err).__name__}: {err})") from None
    control_hz, robot = meta.pop("control_hz", None), meta.pop("robot", None)
    if not isinstance(control_hz, (int, float)) or not isinstance(robot, str):
        raise ValueError(f"{folder / META}: needs control_hz and robot")
    cls = QuadSysidData if meta.get("kind") == "quadrotor" else SysidData
    return cls(control_hz=float(control_hz), robot=robot, meta=meta, **arrays)
