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


class StackExpert:
    """ArmStack expert that decides everything from the current observation (the task's sub-task id and the
    scene), never from its own history, so it can take over from any mid-task state: that is what makes it
    usable as the correction operator of RaC (robotlearn/correction/). Per sub-task: rise clear, go above
    the cube, descend, close; carry above the stack at `carry` height, descend, open."""

    def __init__(self, env, hover: float = 0.06, carry: float = 0.05, reach_tol: float = 0.008, settle: int = 2):
        self.robot = env.unwrapped.robot
        self.backend = env.unwrapped.backend
        self.task = env.unwrapped.task
        self.hover, self.carry, self.reach_tol, self.settle = hover, carry, reach_tol, settle
        self._squeezed = 0  # steps the fingers have been closed on the cube (the only state; it restarts at 0)

    def reset(self, obs: dict) -> None:
        self._squeezed = 0

    def act(self, obs: dict) -> np.ndarray:
        from robotlearn.tasks.stack import DONE, PAIRS

        ee = obs["ee_pos"].astype(np.float64)
        s = self.task.subtask(obs)
        yaw = self.robot.ee_goal[1]
        if s == DONE:
            return self.robot.action_toward(ee + [0, 0, 0.02], yaw, OPEN, self.backend.read())
        cube_key, base_key = PAIRS[s]
        cube, base = obs[f"{cube_key}_pos"].astype(np.float64), obs[f"{base_key}_pos"].astype(np.float64)
        if s in (0, 2):
            target, grip, yaw = self._pick(obs, ee, cube, cube_key)
        else:
            target, grip = self._place(obs, ee, cube, base, cube_key, yaw)
        return self.robot.action_toward(target, yaw, grip, self.backend.read())

    def _travel_z(self, obs: dict, skip: str | None = None) -> float:
        """Height to travel at: `hover` above the highest cube (the one carried excepted)."""
        from robotlearn.tasks.stack import KEYS

        return max(float(obs[f"{k}_pos"][2]) for k in KEYS if k != skip) + self.hover

    def _pick(self, obs: dict, ee: np.ndarray, cube: np.ndarray, key: str) -> tuple[np.ndarray, float, float]:
        from robotlearn.tasks.stack import GRIP_HOLD

        yaw = cube_yaw(obs[f"{key}_quat"])
        opening = float(obs["gripper"][0])
        at_cube = np.linalg.norm(ee - (cube + [0, 0, 0.002])) < 1.5 * self.reach_tol
        if at_cube or self.task.gripping(obs, key):
            # close; once the fingers have held the cube for `settle` steps, lift it (the task then says "place")
            squeezed = opening < 0.8 and self.task.gripping(obs, key)
            self._squeezed = self._squeezed + 1 if squeezed else 0
            if self._squeezed >= self.settle:
                return np.array([cube[0], cube[1], self.task.half + self.hover]), CLOSED, yaw
            return cube + [0, 0, 0.002], CLOSED, yaw
        self._squeezed = 0
        if opening < GRIP_HOLD:  # closed on nothing (a missed or lost grasp): open where we are, a bit higher
            return ee + [0, 0, 0.01], OPEN, self.robot.ee_goal[1]
        travel_z = max(self._travel_z(obs), cube[2] + self.hover)
        xy_err = np.linalg.norm(ee[:2] - cube[:2])
        if xy_err > 0.006:
            if ee[2] < travel_z - 0.015 and xy_err > 0.02:  # rise clear (no turning) before travelling
                return np.array([ee[0], ee[1], travel_z]), OPEN, self.robot.ee_goal[1]
            return np.array([cube[0], cube[1], travel_z]), OPEN, yaw
        return cube + [0, 0, 0.002], OPEN, yaw

    def _place(self, obs: dict, ee: np.ndarray, cube: np.ndarray, base: np.ndarray, key: str,
               yaw: float) -> tuple[np.ndarray, float]:
        half = self.task.half
        offset = ee - cube  # keep the grasp offset: it is the cube that must land on the base
        spot = base + [0, 0, 2 * half + 0.003]
        xy_err = np.linalg.norm(cube[:2] - base[:2])
        carry_z = max(self._travel_z(obs, skip=key) - self.hover + 2 * half + self.carry, spot[2] + self.carry)
        if xy_err > 0.006:
            if cube[2] < carry_z - 0.015 and xy_err > 0.015:
                return np.array([ee[0], ee[1], carry_z + offset[2]]), CLOSED
            return np.array([base[0], base[1], carry_z]) + offset, CLOSED
        if cube[2] - spot[2] > 0.004:
            return spot + offset, CLOSED
        return spot + offset, OPEN


def make_expert(env):
    """The scripted expert for `env`'s task, or a clear error."""
    from robotlearn.tasks.hover import QuadHover
    from robotlearn.tasks.pick_place import ArmPickPlace
    from robotlearn.tasks.reach import ArmReach
    from robotlearn.tasks.stack import ArmStack
    from robotlearn.tasks.track import QuadTrack
    from robotlearn.teleop.quad_expert import QuadExpert

    experts = {ArmReach: ReachExpert, ArmPickPlace: PickPlaceExpert, ArmStack: StackExpert,
               QuadHover: QuadExpert, QuadTrack: QuadExpert}
    task_type = type(env.unwrapped.task)
    if task_type not in experts:
        raise ValueError(f"no scripted expert for task {task_type.__name__}")
    return experts[task_type](env)
