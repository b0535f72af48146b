"""The model the live engine runs: unit VAE + composer + normalisation stats.

Usage (what the engine does, once per unit, ahead of time)::

    model = load_checkpoint()                     # livedance.model.checkpoint
    state = model.new_state(batch=2, seed=7)      # two dancers
    ctx = model.descriptors.context_from_levels(tempo_bpm=124, energy_level=0.8, busyness_level=0.5)
    feats, state = model.next_unit(state, ctx, temperature=1.0)   # (2, 32, 148) float32

``feats`` are denormalised per-frame features in the contract representation
(``livedance.motion.representation``), continuing from the previous unit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from livedance.errors import UserError
from livedance.model.beat_align import accent_beats, accent_strength, align_beats
from livedance.model.composer import Composer, LSTMState
from livedance.model.context import ANY_STYLE, DescriptorStats, MusicContext
from livedance.model.realism import UnitLimits, unit_measures
from livedance.model.device import state_to
from livedance.model.music_encoder import AudioInput
from livedance.model.vae import UnitVAE
from livedance.motion.envelope import MotionEnvelope
from livedance.motion.foot_plant import plant_feet

#: Frames over which a unit's start is eased onto the previous unit's end.
SEAM_FRAMES = 8
#: The most beat accent a unit gets (see ``accent_beats``: its speed at the
#: beat drops to 0.1 of its own, the dip 0.1 beat wide); each unit gets the
#: weakest that makes it hit its beats (``accent_strength``). The old fixed
#: cosine accent of 0.5 (0.7 where that was not enough) made the body pump on
#: every beat: smoothed speed at the beats 0.3-0.5 of mid-beat, where real
#: takes keep 0.70-1.21 (p5-p95); this gives 0.50-0.53 at 75-160 BPM with beat
#: offsets 29-37 ms (a shallower accent reaches 0.59-0.66 only at 40-80 ms).
BEAT_ACCENT = 1.2
#: The least a unit's smoothed speed at its beats may be, as a share of its
#: mid-beat speed, once accented (``accent_strength``'s floor), when dancers
#: hit the beat as real dancers do. Real takes keep 0.70-1.21 (p5-p95, median
#: 0.87); on the engine's output (seams, foot planting) a floor of 0.75 left 11
#: of 40 ``bench motion`` cells under 0.70, 0.85 none.
BEAT_FLOOR = 0.85


def beat_floor(hit: float) -> float:
    """The staccato floor for a beat hit of 0 (as real dancers, :data:`BEAT_FLOOR`) to 1 (none: a stop on every beat)."""
    return BEAT_FLOOR * (1.0 - min(max(float(hit), 0.0), 1.0))


#: Draws of another unit when one would leave the envelope at its playback rate.
REDRAWS = 3
#: One unit may reach this many times the envelope's median speed, skate and
#: per-frame move (a unit is livelier than a whole take's median). At 1.5 the
#: foot skate of loud 160 BPM music and the demo stayed 3% over the issue's
#: 1.2x of the typical style; 1.25 keeps every measured cell inside.
UNIT_SLACK = 1.25
#: Default foot planting (see ``plant_feet``). 0.75 was chosen on the validation
#: takes: it lowers the foot contact score by 38%; full planting (1.0) by 47%, but
#: it costs 28% in FID_g (legs straighten to reach far pins) where 0.75 costs 12%.
#: 0.8 keeps the foot skate of every ``bench motion`` cell inside the envelope
#: (at 0.75, 120 BPM and the demo skated 0.92-0.94 m/s, limit 0.88) at no cost
#: on the test takes (FID_k 47 vs 48, FID_g 30 vs 37 at seed 0; docs/model.md).
FOOT_PLANT = 0.8


@dataclass(frozen=True)
class ComposerState:
    """Everything a dancer carries from one unit to the next (immutable; ``next_unit`` returns a new one).

    Tensors are normalised model-space features/codes, batch-first.
    """

    lstm: LSTMState | None  # composer memory, (layers, B, H) x 2
    prev_move: torch.Tensor  # (B, Zm) movement code of the previous unit (zeros at the start)
    last_frames: torch.Tensor  # (B, 2, D) the previous unit's last two frames
    rng: torch.Tensor  # torch.Generator state: sampling is reproducible per seed
    units: int  # units generated so far

    @property
    def batch(self) -> int:
        return int(self.prev_move.shape[0])

    def rows(self, rows: np.ndarray) -> "ComposerState":
        """The state of dancers ``rows`` (indices into the batch; a repeated row
        starts a new dancer as a copy of that one, which the sampling noise then
        sets apart from the next unit on)."""
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.prev_move.device)
        lstm = None if self.lstm is None else (self.lstm[0][:, idx].clone(), self.lstm[1][:, idx].clone())
        return replace(self, lstm=lstm, prev_move=self.prev_move[idx].clone(), last_frames=self.last_frames[idx].clone())


@dataclass
class NormStats:
    """Per-feature mean/std of the training data (the model works in normalised space)."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    #: Features that never move in the data (e.g. retargeted hands) get this
    #: std floor, so they stay put instead of amplifying noise.
    MIN_STD = 1e-2

    @classmethod
    def fit(cls, units: np.ndarray) -> "NormStats":
        flat = units.reshape(-1, units.shape[-1]).astype(np.float64)
        return cls(flat.mean(0).astype(np.float32), np.maximum(flat.std(0), cls.MIN_STD).astype(np.float32))


class DanceModel(nn.Module):
    """Unit VAE + composer + the statistics needed to speak the contract representation."""

    def __init__(
        self,
        vae: UnitVAE,
        composer: Composer,
        norm: NormStats,
        descriptors: DescriptorStats,
        start_poses: np.ndarray,
        style_names: list[str],
        start_styles: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.vae = vae
        self.composer = composer
        self.descriptors = descriptors
        self.style_names = list(style_names)
        self.register_buffer("feat_mean", torch.as_tensor(norm.mean, dtype=torch.float32))
        self.register_buffer("feat_std", torch.as_tensor(norm.std, dtype=torch.float32))
        # (S, 2, D) normalised pairs of consecutive real frames a dance may start from.
        self.register_buffer("start_poses", torch.as_tensor(start_poses, dtype=torch.float32))
        # (S,) style of each start pose, so a dancer can start in the style it will dance.
        styles = np.full(len(start_poses), ANY_STYLE) if start_styles is None else np.asarray(start_styles)
        self.register_buffer("start_styles", torch.as_tensor(styles, dtype=torch.long))
        seam = torch.zeros(vae.cfg.unit_frames)
        n = min(SEAM_FRAMES, vae.cfg.unit_frames)
        seam[:n] = 0.5 * (1 + torch.cos(torch.linspace(0, torch.pi, n + 1)[:n]))
        self.register_buffer("seam_weight", seam, persistent=False)
        #: Re-time each unit so its kinematic beats land on the music beats.
        self.align_beats = True
        #: The most a unit slows down on its beats (0 = as decoded); see ``accent_strength``.
        self.beat_accent = BEAT_ACCENT
        #: How staccato the accent may make a unit (speed at beat / mid-beat); see ``accent_strength``.
        self.beat_floor = BEAT_FLOOR
        #: Draws of another unit when one would leave the realism envelope (0 = never); see ``next_unit``.
        self.redraws = REDRAWS
        #: How far one unit may exceed the envelope's medians (see ``UnitLimits.from_envelope``).
        self.unit_slack = UNIT_SLACK
        #: Units drawn again so far (for benchmarks and logs).
        self.redrawn = 0
        #: How firmly feet near the floor are held where they landed (0 = as decoded); see ``plant_feet``.
        self.foot_plant = FOOT_PLANT
        #: Training metadata of the checkpoint it came from (command, steps, validation).
        self.meta: dict[str, Any] = {}
        #: The real dance's envelope per style (``livedance.motion.envelope``), from the
        #: checkpoint; None for checkpoints made before it was stored.
        self.envelope: MotionEnvelope | None = None
        #: What a paired-data composer hears (``AudioInput``); None = descriptor-only.
        self.audio: AudioInput | None = None
        #: The checkpoint file it was loaded from (a CPU fall-back reloads it when the GPU is lost).
        self.source: str | None = None
        self.eval()

    @property
    def device(self) -> torch.device:
        """Where the model computes (move it with ``.to(device)``; states follow it in ``next_unit``)."""
        return self.feat_mean.device

    @property
    def unit_frames(self) -> int:
        return self.vae.cfg.unit_frames

    @property
    def feature_dim(self) -> int:
        return self.vae.cfg.feature_dim

    def normalise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.feat_mean) / self.feat_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.feat_std + self.feat_mean

    def new_state(self, batch: int, seed: int, style: int = ANY_STYLE) -> ComposerState:
        """A fresh dancer state per batch element, starting from real poses picked by ``seed``
        (among poses of ``style``, when the checkpoint has some)."""
        # The start poses are drawn on the CPU whatever the device, so a seed
        # starts the same dance everywhere; the unit noise then comes from a
        # generator on the model's device (no host round trip per unit).
        dev = self.device
        gen = torch.Generator().manual_seed(int(seed))
        pool = torch.arange(self.start_poses.shape[0])
        if style != ANY_STYLE:
            self._check_style(np.array([style]))
            same = pool[(self.start_styles == style).cpu()]
            pool = same if len(same) else pool
        idx = pool[torch.randint(0, len(pool), (batch,), generator=gen)]
        rng = gen if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(int(seed))
        return ComposerState(
            lstm=None,
            prev_move=torch.zeros(batch, self.composer.cfg.move_dim, device=dev),
            last_frames=self.start_poses[idx.to(dev)].clone(),
            rng=rng.get_state(),
            units=0,
        )

    def _check_style(self, style: np.ndarray) -> None:
        bad = (style != ANY_STYLE) & ((style < 0) | (style >= len(self.style_names)))
        if bad.any():
            raise UserError(
                f"style {int(style[bad][0])} is unknown to this checkpoint "
                f"(use {ANY_STYLE} for any, or 0..{len(self.style_names) - 1}: {', '.join(self.style_names)})"
            )

    @torch.inference_mode()
    def next_unit(
        self, state: ComposerState, context: MusicContext, temperature: float = 1.0, unit_seconds: float | None = None
    ) -> tuple[np.ndarray, ComposerState]:
        """Compose, decode and denormalise the next unit of every dancer.

        ``unit_seconds`` is how long the unit will play (its two dance beats),
        if known: the beat accent is judged at that rate, and a unit that would
        leave the checkpoint's realism envelope at it is drawn again.

        Returns:
            ``(features (B, T, D) float32, new state)``; ``state`` is not modified.
        """
        dev = self.device
        state = state_to(state, dev)  # made on another device (before a fall-back to the CPU)
        b = state.batch
        values, style = context.batched(b)
        self._check_style(style)
        ctx = self.descriptors.standardise(values).to(dev)  # (B, 3)
        style_t = torch.from_numpy(style).to(dev)
        last, before = state.last_frames[:, 1], state.last_frames[:, 0]
        z_init = self.vae.init_encoder(last).mu  # the unit starts where the last one ended
        audio = None
        if self.audio is not None:  # paired-data checkpoint: the window of music heard so far
            window = context.audio if context.audio is not None else self.audio.silence()
            audio = torch.as_tensor(np.asarray(window, np.float32), device=dev).expand(b, 1, *window.shape[-3:])
        q, lstm = self.composer(state.prev_move[:, None], z_init[:, None], ctx[:, None], style_t[:, None], state.lstm, audio)
        gen = torch.Generator(device=dev)
        gen.set_state(state.rng)
        z_move = q.sample(gen, float(temperature))[:, 0]
        start = last + (last - before)  # one frame-step beyond the previous end
        feats = self._render(z_init, z_move, start, unit_seconds)
        limits = self._limits(style) if unit_seconds is not None and self.redraws > 0 else None
        if limits is not None:
            # A unit that would leave the realism envelope at the rate it will
            # be played is drawn again (the same seed draws the same units),
            # keeping per dancer the draw that exceeds it least.
            excess = limits.excess(unit_measures(feats, unit_seconds))
            for _ in range(self.redraws):
                over = excess > 1.0
                if not bool(over.any()):
                    break
                z_other = q.sample(gen, float(temperature))[:, 0]
                other = self._render(z_init, z_other, start, unit_seconds)
                better = limits.excess(unit_measures(other, unit_seconds))
                take = over & (better < excess)
                feats = torch.where(take[:, None, None], other, feats)
                z_move = torch.where(take[:, None], z_other, z_move)
                excess = torch.where(take, better, excess)
                self.redrawn += int(take.sum())
        x = self.normalise(feats)  # the state carries what was actually danced
        new_state = replace(
            state, lstm=lstm, prev_move=z_move, last_frames=x[:, -2:].clone(), rng=gen.get_state(), units=state.units + 1
        )
        # The one copy to the host per unit (B x T x D floats).
        return feats.cpu().numpy().astype(np.float32, copy=False), new_state

    def _render(
        self, z_init: torch.Tensor, z_move: torch.Tensor, start: torch.Tensor, unit_seconds: float | None
    ) -> torch.Tensor:
        """Codes -> the unit as danced (B, T, D): decoded, eased onto ``start``,
        denormalised, beat-aligned, accented and foot-planted."""
        feats = self.denormalise(self._ease_seam(self.vae.decode(z_init, z_move), start))
        if self.align_beats:
            feats = align_beats(feats)
        if self.beat_accent > 0.0:
            feats = accent_beats(feats, accent_strength(feats, unit_seconds, self.beat_accent, floor=self.beat_floor))
        return plant_feet(feats, self.foot_plant)

    def _limits(self, style: np.ndarray) -> UnitLimits | None:
        """Bounds of one unit from the checkpoint's envelope (None without one), for
        the dancers' style when they share one, else for any style."""
        envelope = getattr(self, "envelope", None)
        if envelope is None:
            return None
        one = int(style[0]) if (style == style[0]).all() else ANY_STYLE
        name = self.style_names[one] if one != ANY_STYLE else None
        return UnitLimits.from_envelope(envelope, name if name in envelope.styles else None, self.unit_slack)

    def _ease_seam(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Shift the first frames' *pose* so frame 0 lands on ``target`` (B, D), fading out over SEAM_FRAMES.

        The initial-pose code is a lossy summary of the previous end pose (on
        purpose, see ``UnitDecoder``); the gap would pop at every seam.
        Velocities are left alone.
        """
        offset = (target - x[:, 0]) * self.vae.pose_mask  # (B, D)
        return x + self.seam_weight[None, :, None] * offset[:, None, :]
