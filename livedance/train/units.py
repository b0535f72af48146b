"""Stage 1, `livedance train units`: the unit VAE and its adversarial discriminator."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livedance.model.checkpoint import make_payload, save_checkpoint
from livedance.model.critics import UnitDiscriminator, lsgan_d_loss, lsgan_g_loss
from livedance.model.dance import NormStats
from livedance.model.vae import UnitVAE, UnitVAEConfig, VAELossWeights
from livedance.motion.representation import body_joints
from livedance.train import common
from livedance.train.data import UnitData, split_indices

log = logging.getLogger(__name__)

#: Real frame pairs kept in a checkpoint for dancers to start from.
START_POSES = 256


def _start_poses(units: np.ndarray, style: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, 2, D) last two frames of random training units (states a unit really ends in) and their (S,) styles."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(units), size=min(START_POSES, len(units)), replace=False))
    return units[pick, -2:], style[pick]


def joint_motion_loss(recon: torch.Tensor, target: torch.Tensor, norm: NormStats) -> torch.Tensor:
    """Mean squared error of frame-to-frame joint motion, (cm per frame)^2, of normalised units (B, T, D).

    The feature losses weigh every normalised feature alike, and a unit's
    own motion is small next to how poses differ between units: a decoder
    can score well by getting the pose right and moving little (salsa
    decoded at 40% of its joint speed that way). This term measures the
    motion itself, in metres, where it is seen.
    """
    mean = torch.as_tensor(norm.mean, device=recon.device)
    std = torch.as_tensor(norm.std, device=recon.device)
    a = body_joints(recon * std + mean).diff(dim=-3)
    b = body_joints(target * std + mean).diff(dim=-3)
    return ((a - b) * 100.0).pow(2).mean()


@torch.no_grad()
def validate_vae(vae: UnitVAE, x: torch.Tensor, weights: VAELossWeights, seed: int, norm: NormStats) -> dict[str, float]:
    """Mean loss terms over ``x`` (N, T, D), with fixed sampling noise so values are comparable."""
    vae.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    sums: dict[str, float] = {}
    n = 0
    for i in range(0, len(x), 256):
        xb = x[i : i + 256]
        out = vae(xb, weights, gen)
        # Decoding the encoder means (no sampling) is what generation quality depends on.
        det = vae.decode(out.q_init.mu, out.q_move.mu)
        terms = {k: float(v) for k, v in out.losses.items()}
        terms["recon_mean"] = float(torch.nn.functional.mse_loss(det, xb))
        terms["joints_mean"] = float(joint_motion_loss(det, xb, norm))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * len(xb)
        n += len(xb)
    vae.train()
    return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}


def train_units(
    data: UnitData,
    out: Path,
    cfg: common.TrainConfig,
    model_cfg: UnitVAEConfig | None = None,
    weights: VAELossWeights | None = None,
    resume: bool = False,
    log_dir: Path | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train the unit VAE on ``data``'s train split and write a "units" checkpoint to ``out``.

    Returns the final validation metrics (empty without a val split).
    """
    info, device = common.setup(cfg)
    w = weights or VAELossWeights()
    train_idx, val_idx = split_indices(data, "train"), split_indices(data, "val")
    units = np.asarray(data.units, dtype=np.float32)
    norm = NormStats.fit(units[train_idx])
    model_cfg = model_cfg or UnitVAEConfig(feature_dim=units.shape[2], unit_frames=units.shape[1])
    x_all = torch.from_numpy((units - norm.mean) / norm.std)
    x_train, x_val = x_all[train_idx].to(device), x_all[val_idx].to(device)
    starts, start_styles = _start_poses(x_all[train_idx].numpy(), np.asarray(data.style)[train_idx], cfg.seed)

    torch.manual_seed(cfg.seed)
    vae = UnitVAE(model_cfg).to(device)
    disc = UnitDiscriminator(model_cfg.feature_dim).to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + info.rank)

    session = common.Session(
        "units", cfg, info, out, {"vae": vae, "disc": disc, "opt": opt, "opt_d": opt_d}, gen,
        {"model": model_cfg.to_dict(), "loss": asdict(w), "units": int(len(units))},
        resume=resume, log_dir=log_dir, progress=progress,
    )
    vae_ddp, disc_ddp = common.wrap(vae, info, device), common.wrap(disc, info, device)
    stream = session.batches(len(train_idx))
    last_val: dict[str, float] = {}

    def save() -> None:
        if not session.save_state():
            return
        payload = make_payload(
            vae=vae,  # make_payload copies the weights to the host: no round trip of the DDP-wrapped module
            norm=norm,
            start_poses=starts,
            start_styles=start_styles,
            style_names=list(data.style_names),
            meta={**(meta or {}), "stage": "units", "step": session.step, "final": session.final,
                  "seconds": round(session.stopwatch.seconds, 1), "train_units": int(len(train_idx)), "val": last_val,
                  "config": cfg.to_dict(), "world": info.world},
        )
        save_checkpoint(out, payload)

    vae.train()
    while session.running:
        x = x_train[torch.from_numpy(next(stream))]
        common.set_lr(opt, common.cosine_lr(session.step, cfg.steps, cfg.lr))
        res = vae_ddp(x, w, gen)
        disc.requires_grad_(False)  # the generator step must not move the critic
        adv = lsgan_g_loss(disc(res.recon))
        disc.requires_grad_(True)
        joints = joint_motion_loss(res.recon, x, norm) if w.joints > 0 else torch.zeros(())
        loss = res.losses["total"] + w.adversarial * adv + w.joints * joints
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()

        scores = disc_ddp(torch.cat([x, res.recon.detach()], dim=0))  # one forward: DDP-friendly
        d_loss = lsgan_d_loss(scores[: len(x)], scores[len(x) :])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        log_now, save_now = session.advance()
        if log_now:
            terms = {k: float(v.detach()) for k, v in res.losses.items()}
            row = session.row(opt, {**terms, "joints": float(joints.detach()), "adv": float(adv.detach()), "disc": float(d_loss.detach())})
            if len(x_val):
                last_val = validate_vae(vae, x_val, w, cfg.seed, norm)
                row.update(last_val)
            session.log(row, loss=row["train_total"], val=last_val.get("val_recon_mean", float("nan")))
        if save_now:
            save()
    session.close()
    return last_val
