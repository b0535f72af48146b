"""Motion descriptors for FID: kinetic (72-d) and geometric (32-d), our own definitions.

Both take world joint positions (N, 24, 3) in metres, y up, at ``fps``, and
return one vector per motion segment. They follow the spirit of the
features AIST++/FACT/Bailando/EDGE report FID_k and FID_g with (kinetic
energy per joint; boolean pose relations after Müller et al. 2005), but are
written from their definitions here, so the numbers are comparable between
our own systems, not with published tables.
"""

from __future__ import annotations

import numpy as np

from livedance.skeleton import JOINT_INDEX as J

KINETIC_DIM = 72
GEOMETRIC_DIM = 32


def kinetic_features(joints: np.ndarray, fps: float) -> np.ndarray:
    """(N, 24, 3) -> (72,): per joint, mean horizontal and vertical kinetic energy
    per unit mass (0.5 v^2, m^2/s^2) and mean mechanical power per unit mass |a . v| (m^2/s^3)."""
    v = np.gradient(joints, 1.0 / fps, axis=0)  # (N, 24, 3) m/s
    a = np.gradient(v, 1.0 / fps, axis=0)
    horizontal = 0.5 * (v[..., 0] ** 2 + v[..., 2] ** 2).mean(0)
    vertical = 0.5 * (v[..., 1] ** 2).mean(0)
    power = np.abs((a * v).sum(-1)).mean(0)
    return np.stack([horizontal, vertical, power], axis=-1).reshape(-1).astype(np.float64)


def _body_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame unit (left, forward) horizontal axes of the body, each (N, 3)."""
    left = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    left[:, 1] = 0.0
    left /= np.linalg.norm(left, axis=-1, keepdims=True).clip(1e-6)
    forward = np.cross(left, np.array([0.0, 1.0, 0.0]))  # SMPL: left x up = forward
    return left, forward


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle at ``b`` (radians) between segments b->a and b->c, each (N, 3)."""
    u, w = a - b, c - b
    cos = (u * w).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(w, axis=-1)).clip(1e-9)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def geometric_features(joints: np.ndarray, fps: float) -> np.ndarray:
    """(N, 24, 3) -> (32,): the fraction of frames in which each of 32 pose relations holds.

    14 relations per side (left, right) plus 4 whole-body ones; thresholds in
    metres, radians and m/s are scaled to an adult SMPL body.
    """
    p = joints
    left, forward = _body_frame(p)
    root, head, neck, chest = p[:, J["pelvis"]], p[:, J["head"]], p[:, J["neck"]], p[:, J["spine3"]]
    ground = np.percentile(p[:, [J["left_foot"], J["right_foot"]], 1], 5)
    speed = np.linalg.norm(np.gradient(p, 1.0 / fps, axis=0), axis=-1)  # (N, 24)
    rel: list[np.ndarray] = []
    for side, other in (("left", "right"), ("right", "left")):
        wrist, elbow, shoulder = p[:, J[f"{side}_wrist"]], p[:, J[f"{side}_elbow"]], p[:, J[f"{side}_shoulder"]]
        hip, knee, ankle, foot = p[:, J[f"{side}_hip"]], p[:, J[f"{side}_knee"]], p[:, J[f"{side}_ankle"]], p[:, J[f"{side}_foot"]]
        o_ankle = p[:, J[f"{other}_ankle"]]
        sign = 1.0 if side == "left" else -1.0
        rel += [
            wrist[:, 1] > head[:, 1],  # hand above head
            wrist[:, 1] > neck[:, 1],  # hand above shoulders
            ((wrist - chest) * forward).sum(-1) > 0.25,  # hand reaching forward
            ((wrist - chest) * forward).sum(-1) < -0.1,  # hand behind the body
            sign * ((wrist - shoulder) * left).sum(-1) > 0.35,  # arm out sideways
            _angle(shoulder, elbow, wrist) < 2.1,  # elbow bent (< 120 deg)
            np.abs(wrist[:, 1] - root[:, 1]) < 0.1,  # hand at hip height
            speed[:, J[f"{side}_wrist"]] > 1.5,  # hand moving fast
            foot[:, 1] > ground + 0.1,  # foot lifted
            ((ankle - o_ankle) * forward).sum(-1) > 0.2,  # foot in front of the other
            sign * ((ankle - root) * left).sum(-1) > 0.3,  # leg out sideways
            _angle(hip, knee, ankle) < 2.6,  # knee bent (< 150 deg)
            knee[:, 1] > hip[:, 1] - 0.2,  # knee raised
            speed[:, J[f"{side}_ankle"]] > 1.0,  # foot moving fast
        ]
    up = chest - root
    lean = np.arccos(np.clip(up[:, 1] / np.linalg.norm(up, axis=-1).clip(1e-9), -1.0, 1.0))
    rel += [
        np.linalg.norm(p[:, J["left_wrist"]] - p[:, J["right_wrist"]], axis=-1) > 0.9,  # arms wide
        np.linalg.norm(p[:, J["left_ankle"]] - p[:, J["right_ankle"]], axis=-1) > 0.5,  # wide stance
        root[:, 1] - ground < 0.75,  # crouching
        lean > 0.35,  # torso leaning (> 20 deg)
    ]
    out = np.stack(rel, axis=-1).mean(0).astype(np.float64)
    assert out.shape == (GEOMETRIC_DIM,)
    return out
