"""Human-in-the-loop interventions (HIL-SERL style) for SAC training and for deployment.

While a policy runs, an operator device may take over: whenever `device.poll(obs)` returns an action,
that action is executed instead of the policy's and the step is labelled `source="human"`. The SAC
learner stores such steps in its online buffer and in the demo half of RLPD's symmetric batches, so
corrections are learned from right away; `robotlearn deploy` records them with the same label.

Any object with ``poll(obs) -> env action | None`` is a device (a teleop device adapter, a leader arm,
or `ScriptedOperator`, which lets a scripted expert stand in for the human on a schedule).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InterventionDevice(Protocol):
    def poll(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The operator's action if they are intervening now, else None."""

    def end_episode(self) -> None: ...


class HILController:
    """Chooses between the policy's action and the operator's, and counts interventions."""

    def __init__(self, device: InterventionDevice):
        self.device = device
        self.human_steps = 0
        self.total_steps = 0

    def select(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> tuple[np.ndarray, str]:
        """(action to execute, source label)."""
        self.total_steps += 1
        human = self.device.poll(obs)
        if human is None:
            return np.asarray(policy_action, np.float32), "policy"
        human = np.asarray(human, np.float32)
        if human.shape != np.shape(policy_action) or not np.all(np.isfinite(human)):
            raise ValueError(f"operator action {human} is not a finite {np.shape(policy_action)} array")
        self.human_steps += 1
        return human, "human"

    def end_episode(self) -> None:
        self.device.end_episode()

    def close(self) -> None:
        """Release the device (a keyboard puts its terminal back in cooked mode)."""
        close = getattr(self.device, "close", None)
        if close is not None:
            close()

    @property
    def intervention_rate(self) -> float:
        return self.human_steps / max(self.total_steps, 1)


class ScriptedOperator:
    """A scripted expert (robotlearn.teleop.scripted) acting as the operator: it takes over for the
    first `takeover_steps` steps of every `every`-th episode. Deterministic, so HIL runs are testable
    and reproducible without a person at the keyboard."""

    def __init__(self, expert, every: int = 2, takeover_steps: int = 20):
        if every < 1 or takeover_steps < 0:
            raise ValueError(f"every must be >= 1 and takeover_steps >= 0, got {every}, {takeover_steps}")
        self.expert, self.every, self.takeover_steps = expert, every, takeover_steps
        self.episode, self.step = 0, 0

    def poll(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        if self.step == 0:
            self.expert.reset(obs)
        self.step += 1
        if self.episode % self.every == 0 and self.step <= self.takeover_steps:
            return np.asarray(self.expert.act(obs), np.float32)
        return None

    def end_episode(self) -> None:
        self.episode += 1
        self.step = 0


class TeleopOperator:
    """A person on a teleop device (keyboard, gamepad, SpaceMouse): moving it takes over at once, and
    control returns to the policy after `release_steps` steps with the device at rest — "touch to
    intervene", so the operator never has to press a mode switch mid-correction."""

    def __init__(self, device, release_steps: int = 5):
        self.device, self.release_steps = device, release_steps
        self._idle = release_steps
        self._gripper = device.gripper

    def poll(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        twist = np.asarray(self.device.twist(), dtype=np.float64)
        touched = bool(np.any(twist != 0.0)) or self.device.gripper != self._gripper
        self._gripper = self.device.gripper
        self._idle = 0 if touched else self._idle + 1
        return self.device.action_from_twist(twist) if self._idle < self.release_steps else None

    def end_episode(self) -> None:
        self._idle = self.release_steps

    def close(self) -> None:
        self.device.close()


TELEOP_OPERATORS = ("keyboard", "gamepad", "spacemouse")
OPERATORS = ("none", "scripted", *TELEOP_OPERATORS)


def make_operator(kind: str, env, every: int = 2, takeover_steps: int = 20) -> HILController | None:
    """CLI helper: "none" -> None; "scripted" -> the env's scripted expert on a schedule; a teleop device
    name -> that device with touch-to-intervene."""
    if kind == "none":
        return None
    if kind == "scripted":
        from robotlearn.teleop.scripted import make_expert

        return HILController(ScriptedOperator(make_expert(env), every, takeover_steps))
    if kind in TELEOP_OPERATORS:
        from robotlearn.teleop import make_device

        return HILController(TeleopOperator(make_device(kind, env)))
    raise ValueError(f"unknown intervention device {kind!r}; known: {', '.join(OPERATORS)}")
