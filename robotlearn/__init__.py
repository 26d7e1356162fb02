"""robotlearn: one Gym interface over MuJoCo, PyBullet and real robots.

Importing the package registers the environments with gymnasium (``robotlearn/ArmReach-v0`` ...).
"""

from robotlearn.envs import register_envs

__version__ = "0.1.0"

register_envs()
