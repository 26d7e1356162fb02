"""Scripted experts for the arm tasks: IK-based, so they work in either action mode and on any backend.

They read only the observation dict and ask the env's robot model for the action that moves toward an
end-effector goal (`ArmModel.action_toward`), so the same expert drives MuJoCo, PyBullet and the real
driver, and can stand in as a teleop "device" for automatic demo generation.
"""

from __future__ import annotations

import numpy as np

OPEN, CLOSED = 1.0, -1.0


def cube_yaw(quat_wxyz: np.ndarray) -> float:
    """Yaw of the cube's nearest face to the tool's zero yaw, in [-pi/4, pi/4] (a cube is 90-deg symmetric)."""
    w, x, y, z = (float(v) for v in quat_wxyz)
    x_axis = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z)])
    yaw = float(np.arctan2(x_axis[1], x_axis[0]))
    return (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4


class ReachExpert:
    """Moves the tool straight to the goal."""

    def __init__(self, env):
        self.robot = env.unwrapped.robot
        self.backend = env.unwrapped.backend

    def reset(self, obs: dict) -> None:
        pass

    def act(self, obs: dict) -> np.ndarray:
        return self.robot.action_toward(obs["goal_pos"], 0.0, OPEN, self.backend.read())


class PickPlaceExpert:
    """Above cube -> descend -> close -> lift -> above target -> descend -> open -> retreat."""

    def __init__(self, env, hover: float = 0.07, lift: float = 0.10, reach_tol: float = 0.012,
                 close_steps: int = 5, open_steps: int = 4):
        self.robot = env.unwrapped.robot
        self.backend = env.unwrapped.backend
        self.hover, self.lift, self.reach_tol = hover, lift, reach_tol
        self.close_steps, self.open_steps = close_steps, open_steps
        self.reset({})

    def reset(self, obs: dict) -> None:
        self.phase, self.counter, self.yaw = 0, 0, None

    def _goal(self, obs: dict) -> tuple[np.ndarray, float]:
        cube, goal = obs["cube_pos"].astype(np.float64), obs["goal_pos"].astype(np.float64)
        phase = self.phase
        if phase == 0:
            return cube + [0, 0, self.hover], OPEN
        if phase == 1:
            return cube + [0, 0, 0.002], OPEN
        if phase == 2:
            return cube + [0, 0, 0.002], CLOSED
        if phase == 3:
            return np.array([cube[0], cube[1], self.lift]), CLOSED
        if phase == 4:
            return np.array([goal[0], goal[1], self.lift]), CLOSED
        if phase == 5:
            return goal + [0, 0, 0.004], CLOSED
        if phase == 6:
            return goal + [0, 0, 0.004], OPEN
        return np.array([goal[0], goal[1], self.lift]), OPEN

    def act(self, obs: dict) -> np.ndarray:
        if self.yaw is None:
            self.yaw = cube_yaw(obs["cube_quat"])
        target, grip = self._goal(obs)
        dist = float(np.linalg.norm(obs["ee_pos"] - target))
        if self.phase in (2, 6):
            self.counter += 1
            hold = self.close_steps if self.phase == 2 else self.open_steps
            if self.counter >= hold:
                self.phase, self.counter = self.phase + 1, 0
        elif self.phase < 7 and dist < self.reach_tol:
            self.phase += 1
        return self.robot.action_toward(target, self.yaw, grip, self.backend.read())


def make_expert(env):
    """The scripted expert for `env`'s task, or a clear error."""
    from robotlearn.tasks.hover import QuadHover
    from robotlearn.tasks.pick_place import ArmPickPlace
    from robotlearn.tasks.reach import ArmReach
    from robotlearn.tasks.track import QuadTrack
    from robotlearn.teleop.quad_expert import QuadExpert

    experts = {ArmReach: ReachExpert, ArmPickPlace: PickPlaceExpert, QuadHover: QuadExpert, QuadTrack: QuadExpert}
    task_type = type(env.unwrapped.task)
    if task_type not in experts:
        raise ValueError(f"no scripted expert for task {task_type.__name__}")
    return experts[task_type](env)
