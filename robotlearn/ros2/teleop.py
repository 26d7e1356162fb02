"""``robotlearn_teleop``: a robotlearn teleop device driving a robot over ROS 2, optionally recording.

The device (keyboard, gamepad, SpaceMouse, leader arm, or the scripted expert) acts on the env of ``env``
rebuilt on ``backend`` (``ros2``: the robot behind a bridge under ``backend_options.namespace``), so its
actions reach the robot as the bridge's command topics (``joint_trajectory`` / ``commands``), at the env's
control rate, through the one episode runner. Each step is published on ``~/action`` and ``~/diagnostics``.
With ``dataset`` set, episodes are written through the public recorder (LeRobot v3 layout, per-step source
labels), exactly as ``robotlearn record`` writes them.
"""

from __future__ import annotations

from robotlearn.ros2.params import Param, declare
from robotlearn.ros2.sinks import node_sinks, options_param

PARAMETERS: tuple[Param, ...] = (
    Param("env", "robotlearn/ArmReach-v0", "robotlearn env id"),
    Param("backend", "ros2", "backend to drive: ros2 (a bridge), mujoco, pybullet, real"),
    Param("backend_options", "", "the backend's options: key=value items separated by spaces (or a JSON object), e.g. namespace=/sim"),
    Param("overrides", "", "task config key=value overrides, comma-separated"),
    Param("device", "keyboard", "teleop device: keyboard, gamepad, spacemouse, leader_arm, scripted"),
    Param("device_options", "", "device key=value options, comma-separated"),
    Param("episodes", 1, "episodes to run, then exit (0: until stopped)", low=0, high=1_000_000),
    Param("seed", 0, "seed of the first episode (then +1 per episode)", low=0, high=2**31 - 1),
    Param("dataset", "", "dataset directory to record into (empty: do not record)"),
    Param("task_text", "", "task description stored with each episode (empty: the env id)"),
)


class Teleop:
    def __init__(self, node):
        from robotlearn.core.config import parse_overrides
        from robotlearn.rollout import DeviceSource, EnvRecipe, Rollout
        from robotlearn.teleop import make_device

        self.node = node
        v = self.values = declare(node, PARAMETERS)
        self.recipe = EnvRecipe(v["env"], v["backend"], v["overrides"],
                                backend_options=options_param(v, "backend_options"))
        self.env = self.recipe.make()
        try:
            options = parse_overrides([o for o in v["device_options"].split(",") if o])
            source = DeviceSource(make_device(v["device"], self.env, **options))
            sinks = node_sinks(node, self.env, self.recipe, v["dataset"], v["task_text"])
            self.rollout = Rollout(self.env, source, sinks)
        except Exception:
            self.env.close()
            raise

    def spin(self) -> None:
        episodes, seed = self.values["episodes"], self.values["seed"]
        i = 0
        while episodes == 0 or i < episodes:
            stats = self.rollout.run_episode(seed + i)
            self.node.get_logger().info(f"episode {i}: {stats.outcome}, success {stats.success}")
            i += 1
            if stats.outcome == "quit":
                break

    def close(self) -> None:
        try:
            self.rollout.close()
        finally:
            self.env.close()


def main(argv: list[str] | None = None) -> int:
    from robotlearn.ros2.node import run_node

    return run_node("robotlearn_teleop", Teleop, argv)


if __name__ == "__main__":
    raise SystemExit(main())
