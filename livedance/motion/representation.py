"""The per-frame feature vector the unit model reads and writes (D = 148).

Layout of one frame (all float32)::

    [0]       root height y, metres
    [1:3]     root horizontal displacement to the next frame (dx, dz), in the
              body's heading frame, metres per frame
    [3]       heading (yaw about +y) change to the next frame, radians per frame
    [4:148]   24 x 6D local rotations (skeleton.matrix_to_rot6d), the root's
              with its heading removed

Position and heading on the floor are stored as per-frame *changes* in the
body's own frame, so a feature sequence means the same dance wherever and
whichever way the dancer starts; ``features_to_motion`` integrates them back
from a chosen start. Displacements are per frame of the sequence they are in
(in a canonical unit, per canonical frame), so tempo lives only in the warp.
The last frame of a sequence has no next frame: it repeats the previous
frame's velocity (callers that know the next frame, like the unit cutter,
compute features on one extra frame and drop it).
"""

from __future__ import annotations

import numpy as np
import torch

from livedance import skeleton as sk

FEATURE_DIM = 148
ROOT_HEIGHT = 0
ROOT_DXDZ = slice(1, 3)
ROOT_DYAW = 3
ROTATIONS = slice(4, 148)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def motion_to_features(rotations: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Motion -> per-frame features.

    Args:
        rotations: (N, 24, 3, 3) local rotations, N >= 1.
        trans: (N, 3) pelvis position, metres, y up.

    Returns:
        (N, 148) float32.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    n = rotations.shape[0]
    yaw = sk.heading_yaw(rotations[:, 0])  # (N,)
    unyaw = sk.yaw_to_matrix(-yaw)  # (N, 3, 3)
    local = rotations.copy()
    local[:, 0] = unyaw @ rotations[:, 0]

    feats = np.empty((n, FEATURE_DIM), dtype=np.float64)
    feats[:, ROOT_HEIGHT] = trans[:, 1]
    if n > 1:
        step = np.diff(trans, axis=0)  # (N-1, 3) world displacement to the next frame
        body_step = (unyaw[:-1] @ step[:, :, None])[:, :, 0]
        dyaw = _wrap(np.diff(yaw))
        feats[:-1, ROOT_DXDZ] = body_step[:, [0, 2]]
        feats[:-1, ROOT_DYAW] = dyaw
        feats[-1, ROOT_DXDZ] = feats[-2, ROOT_DXDZ]
        feats[-1, ROOT_DYAW] = feats[-2, ROOT_DYAW]
    else:
        feats[:, 1:4] = 0.0
    feats[:, ROTATIONS] = sk.matrix_to_rot6d(local).reshape(n, -1)
    return feats.astype(np.float32)


def _sums_before(x: sk.Array, axis: int) -> sk.Array:
    """Running sums along ``axis`` (negative) of the values before each index: 0 at the first."""
    last = (slice(None),) * (-1 - axis)
    head, body = x[(..., slice(0, 1)) + last], x[(..., slice(None, -1)) + last]
    if isinstance(x, torch.Tensor):
        return torch.cat([torch.zeros_like(head), torch.cumsum(body, axis)], axis)
    return np.concatenate([np.zeros_like(head), np.cumsum(body, axis)], axis)


def root_path(feats: sk.Array, start_yaw: float = 0.0) -> tuple[sk.Array, sk.Array]:
    """(..., T, 148) features -> the root's heading (..., T, 3, 3) and its travel on the
    floor (..., T, 3) from the origin (y = 0), by integrating the per-frame changes.

    Frame i's heading is the start plus the turns of the frames before it;
    its position, the sum of their steps, each turned by its own frame's
    heading. Works on numpy arrays and on torch tensors.
    """
    yaw = start_yaw + _sums_before(feats[..., ROOT_DYAW], -1)
    heading = sk.yaw_to_matrix(yaw)
    body_step = (torch.zeros_like if isinstance(feats, torch.Tensor) else np.zeros_like)(feats[..., :3])  # (x, y, z)
    body_step[..., [0, 2]] = feats[..., ROOT_DXDZ]
    world_step = (heading @ body_step[..., None])[..., 0]
    return heading, _sums_before(world_step, -2)


def features_to_motion(
    feats: np.ndarray, start_trans: np.ndarray, start_yaw: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame features -> motion, by integrating the root velocities.

    Args:
        feats: (N, 148) features (any float dtype; 6D parts need not be orthonormal).
        start_trans: (3,) pelvis position of the first frame; its y is ignored
            (height comes from the features).
        start_yaw: heading of the first frame, radians.

    Returns:
        ``(rotations, trans)``: (N, 24, 3, 3) and (N, 3), float64.
    """
    feats = np.asarray(feats, dtype=np.float64)
    n = feats.shape[0]
    rotations = sk.rot6d_to_matrix(feats[:, ROTATIONS].reshape(n, sk.NUM_JOINTS, 6))
    heading, travel = root_path(feats, start_yaw)
    rotations[:, 0] = heading @ rotations[:, 0]
    trans = np.asarray(start_trans, dtype=np.float64) + travel
    trans[:, 1] = feats[:, ROOT_HEIGHT]
    return rotations, trans


def body_kinematics(feats: sk.Array) -> tuple[sk.Array, sk.Array, sk.Array]:
    """(..., T, 148) features -> the body in its own frame: local rotations
    (..., T, 24, 3, 3), global rotations (..., T, 24, 3, 3) and joints (..., T, 24, 3), metres.

    The root's floor point stays at the origin and its heading is fixed, so
    what moves is the body itself (limbs, posture, height), not its travel
    or turning. Works on numpy arrays and on torch tensors (differentiably).
    """
    rot = sk.rot6d_to_matrix(feats[..., ROTATIONS].reshape(*feats.shape[:-1], sk.NUM_JOINTS, 6))
    up = np.array([0.0, 1.0, 0.0])
    if isinstance(feats, torch.Tensor):
        up = torch.as_tensor(up, dtype=feats.dtype, device=feats.device)
    glob, joints = sk.forward_kinematics(rot, feats[..., ROOT_HEIGHT : ROOT_HEIGHT + 1] * up)
    return rot, glob, joints


def body_joints(feats: sk.Array) -> sk.Array:
    """(..., T, 148) features -> (..., T, 24, 3) joints in the body's own frame, metres (see ``body_kinematics``)."""
    return body_kinematics(feats)[2]
