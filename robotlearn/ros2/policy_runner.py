"""``robotlearn_policy_runner``: a checkpoint acting on a robot, as a ROS 2 node.

Loads the checkpoint (safetensors + JSON, no pickle), rebuilds the env from its recipe on ``backend``
(``ros2`` by default: the robot behind a bridge under ``backend_options.namespace``; any local backend works
too) and runs it with the one episode runner (`Rollout`) at the env's control rate. Every step goes out as
``~/action`` (std_msgs/Float64MultiArray: the normalized action) and ``~/diagnostics``
(diagnostic_msgs/DiagnosticArray: step, reward, success, source label, section timings); each episode's summary
also goes to ``/diagnostics``-style status on ``~/diagnostics`` with level OK (success) or WARN. After
``episodes`` episodes the node exits (0 = run until stopped); ``summary_path`` gets the run's JSON summary;
with ``dataset`` set, the episodes are recorded through the recorder (LeRobot v3 layout, source "policy").
"""

from __future__ import annotations

import json
from pathlib import Path

from robotlearn.ros2.params import Param, declare
from robotlearn.ros2.sinks import node_sinks, options_param

PARAMETERS: tuple[Param, ...] = (
    Param("checkpoint", "", "checkpoint directory (written by robotlearn train)", required=True),
    Param("backend", "ros2", "backend to run the checkpoint's env on: ros2 (a bridge), mujoco, pybullet, real"),
    Param("backend_options", "", "the backend's options: key=value items separated by spaces (or a JSON object), e.g. namespace=/sim"),
    Param("episodes", 1, "episodes to run, then exit (0: until stopped)", low=0, high=1_000_000),
    Param("seed", 2000, "seed of the first episode (then +1 per episode)", low=0, high=2**31 - 1),
    Param("summary_path", "", "write the run's JSON summary here (empty: do not)"),
    Param("dataset", "", "record the episodes into this dataset directory (empty: do not)"),
)


class PolicyRunner:
    def __init__(self, node):
        from robotlearn.policies import load_policy, read_config
        from robotlearn.rollout import PolicySource, Rollout, checkpoint_recipe

        self.node = node
        self.values = declare(node, PARAMETERS)
        options = options_param(self.values, "backend_options")
        checkpoint = self.values["checkpoint"]
        self.recipe = checkpoint_recipe(read_config(checkpoint), checkpoint).with_backend(self.values["backend"],
                                                                                          options)
        self.policy = load_policy(checkpoint)
        self.env = self.recipe.make()
        try:
            sinks = node_sinks(node, self.env, self.recipe, self.values["dataset"], "")
            self.rollout = Rollout(self.env, PolicySource(self.policy), sinks)
        except Exception:
            self.env.close()
            raise
        node.get_logger().info(f"policy runner: {checkpoint} on {self.recipe.env_id} ({self.recipe.backend})")

    def spin(self) -> None:
        episodes, seed = self.values["episodes"], self.values["seed"]
        episode_stats = []
        i = 0
        while episodes == 0 or i < episodes:
            stats = self.rollout.run_episode(seed + i)
            episode_stats.append(stats.summary())
            self.node.get_logger().info(f"episode {i}: return {stats.episode_return:.3f} success {stats.success}")
            i += 1
        if self.values["summary_path"]:
            summary = {"env": self.recipe.to_dict(), "episodes": episode_stats,
                       "success_rate": sum(e["success"] for e in episode_stats) / max(1, len(episode_stats)),
                       "mean_return": sum(e["return"] for e in episode_stats) / max(1, len(episode_stats))}
            Path(self.values["summary_path"]).write_text(json.dumps(summary, indent=1))

    def close(self) -> None:
        try:
            self.rollout.close()
        finally:
            self.env.close()


def main(argv: list[str] | None = None) -> int:
    from robotlearn.ros2.node import run_node

    return run_node("robotlearn_policy_runner", PolicyRunner, argv)


if __name__ == "__main__":
    raise SystemExit(main())
