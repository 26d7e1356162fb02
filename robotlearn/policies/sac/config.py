"""SAC configuration schema (configs/algos/sac*.yaml + key=value overrides)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from robotlearn.core.config import Strict


class SACConfig(Strict):
    """Everything a SAC run needs. Defaults follow SAC/RLPD; configs/algos/sac_arm_reach.yaml tunes ArmReach."""

    # environment
    env: str = "robotlearn/ArmReach-v0"
    backend: str | None = "mujoco"
    env_overrides: list[str] = Field(default_factory=list, description="task config overrides, e.g. action_mode=ee_delta")
    cameras: list[str] = Field(default_factory=list)
    obs_keys: list[str] | None = Field(None, description="observations the policy sees (None: all), e.g. proprio + "
                                                          "images/scene without goal_pos for SAC from pixels")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="the backend's options, e.g. port")
    num_envs: int = Field(1, ge=1)
    seed: int = 0
    # budget and bookkeeping
    total_steps: int = Field(20_000, ge=1)
    learning_starts: int = Field(1_000, ge=0)
    eval_every: int = Field(5_000, ge=0, description="env steps between evaluations; 0 = only at the end")
    eval_episodes: int = Field(10, ge=1)
    checkpoint_every: int = Field(5_000, ge=0, description="env steps between checkpoints; 0 = only at the end")
    log_every: int = Field(1_000, ge=1)
    stop_success: float | None = Field(None, ge=0, le=1, description="stop once an evaluation reaches this success rate")
    stop_return: float | None = Field(None, description="stop once an evaluation's mean return reaches this")
    save_replay: bool = True
    # networks
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    num_critics: int = Field(2, ge=2)
    layer_norm: bool = True
    normalize_obs: bool = True
    obs_stats: Literal["online", "demos"] = Field("online", description=(
        "where the observation normalizer's statistics come from: every online transition (running), or the demos "
        "once, then frozen (needs `demos`); see configs/algos/sac_quad_hover.yaml for why"))
    image_features: int = Field(64, ge=1)
    image_shift: int = Field(4, ge=0)
    # learning
    batch_size: int = Field(256, ge=1)
    utd: int = Field(1, ge=1, description="critic updates per env step (RLPD uses up to 20)")
    actor_lr: float = Field(3e-4, gt=0)
    critic_lr: float = Field(3e-4, gt=0)
    alpha_lr: float = Field(3e-4, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1)
    init_alpha: float = Field(1.0, gt=0)
    target_entropy: float | None = None
    buffer_size: int = Field(1_000_000, ge=1)
    # scale-out (`robotlearn train sac --actors N`, robotlearn.scale); the single-process loop ignores these
    actor_batch: int = Field(50, ge=1, description="env steps a Ray actor collects per message to the learner")
    publish_every: int = Field(20, ge=1, description="learner updates between weight publications to the actors")
    # RLPD: demos (a robotlearn dataset directory) sampled symmetrically with online data
    demos: str | None = None
    bc_weight: float = Field(0.0, ge=0, description=(
        "behaviour cloning of the demo/human rows of each batch in the actor loss, scaled by the batch's mean |Q| "
        "(TD3+BC) so the weight reads the same at any reward scale; 0 = plain SAC/RLPD"))
    bc_pretrain_steps: int = Field(0, ge=0, description=(
        "actor behaviour-cloning steps on the demos before training; the first `learning_starts` steps then "
        "collect with that policy instead of uniform random actions"))
