"""Turn raw device/file samples into clean mono float32 at the analysis rate.

Runs on the consumer side (never in an audio callback). It is streaming, and
the offline path pushes a whole file through the same object, so a file read
at once and a file read hop by hop give the same samples.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import lfilter

# One-pole DC blocker pole. 0.995 at 22.05 kHz is a ~18 Hz corner: removes
# DC offset and rumble without touching kick drums (>= 40 Hz).
_DC_POLE = 0.995
# Samples beyond this are treated as broken (not just clipped) input.
_LIMIT = 8.0

MIN_RATE = 8000
MAX_RATE = 384000


def mix_down(block: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,) float32 mean of channels."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
        return block
    return block.mean(axis=1, dtype=np.float32)


class Conditioner:
    """NaN/inf removal, resampling to ``out_rate`` and DC removal, hop by hop."""

    def __init__(self, in_rate: float, out_rate: int) -> None:
        self.in_rate = float(in_rate)
        self.out_rate = int(out_rate)
        self._resampler = (
            None if self.in_rate == self.out_rate else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32")
        )
        self._zi = np.zeros(1)
        self.bad_samples = 0  # NaN/inf samples replaced by 0

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.array(mono, dtype=np.float32, copy=True)
        finite = np.isfinite(x)
        if not finite.all():
            self.bad_samples += int(x.size - finite.sum())
            x[~finite] = 0.0
        np.clip(x, -_LIMIT, _LIMIT, out=x)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=last)
        if x.shape[0] == 0:  # the resampler is still filling its delay line
            return np.zeros(0, dtype=np.float32)
        y, self._zi = lfilter([1.0, -1.0], [1.0, -_DC_POLE], x, zi=self._zi)
        return y.astype(np.float32)
