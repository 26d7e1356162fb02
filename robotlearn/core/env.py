"""RobotEnv: a Backend + a RobotModel + a Task, as a gymnasium.Env."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from robotlearn.core.backend import Backend
from robotlearn.core.robot_model import RobotModel
from robotlearn.core.task import Task


class RobotEnv(gym.Env):
    """One env for every backend.

    Actions are normalized to [-1, 1]. Non-finite actions raise ValueError before anything is sent;
    finite out-of-range actions are clipped to the box (documented behaviour) and reported in
    ``info["action_clipped"]``. Episodes truncate after ``task.max_episode_steps`` steps.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, backend: Backend, robot: RobotModel, task: Task, cameras: tuple[str, ...] = (),
                 render_mode: str | None = None, render_camera: str | None = None):
        self.backend, self.robot, self.task = backend, robot, task
        self._spec: EnvSpec | None = None
        self.cameras = tuple(cameras)
        for cam in self.cameras:
            backend.spec.camera(cam)  # raises a clear KeyError for unknown cameras
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.render_camera = render_camera or (backend.spec.cameras[0].name if backend.spec.cameras else None)
        self.metadata = {**self.metadata, "render_fps": backend.spec.control_hz}
        self.action_space = robot.action_space
        obs_spaces = {**robot.observation_spaces(), **task.observation_spaces()}
        for cam in self.cameras:
            c = backend.spec.camera(cam)
            obs_spaces[f"images/{cam}"] = spaces.Box(0, 255, (c.height, c.width, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self._steps = 0
        self.last_step_timing: dict[str, float] = {}

    @property
    def spec(self) -> EnvSpec | None:
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        # gym.make assigns the registered spec; a backend that cannot replay episodes makes it nondeterministic.
        if value is not None and not self.backend.deterministic:
            value = dataclasses.replace(value, nondeterministic=True)
        self._spec = value

    def _observe(self) -> dict[str, np.ndarray]:
        state = self.backend.read()
        obs = self.robot.observe(state)
        obs.update(self.task.observe(obs, self.backend))
        for cam in self.cameras:
            obs[f"images/{cam}"] = self.backend.render(cam)
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        initial = self.task.initial_state(self.np_random, self.robot.home_state())
        self.backend.reset(self.np_random, initial)
        self.robot.reset(self.backend.read())
        self._steps = 0
        obs = self._observe()
        _, _, info = self.task.evaluate(obs)
        return obs, {"is_success": bool(info.get("is_success", False)), "timestamp": 0.0}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape} != action_space shape {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN/inf: {action}; nothing was sent to the robot")
        clipped = np.clip(action, self.action_space.low, self.action_space.high)
        t0 = time.perf_counter()
        command = self.robot.command(clipped, self.backend.read())
        self.backend.command(command)
        t1 = time.perf_counter()
        step_info = self.backend.advance()
        t2 = time.perf_counter()
        self._steps += 1
        obs = self._observe()
        reward, terminated, info = self.task.evaluate(obs)
        truncated = self._steps >= self.task.max_episode_steps
        info.update(step_info)
        # the step's sections (s): compute and send the command, wait for the backend's control period
        # (physics in sim, the robot's next tick on hardware), observe and score; rollout/runner.py reports
        # them. Not in `info`: timings differ between identical steps, and info must replay bit for bit.
        self.last_step_timing = {"send": t1 - t0, "wait": t2 - t1, "observe": time.perf_counter() - t2}
        info["action_clipped"] = bool(np.any(clipped != action))
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "rgb_array" or self.render_camera is None:
            return None
        return self.backend.render(self.render_camera)

    def close(self):
        self.backend.close()
