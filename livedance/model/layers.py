"""Small building blocks shared by the unit VAE, composer and critics."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn


class Gaussian(NamedTuple):
    """A diagonal Gaussian; ``mu`` and ``logvar`` have the same shape (..., Z)."""

    mu: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        # randn with an explicit generator keeps sampling reproducible per dancer/seed.
        eps = torch.randn(self.mu.shape, generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + temperature * torch.exp(0.5 * self.logvar) * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over the last dim -> (...,)."""
        return 0.5 * (self.mu.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(-1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``x`` (..., Z), summed over the last dim -> (...,)."""
        return 0.5 * ((x - self.mu).pow(2) * torch.exp(-self.logvar) + self.logvar + math.log(2 * math.pi)).sum(-1)


class GaussianHead(nn.Module):
    """Linear map to the parameters of a diagonal Gaussian."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, h: torch.Tensor) -> Gaussian:
        mu, logvar = self.proj(h).chunk(2, dim=-1)
        # Bounded log-variance: an early exploding variance would swamp the KL.
        return Gaussian(mu, logvar.clamp(-10.0, 4.0))


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """``layers`` Linear layers with LeakyReLU between them."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            mods.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*mods)


def phase_features(frames: int, harmonics: int = 2) -> torch.Tensor:
    """(frames, 2 * harmonics) sin/cos of the position within a unit.

    A unit spans two beats, so harmonic 1 is the unit and harmonic 2 the beat:
    the decoder knows where the beats fall without being told.
    """
    t = torch.arange(frames, dtype=torch.float32) / frames
    k = torch.arange(1, harmonics + 1, dtype=torch.float32)
    ang = 2 * math.pi * t[:, None] * k[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)
