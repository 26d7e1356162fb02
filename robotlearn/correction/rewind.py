"""Assisted rewind: the robot retraces its own executed path backwards, speed-limited.

The path is what the arm actually did (measured joint positions each control step, and the gripper
command in force), kept by `PathMemory`. `AssistedRewind` turns it into ordinary env actions — toward the
tool pose of each earlier joint configuration, in whatever action mode the env has — so a rewind goes
through the same robot model, the same IK and the same compiled controller (limits, watchdog, e-stop) as
any policy or teleop command, in sim and on the real driver alike. Nothing here can move the arm in a
way a policy could not.

The rewind target is either k seconds back, or the nearest earlier state whose tool/gripper state lies
in the distribution of the demos for the current sub-task (`DemoStateDistribution`): RaC's "recover to a
familiar, in-distribution state".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robotlearn.data.loader import Demos


@dataclass
class PathMemory:
    """The executed path of one episode: per control step the measured joints, tool position, gripper
    opening and the gripper command that was in force."""

    joints: list[np.ndarray] = field(default_factory=list)
    ee: list[np.ndarray] = field(default_factory=list)
    opening: list[float] = field(default_factory=list)
    grip_cmd: list[float] = field(default_factory=list)

    def clear(self) -> None:
        for values in (self.joints, self.ee, self.opening, self.grip_cmd):
            values.clear()

    def record(self, obs: dict[str, np.ndarray], grip_cmd: float) -> None:
        self.joints.append(np.asarray(obs["joint_pos"], np.float64).copy())
        self.ee.append(np.asarray(obs["ee_pos"], np.float64).copy())
        self.opening.append(float(obs["gripper"][0]))
        self.grip_cmd.append(float(grip_cmd))

    def truncate(self, length: int) -> None:
        """Forget everything after the first `length` states (a rewind went back there)."""
        for values in (self.joints, self.ee, self.opening, self.grip_cmd):
            del values[length:]

    def __len__(self) -> int:
        return len(self.joints)


class DemoStateDistribution:
    """Per sub-task, the task's state features (`task.state_features(obs)`: tool relative to the sub-task's
    cube, gripper opening) of demo frames. A state is in distribution when its nearest demo state of the
    same sub-task is within `radius` (gripper opening weighted by `grip_scale` m per unit)."""

    def __init__(self, features: dict[int, np.ndarray], radius: float = 0.02, grip_scale: float = 0.05):
        self.features, self.radius, self.grip_scale = features, float(radius), float(grip_scale)

    @classmethod
    def from_demos(cls, demos: Demos, task, **kwargs) -> DemoStateDistribution:
        source = demos.data["source"]
        rows = np.flatnonzero(source == "demo")
        if not len(rows):
            raise ValueError(f"{demos.meta.root}: no demo frames to learn the in-distribution states from")
        keys = [k for k in demos.data if k.startswith("observation.")]
        per: dict[int, list[np.ndarray]] = {}
        for i in rows:
            obs = {k[len("observation."):]: demos.data[k][i] for k in keys}
            s = int(demos.data["subtask_id"][i]) if "subtask_id" in demos.data else task.subtask(obs)
            per.setdefault(s, []).append(task.state_features(obs))
        return cls({s: np.stack(v) for s, v in per.items()}, **kwargs)

    def distance(self, features: np.ndarray, subtask: int) -> float:
        demo = self.features.get(subtask)
        if demo is None:
            return np.inf
        scale = np.ones(features.shape[-1])
        scale[-1] = self.grip_scale
        return float(np.min(np.linalg.norm((demo - features) * scale, axis=1)))

    def contains(self, features: np.ndarray, subtask: int) -> bool:
        return self.distance(features, subtask) <= self.radius


def in_distribution_target(path: PathMemory, obs: dict[str, np.ndarray], task, dist: DemoStateDistribution,
                           min_back: int, max_back: int) -> int | None:
    """Index of the latest path state at least `min_back` steps back (at most `max_back`) that is in the
    demo distribution of the sub-task the scene is in *now* (objects do not rewind with the arm)."""
    subtask = min(task.subtask(obs), max(dist.features))
    last = len(path) - 1
    for i in range(last - min_back, max(last - max_back, 0) - 1, -1):
        probe = {**obs, "ee_pos": path.ee[i], "gripper": np.array([path.opening[i]])}
        if dist.contains(task.state_features(probe), subtask):
            return i
    return None


class AssistedRewind:
    """Drives back along `path` from its end to state `target`: each step toward the farthest earlier
    waypoint within `speed` x the per-step limit, the arm part of the action clipped to +-`speed`
    (a fraction of the action scale, so the speed limit holds in every action mode). Done when the
    target is reached within `tolerance` m of tool position, or after `max_steps`."""

    def __init__(self, env, path: PathMemory, target: int, speed: float = 0.5, tolerance: float = 0.006,
                 max_steps: int | None = None):
        if not 0 <= target < len(path):
            raise ValueError(f"rewind target {target} outside the executed path (0..{len(path) - 1})")
        if not 0 < speed <= 1:
            raise ValueError(f"rewind speed must be in (0, 1], got {speed}")
        self.robot, self.backend = env.unwrapped.robot, env.unwrapped.backend
        self.path, self.target, self.speed, self.tolerance = path, int(target), float(speed), float(tolerance)
        self.pointer = len(path) - 1
        self.step_m = self.speed * float(self.robot.p["max_ee_delta"])
        self.max_steps = max_steps or 10 + 3 * (len(path) - target)
        self.steps = 0
        self.done = False

    def _pose(self, i: int) -> tuple[np.ndarray, float]:
        pos, quat = self.robot.kin.forward(self.path.joints[i][: self.robot.n_arm])
        return pos, self.robot.kin.tool_yaw(quat)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ee = np.asarray(obs["ee_pos"], np.float64)
        while self.pointer > self.target and np.linalg.norm(self.path.ee[self.pointer - 1] - ee) <= self.step_m:
            self.pointer -= 1
        aim = max(self.pointer - 1, self.target) if self.pointer > self.target else self.target
        pos, yaw = self._pose(aim)
        action = self.robot.action_toward(pos, yaw, self.path.grip_cmd[aim], self.backend.read())
        action[:-1] = np.clip(action[:-1], -self.speed, self.speed)
        self.steps += 1
        reached = self.pointer <= self.target and np.linalg.norm(self.path.ee[self.target] - ee) < self.tolerance
        self.done = reached or self.steps >= self.max_steps
        return action.astype(np.float32)


def rewind_target(path: PathMemory, control_hz: float, seconds: float | None,
                  auto: Callable[[], int | None] | None = None, min_back: int = 3) -> int:
    """Where a rewind request goes: `auto()` (in-distribution search) when given and it finds a state,
    else `seconds` back (default 2 s), never before the episode's first state."""
    if auto is not None:
        found = auto()
        if found is not None:
            return found
    back = max(int(round((2.0 if seconds is None else seconds) * control_hz)), min_back)
    return max(len(path) - 1 - back, 0)


def polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of each point (N, D) to the polyline through `polyline` (M, D) — how far a rewind strays
    from the path it retraces (the path's own samples are up to one control step apart)."""
    a, b = polyline[:-1], polyline[1:]
    if not len(a):
        return np.linalg.norm(points - polyline[0], axis=1)
    ab = b - a
    t = np.clip(np.einsum("nmd,md->nm", points[:, None] - a[None], ab) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.min(np.linalg.norm(points[:, None] - closest, axis=2), axis=1)
