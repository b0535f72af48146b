"""Music features of a dance unit: the streaming features pooled over the unit's beats.

The composer's music encoder reads, per dance unit (two beats), ``steps``
equal slices of the unit's beats, each holding the mean over its hops of the
:class:`~livedance.music.features.FeatureExtractor` outputs the live engine
computes anyway: log-mel (dB), onset strength, RMS (as dB) and chroma when
enabled. Training pools a whole song's features over the dance's beats;
the engine pools the hops it has heard over the beats it has tracked. Both
call :func:`pool_units` on the same extractor's output, so training sees
what the live engine hears.
"""

from __future__ import annotations

import numpy as np

from livedance.config import FeatureSettings
from livedance.music.features import FeatureBlock

#: RMS floor before taking dB (about -100 dBFS): digital silence stays finite.
RMS_FLOOR = 1e-5


def measured_dim(settings: FeatureSettings) -> int:
    """Channels per slice :func:`pool_units` returns: log-mel, onset, RMS dB (, chroma)."""
    return int(settings.n_mels) + 2 + (12 if settings.chroma else 0)


def _channels(block: FeatureBlock) -> np.ndarray:
    """(n, C) per-hop channels in :func:`measured_dim` order."""
    cols = [block.log_mel, block.onset[:, None], 20.0 * np.log10(np.maximum(block.rms, RMS_FLOOR))[:, None]]
    if block.chroma is not None:
        cols.append(block.chroma)
    return np.concatenate(cols, axis=1).astype(np.float64)


def pool_units(block: FeatureBlock, starts: np.ndarray, ends: np.ndarray, steps: int) -> np.ndarray:
    """Mean features of ``steps`` equal slices of each unit ``[starts[u], ends[u])`` (seconds).

    A hop belongs to the slice in which its audio was complete (``block.times``).
    A slice shorter than a hop takes the nearest earlier hop, so every slice
    of a unit inside the heard audio has features.

    Returns:
        (U, steps, C) float32, C = :func:`measured_dim`.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    feats = _channels(block)
    n = feats.shape[0]
    if n == 0:
        return np.zeros((starts.shape[0], steps, feats.shape[1]), np.float32)
    frac = np.arange(steps + 1) / steps
    edges = starts[:, None] + (ends - starts)[:, None] * frac[None, :]  # (U, steps + 1)
    idx = np.searchsorted(block.times, edges, side="left")  # first hop at or after each edge
    lo, hi = idx[:, :-1], idx[:, 1:]
    csum = np.concatenate([np.zeros((1, feats.shape[1])), np.cumsum(feats, axis=0)])
    count = hi - lo
    mean = (csum[hi] - csum[lo]) / np.maximum(count, 1)[..., None]
    empty = count == 0
    if empty.any():
        mean[empty] = feats[np.clip(lo[empty] - 1, 0, n - 1)]
    return mean.astype(np.float32)


def beat_phase(steps: int, beats_per_unit: int = 2) -> np.ndarray:
    """(steps, 2) sin/cos of the beat phase at each slice's centre (where in its beat it lies)."""
    centre = (np.arange(steps) + 0.5) / steps * beats_per_unit
    angle = 2.0 * np.pi * (centre % 1.0)
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)
