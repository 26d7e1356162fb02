"""RaC (Recovery and Correction) as an action source for the one episode runner.

`RaCSource` wraps the policy's source and an operator (`Operator`: a person on a device with a clutch,
correction/clutch.py, or the simulated operator, correction/sim_operator.py) and enforces the method:

* the policy drives until the operator engages the clutch (a new ``intervention_id``);
* **Rule 1, recover then correct**: on request the robot rewinds (assisted rewind along its own path,
  labelled ``rewind``), then the operator drives (``correction``) — always relative to where the clutch
  engaged, re-anchored after a rewind;
* **Rule 2, end after the intervention**: as soon as the correction completes the sub-task it began in
  (the task's sub-task id moves past it), the episode ends (``mode="rac"``). ``mode="continue"`` hands
  control back to the policy instead: the HG-DAgger / LeRobot variant, kept as a baseline.

`RaCRecorderSink` writes the per-step ``intervention_id`` / ``subtask_id`` and the episode's termination
reason next to the ``source`` labels (correction/labels.py reads them back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from robotlearn.correction.labels import NO_INTERVENTION, RAC_FEATURES, termination_reason
from robotlearn.correction.rewind import AssistedRewind, PathMemory, rewind_target
from robotlearn.rollout.runner import ActionSource, EpisodeStats
from robotlearn.rollout.sinks import RecorderSink

MODES = ("rac", "continue")
POLICY, REWIND, CORRECTION = "policy", "rewind", "correction"


class Operator(Protocol):
    """Who intervenes. All calls get the observation the next action is chosen from."""

    def reset(self, obs: dict[str, np.ndarray]) -> None: ...

    def engage(self, obs: dict[str, np.ndarray]) -> bool:
        """While the policy drives: does the operator take over now (clutch engaged)?"""

    def engaged(self, obs: dict[str, np.ndarray]) -> bool:
        """While the operator drives: is the clutch still held?"""

    def rewind_request(self, obs: dict[str, np.ndarray]) -> str | float | None:
        """A rewind asked for now: "auto" (to the nearest in-distribution state), seconds back, or None."""

    def anchor(self, obs: dict[str, np.ndarray]) -> None:
        """The clutch (re-)engaged at this state: later commands are relative to it."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The operator's action (correction)."""

    def pop_events(self) -> set[str]: ...

    def close(self) -> None: ...


class RaCSource(ActionSource):
    """The policy, an operator, and the rule between them (module docstring)."""

    def __init__(self, env, policy: ActionSource, operator: Operator, mode: str = "rac", rewind: bool = True,
                 rewind_speed: float = 0.5, auto_target: Callable[[PathMemory, dict], int | None] | None = None,
                 max_correction_s: float = 8.0):
        if mode not in MODES:
            raise ValueError(f"RaC mode must be one of {MODES}, got {mode!r}")
        self.env, self.policy, self.operator, self.mode = env, policy, operator, mode
        self.task = env.unwrapped.task
        if not hasattr(self.task, "subtask"):
            raise ValueError(f"RaC needs a task with sub-tasks (ArmStack); {type(self.task).__name__} has none")
        self.rewind_enabled, self.rewind_speed, self.auto_target = rewind, rewind_speed, auto_target
        self.hz = float(env.unwrapped.backend.spec.control_hz)
        self.max_correction_steps = int(max_correction_s * self.hz)
        self.human = bool(getattr(operator, "human", False))
        self.path = PathMemory()
        # totals over the session (reports, bench)
        self.operator_steps = {REWIND: 0, CORRECTION: 0}
        self.interventions_total = 0
        self._reset_episode()

    def _reset_episode(self) -> None:
        self.phase, self.intervention_id, self.engaged_subtask = POLICY, NO_INTERVENTION, -1
        self.correction_done, self._rewinder, self._correction_steps = False, None, 0
        self.interventions = 0  # in this episode
        self._events: set[str] = set()
        self.labels = {"intervention_id": NO_INTERVENTION, "subtask_id": 0}
        self.path.clear()

    @property
    def operator_seconds(self) -> float:
        return sum(self.operator_steps.values()) / self.hz

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self._reset_episode()
        self.policy.reset(obs)
        self.operator.reset(obs)

    # ---- the state machine ------------------------------------------------------------------------------
    def _start_rewind(self, obs: dict[str, np.ndarray], request: str | float) -> None:
        auto = (lambda: self.auto_target(self.path, obs)) if request == "auto" and self.auto_target else None
        seconds = None if request == "auto" else float(request)
        target = rewind_target(self.path, self.hz, seconds, auto)
        self._rewinder = AssistedRewind(self.env, self.path, target, speed=self.rewind_speed)
        self.phase = REWIND

    def _hand_back(self, obs: dict[str, np.ndarray]) -> None:
        self.phase, self.intervention_id = POLICY, NO_INTERVENTION
        self.policy.reset(obs)  # its observation history and action queue predate the intervention

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        subtask = int(self.task.subtask(obs))
        if self.phase == POLICY and self.operator.engage(obs):
            self.intervention_id = self.interventions
            self.interventions += 1
            self.engaged_subtask, self._correction_steps = subtask, 0
            self.interventions_total += 1
            self.phase = CORRECTION
            self.operator.anchor(obs)
            request = self.operator.rewind_request(obs)
            if request is not None and self.rewind_enabled and len(self.path) > 1:
                self._start_rewind(obs, request)
        elif self.phase == CORRECTION:
            request = self.operator.rewind_request(obs)
            if request is not None and self.rewind_enabled and len(self.path) > 1:
                self._start_rewind(obs, request)
        if self.phase == REWIND:
            action = self._rewinder.act(obs)
            if self._rewinder.done:
                self.path.truncate(self._rewinder.target + 1)
                self.phase = CORRECTION
                self.operator.anchor(obs)
                # the correction completes the sub-task the scene is in now (a rewind may have undone a grasp)
                self.engaged_subtask = subtask
            return self._emit(action, REWIND, subtask, obs, record=False)
        if self.phase == CORRECTION:
            self._correction_steps += 1
            if subtask > self.engaged_subtask:
                if self.mode == "rac":
                    self.correction_done = True
                    self._events.add("save")
                    return self._emit(self.operator.act(obs), CORRECTION, subtask, obs)
                self._hand_back(obs)
            elif not self.operator.engaged(obs) or self._correction_steps > self.max_correction_steps:
                self._hand_back(obs)
            else:
                return self._emit(self.operator.act(obs), CORRECTION, subtask, obs)
        action, _ = self.policy.act(obs)
        return self._emit(action, POLICY, subtask, obs)

    def _emit(self, action: np.ndarray, label: str, subtask: int, obs: dict[str, np.ndarray],
              record: bool = True) -> tuple[np.ndarray, str]:
        action = np.asarray(action, np.float32)
        if record:
            self.path.record(obs, float(action[-1]))
        if label != POLICY:
            self.operator_steps[label] += 1
        self.labels = {"intervention_id": self.intervention_id if label != POLICY else NO_INTERVENTION,
                       "subtask_id": subtask}
        return action, label

    def pop_events(self) -> set[str]:
        events = self._events | self.operator.pop_events() | self.policy.pop_events()
        self._events = set()
        return events

    def termination(self, stats: EpisodeStats) -> str:
        return termination_reason(stats.outcome, stats.success, self.correction_done)

    def end_episode(self, stats: EpisodeStats) -> None:
        self.policy.end_episode(stats)

    def close(self) -> None:
        try:
            self.operator.close()
        finally:
            self.policy.close()


class RaCRecorderSink(RecorderSink):
    """The dataset recorder, plus RaC's per-step ids and the episode's termination reason."""

    def __init__(self, recorder: Any, task_text: str, source: RaCSource, keep=None):
        super().__init__(recorder, task_text, keep)
        self.source = source

    def add(self, tr) -> None:
        self.recorder.add_frame(tr.obs, tr.action, tr.reward, tr.done, bool(tr.info.get("is_success", False)),
                                tr.source, timestamp=self._clock, extras=dict(self.source.labels))
        self._clock = float(tr.info.get("timestamp", np.nan))

    def end_episode(self, stats: EpisodeStats) -> None:
        if self.recorder.recording:
            if self.keep(stats):
                info = {"termination": self.source.termination(stats), "mode": self.source.mode,
                        "interventions": self.source.interventions}
                self.saved.append(self.recorder.save_episode(loop_stats=stats.loop_stats, episode_info=info))
            else:
                self.recorder.discard_episode()


def rac_recorder(root, env, env_recipe: dict | None = None):
    """An EpisodeRecorder for a RaC dataset of `env` (the extra RaC columns declared)."""
    from robotlearn.data.recorder import EpisodeRecorder

    return EpisodeRecorder.for_env(root, env, env_recipe=env_recipe, extra_features=RAC_FEATURES)
