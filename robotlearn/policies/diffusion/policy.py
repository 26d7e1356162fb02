"""Diffusion Policy: the model (normalization, observation encoding, denoiser, schedulers) and the
closed-loop agent (observation history, receding-horizon action queue, warm-started chunks).

Training uses diffusers' DDPM scheduler to noise action chunks; inference can use DDPM, DDIM or
DPM-Solver built from the same scheduler config, because all of them invert the same forward process.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robotlearn.policies.checkpoint import load_module_state, load_tensors, read_config, save_checkpoint
from robotlearn.policies.diffusion.config import DiffusionConfig, InferenceConfig
from robotlearn.policies.diffusion.unet import ConditionalUnet1D, ImageEncoder


def _module_name(key: str) -> str:
    return key.replace("/", "__")


class DiffusionModel(nn.Module):
    """eps-prediction denoiser conditioned on an observation window, with min-max normalization buffers."""

    def __init__(self, cfg: DiffusionConfig, obs_shapes: dict[str, list[int]], action_dim: int):
        super().__init__()
        from diffusers import DDPMScheduler

        self.cfg, self.obs_shapes, self.action_dim = cfg, dict(obs_shapes), action_dim
        self.image_keys = [k for k in obs_shapes if k.startswith("images/")]
        self.low_keys = [k for k in obs_shapes if not k.startswith("images/")]
        low_dim = sum(int(np.prod(obs_shapes[k])) for k in self.low_keys)
        self.encoders = nn.ModuleDict({_module_name(k): ImageEncoder(cfg.image_feature_dim, cfg.image_width)
                                       for k in self.image_keys})
        self.register_buffer("obs_min", torch.zeros(low_dim))
        self.register_buffer("obs_max", torch.ones(low_dim))
        self.register_buffer("act_min", -torch.ones(action_dim))
        self.register_buffer("act_max", torch.ones(action_dim))
        cond_dim = cfg.obs_horizon * (low_dim + cfg.image_feature_dim * len(self.image_keys))
        self.unet = ConditionalUnet1D(action_dim, cond_dim, cfg.down_dims, cfg.step_embed_dim, cfg.kernel, cfg.groups)
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                                             clip_sample=True, prediction_type=cfg.prediction_type)

    def set_stats(self, obs_min: np.ndarray, obs_max: np.ndarray, act_min: np.ndarray, act_max: np.ndarray) -> None:
        for name, value in (("obs_min", obs_min), ("obs_max", obs_max), ("act_min", act_min), ("act_max", act_max)):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    @staticmethod
    def _to_unit(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        span = hi - lo
        # Constant features (span ~ 0) map to 0 instead of dividing by ~0.
        return torch.where(span > 1e-6, 2 * (x - lo) / span.clamp_min(1e-6) - 1, torch.zeros_like(x))

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return self._to_unit(a, self.act_min, self.act_max)

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a.clamp(-1, 1) + 1) / 2 * (self.act_max - self.act_min) + self.act_min

    def condition(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs[key]: [B, To, ...] (images uint8 [B,To,H,W,3]) -> global condition [B, To*F]."""
        feats = []
        if self.low_keys:
            low = torch.cat([obs[k].float().flatten(2) for k in self.low_keys], dim=-1)
            feats.append(self._to_unit(low, self.obs_min, self.obs_max))
        for k in self.image_keys:
            img = obs[k]
            b, t = img.shape[:2]
            feats.append(self.encoders[_module_name(k)](img.flatten(0, 1)).view(b, t, -1))
        return torch.cat(feats, dim=-1).flatten(1)

    def loss(self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None,
             t: torch.Tensor | None = None) -> torch.Tensor:
        """Standard DDPM objective on normalized action chunks. `noise` and diffusion steps `t` are drawn
        here unless given (training draws them per global batch, so DDP ranks split exactly one batch)."""
        actions = self.normalize_action(batch["action"])
        cond = self.condition({k: batch[k] for k in self.obs_shapes})
        noise = torch.randn_like(actions) if noise is None else noise
        if t is None:
            t = torch.randint(0, self.cfg.train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, t)
        pred = self.unet(noisy, t, cond)
        target = noise if self.cfg.prediction_type == "epsilon" else actions
        return nn.functional.mse_loss(pred, target)


def make_inference_scheduler(model: DiffusionModel, inf: InferenceConfig):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    base = model.noise_scheduler.config
    if inf.scheduler == "ddpm":
        return type(model.noise_scheduler).from_config(base)
    if inf.scheduler == "ddim":
        return DDIMScheduler.from_config(base)
    return DPMSolverMultistepScheduler.from_config(base, algorithm_type="dpmsolver++", solver_order=2)


class DiffusionAgent:
    """Closed-loop runner: keeps `obs_horizon` observations, predicts a chunk, executes `action_horizon`
    actions of it, then predicts again (receding horizon). With warm start, each new chunk starts from the
    previous chunk's shifted tail instead of pure noise, so a couple of denoising steps suffice.
    """

    def __init__(self, model: DiffusionModel, inference: InferenceConfig | None = None, seed: int = 0):
        self.model = model.eval()
        self.cfg = model.cfg
        self.inference = inference or self.cfg.inference
        self.scheduler = make_inference_scheduler(model, self.inference)
        self.generator = torch.Generator().manual_seed(seed)
        self.chunk_times: list[float] = []
        self._denoiser: Any = None
        self.reset()

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Batch-1 inference is dominated by per-op Python overhead; a traced, frozen graph halves it.
        if self._denoiser is None:
            self._denoiser = torch.jit.freeze(torch.jit.trace(self.model.unet, (x, t, cond), check_trace=False))
        return self._denoiser(x, t, cond)

    @classmethod
    def load(cls, directory: str, config: dict[str, Any] | None = None) -> DiffusionAgent:
        """Entry for robotlearn.policies.load_policy (registry POLICY_LOADERS)."""
        return load_diffusion(directory)

    def reset(self) -> None:
        self._obs: deque[dict[str, np.ndarray]] = deque(maxlen=self.cfg.obs_horizon)
        self._queue: deque[np.ndarray] = deque()
        self._prev: torch.Tensor | None = None

    def _obs_batch(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.stack([o[k] for o in self._obs]))[None] for k in self.model.obs_shapes}

    @torch.inference_mode()
    def predict_chunk(self) -> torch.Tensor:
        """Denoise one chunk for the current observation window; returns normalized actions [Tp, A]."""
        m, inf, sch = self.model, self.inference, self.scheduler
        cond = m.condition(self._obs_batch())
        shape = (1, self.cfg.pred_horizon, m.action_dim)
        noise = torch.randn(shape, generator=self.generator)
        if inf.warm_start and self._prev is not None:
            sch.set_timesteps(inf.warm_schedule_steps)
            timesteps = sch.timesteps[-inf.warm_steps:]
            shift = self.cfg.action_horizon
            tail = torch.cat([self._prev[shift:], self._prev[-1:].expand(shift, -1)])[None]
            x = sch.add_noise(tail, noise, timesteps[:1])
        else:
            sch.set_timesteps(inf.steps)
            timesteps, x = sch.timesteps, noise * sch.init_noise_sigma
        for t in timesteps:
            eps = self._denoise(sch.scale_model_input(x, t), t.reshape(1), cond)
            x = sch.step(eps, t, x, generator=self.generator).prev_sample
        self._prev = x[0]
        return x[0]

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self._obs.append({k: np.asarray(obs[k]) for k in self.model.obs_shapes})
        while len(self._obs) < self.cfg.obs_horizon:
            self._obs.appendleft(self._obs[0])
        if not self._queue:
            t0 = time.perf_counter()
            chunk = self.model.unnormalize_action(self.predict_chunk()).numpy()
            self.chunk_times.append(time.perf_counter() - t0)
            start = self.cfg.obs_horizon - 1
            self._queue.extend(chunk[start:start + self.cfg.action_horizon].astype(np.float32))
        return self._queue.popleft()


def save_diffusion(directory: str | Path, model: DiffusionModel, extra: dict[str, Any] | None = None) -> Path:
    config = {"algo": "diffusion", "policy": model.cfg.model_dump(), "obs_shapes": model.obs_shapes,
              "action_dim": model.action_dim, **(extra or {})}
    return save_checkpoint(directory, config, {"model": dict(model.state_dict())})


def load_diffusion_model(directory: str | Path) -> DiffusionModel:
    config = read_config(directory)
    cfg = DiffusionConfig.model_validate(config["policy"])
    model = DiffusionModel(cfg, config["obs_shapes"], int(config["action_dim"]))
    load_module_state(model, {f"model.{k}": v for k, v in load_tensors(directory, "model", config).items()},
                      "model", str(directory))
    return model.eval()


def load_diffusion(directory: str | Path, inference: InferenceConfig | dict | None = None) -> DiffusionAgent:
    """A ready-to-act agent from a checkpoint; `inference` overrides the sampling settings saved with it."""
    model = load_diffusion_model(directory)
    if isinstance(inference, dict):
        inference = InferenceConfig.model_validate({**model.cfg.inference.model_dump(), **inference})
    return DiffusionAgent(model, inference)
