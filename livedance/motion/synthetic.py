"""Synthetic dances with known beats, for tests and demos that need no data files.

The body swings its arms and bends its knees once per beat, with a
cosine-shaped angle so every joint comes to rest exactly on a beat: the
kinematic beats (speed minima) are the given beat times, by construction.
"""

from __future__ import annotations

import numpy as np

from livedance import skeleton as sk
from livedance.motion.clip import MotionClip

_SWING_JOINTS = {  # SMPL joint -> (axis-angle direction, amplitude scale)
    "left_shoulder": ((0.0, 0.0, 1.0), 1.0),
    "right_shoulder": ((0.0, 0.0, -1.0), 1.0),
    "left_elbow": ((0.0, 1.0, 0.0), 0.6),
    "right_elbow": ((0.0, -1.0, 0.0), 0.6),
    "left_knee": ((1.0, 0.0, 0.0), 0.4),
    "right_knee": ((1.0, 0.0, 0.0), 0.4),
    "spine2": ((1.0, 0.0, 0.0), 0.15),
}


def synthetic_dance(
    beat_times: np.ndarray, fps: float = 60.0, amplitude: float = 0.8, seconds: float | None = None,
    travel: float = 0.0, name: str = "synthetic",
) -> MotionClip:
    """A dance whose joints stop exactly on ``beat_times``.

    Args:
        beat_times: (B,) increasing beat times, seconds (at least 2).
        fps: frame rate of the clip.
        amplitude: swing amplitude, radians.
        seconds: clip length (default: up to the last beat).
        travel: forward root speed, m/s (also paused on the beats).
        name: clip name.
    """
    beats = np.asarray(beat_times, dtype=np.float64)
    seconds = float(beats[-1]) if seconds is None else seconds
    t = np.arange(int(round(seconds * fps)) + 1) / fps
    # Beat phase: k * pi on beat k, linear between (extrapolated at the ends),
    # so cos(phase) turns round, with zero velocity, on every beat.
    k = np.arange(beats.size, dtype=np.float64)
    period0, period1 = beats[1] - beats[0], beats[-1] - beats[-2]
    phase = np.pi * np.interp(t, beats, k, left=np.nan, right=np.nan)
    phase = np.where(t < beats[0], np.pi * (t - beats[0]) / period0, phase)
    phase = np.where(t > beats[-1], np.pi * (k[-1] + (t - beats[-1]) / period1), phase)
    swing = amplitude * np.cos(phase)  # (N,)
    aa = np.zeros((t.size, sk.NUM_JOINTS, 3))
    for joint, (axis, scale) in _SWING_JOINTS.items():
        aa[:, sk.JOINT_INDEX[joint]] = np.outer(swing * scale, axis)
    # Knees stay bent (never straight through zero), swinging about 0.5 rad.
    for knee in ("left_knee", "right_knee"):
        aa[:, sk.JOINT_INDEX[knee], 0] += 0.5
    trans = np.zeros((t.size, 3))
    trans[:, 1] = sk.REST_PELVIS_HEIGHT
    # Forward travel that also stops on the beats: its speed ~ sin^2(phase).
    trans[:, 2] = travel * (phase - 0.5 * np.sin(2.0 * phase)) / np.pi * np.mean(np.diff(beats))
    return MotionClip(sk.axis_angle_to_matrix(aa), trans, fps, name=name)

