"""The composer's music encoder (paired-data checkpoints only).

Descriptor-only checkpoints (the shipped one) condition the composer on
tempo, energy and busyness. A checkpoint trained on paired music and dance
(``livedance train composer --music DIR``) also hears the music: per unit,
a *window* of the ``units`` most recent dance units' audio, each as
``steps`` slices of the streaming features pooled over its beats
(:mod:`livedance.music.unit_features`). :class:`MusicEncoder` turns the
window into a code that joins the composer's conditioning.

The window ends ``lag`` units before the unit being composed: live, the
engine composes unit k as unit k-1 starts to play, when the music of unit
k-1 has not been heard yet, so training with ``lag = 2`` shows the composer
exactly as much of the music as it will have on stage. ``lag = 0`` is the
paper's offline set-up (the unit's own music), for offline use only.

:class:`AudioInput` is the checkpoint's ``audio`` field: the feature
settings the encoder was trained with and the statistics that standardise
its input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from livedance.config import FeatureSettings
from livedance.music.features import FeatureBlock
from livedance.music.unit_features import beat_phase, measured_dim, pool_units

#: Channels added to the measured ones: sin/cos beat phase, and 1 where there is audio (0 = padding).
EXTRA_CHANNELS = 3
#: Per-unit summaries the heard levels read: mean level, its spread over the slices, share present.
LEVEL_FEATURES = 3


@dataclass
class AudioInput:
    """What an audio-conditioned checkpoint expects to hear, and how to standardise it.

    Attributes:
        sample_rate, hop: the analysis rate (``audio.sample_rate``, ``audio.hop``).
        features: the ``[features]`` settings (as a dict) the encoder was trained with.
        steps: slices per unit; units: units per window; lag: units between
            the window's end and the unit being composed.
        mean, std: (C,) statistics of the measured channels over the training units.
    """

    sample_rate: int
    hop: int
    features: dict[str, Any]
    steps: int
    units: int
    lag: int
    mean: np.ndarray
    std: np.ndarray

    @property
    def settings(self) -> FeatureSettings:
        return FeatureSettings(**self.features)

    @property
    def channels(self) -> int:
        """Channels per slice the encoder reads (measured + phase + presence)."""
        return measured_dim(self.settings) + EXTRA_CHANNELS

    def standardise(self, pooled: np.ndarray) -> np.ndarray:
        """(..., steps, C) output of ``pool_units`` -> (..., steps, channels) encoder input."""
        x = (np.asarray(pooled, np.float32) - self.mean) / self.std
        phase = np.broadcast_to(beat_phase(self.steps), x.shape[:-1] + (2,))
        present = np.ones(x.shape[:-1] + (1,), np.float32)
        return np.concatenate([x, phase, present], axis=-1).astype(np.float32)

    def window(self, block: FeatureBlock, beats: np.ndarray) -> np.ndarray:
        """Live: the encoder input (units, steps, channels) from the heard hops and
        tracked beat times; the newest unit ends on the last beat, units missing
        at the start of a song are zeros (as before a take's start in training)."""
        out = np.zeros((self.units, self.steps, self.channels), np.float32)
        beats = np.asarray(beats, dtype=np.float64)
        have = min(self.units, max(len(beats) - 1, 0) // 2)
        if have == 0 or len(block) == 0:
            return out
        bounds = beats[len(beats) - 1 - 2 * have :: 2]  # have + 1 unit boundaries, two beats apart
        out[self.units - have :] = self.standardise(pool_units(block, bounds[:-1], bounds[1:], self.steps))
        return out

    def silence(self) -> np.ndarray:
        """An all-padding window (nothing heard yet)."""
        return np.zeros((self.units, self.steps, self.channels), np.float32)

    def check(self, sample_rate: int, hop: int, settings: FeatureSettings) -> str | None:
        """None if live analysis at these settings matches training; else what differs."""
        if (int(sample_rate), int(hop)) != (self.sample_rate, self.hop):
            return f"audio.sample_rate/hop {sample_rate}/{hop} (trained with {self.sample_rate}/{self.hop})"
        mine = asdict(settings)
        for key, value in self.features.items():
            if mine.get(key) != value:
                return f"features.{key} = {mine.get(key)!r} (trained with {value!r})"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": int(self.sample_rate), "hop": int(self.hop), "features": dict(self.features),
            "steps": int(self.steps), "units": int(self.units), "lag": int(self.lag),
            "mean": torch.from_numpy(np.ascontiguousarray(self.mean, np.float32)),
            "std": torch.from_numpy(np.ascontiguousarray(self.std, np.float32)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioInput":
        mean, std = d["mean"].numpy(), d["std"].numpy()
        return cls(int(d["sample_rate"]), int(d["hop"]), dict(d["features"]), int(d["steps"]), int(d["units"]),
                   int(d["lag"]), mean, std)


class MusicEncoder(nn.Module):
    """Window (..., units, steps, channels) -> music code (..., code_dim).

    Per-slice projection, then two strided causal convolutions over the
    window's slices in time order; the code is the last output (the newest
    music) next to the mean (the window's overall level).

    With ``levels``, :meth:`heard_levels` also gives the standardised
    (energy, busyness) the music heard asks of the unit to compose: a linear
    read of how loud the window is (the mean over the measured channels, and
    its spread over the slices) in its newest unit and over the whole window.
    The composer reads them where a descriptor-only composer reads the
    descriptors measured on the dance, and training fits them to those
    descriptors (an auxiliary loss, ``ComposerLossWeights.levels``). Why:
    trained end to end on the likelihood alone, the encoder learnt almost
    nothing (the previous unit's movement code tells the composer as much
    about the next unit's energy as 2-units-old music does); and a levels
    head on the code itself learnt which training take it heard (by its
    spectrum) rather than how loud it is, and failed on held-out music
    (docs/training.md). A summary over all bands cannot tell takes apart.
    """

    def __init__(self, channels: int, code_dim: int, width: int = 64, levels: bool = False) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(channels, width), nn.LeakyReLU(0.2))
        self.conv = nn.ModuleList([nn.Conv1d(width, width, 4, stride=2), nn.Conv1d(width, width, 4, stride=2)])
        self.out = nn.Linear(2 * width, code_dim)
        self.levels = nn.Linear(2 * LEVEL_FEATURES, 2) if levels else None
        if self.levels is not None:  # hearing starts at the training mean: Adam moves it the right way from step 1
            nn.init.zeros_(self.levels.weight)
            nn.init.zeros_(self.levels.bias)

    def heard_levels(self, window: torch.Tensor) -> torch.Tensor:
        """Window (..., units, steps, channels) -> (..., 2) standardised (energy, busyness) it asks for."""
        if self.levels is None:
            raise ValueError("this music encoder was trained without levels")
        present = window[..., -1]  # (..., units, steps): 1 = music, 0 = padding
        level = window[..., : -EXTRA_CHANNELS].mean(-1)  # over all measured channels: loudness, not timbre
        heard = present.sum(-1)
        per_unit = torch.stack(
            [(level * present).sum(-1) / heard.clamp_min(1.0), level.std(-1, unbiased=False), present.mean(-1)], dim=-1
        )  # (..., units, LEVEL_FEATURES)
        return self.levels(torch.cat([per_unit[..., -1, :], per_unit.mean(-2)], dim=-1))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        lead = window.shape[:-3]
        x = self.proj(window.reshape(-1, window.shape[-3] * window.shape[-2], window.shape[-1])).transpose(1, 2)
        for conv in self.conv:
            # Left padding only: an output never sees a later slice.
            x = nn.functional.leaky_relu(conv(nn.functional.pad(x, (conv.kernel_size[0] - conv.stride[0], 0))), 0.2)
        code = self.out(torch.cat([x[..., -1], x.mean(-1)], dim=-1))
        return code.reshape(*lead, -1)
