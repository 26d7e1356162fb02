"""1-D temporal convolutional U-Net with FiLM conditioning (the Diffusion Policy denoiser), plus a small
ResNet-style image encoder in plain torch.

The U-Net convolves over the action-chunk time axis; the observation features and the diffusion step
enter every residual block as a per-channel scale and shift (FiLM), which is what lets one network
denoise chunks for any observation. GroupNorm everywhere (not BatchNorm) because EMA weights and batch
statistics do not mix, and because inference runs at batch size 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Diffusion step index -> fixed sinusoidal features (the transformer position code)."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.float()[:, None] * self.freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class FiLMResBlock(nn.Module):
    """conv -> FiLM(cond) -> conv, plus a residual path."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, kernel, groups)
        self.conv2 = ConvNormAct(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.conv2(h * (1 + scale) + shift)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """eps_theta(noisy action chunk [B,T,A], step [B], global condition [B,C]) -> [B,T,A]."""

    def __init__(self, action_dim: int, cond_dim: int, down_dims: Sequence[int] = (64, 128, 256),
                 step_embed_dim: int = 64, kernel: int = 5, groups: int = 8):
        super().__init__()
        self.step_embed = nn.Sequential(SinusoidalStepEmbedding(step_embed_dim),
                                        nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                        nn.Linear(4 * step_embed_dim, step_embed_dim))
        c = step_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock(cin, cout, c, kernel, groups), FiLMResBlock(cout, cout, c, kernel, groups),
                nn.Identity() if last else nn.Conv1d(cout, cout, 3, stride=2, padding=1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, c, kernel, groups) for _ in range(2)])
        self.up = nn.ModuleList()
        for cout, cin in zip(reversed(down_dims[:-1]), reversed(down_dims[1:]), strict=True):
            self.up.append(nn.ModuleList([
                FiLMResBlock(2 * cin, cout, c, kernel, groups), FiLMResBlock(cout, cout, c, kernel, groups),
                nn.ConvTranspose1d(cout, cout, 4, stride=2, padding=1)]))
        self.head = nn.Sequential(ConvNormAct(down_dims[0], down_dims[0], kernel, groups),
                                  nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = sample.transpose(1, 2)
        if step.dim() == 0:
            step = step.expand(x.shape[0])
        c = torch.cat([self.step_embed(step), cond], dim=-1)
        skips = []
        for res1, res2, down in self.down:
            x = res2(res1(x, c), c)
            skips.append(x)
            x = down(x)
        for block in self.mid:
            x = block(x, c)
        for res1, res2, up in self.up:
            x = res2(res1(torch.cat([x, skips.pop()], dim=1), c), c)
            x = up(x)
        return self.head(x).transpose(1, 2)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(groups, cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(groups, cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SpatialSoftmax(nn.Module):
    """Feature maps -> expected (x, y) image coordinates per channel: keypoints keep *where*, which pooling loses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = torch.softmax(x.flatten(2), dim=-1).view(b, c, h, w)
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        return torch.cat([(attn.sum(2) * xs).sum(-1), (attn.sum(3) * ys).sum(-1)], dim=-1)


class ImageEncoder(nn.Module):
    """uint8 [B,H,W,3] -> [B,out_dim]: a 4-stage ResNet-18-style trunk (GroupNorm) + spatial softmax + linear."""

    def __init__(self, out_dim: int = 64, width: int = 32, groups: int = 8):
        super().__init__()
        chans = [width, width, 2 * width, 4 * width]
        layers: list[nn.Module] = [nn.Conv2d(3, width, 5, 2, 2, bias=False), nn.GroupNorm(groups, width),
                                   nn.ReLU(inplace=True)]
        cin = width
        for i, cout in enumerate(chans):
            layers.append(BasicBlock(cin, cout, 1 if i == 0 else 2, groups))
            cin = cout
        self.trunk = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax()
        self.proj = nn.Sequential(nn.Linear(2 * cin, out_dim), nn.LayerNorm(out_dim))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.proj(self.keypoints(self.trunk(x)))
