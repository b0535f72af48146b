"""Dance quality metrics on world joint positions (N, 24, 3), metres, y up.

Beat alignment lives in ``livedance.motion.kinematic_beats`` and foot skating,
frame jumps and jerk in ``livedance.motion.envelope`` (one definition each
for the whole project); this module holds the rest.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from livedance.motion.envelope import foot_skating, frame_jumps, jerk_magnitudes, resample_joints
from livedance.skeleton import JOINT_INDEX as J

# Foot skating and frame jumps are measured with the envelope's own functions
# (one ruler for data, engine and eval); re-exported here for the eval report.
__all__ = ["diversity", "foot_contact_score", "foot_skating", "frame_jumps", "frechet_distance", "jitter", "normalise_pair"]

#: EDGE's physical foot contact score is defined on 30 fps motion.
PFC_FPS = 30.0


def normalise_pair(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both (N, F) feature sets by the reference set's mean/std (std floored)."""
    mu, sd = reference.mean(0), reference.std(0)
    sd = np.where(sd < 1e-8, 1.0, sd)
    return (reference - mu) / sd, (other - mu) / sd


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, F) and (M, F) feature sets."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eps = 1e-6 * np.eye(a.shape[1])  # few samples: keep the covariances invertible
    covmean = np.real(linalg.sqrtm((s1 + eps) @ (s2 + eps)))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2.0 * covmean))


def diversity(feats: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between the rows of (N, F)."""
    if len(feats) < 2:
        return 0.0
    d = np.linalg.norm(feats[:, None, :] - feats[None, :, :], axis=-1)
    n = len(feats)
    return float(d.sum() / (n * (n - 1)))


def foot_contact_score(joints: np.ndarray, fps: float) -> float:
    """EDGE's physical foot contact score (Tseng et al., CVPR 2023), lower is better.

    Per frame: the root's horizontal acceleration and upward acceleration
    (falling needs no contact, so downward is ignored), normalised by its
    maximum over the motion, times each foot's speed (the slower of its
    ankle and toe), left times right: a body that accelerates while neither
    foot is planted scores high. Computed at 30 fps, mean x 10^4 as EDGE.
    """
    p = resample_joints(joints, fps, PFC_FPS)
    root_v = np.diff(p[:, J["pelvis"]], axis=0)
    root_a = np.diff(root_v, axis=0)
    root_a[:, 1] = np.maximum(root_a[:, 1], 0.0)
    a = np.linalg.norm(root_a, axis=-1)
    a = a / max(a.max(), 1e-12)
    feet = p[:, [J["left_ankle"], J["left_foot"], J["right_ankle"], J["right_foot"]]]
    v = np.linalg.norm(np.diff(feet, axis=0), axis=-1)[1:]  # (N-2, 4) metres per frame
    left, right = np.minimum(v[:, 0], v[:, 1]), np.minimum(v[:, 2], v[:, 3])
    return float((a * left * right).mean() * 1e4)


def jitter(joints: np.ndarray, fps: float) -> float:
    """Mean joint jerk magnitude, m/s^3 (third difference of positions)."""
    if len(joints) < 4:
        return 0.0
    return float(jerk_magnitudes(joints, fps).mean())
