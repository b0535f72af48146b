"""Resampling motion in time: frame-rate conversion and time warps.

Rotations are interpolated on the sphere (quaternion slerp between the two
neighbouring frames), translations linearly, so a resampled pose is always a
valid pose and a slow turn stays a turn at any rate.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from livedance import skeleton as sk
from livedance.motion.clip import MotionClip


def continuous_quaternions(rotations: np.ndarray) -> np.ndarray:
    """(N, ..., 3, 3) -> (N, ..., 4) quaternions with signs chosen so consecutive frames agree.

    q and -q are the same rotation; without this a sign flip between two
    frames would make interpolation take the long way round.
    """
    q = sk.matrix_to_quaternion(np.asarray(rotations, dtype=np.float64))
    if q.shape[0] > 1:
        flip = (q[1:] * q[:-1]).sum(-1) < 0  # (N-1, ...)
        # A flip at frame i flips every later frame too: cumulative parity.
        parity = np.concatenate([np.zeros_like(flip[:1]), np.cumsum(flip, axis=0) % 2 == 1], axis=0)
        q = np.where(parity[..., None], -q, q)
    return q


def sample_motion(
    rotations: np.ndarray, trans: np.ndarray, frames: np.ndarray, quats: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample motion at fractional frame positions.

    Args:
        rotations: (N, J, 3, 3) local rotations.
        trans: (N, 3) root positions.
        frames: (M,) fractional frame indices; clamped to [0, N - 1].
        quats: optional precomputed ``continuous_quaternions(rotations)`` (N, J, 4),
            to save the conversion when sampling one motion many times.

    Returns:
        ``(rotations (M, J, 3, 3), trans (M, 3))``.
    """
    n = rotations.shape[0]
    frames = np.clip(np.asarray(frames, dtype=np.float64), 0.0, n - 1)
    i0 = np.floor(frames).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    t = frames - i0  # (M,)
    if quats is None:
        quats = continuous_quaternions(rotations)
    num_joints = rotations.shape[1]
    tj = np.broadcast_to(t[:, None], (t.shape[0], num_joints))
    q = sk.quaternion_slerp(quats[i0], quats[i1], tj)
    out_rot = sk.quaternion_to_matrix(q)
    out_trans = trans[i0] * (1.0 - t[:, None]) + trans[i1] * t[:, None]
    return out_rot, out_trans


def resample(clip: MotionClip, fps: float) -> MotionClip:
    """The clip at another frame rate, same duration (the last frame is not extrapolated)."""
    if abs(fps - clip.fps) < 1e-6:
        return clip
    count = int(np.floor((len(clip) - 1) * fps / clip.fps + 1e-9)) + 1
    frames = np.arange(count) * (clip.fps / fps)
    rot, trans = sample_motion(clip.rotations, clip.trans, frames)
    return replace(clip, rotations=rot, trans=trans, fps=float(fps))
