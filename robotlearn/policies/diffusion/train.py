"""Diffusion policy training on a recorded dataset: one readable loop, the update step is `update`.

Each step draws one *global* batch (sample indices, noise, diffusion steps) from seeded generators. In a
torchrun / DistributedDataParallel run (`ddp=True`, process group started by robotlearn.scale.ddp) every
rank draws the same global batch and trains on its contiguous share; DDP averages the gradients, which
for equal shares is the full batch's gradient, so N processes at global batch B follow the single-process
run at batch B (up to float summation order).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from robotlearn.data.dataset import load_meta, obs_feature_key
from robotlearn.data.loader import Demos, WindowDataset, load_demos
from robotlearn.policies.diffusion.config import DiffusionConfig
from robotlearn.policies.diffusion.policy import DiffusionModel, save_diffusion


def select_obs_keys(cfg: DiffusionConfig, features: dict) -> list[str]:
    """Env observation keys the policy sees: configured, or every low-dim observation in the dataset."""
    available = {k[len("observation."):].replace("images.", "images/", 1): k for k in features
                 if k.startswith("observation.")}
    keys = cfg.obs_keys or [k for k in available if not k.startswith("images/")]
    for k in keys:
        if k not in available:
            raise KeyError(f"obs key {k!r} is not in the dataset; it has {', '.join(available)}")
    return keys


def build_model(cfg: DiffusionConfig, dataset: str | Path, select: Callable[[Demos], Demos] | None = None,
                ) -> tuple[DiffusionModel, WindowDataset]:
    """Model sized for the dataset's features, with normalization ranges from the data it will train on.

    `select` narrows the loaded frames (e.g. RaC's training filter, robotlearn/correction/labels.py); it gets
    every column, so it can judge by source labels, and returns segments as Demos.episode_ends.
    """
    meta = load_meta(dataset)
    keys = select_obs_keys(cfg, meta.features)
    feats = [obs_feature_key(k) for k in keys]
    demos = load_demos(dataset, None if select else feats + ["action"])
    if select is not None:
        demos = select(demos)
    renamed = {k: demos.data[f] for k, f in zip(keys, feats, strict=True)}
    demos.data.update(renamed)
    shapes = {k: list(meta.features[obs_feature_key(k)]["shape"]) for k in keys}
    model = DiffusionModel(cfg, shapes, int(meta.features["action"]["shape"][0]))
    low = [k for k in keys if not k.startswith("images/")]
    if low:
        flat = np.concatenate([renamed[k].reshape(len(renamed[k]), -1) for k in low], axis=1)
        obs_min, obs_max = flat.min(0), flat.max(0)
    else:
        obs_min = obs_max = np.zeros(0)
    act = demos.data["action"]
    model.set_stats(obs_min, obs_max, act.min(0), act.max(0))
    return model, WindowDataset(demos, keys, "action", cfg.obs_horizon, cfg.pred_horizon)


class DiffusionLoss(nn.Module):
    """`model.loss` as `forward`: DistributedDataParallel synchronizes gradients through forward hooks."""

    def __init__(self, model: DiffusionModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model.loss(batch, noise, t)


def draw_global_batch(cfg: DiffusionConfig, model: DiffusionModel, samples: int, rng: np.random.Generator,
                      gen: torch.Generator) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """(sample indices, noise, diffusion steps) for one global batch of cfg.train.batch_size."""
    size = cfg.train.batch_size
    idx = rng.integers(0, samples, size)
    noise = torch.randn((size, cfg.pred_horizon, model.action_dim), generator=gen)
    return idx, noise, torch.randint(0, cfg.train_timesteps, (size,), generator=gen)


def local_share(parts: tuple, rank: int, world: int) -> tuple:
    """Rank `rank`'s contiguous 1/world of each part of a global batch."""
    size = len(parts[0]) // world
    return tuple(p[rank * size:(rank + 1) * size] for p in parts)


def train(cfg: DiffusionConfig, dataset: str | Path, out: str | Path | None = None,
          log: Callable[[str], None] = print, select: Callable[[Demos], Demos] | None = None,
          ddp: bool = False) -> tuple[DiffusionModel, list[float]]:
    """Train for cfg.train.steps; returns the EMA model and the per-step (global batch) losses. Saves to
    `out` if given. `select`: see `build_model`. `ddp`: this process is one rank of an initialized
    torch.distributed process group."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    tc = cfg.train
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if tc.batch_size % world:
        raise ValueError(f"train.batch_size={tc.batch_size} does not split evenly over {world} processes")
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    model, data = build_model(cfg, dataset, select)
    if tc.init_from:
        from robotlearn.policies.checkpoint import load_module_state, load_tensors

        weights = {f"model.{k}": v for k, v in load_tensors(tc.init_from, "model").items()}
        load_module_state(model, weights, "model", tc.init_from)
    model.train()
    net = DistributedDataParallel(DiffusionLoss(model)) if ddp else DiffusionLoss(model)
    gen = torch.Generator().manual_seed(tc.seed)
    ema_model = copy.deepcopy(model).eval()
    ema = EMAModel(model.parameters(), decay=tc.ema_decay, use_ema_warmup=True, power=0.75)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    lr_sched = get_scheduler("cosine", opt, num_warmup_steps=tc.warmup_steps, num_training_steps=tc.steps)
    losses: list[float] = []
    extra = {"dataset": str(dataset), "train_frames": len(data), "env": load_meta(dataset).env_recipe}
    t0 = time.perf_counter()

    def update(idx: np.ndarray, noise: torch.Tensor, t: torch.Tensor) -> float:
        loss = net(data.batch(idx), noise, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP this also averages the gradients over the ranks
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(model.parameters())
        value = loss.detach()
        if ddp:
            dist.all_reduce(value)
        return value.item() / world

    def save() -> None:
        ema.copy_to(ema_model.parameters())
        if out is not None and rank == 0:
            save_diffusion(out, ema_model, {**extra, "steps": len(losses)})

    for step in range(1, tc.steps + 1):
        losses.append(update(*local_share(draw_global_batch(cfg, model, len(data), rng, gen), rank, world)))
        if rank == 0 and (step % tc.log_every == 0 or step == tc.steps):
            recent = float(np.mean(losses[-tc.log_every:]))
            log(f"step {step}/{tc.steps} loss {recent:.4f} lr {lr_sched.get_last_lr()[0]:.2e} "
                f"({time.perf_counter() - t0:.0f}s)")
        if step % tc.save_every == 0:
            save()
    save()
    return ema_model, losses


def config_from_args(args) -> tuple[DiffusionConfig, Path]:
    """`robotlearn train diffusion ...` arguments -> (config, run directory); shared with the DDP entry."""
    from robotlearn.core.config import load_config

    if not getattr(args, "dataset", None):
        raise ValueError("train diffusion needs --dataset DIR (a recorded dataset, see `robotlearn record`)")
    cfg = load_config(DiffusionConfig, "algos", args.config or "diffusion", args.overrides)
    if getattr(args, "steps", None):
        cfg.train.steps = args.steps
    if getattr(args, "seed", None) is not None:
        cfg.train.seed = args.seed
    return cfg, Path(args.out or f"runs/diffusion-{Path(args.dataset).name}")


def cli_main(args) -> int:
    """`robotlearn train diffusion --dataset DIR [--config diffusion] [--out DIR] [--steps N] [key=value ...]`."""
    torch.set_num_threads(1)
    cfg, out = config_from_args(args)
    train(cfg, args.dataset, out, log=lambda line: print(line, flush=True))
    print(f"checkpoint: {out}")
    return 0
