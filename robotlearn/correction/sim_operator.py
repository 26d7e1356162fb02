"""The simulated RaC operator: measures RaC rounds without a person.

* **Failure predictor**, on privileged sim state (the task's scene state from true object poses): a grasp
  lost (the sub-task id falls back while carrying), any regression of the sub-task id (a knocked stack),
  a stall of sub-task progress for `stall_s` seconds, or a drift of the tool out of the demo distribution
  of the current sub-task for `drift_s` seconds.
* **Recovery**: asks for an assisted rewind to the nearest in-distribution state ("auto").
* **Correction**: the scripted expert (it starts from any mid-task state), until the sub-task completes.
Operator time is what RaCSource counts: seconds of rewind plus correction control.
"""

from __future__ import annotations

import numpy as np

from robotlearn.correction.rewind import DemoStateDistribution


class SimulatedOperator:
    human = False

    def __init__(self, env, stall_s: float = 3.0, drift_s: float = 1.5, progress_m: float = 0.01,
                 distribution: DemoStateDistribution | None = None, drift_radius: float = 0.06,
                 rewind: bool = True):
        from robotlearn.teleop.scripted import make_expert

        self.task = env.unwrapped.task
        self.expert = make_expert(env)
        hz = float(env.unwrapped.backend.spec.control_hz)
        self.stall_steps, self.drift_steps = int(stall_s * hz), int(drift_s * hz)
        self.progress_m, self.distribution, self.drift_radius = progress_m, distribution, drift_radius
        self.rewind = rewind
        self.reasons: dict[str, int] = {}
        self._pending_rewind: str | None = None
        self.reset({})

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self._best: tuple[int, float] | None = None
        self._since_progress = 0
        self._drifting = 0
        self._prev_subtask: int | None = None
        self._pending_rewind = None

    def _failure(self, obs: dict[str, np.ndarray]) -> str | None:
        s = int(self.task.subtask(obs))
        d = self.task.subtask_distance(obs, s)
        prev, self._prev_subtask = self._prev_subtask, s
        if prev is not None and s < prev:
            return "grasp_lost" if prev in (1, 3) and s == prev - 1 else "regressed"
        if self._best is None or s > self._best[0] or (s == self._best[0] and d < self._best[1] - self.progress_m):
            self._best, self._since_progress = (s, d), 0
        else:
            self._since_progress += 1
            if self._since_progress >= self.stall_steps:
                return "stall"
        if self.distribution is not None:
            far = self.distribution.distance(self.task.state_features(obs), min(s, 3)) > self.drift_radius
            self._drifting = self._drifting + 1 if far else 0
            if self._drifting >= self.drift_steps:
                return "drift"
        return None

    def engage(self, obs: dict[str, np.ndarray]) -> bool:
        reason = self._failure(obs)
        if reason is not None:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            self._pending_rewind = "auto" if self.rewind else None
        return reason is not None

    def engaged(self, obs: dict[str, np.ndarray]) -> bool:
        return True  # holds on until the sub-task completes (RaCSource ends the correction)

    def rewind_request(self, obs: dict[str, np.ndarray]) -> str | None:
        """One assisted rewind per intervention, asked for right when it starts."""
        request, self._pending_rewind = self._pending_rewind, None
        return request

    def anchor(self, obs: dict[str, np.ndarray]) -> None:
        # the expert commands absolute poses, so there is nothing to anchor; progress is judged afresh
        self._best, self._since_progress, self._drifting, self._prev_subtask = None, 0, 0, None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.expert.act(obs), np.float32)

    def pop_events(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass
