"""The contracts every backend, robot kind and task implements (see DESIGN.md)."""

from robotlearn.core.backend import Backend
from robotlearn.core.config import ConfigError, load_config
from robotlearn.core.env import RobotEnv
from robotlearn.core.spec import CameraSpec, JointSpec, RobotSpec
from robotlearn.core.task import Task

__all__ = ["Backend", "CameraSpec", "ConfigError", "JointSpec", "RobotEnv", "RobotSpec", "Task", "load_config"]
