"""`Rollout` sinks that publish on ROS 2 (shared by the policy runner and the teleop node)."""

from __future__ import annotations

import json
from typing import Any


def options_param(values: dict[str, Any], key: str) -> dict[str, Any]:
    """An options parameter as a dict: ``key=value`` items separated by spaces (values parsed as YAML, as the
    CLI's ``--backend-opt``), e.g. ``port=/tmp/rl-arm0 config=arm6_emulated``, or a JSON object string. The
    key=value form exists because ``-p name:={...}`` is parsed by rcl as a YAML map, not as a string."""
    from robotlearn.core.config import parse_overrides
    from robotlearn.ros2.params import ParameterError

    text = values[key].strip()
    if not text.startswith("{"):
        try:
            return parse_overrides(text.split())
        except ValueError as err:
            raise ParameterError(f"parameter {key!r}: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParameterError(f"parameter {key!r} is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ParameterError(f"parameter {key!r} must be a JSON object")
    return data


class DiagnosticsSink:
    """A `Rollout` sink that publishes each step's action and diagnostics (the DESIGN's ROS publisher sink)."""

    def __init__(self, node, name: str):
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import Float64MultiArray

        self.node, self.name = node, name
        self.action_pub = node.create_publisher(Float64MultiArray, "~/action", 10)
        self.diag_pub = node.create_publisher(DiagnosticArray, "~/diagnostics", 10)
        self._step = 0
        self._action = Float64MultiArray()

    def _status(self, level: bytes, message: str, values: dict[str, Any]):
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = [DiagnosticStatus(level=level, name=self.name, message=message,
                                       values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
        self.diag_pub.publish(msg)

    def start_episode(self, obs, info, seed) -> None:
        self._step = 0

    def add(self, tr) -> None:
        self._step += 1
        self._action.data = [float(a) for a in tr.action]
        self.action_pub.publish(self._action)
        from diagnostic_msgs.msg import DiagnosticStatus

        self._status(DiagnosticStatus.OK, "step", {"step": self._step, "reward": round(tr.reward, 6), "source": tr.source,
                                 "success": bool(tr.info.get("is_success", False))})

    def end_episode(self, stats) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus

        level = DiagnosticStatus.OK if stats.success else DiagnosticStatus.WARN
        self._status(level, "episode",
                     {k: v for k, v in stats.summary().items() if k != "timing_ms"})

    def close(self) -> None:
        pass


def node_sinks(node, env, recipe, dataset: str, task_text: str) -> list:
    """What every episode-running node feeds: per-step diagnostics, plus the dataset recorder when the node's
    `dataset` parameter names a directory (the recorder stores the env recipe and the backend's robot)."""
    sinks: list = [DiagnosticsSink(node, node.get_name())]
    if dataset:
        from robotlearn.data.recorder import EpisodeRecorder
        from robotlearn.rollout import RecorderSink

        recorder = EpisodeRecorder.for_env(dataset, env, env_recipe=recipe.to_dict())
        sinks.append(RecorderSink(recorder, task_text or recipe.env_id))
    return sinks
