"""Running mean/std observation normalizer, stored with the policy so deploy sees what training saw."""

from __future__ import annotations

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    """Tracks mean/var of a feature vector (parallel Welford merge) and normalizes with clipping.

    Its statistics are buffers, so they travel inside model.safetensors. Updated from the replay
    buffer's incoming data only (not from sampled batches) so each sample counts once.
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-6):
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).double()
        n = x.shape[0]
        if n == 0:
            return
        b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean.double()
        new_mean = self.mean.double() + delta * (n / total)
        m2 = self.var.double() * self.count + b_var * n + delta.square() * self.count * n / total
        self.mean.copy_(new_mean.float())
        self.var.copy_((m2 / total).float())
        self.count.fill_(float(total))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)
