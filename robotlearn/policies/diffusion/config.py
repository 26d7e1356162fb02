"""Diffusion policy configuration (configs/algos/diffusion*.yaml), validated with one-line errors."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from robotlearn.core.config import Strict


class InferenceConfig(Strict):
    """How chunks are sampled at run time; switchable without retraining (the net is the same)."""

    scheduler: Literal["ddpm", "ddim", "dpm"] = "ddim"
    steps: int = 10
    # Warm start (real-time-iteration style): the unexecuted tail of the previous chunk, shifted by the
    # executed actions, is re-noised to the level of step `schedule_steps - warm_steps` of a
    # `schedule_steps`-step DDIM schedule and denoised in only `warm_steps` steps.
    warm_start: bool = False
    warm_steps: int = 2
    warm_schedule_steps: int = 10

    @model_validator(mode="after")
    def _check(self) -> InferenceConfig:
        if self.steps < 1 or self.warm_steps < 1:
            raise ValueError("inference steps must be >= 1")
        if self.warm_start and self.scheduler != "ddim":
            raise ValueError("warm_start needs scheduler: ddim")
        if self.warm_steps > self.warm_schedule_steps:
            raise ValueError("warm_steps must be <= warm_schedule_steps")
        return self


class TrainConfig(Strict):
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 200
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 200
    save_every: int = 1000
    init_from: str | None = None  # checkpoint whose weights start this run (fine-tuning / continuing a budget)


class DiffusionConfig(Strict):
    algo: Literal["diffusion"] = "diffusion"
    obs_keys: list[str] | None = None  # env observation keys ("joint_pos", "images/top"); None = every low-dim key
    obs_horizon: int = 2
    pred_horizon: int = 16
    action_horizon: int = 8
    down_dims: list[int] = [32, 64, 128]
    kernel: int = 5
    groups: int = 8
    step_embed_dim: int = 64
    image_feature_dim: int = 64
    image_width: int = 32
    train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample"] = "epsilon"
    inference: InferenceConfig = InferenceConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        if not 1 <= self.action_horizon <= self.pred_horizon - self.obs_horizon + 1:
            raise ValueError("need 1 <= action_horizon <= pred_horizon - obs_horizon + 1")
        if self.pred_horizon % (2 ** (len(self.down_dims) - 1)):
            raise ValueError(f"pred_horizon must be divisible by 2**(len(down_dims)-1) = {2 ** (len(self.down_dims) - 1)}")
        return self
