"""Music context: the per-unit descriptors the composer is conditioned on.

There is no paired music in the shipped data, so the composer never sees
audio. It sees four descriptors that can be measured from *both* sides:

* from the dance (training): ``tempo_bpm`` from the kinematic beats,
  ``energy`` as the mean joint speed over the unit (m/s, real time),
  ``busyness`` as defined by ``livedance.motion.descriptors``, ``style`` as
  the dataset/genre id;
* from the music (live): tempo from the beat tracker, and energy/busyness as
  *levels* in [0, 1] (e.g. RMS and onset density percentiles) that
  :class:`DescriptorStats` maps onto the training distribution by quantile,
  so "the loudest music we hear" asks for "the most energetic dancing we
  learnt" whatever the absolute scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

FloatOrArray = Union[float, np.ndarray]
IntOrArray = Union[int, np.ndarray]

#: Style id meaning "no preference": the composer is trained with it too.
ANY_STYLE = -1

#: Number of descriptor channels fed to the network (tempo, energy, busyness).
CONTEXT_DIM = 3


@dataclass
class MusicContext:
    """Music descriptors of the unit about to be generated.

    Each field is a plain number (same for every dancer) or a (B,) array
    (one per dancer). ``energy`` is in the dance's units (mean joint speed,
    m/s); use :meth:`DescriptorStats.context_from_levels` to build one from
    [0, 1] music levels.
    """

    tempo_bpm: FloatOrArray = 120.0
    energy: FloatOrArray = 1.0
    busyness: FloatOrArray = 0.5
    style: IntOrArray = ANY_STYLE
    #: Paired-data checkpoints only: the encoder input of the music heard so far,
    #: (units, steps, channels) from ``AudioInput.window``; None = not heard / not used.
    audio: np.ndarray | None = None

    def batched(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values (B, 3) float32 [tempo, energy, busyness], style (B,) int64)``."""
        cols = [np.broadcast_to(np.asarray(v, dtype=np.float32), (batch,)) for v in (self.tempo_bpm, self.energy, self.busyness)]
        style = np.broadcast_to(np.asarray(self.style, dtype=np.int64), (batch,))
        return np.stack(cols, axis=-1), style.copy()


@dataclass
class DescriptorStats:
    """Training-set statistics of the descriptors.

    ``mean``/``std`` standardise (log tempo, energy, busyness) for the
    network; ``quantiles`` (3, Q) hold the same three channels' empirical
    quantiles at evenly spaced levels in [0, 1] for level -> value mapping.
    """

    mean: np.ndarray  # (3,) of (log tempo, energy, busyness)
    std: np.ndarray  # (3,)
    quantiles: np.ndarray  # (3, Q) raw (tempo_bpm, energy, busyness)

    @classmethod
    def fit(cls, tempo: np.ndarray, energy: np.ndarray, busyness: np.ndarray, levels: int = 21) -> "DescriptorStats":
        raw = np.stack([tempo, energy, busyness]).astype(np.float64)
        net = raw.copy()
        net[0] = np.log(np.maximum(net[0], 1.0))
        q = np.quantile(raw, np.linspace(0.0, 1.0, levels), axis=1)
        return cls(
            mean=net.mean(1).astype(np.float32),
            std=np.maximum(net.std(1), 1e-3).astype(np.float32),
            quantiles=q.T.astype(np.float32),
        )

    def standardise(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(..., 3) raw (tempo_bpm, energy, busyness) -> (..., 3) network input.

        Tempo is taken in log scale: doubling the tempo is the same step at
        60 as at 120 BPM, which is how beat trackers err.
        """
        v = torch.as_tensor(values, dtype=torch.float32)
        v = torch.cat([torch.log(v[..., :1].clamp_min(1.0)), v[..., 1:]], dim=-1)
        return (v - torch.as_tensor(self.mean)) / torch.as_tensor(self.std)

    def level_to_value(self, channel: int, level: FloatOrArray) -> np.ndarray:
        """Map a level in [0, 1] to the training distribution of ``channel`` (0 tempo, 1 energy, 2 busyness)."""
        q = self.quantiles[channel]
        grid = np.linspace(0.0, 1.0, q.shape[0])
        return np.interp(np.clip(np.asarray(level, dtype=np.float64), 0.0, 1.0), grid, q).astype(np.float32)

    def context_from_levels(
        self, tempo_bpm: FloatOrArray, energy_level: FloatOrArray, busyness_level: FloatOrArray, style: IntOrArray = ANY_STYLE
    ) -> MusicContext:
        """Live helper: music tempo plus [0, 1] energy/busyness levels -> :class:`MusicContext`."""
        return MusicContext(
            tempo_bpm=np.asarray(tempo_bpm, dtype=np.float32),
            energy=self.level_to_value(1, energy_level),
            busyness=self.level_to_value(2, busyness_level),
            style=style,
        )

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in ("mean", "std", "quantiles")}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> "DescriptorStats":
        return cls(**{k: d[k].numpy() for k in ("mean", "std", "quantiles")})
