"""Stage 2, `livedance train composer`: the causal composer on top of a frozen unit VAE.

Each take becomes a sequence of (movement code, initial-pose code, music
context, style) per unit, with codes from the frozen VAE's encoders; the
composer learns the next movement code from everything before it
(teacher forcing over windows of ``window`` units).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from livedance.errors import UserError
from livedance.model.checkpoint import build_vae, make_payload, read_checkpoint, save_checkpoint
from livedance.motion.envelope import MotionEnvelope
from livedance.model.composer import Composer, ComposerConfig, ComposerLossWeights
from livedance.model.context import ANY_STYLE, CONTEXT_DIM, DescriptorStats
from livedance.model.critics import DescriptorRegressor, TransitionCritic, lsgan_d_loss, lsgan_g_loss
from livedance.model.dance import NormStats
from livedance.model.vae import UnitVAE
from livedance.train import common
from livedance.train.data import UnitData, split_indices, takes_of
from livedance.train.paired import PairedAudio

log = logging.getLogger(__name__)


class CodeSequences:
    """Per-unit codes and contexts plus windows of consecutive units (tensors on one device).

    Attributes:
        move: (U, Zm) movement code (encoder mean) of every unit.
        init: (U, Zi) initial-pose code of the pose each unit starts from:
            the previous unit's last frame, or its own first frame at a take's start.
        prev: (U,) index of the previous unit of the same take, -1 at a take's start.
        context: (U, 3) standardised (log tempo, energy, busyness).
        style: (U,) style id.
        windows: (N, L) unit indices, -1 = padding (takes shorter than L).
        audio: (U + 1, steps, C) encoder input of every unit, last row all
            padding; None without paired music.
        audio_window: (U, units) the units whose music unit u's composer
            hears (``lag`` units before it, oldest first), U = padding.
    """

    def __init__(
        self, vae: UnitVAE, x: torch.Tensor, data: UnitData, stats: DescriptorStats, split: str, window: int,
        audio: PairedAudio | None = None,
    ) -> None:
        with torch.no_grad():
            self.move = torch.cat([vae.move_encoder(x[i : i + 512]).mu for i in range(0, len(x), 512)])
            first = torch.cat([vae.init_encoder(x[i : i + 512, 0]).mu for i in range(0, len(x), 512)])
            end = torch.cat([vae.init_encoder(x[i : i + 512, -1]).mu for i in range(0, len(x), 512)])
        prev = np.full(len(x), -1, dtype=np.int64)
        rows = []
        for seq in takes_of(data, split):
            prev[seq[1:]] = seq[:-1]
            n = len(seq)
            for s in range(0, max(1, n - window + 1)):
                row = np.full(window, -1, dtype=np.int64)
                chunk = seq[s : s + window]
                row[: len(chunk)] = chunk
                rows.append(row)
        self.prev = torch.from_numpy(prev).to(x.device)
        has_prev = self.prev >= 0
        self.init = torch.where(has_prev[:, None], end[self.prev.clamp_min(0)], first)
        raw = np.stack([data.tempo, data.energy, data.busyness], axis=-1).astype(np.float32)
        self.context = stats.standardise(raw).to(x.device)
        self.style = torch.as_tensor(np.asarray(data.style), dtype=torch.long, device=x.device)
        self.windows = torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, window), dtype=torch.long)
        self.audio: torch.Tensor | None = None
        if audio is not None:
            enc = audio.encoded()
            pad = np.zeros((1,) + enc.shape[1:], np.float32)
            self.audio = torch.from_numpy(np.concatenate([enc, pad])).to(x.device)
            self.audio_window = torch.from_numpy(audio_windows(prev, audio.input.units, audio.input.lag)).to(x.device)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gather windows ``rows`` -> dict of (B, L, ...) tensors plus mask (B, L)."""
        idx = self.windows[rows].to(self.move.device)
        mask = idx >= 0
        safe = idx.clamp_min(0)
        prev = self.prev[safe]
        prev_move = torch.where((prev >= 0)[..., None], self.move[prev.clamp_min(0)], torch.zeros_like(self.move[safe]))
        out = {
            "target": self.move[safe],
            "prev": prev_move,
            "init": self.init[safe],
            "context": self.context[safe],
            "style": self.style[safe],
            "mask": mask,
        }
        if self.audio is not None:
            out["audio"] = self.audio[self.audio_window[safe]]  # (B, L, units, steps, C)
        return out


def audio_windows(prev: np.ndarray, units: int, lag: int) -> np.ndarray:
    """(U,) previous-unit indices (-1 at a sequence's start) -> (U, units) the units
    ``lag`` .. ``lag + units - 1`` before each, oldest first; U where there is none."""
    n = len(prev)
    chain = [np.arange(n)]
    for _ in range(lag + units - 1):
        last = chain[-1]
        chain.append(np.where(last >= 0, prev[np.maximum(last, 0)], -1))
    win = np.stack(chain[lag:][::-1], axis=1)
    return np.where(win >= 0, win, n).astype(np.int64)


def _critic_condition(
    context: torch.Tensor, style: torch.Tensor, n_styles: int, audio: torch.Tensor | None = None
) -> torch.Tensor:
    """Critic input: clean context + one-hot style (the critic must not share the composer's
    embedding) [+ the newest heard unit's mean music features, not the composer's music code]."""
    parts = [context, F.one_hot(style, n_styles).float()]
    if audio is not None:
        parts.append(audio[..., -1, :, :].mean(-2))
    return torch.cat(parts, dim=-1)


def _masked_mean(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    return (v * m).sum() / m.sum().clamp_min(1.0)


def composer_losses(
    composer: torch.nn.Module,
    regressor: DescriptorRegressor,
    critic: TransitionCritic,
    b: dict[str, torch.Tensor],
    w: ComposerLossWeights,
    n_styles: int,
    gen: torch.Generator,
    train: bool = True,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Composer-side loss terms for a batch; also returns the sampled codes (B, L, Zm)."""
    ctx, style = b["context"], b["style"]
    ctx_in, style_in = ctx, style
    prev_in = b["prev"]
    if train:
        noise = torch.randn(ctx.shape, generator=gen, device=ctx.device)
        ctx_in = ctx + w.context_noise * noise
        drop = torch.rand(style.shape, generator=gen, device=style.device) < w.style_dropout
        style_in = torch.where(drop, torch.full_like(style, ANY_STYLE), style)
        prev_in = prev_in + w.code_noise * torch.randn(prev_in.shape, generator=gen, device=prev_in.device)
    audio_in = b.get("audio")
    if train and audio_in is not None:
        present = audio_in[..., -1:]  # noise only where there is music; padding stays padding
        noisy = audio_in + w.audio_noise * present * torch.randn(audio_in.shape, generator=gen, device=audio_in.device)
        heard = torch.rand(audio_in.shape[:2], generator=gen, device=audio_in.device) >= w.audio_dropout
        audio_in = noisy * heard[..., None, None, None]
    inner = common.unwrap(composer)  # under DDP: the composer it wraps
    levels = audio_in is not None and inner.cfg.levels
    teacher = None
    if train and levels:  # some units read the dance's own levels, as a descriptor composer does
        teacher = torch.rand(style.shape, generator=gen, device=style.device) < w.levels_teacher
    q, _ = composer(prev_in, b["init"], ctx_in, style_in, None, audio_in, teacher)
    mask = b["mask"]
    fake = q.sample(gen)
    energy_busy, logits = regressor(fake, ctx[..., :1])
    losses = {
        "nll": _masked_mean(q.nll(b["target"]) / b["target"].shape[-1], mask),
        "regression": _masked_mean(F.mse_loss(energy_busy, ctx[..., 1:], reduction="none").mean(-1), mask),
        "style": _masked_mean(F.cross_entropy(logits.transpose(1, 2), style, reduction="none"), mask),
        "adversarial": lsgan_g_loss(critic(b["prev"], fake, _critic_condition(ctx, style, n_styles, b.get("audio")))[mask]),
    }
    losses["total"] = (
        w.nll * losses["nll"] + w.regression * losses["regression"] + w.style * losses["style"] + w.adversarial * losses["adversarial"]
    )
    if levels:  # the music encoder's heard levels fit the energy and busyness the dance has
        losses["levels"] = _masked_mean(F.mse_loss(inner.heard, ctx[..., 1:], reduction="none").mean(-1), mask)
        losses["total"] = losses["total"] + w.levels * losses["levels"]
    return losses, fake


def train_composer(
    data: UnitData,
    units_checkpoint: Path,
    out: Path,
    cfg: common.TrainConfig,
    model_cfg: ComposerConfig | None = None,
    weights: ComposerLossWeights | None = None,
    window: int = 16,
    resume: bool = False,
    log_dir: Path | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    envelope: MotionEnvelope | None = None,
    audio: PairedAudio | None = None,
    descriptors: bool = False,
) -> dict[str, float]:
    """Train the composer against the frozen VAE of ``units_checkpoint``; write a full checkpoint to ``out``
    (with ``envelope``, the real takes' realism envelope, for the engine and the benchmarks).
    With ``audio`` (the units' paired music, ``livedance.train.paired``) it also
    learns a music encoder, and the checkpoint expects audio; it then reads the
    energy and busyness descriptors only with ``descriptors``."""
    info, device = common.setup(cfg)
    w = weights or ComposerLossWeights()
    payload = read_checkpoint(units_checkpoint)
    vae = build_vae(payload, Path(units_checkpoint)).to(device)
    vae.requires_grad_(False)
    norm = NormStats(payload["norm"]["mean"].numpy(), payload["norm"]["std"].numpy())
    if list(payload["style_names"]) != list(data.style_names):
        raise UserError(
            f"--units {units_checkpoint} was trained on styles {payload['style_names']} but --data has {list(data.style_names)}; "
            "train both stages on the same --data"
        )
    units = np.asarray(data.units, dtype=np.float32)
    train_idx = split_indices(data, "train")
    stats = DescriptorStats.fit(data.tempo[train_idx], data.energy[train_idx], data.busyness[train_idx])
    x = torch.from_numpy((units - norm.mean) / norm.std).to(device)
    train_seq = CodeSequences(vae, x, data, stats, "train", window, audio)
    val_seq = CodeSequences(vae, x, data, stats, "val", window, audio)
    n_styles = len(data.style_names)
    model_cfg = model_cfg or ComposerConfig(move_dim=vae.cfg.move_dim, init_dim=vae.cfg.init_dim, n_styles=n_styles)
    if audio is not None:
        model_cfg = replace(model_cfg, audio_dim=audio.input.channels, descriptors=descriptors, levels=not descriptors)
    if (model_cfg.move_dim, model_cfg.init_dim, model_cfg.n_styles) != (vae.cfg.move_dim, vae.cfg.init_dim, n_styles):
        raise UserError("composer code sizes must match the unit VAE's (move_dim, init_dim) and the data's style count")

    torch.manual_seed(cfg.seed)
    composer = Composer(model_cfg).to(device)
    regressor = DescriptorRegressor(model_cfg.move_dim, n_styles).to(device)
    critic = TransitionCritic(model_cfg.move_dim, CONTEXT_DIM + n_styles + (audio.input.channels if audio else 0)).to(device)
    opt = torch.optim.Adam(composer.parameters(), lr=cfg.lr)
    opt_r = torch.optim.Adam(regressor.parameters(), lr=cfg.lr)
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + info.rank)

    session = common.Session(
        "composer", cfg, info, out,
        {"composer": composer, "regressor": regressor, "critic": critic, "opt": opt, "opt_r": opt_r, "opt_c": opt_c}, gen,
        {"model": model_cfg.to_dict(), "loss": asdict(w), "window": window, "units": int(len(units)),
         "vae_sha256": payload["sha256"]},
        resume=resume, log_dir=log_dir, progress=progress,
    )
    composer_ddp = common.wrap(composer, info, device)
    regressor_ddp = common.wrap(regressor, info, device)
    critic_ddp = common.wrap(critic, info, device)
    stream = session.batches(len(train_seq.windows))
    last_val: dict[str, float] = {}

    def save() -> None:
        if not session.save_state():
            return
        full = make_payload(
            vae=vae,  # make_payload copies the weights to the host: no round trip of the live modules
            norm=norm,
            start_poses=payload["start_poses"].numpy(),
            start_styles=payload["start_styles"].numpy(),
            style_names=list(data.style_names),
            composer=composer,
            descriptors=stats,
            envelope=envelope,
            audio=audio.input if audio is not None else None,
            meta={**(meta or {}), "stage": "composer", "units_meta": payload.get("meta"), "step": session.step,
                  "final": session.final, "seconds": round(session.stopwatch.seconds, 1),
                  "windows": int(len(train_seq.windows)), "val": last_val, "config": cfg.to_dict(), "world": info.world},
        )
        save_checkpoint(out, full)

    composer.train()
    while session.running:
        b = train_seq.batch(torch.from_numpy(next(stream)))
        common.set_lr(opt, common.cosine_lr(session.step, cfg.steps, cfg.lr))
        regressor.requires_grad_(False)
        critic.requires_grad_(False)
        losses, fake = composer_losses(composer_ddp, regressor, critic, b, w, n_styles, gen)
        regressor.requires_grad_(True)
        critic.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(composer.parameters(), cfg.grad_clip)
        opt.step()

        # The regressor learns descriptors from *real* codes only, so it is an honest judge.
        mask = b["mask"]
        eb, logits = regressor_ddp(b["target"], b["context"][..., :1])
        r_loss = _masked_mean(F.mse_loss(eb, b["context"][..., 1:], reduction="none").mean(-1), mask) + _masked_mean(
            F.cross_entropy(logits.transpose(1, 2), b["style"], reduction="none"), mask
        )
        opt_r.zero_grad(set_to_none=True)
        r_loss.backward()
        opt_r.step()

        cond = _critic_condition(b["context"], b["style"], n_styles, b.get("audio"))[mask]
        prev = b["prev"][mask]
        both = critic_ddp(torch.cat([prev, prev]), torch.cat([b["target"][mask], fake.detach()[mask]]), torch.cat([cond, cond]))
        c_loss = lsgan_d_loss(both[: len(prev)], both[len(prev) :])
        opt_c.zero_grad(set_to_none=True)
        c_loss.backward()
        opt_c.step()

        log_now, save_now = session.advance()
        if log_now:
            terms = {k: float(v.detach()) for k, v in losses.items()}
            row = session.row(opt, {**terms, "regressor": float(r_loss.detach()), "critic": float(c_loss.detach())})
            if len(val_seq.windows):
                last_val = validate_composer(composer, regressor, critic, val_seq, w, n_styles, cfg.seed)
                row.update(last_val)
            session.log(row, nll=row["train_nll"], val=last_val.get("val_nll", float("nan")))
        if save_now:
            save()
    session.close()
    return last_val


@torch.no_grad()
def validate_composer(
    composer: Composer,
    regressor: DescriptorRegressor,
    critic: TransitionCritic,
    seq: CodeSequences,
    w: ComposerLossWeights,
    n_styles: int,
    seed: int,
) -> dict[str, float]:
    """Held-out NLL and descriptor errors, with fixed noise (comparable across steps)."""
    composer.eval()
    gen = torch.Generator(device=seq.move.device).manual_seed(seed)
    sums: dict[str, float] = {}
    n = 0
    for i in range(0, len(seq.windows), 256):
        rows = torch.arange(i, min(i + 256, len(seq.windows)))
        losses, _ = composer_losses(composer, regressor, critic, seq.batch(rows), w, n_styles, gen, train=False)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(rows)
        n += len(rows)
    composer.train()
    return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}
