"""The idle groove: what a dancer does when there is no music to follow.

Arms down, knees soft, breathing, a slow weight shift and a small bounce on
the (last known) beat. Produced as per-frame features in the unit
representation so the engine can cross-fade dance and idle in one space.
"""

from __future__ import annotations

import numpy as np

from livedance import skeleton as sk

#: Base posture as axis-angle per joint (radians); SMPL's rest is a T-pose.
_POSTURE: dict[str, tuple[float, float, float]] = {
    "left_shoulder": (0.0, 0.0, -1.2),  # +x arm swung down
    "right_shoulder": (0.0, 0.0, 1.2),
    "left_collar": (0.0, 0.0, -0.1),
    "right_collar": (0.0, 0.0, 0.1),
    "left_elbow": (0.0, -0.35, 0.0),  # forearm slightly forward
    "right_elbow": (0.0, 0.35, 0.0),
    "left_hip": (-0.08, 0.0, 0.03),
    "right_hip": (-0.08, 0.0, -0.03),
    "left_knee": (0.16, 0.0, 0.0),
    "right_knee": (0.16, 0.0, 0.0),
    "left_ankle": (-0.08, 0.0, 0.0),
    "right_ankle": (-0.08, 0.0, 0.0),
}


def _axis_angle(entries: dict[str, tuple[float, float, float]]) -> np.ndarray:
    aa = np.zeros((sk.NUM_JOINTS, 3), dtype=np.float64)
    for name, v in entries.items():
        aa[sk.JOINT_INDEX[name]] = v
    return aa


_BASE = _axis_angle(_POSTURE)
_SPINE3 = sk.JOINT_INDEX["spine3"]
_PELVIS = sk.JOINT_INDEX["pelvis"]
_HIPS = [sk.JOINT_INDEX["left_hip"], sk.JOINT_INDEX["right_hip"]]
_HEAD = sk.JOINT_INDEX["head"]


def idle_features(t: float, beat_phase: np.ndarray | float, seeds: np.ndarray) -> np.ndarray:
    """(B, 148) idle features at music time ``t`` for B dancers.

    Args:
        t: seconds; drives breathing (0.25 Hz) and weight shift (0.12 Hz).
        beat_phase: beat phase in [0, 1) (scalar or (B,)) for the soft bounce.
        seeds: (B,) integers giving each dancer its own timing.
    """
    seeds = np.asarray(seeds)
    b = seeds.shape[0]
    offset = (seeds * 0.6180339887) % 1.0  # golden-ratio spread: dancers never in lockstep
    breath = np.sin(2 * np.pi * (0.25 * t + offset))
    sway = np.sin(2 * np.pi * (0.12 * t + offset))
    bounce = 0.5 * (1 + np.cos(2 * np.pi * np.asarray(beat_phase, dtype=np.float64)))
    aa = np.repeat(_BASE[None], b, axis=0)
    aa[:, _SPINE3, 0] += 0.04 * breath
    aa[:, _HEAD, 0] -= 0.03 * breath
    aa[:, _PELVIS, 2] += 0.05 * sway  # weight onto one leg ...
    aa[:, _HIPS[0], 2] -= 0.05 * sway  # ... legs stay planted under it
    aa[:, _HIPS[1], 2] -= 0.05 * sway
    aa[:, _PELVIS, 1] += 0.08 * sway
    rot6d = sk.matrix_to_rot6d(sk.axis_angle_to_matrix(aa)).reshape(b, -1)
    height = sk.REST_PELVIS_HEIGHT - 0.03 - 0.015 * bounce * np.ones(b)
    feats = np.zeros((b, 4 + rot6d.shape[1]), dtype=np.float32)
    feats[:, 0] = height
    feats[:, 4:] = rot6d
    return feats
