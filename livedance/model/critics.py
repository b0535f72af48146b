"""Adversarial critics and the descriptor regressor.

* :class:`UnitDiscriminator` judges whether a unit (B, T, D) is real or
  decoded (the VAE's adversarial term).
* :class:`TransitionCritic` judges a movement-code *transition*
  (previous code -> next code) given the music context: the composer's
  music-conditioned adversarial term (the paper's MDSN discriminator, on
  codes rather than decoded poses, which is much cheaper and sees the same
  thing since the decoder is fixed while the composer trains).
* :class:`DescriptorRegressor` predicts energy/busyness and style from a
  movement code: fitted on real codes, it tells the composer whether what
  it sampled has the energy and style it was asked for (the paper's
  style-consistency term, extended to energy).

All losses are least-squares GAN losses: stable with tiny batches and no
sigmoid saturation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from livedance.model.layers import mlp


class UnitDiscriminator(nn.Module):
    """Unit (B, T, D) -> realness score (B,). Strided 1-D convolutions over time."""

    def __init__(self, feature_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(feature_dim, hidden, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x.transpose(1, 2))  # (B, H, T/4)
        return self.out(h.mean(-1)).squeeze(-1)


class TransitionCritic(nn.Module):
    """(prev code (..., Zm), code (..., Zm), context (..., C), style embedding (..., S)) -> score (...,)."""

    def __init__(self, move_dim: int, cond_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = mlp(2 * move_dim + cond_dim, hidden, 1, layers=3)

    def forward(self, prev: torch.Tensor, code: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([prev, code, cond], dim=-1)).squeeze(-1)


class DescriptorRegressor(nn.Module):
    """(movement code (..., Zm), standardised log tempo (..., 1)) -> (energy & busyness (..., 2), style logits (..., S)).

    Tempo is an input, not a target: a unit's real-time energy depends on
    how fast it is played, which the canonical-time code cannot know.
    """

    def __init__(self, move_dim: int, n_styles: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = mlp(move_dim + 1, hidden, 2 + n_styles, layers=3)

    def forward(self, code: torch.Tensor, log_tempo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([code, log_tempo], dim=-1))
        return out[..., :2], out[..., 2:]


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Critic loss: real scores -> 1, fake scores -> 0."""
    return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Generator loss: fake scores -> 1."""
    return F.mse_loss(fake, torch.ones_like(fake))
