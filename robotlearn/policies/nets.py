"""Network building blocks shared by the policies (plain torch, small enough to read)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    """Linear -> [LayerNorm] -> ReLU blocks. LayerNorm keeps critics stable at high update-to-data ratios (RLPD)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h)] + ([nn.LayerNorm(h)] if layer_norm else []) + [nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """`n` independent linear layers evaluated with one batched matmul (input [n, B, in])."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """`n` MLPs with LayerNorm run as one batched network: twin (n=2) or REDQ-style ensemble critics.

    One bmm per layer instead of n separate matmuls halves the op count of twin critics, which is
    most of the per-update cost on a CPU at batch 256.
    """

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], out_dim: int, layer_norm: bool = True):
        super().__init__()
        self.n = n
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.norms = nn.ModuleList(nn.LayerNorm(h) if layer_norm else nn.Identity() for h in hidden)
        self.out = EnsembleLinear(n, dims[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, in] (shared by all members) or [n, B, in] -> [n, B, out]."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, -1, -1)
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = F.relu(norm(layer(x)))
        return self.out(x)


def random_shift(images: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ augmentation: pad by replication and crop back at a random offset per image ([B, C, H, W] float)."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad, device=images.device)[:h]
    arange_w = torch.linspace(-1.0 + eps, 1.0 - eps, w + 2 * pad, device=images.device)[:w]
    base = torch.stack(torch.meshgrid(arange, arange_w, indexing="ij")[::-1], dim=-1)  # [H, W, 2] (x, y)
    shift = torch.randint(0, 2 * pad + 1, (b, 1, 1, 2), device=images.device).float()
    shift = shift * torch.tensor([2.0 / (w + 2 * pad), 2.0 / (h + 2 * pad)], device=images.device)
    grid = base.unsqueeze(0) + shift
    return F.grid_sample(padded, grid, padding_mode="zeros", align_corners=False)


class ConvEncoder(nn.Module):
    """Small conv encoder for uint8 HxWx3 images -> feature vector (random shift while training)."""

    def __init__(self, height: int, width: int, channels: int = 3, features: int = 64, shift_pad: int = 4):
        super().__init__()
        self.shift_pad = shift_pad
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, channels, height, width)).numel()
        self.head = nn.Sequential(nn.Linear(n, features), nn.LayerNorm(features), nn.Tanh())

    def forward(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """images: [B, H, W, C] uint8 (or float in 0..255)."""
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        if augment and self.shift_pad > 0:
            x = random_shift(x, self.shift_pad)
        return self.head(self.conv(x).flatten(1))
