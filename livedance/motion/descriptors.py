"""Per-unit dance descriptors: the dance side of the music conditioning.

The shipped data has no music, so the composer is conditioned on quantities
that can be measured both from a dance (here, for training) and from music
(live, in ``livedance.music``):

* ``tempo`` (BPM): the unit spans ``BEATS_PER_UNIT`` beats of the dance's
  beat grid, so tempo = 60 * beats / duration;
* ``energy`` (m/s): mean joint speed over the unit in real time (before
  warping), the loudness analogue;
* ``busyness`` (0..1): the fraction of the unit's motion energy above the
  beat frequency. Motion energy is the power of the joint velocities; the
  unit's canonical frames span exactly ``BEATS_PER_UNIT`` beats, so in a
  Hann-windowed FFT over its ``UNIT_FRAMES`` velocity frames the beat
  frequency is bin ``BEATS_PER_UNIT`` and "above" is every higher bin. A
  dance that moves once per beat scores low (about 0.1, the window's
  leakage), one moving on every half-beat or faster scores high. The music
  analogue is the share of onset strength between beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livedance.motion.kinematic_beats import mean_joint_speed
from livedance.motion.units import BEATS_PER_UNIT, UnitCut


@dataclass(frozen=True)
class UnitDescriptors:
    """(U,) float32 arrays, one value per unit."""

    tempo: np.ndarray
    energy: np.ndarray
    busyness: np.ndarray


def unit_busyness(canonical_joints: np.ndarray) -> np.ndarray:
    """(U, T + 1, J, 3) canonical-frame joints of units spanning BEATS_PER_UNIT beats -> (U,) busyness."""
    vel = np.diff(canonical_joints, axis=1)  # (U, T, J, 3)
    vel = vel - vel.mean(axis=1, keepdims=True)  # net travel is not rhythm
    window = np.hanning(vel.shape[1])[None, :, None, None]
    power = (np.abs(np.fft.rfft(vel * window, axis=1)) ** 2).sum(axis=(2, 3))  # (U, T // 2 + 1)
    total = power[:, 1:].sum(axis=1)
    above = power[:, BEATS_PER_UNIT + 1 :].sum(axis=1)
    return np.where(total > 1e-12, above / np.maximum(total, 1e-12), 0.0)


def describe_units(cut: UnitCut, joints: np.ndarray, fps: float) -> UnitDescriptors:
    """Descriptors of the units of one clip.

    Args:
        cut: the units (their real-time spans and canonical joints).
        joints: (N, J, 3) the clip's joint positions at ``fps`` (real time).
        fps: frame rate of ``joints`` and of ``cut.start``/``cut.end``.
    """
    tempo = 60.0 * fps * BEATS_PER_UNIT / np.maximum(cut.end - cut.start, 1e-9)
    speed = mean_joint_speed(joints, fps)
    cum = np.concatenate([[0.0], np.cumsum(speed)])
    a = np.clip(np.round(cut.start).astype(np.int64), 0, speed.size)
    b = np.clip(np.round(cut.end).astype(np.int64), 0, speed.size)
    energy = (cum[b] - cum[a]) / np.maximum(b - a, 1)
    return UnitDescriptors(
        tempo=tempo.astype(np.float32),
        energy=energy.astype(np.float32),
        busyness=unit_busyness(cut.joints).astype(np.float32),
    )
