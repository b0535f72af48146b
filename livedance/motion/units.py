"""Dance units: the motion between kinematic beats, time-warped to a fixed length.

A unit spans ``BEATS_PER_UNIT`` beats of the dance's beat grid and is
resampled (slerp for rotations) to ``UNIT_FRAMES`` canonical frames, so tempo
lives in the warp, not in the unit: replayed onto faster beats, the same unit
simply plays faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livedance import skeleton as sk
from livedance.motion.clip import MotionClip
from livedance.motion.representation import FEATURE_DIM, motion_to_features
from livedance.motion.resample import sample_motion

#: Frame rate of the model side (features, decoder output).
MODEL_FPS = 30
#: Beats covered by one dance unit.
BEATS_PER_UNIT = 2
#: Canonical length of a unit, frames.
UNIT_FRAMES = 32


@dataclass(frozen=True)
class UnitCut:
    """Dance units cut from one clip.

    Attributes:
        features: (U, UNIT_FRAMES, 148) float32 canonical unit features.
        start: (U,) float64 first beat of each unit, fractional frames of the clip.
        end: (U,) float64 last beat (= next unit's start), fractional frames.
        joints: (U, UNIT_FRAMES + 1, 24, 3) canonical-frame joint positions,
            metres, including the closing beat's frame (for descriptors).
    """

    features: np.ndarray
    start: np.ndarray
    end: np.ndarray
    joints: np.ndarray

    def __len__(self) -> int:
        return int(self.features.shape[0])


def cut_units(clip: MotionClip, beats: np.ndarray) -> UnitCut:
    """Cut a clip into consecutive units of ``BEATS_PER_UNIT`` beats, warped to ``UNIT_FRAMES`` frames.

    Unit k spans beats ``[k * BEATS_PER_UNIT, (k + 1) * BEATS_PER_UNIT]``;
    the beats between are placed by a linear warp (the beat grid is locally
    even, so they land on canonical frames 0, 16, 32). Each unit is sampled
    on ``UNIT_FRAMES + 1`` frames, the extra one being the next unit's first
    frame, so even the last canonical frame knows its velocity.

    Args:
        clip: the motion.
        beats: (B,) increasing beat positions, fractional frames of ``clip``.
    """
    beats = np.asarray(beats, dtype=np.float64)
    count = max((beats.size - 1) // BEATS_PER_UNIT, 0)
    start = beats[0 : count * BEATS_PER_UNIT : BEATS_PER_UNIT]
    end = beats[BEATS_PER_UNIT : count * BEATS_PER_UNIT + 1 : BEATS_PER_UNIT]
    if count == 0:
        empty = np.zeros((0, UNIT_FRAMES, FEATURE_DIM), np.float32)
        return UnitCut(empty, start, end, np.zeros((0, UNIT_FRAMES + 1, sk.NUM_JOINTS, 3)))
    u = np.arange(UNIT_FRAMES + 1) / UNIT_FRAMES
    frames = start[:, None] + (end - start)[:, None] * u[None, :]  # (U, 33)
    rot, trans = sample_motion(clip.rotations, clip.trans, frames.reshape(-1))
    # One flat sequence: the velocity across a unit seam lands on the extra
    # frame of each unit, which is dropped, so flat == per-unit here.
    feats = motion_to_features(rot, trans).reshape(count, UNIT_FRAMES + 1, FEATURE_DIM)[:, :UNIT_FRAMES]
    joints = sk.forward_kinematics(rot, trans)[1].reshape(count, UNIT_FRAMES + 1, sk.NUM_JOINTS, 3)
    return UnitCut(np.ascontiguousarray(feats), start, end, joints)
