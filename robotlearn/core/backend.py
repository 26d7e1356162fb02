"""The Backend contract: a robot that can be commanded, advanced one control period, and read.

A backend knows nothing about tasks or policies. It accepts *actuator-level commands* in the units
its robot kind defines (arm: joint position targets for every actuated joint, in rad/m; quadrotor:
normalized collective thrust + body rates), advances time by exactly one control period, and reports
measured state as a dict of float64 arrays. Everything semantic (action modes, observation assembly,
end-effector kinematics) lives in `robotlearn.robots.<kind>` and is therefore shared by sims and
hardware.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from robotlearn.core.spec import RobotSpec

State = dict[str, np.ndarray]


class BackendOptions(BaseModel):
    """A backend's own settings (port, connection, hardware config, ...), declared as a strict model.

    Each backend class names its subclass in ``Options``; `robotlearn.backends.make_backend` validates
    what a user passed (CLI ``--backend-opt key=value``, `gym.make` keywords, an `EnvRecipe`) against it
    once, with a one-line error naming the option, so no untyped ``**kwargs`` travel through the layers.
    Options are JSON-able so that an `EnvRecipe` can carry them into checkpoints and datasets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend(ABC):
    """Sim or real robot. Subclasses: `robotlearn.sim.*`, `robotlearn.hardware.*`."""

    #: short name used in configs and reports ("mujoco", "pybullet", "real")
    name: str = ""
    #: same seed and commands -> same trajectory. False for hardware: RobotEnv then marks its gym spec
    #: nondeterministic, which is how gymnasium's checker and tools learn that reset(seed) cannot replay.
    deterministic: bool = True
    #: joint servos track whole ticks of their goal register (a servo bus always writes whole ticks; an arm sim
    #: only with its goal_ticks option). Sysid recordings carry it, so a replay rounds as the recorded robot did.
    goal_ticks: bool = False
    #: the strict model of this backend's options (see BackendOptions)
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, spec: RobotSpec, options: BackendOptions | None = None):
        self.spec = spec
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def reset(self, rng: np.random.Generator, initial: Mapping[str, np.ndarray]) -> None:
        """Bring the robot (and, where the backend owns a scene, its objects) to `initial`.

        `initial` holds robot-kind state keys (arm: "joint_pos"; quadrotor: "pos", "quat", ...)
        and scene keys "object/<name>/pos", "object/<name>/quat", "marker/<name>/pos". Real backends
        move there safely (ramping) and ignore scene keys they cannot actuate.
        """

    @abstractmethod
    def command(self, target: np.ndarray) -> None:
        """Set the actuator-level target for the next control period. Non-finite values raise."""

    @abstractmethod
    def advance(self) -> dict[str, Any]:
        """Advance one control period (1/control_hz). Returns info: "timestamp" (s), optional "loop_stats"."""

    @abstractmethod
    def read(self) -> State:
        """Measured robot state (float64 arrays), e.g. arm: joint_pos, joint_vel; quadrotor: pos, vel, quat, omega."""

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(pos, quat wxyz) of a scene object. Sims and emulators know it; real robots need perception."""
        raise NotImplementedError(f"backend {self.name!r} cannot observe object {name!r}")

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 HxWx3 image from a camera in `spec.cameras`, at the camera's resolution or at `size`
        (width, height), e.g. a watchable video of a camera whose policy resolution is 84x84."""
        raise NotImplementedError(f"backend {self.name!r} has no camera {camera!r}")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine / device resources. Idempotent."""
