"""``robotlearn_teleop``: a robotlearn teleop device driving a robot over ROS 2, optionally recording.

The device (keyboard, gamepad, SpaceMouse, leader arm, or the scripted expert) acts on the env of ``env``
rebuilt on ``backend`` (``ros2``: the robot behind a bridge under ``backend_options.namespace``), so its
actions reach the robot as the bridge's command topics (``joint_trajectory`` / ``commands``), at the env's
control rate, through the one episode runner. Each step is published on ``~/action`` and ``~/diagnostics``.
With ``dataset`` set, episodes are written through the public recorder (LeRobot v3 layout, per-step source
labels), exactly as ``robotlearn record`` writes them.

With ``policy`` set (a diffusion checkpoint) the node collects one RaC round instead (robotlearn/correction/):
the policy drives and the device is the operator's clutch (relative to where it engaged), with rewind and
Rule 2 (``rac_mode:=continue`` for the HG-DAgger baseline); ``device:=simulated`` is the simulated operator of
a sim. Each step is labelled policy / rewind / correction with its intervention and sub-task ids, into
``dataset``, by the same `collect_round` that ``robotlearn rac collect`` runs, on a local backend or on
``ros2`` (the bridge's ``objects/<name>/pose`` topics give the cube poses RaC's task needs).
"""

from __future__ import annotations

from robotlearn.ros2.params import Param, ParameterError, declare
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
    Param("policy", "", "RaC: a diffusion checkpoint that drives while the device is the operator's clutch "
                        "(empty: plain teleoperation)"),
    Param("rac_mode", "rac", "RaC: end the episode after the correction (rac) or hand back (continue)",
          choices=("rac", "continue")),
    Param("rewind", True, "RaC: the operator may rewind along the executed path before correcting"),
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
        self.rollout = self.operator = None
        try:
            options = parse_overrides([o for o in v["device_options"].split(",") if o])
            if v["policy"]:
                from robotlearn.correction.loop import make_operator

                if not v["dataset"]:
                    raise ParameterError(f"{node.get_name()}: RaC (policy set) records its round: set dataset:=DIR")
                if not v["episodes"]:
                    raise ParameterError(f"{node.get_name()}: RaC collects a round of episodes: set episodes >= 1")
                self.operator = make_operator(v["device"], self.env, v["dataset"], rewind=v["rewind"], **options)
            else:
                source = DeviceSource(make_device(v["device"], self.env, **options))
                sinks = node_sinks(node, self.env, self.recipe, v["dataset"], v["task_text"])
                self.rollout = Rollout(self.env, source, sinks)
        except Exception:
            self.env.close()
            raise

    def spin(self) -> None:
        if self.operator is not None:
            self._collect_rac_round()
            return
        episodes, seed = self.values["episodes"], self.values["seed"]
        i = 0
        while episodes == 0 or i < episodes:
            stats = self.rollout.run_episode(seed + i)
            self.node.get_logger().info(f"episode {i}: {stats.outcome}, success {stats.success}")
            i += 1
            if stats.outcome == "quit":
                break

    def _collect_rac_round(self) -> None:
        from robotlearn.correction.loop import collect_round

        v = self.values
        stats = collect_round(self.env, self.recipe, v["dataset"], v["policy"], v["episodes"], v["seed"],
                              mode=v["rac_mode"], rewind=v["rewind"], operator=self.operator, progress=None)
        self.node.get_logger().info(
            f"RaC round: {stats.episodes} episodes, {stats.interventions} interventions, operator "
            f"{stats.operator_s:.1f} s (rewind {stats.rewind_s:.1f} s, correction {stats.correction_s:.1f} s), "
            f"terminations {stats.terminations}")

    def close(self) -> None:
        try:
            if self.rollout is not None:  # (a RaC round's runner closes its operator itself)
                self.rollout.close()
        finally:
            self.env.close()


def main(argv: list[str] | None = None) -> int:
    from robotlearn.ros2.node import run_node

    return run_node("robotlearn_teleop", Teleop, argv)


if __name__ == "__main__":
    raise SystemExit(main())
