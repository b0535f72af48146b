"""The unit VAE (the paper's DUAN, "decomposition" stage), for 3D units.

A dance unit ``x`` (B, T, D) of normalised per-frame features is encoded
into two codes:

* an **initial-pose code** ``z_init`` (B, Zi) from its first frame, and
* a **movement code** ``z_move`` (B, Zm) from the whole unit,

and decoded back from both. Disentangling the two is what lets the composer
pick a movement while the pose it must start from is dictated by the
previous unit. The paper's terms are all here: KL on both codes,
reconstruction, *cross*-reconstruction between a unit and an augmented copy
of it that starts from another pose (swap the codes, still reconstruct),
a latent distance pulling the two copies' movement codes together, and an
adversarial unit discriminator (:mod:`livedance.model.critics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from livedance.model.layers import Gaussian, GaussianHead, mlp, phase_features


@dataclass
class UnitVAEConfig:
    """Sizes of the unit VAE. The defaults make a model of about 1.5 MB."""

    feature_dim: int = 148
    unit_frames: int = 32
    init_dim: int = 16
    move_dim: int = 32
    hidden: int = 192
    #: Feature indices that are per-frame velocities (root dx, dz, dyaw): they
    #: are not part of the "pose", so pose augmentation leaves them alone.
    velocity_dims: tuple[int, ...] = (1, 2, 3)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["velocity_dims"] = list(self.velocity_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "UnitVAEConfig":
        d = dict(d)
        d["velocity_dims"] = tuple(d.get("velocity_dims", (1, 2, 3)))  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


@dataclass
class VAELossWeights:
    """Weights of the unit VAE's loss terms (the generator side)."""

    recon: float = 1.0
    # A unit's own motion is small next to how poses differ between units;
    # with the feature losses alone the decoder got poses right and moved
    # little (salsa at 40% of its joint speed). These two weigh the motion.
    velocity: float = 10.0  # frame-to-frame differences of the (normalised) features
    joints: float = 0.1  # frame-to-frame joint motion in the body's frame, (cm per frame)^2 (added by the trainer, which knows the units)
    kl: float = 1e-3
    cross: float = 0.5
    latent: float = 0.1
    adversarial: float = 0.02
    augment_std: float = 0.3  # pose offset of the augmented copy, in normalised units


class InitialPoseEncoder(nn.Module):
    """First frame (B, D) -> Gaussian over the initial-pose code (B, Zi)."""

    def __init__(self, cfg: UnitVAEConfig) -> None:
        super().__init__()
        self.net = mlp(cfg.feature_dim, cfg.hidden, cfg.hidden, layers=2)
        self.head = GaussianHead(cfg.hidden, cfg.init_dim)

    def forward(self, pose: torch.Tensor) -> Gaussian:
        return self.head(F.leaky_relu(self.net(pose), 0.2))


class MovementEncoder(nn.Module):
    """Unit (B, T, D) -> Gaussian over the movement code (B, Zm).

    A bidirectional GRU, pooled by mean and by its two final states, so the
    code sees the whole unit in both directions (a unit is encoded once it
    is complete; causality matters for the composer, not here).
    """

    def __init__(self, cfg: UnitVAEConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(cfg.feature_dim, cfg.hidden)
        self.gru = nn.GRU(cfg.hidden, cfg.hidden // 2, batch_first=True, bidirectional=True)
        self.head = GaussianHead(2 * cfg.hidden, cfg.move_dim)

    def forward(self, x: torch.Tensor) -> Gaussian:
        h, last = self.gru(F.leaky_relu(self.inp(x), 0.2))  # h (B, T, H); last (2, B, H/2)
        pooled = torch.cat([h.mean(1), last.transpose(0, 1).reshape(x.shape[0], -1)], dim=-1)
        return self.head(pooled)


class UnitDecoder(nn.Module):
    """(z_init (B, Zi), z_move (B, Zm)) -> unit (B, T, D).

    Non-autoregressive: one GRU pass over per-frame inputs [z_move, z_init,
    beat phase], its state initialised from both codes. The output is the
    pose decoded from the initial-pose code plus a per-frame residual.

    Why not condition on the exact start pose instead: live, that pose is the
    decoder's own previous output, and copying it exactly lets errors
    compound unit after unit until the body drifts off the data (tried: FID_k
    x20, feet flying). Going through the 16-d code projects every start back
    onto poses seen in training; the small remaining gap is eased out by
    ``DanceModel``. One fused GRU call keeps a unit well under a millisecond.
    """

    def __init__(self, cfg: UnitVAEConfig) -> None:
        super().__init__()
        self.pose = mlp(cfg.init_dim, cfg.hidden, cfg.feature_dim, layers=2)
        self.h0 = nn.Linear(cfg.init_dim + cfg.move_dim, cfg.hidden)
        self.register_buffer("phase", phase_features(cfg.unit_frames), persistent=False)
        self.gru = nn.GRU(cfg.init_dim + cfg.move_dim + self.phase.shape[1], cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.feature_dim)

    def forward(self, z_init: torch.Tensor, z_move: torch.Tensor) -> torch.Tensor:
        b, t = z_init.shape[0], self.phase.shape[0]
        codes = torch.cat([z_init, z_move], dim=-1)  # (B, Zi+Zm)
        inp = torch.cat([codes[:, None, :].expand(b, t, -1), self.phase[None].expand(b, -1, -1)], dim=-1)
        h, _ = self.gru(inp, torch.tanh(self.h0(codes))[None])  # (B, T, H)
        return self.pose(z_init)[:, None, :] + self.out(h)


@dataclass
class VAEOutput:
    """Everything one forward pass of :class:`UnitVAE` produces."""

    recon: torch.Tensor  # (B, T, D)
    q_init: Gaussian  # over (B, Zi)
    q_move: Gaussian  # over (B, Zm)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class UnitVAE(nn.Module):
    """Initial-pose + movement VAE over dance units (see module docstring)."""

    def __init__(self, cfg: UnitVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.init_encoder = InitialPoseEncoder(cfg)
        self.move_encoder = MovementEncoder(cfg)
        self.decoder = UnitDecoder(cfg)
        pose_mask = torch.ones(cfg.feature_dim)
        pose_mask[list(cfg.velocity_dims)] = 0.0
        self.register_buffer("pose_mask", pose_mask, persistent=False)

    def encode(self, x: torch.Tensor) -> tuple[Gaussian, Gaussian]:
        """Unit (B, T, D) -> (q(z_init | x[:, 0]), q(z_move | x))."""
        return self.init_encoder(x[:, 0]), self.move_encoder(x)

    def decode(self, z_init: torch.Tensor, z_move: torch.Tensor) -> torch.Tensor:
        """Codes -> unit (B, T, D)."""
        return self.decoder(z_init, z_move)

    def augment(self, x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """The same movement from another initial pose: a constant pose offset (B, 1, D).

        Offsetting normalised root height and 6D rotations by a constant is a
        constant change of posture (6D re-orthonormalises on decoding); the
        velocities are untouched, so the *movement* is the same.
        """
        off = torch.randn((x.shape[0], 1, x.shape[2]), generator=generator, dtype=x.dtype, device=x.device)
        return x + std * off * self.pose_mask

    def forward(
        self, x: torch.Tensor, weights: VAELossWeights | None = None, generator: torch.Generator | None = None
    ) -> VAEOutput:
        """Reconstruct ``x`` (B, T, D) and compute every generator-side loss term but the adversarial one.

        The adversarial term needs the critic, so the trainer adds it from
        ``out.recon``.
        """
        w = weights or VAELossWeights()
        x_aug = self.augment(x, w.augment_std, generator)
        both = torch.cat([x, x_aug], dim=0)
        q_init, q_move = self.encode(both)
        z_init, z_move = q_init.sample(generator), q_move.sample(generator)
        b = x.shape[0]
        # Own codes reconstruct own units; swapped movement codes must give the same result.
        swapped = torch.cat([z_move[b:], z_move[:b]], dim=0)
        recon = self.decode(torch.cat([z_init, z_init], 0), torch.cat([z_move, swapped], 0))
        own, cross = recon[: 2 * b], recon[2 * b :]
        losses = {
            "recon": F.mse_loss(own, both),
            "velocity": F.mse_loss(own.diff(dim=1), both.diff(dim=1)),
            "kl": (q_init.kl() + q_move.kl()).mean(),
            "cross": F.mse_loss(cross, both),
            "latent": F.mse_loss(q_move.mu[:b], q_move.mu[b:]),
        }
        losses["total"] = (
            w.recon * losses["recon"]
            + w.velocity * losses["velocity"]
            + w.kl * losses["kl"]
            + w.cross * losses["cross"]
            + w.latent * losses["latent"]
        )
        return VAEOutput(
            recon=own[:b],
            q_init=Gaussian(q_init.mu[:b], q_init.logvar[:b]),
            q_move=Gaussian(q_move.mu[:b], q_move.logvar[:b]),
            losses=losses,
        )
