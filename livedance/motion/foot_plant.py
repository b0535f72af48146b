"""Plant the feet: hold a foot on the floor where it landed, by bending the leg (two-bone IK).

A decoded unit's root travel and its legs come out of the decoder
separately, and the decoder smooths the legs more than the travel, so the
body glides with its feet drifting under it: it accelerates with no foot
planted, which real dancers cannot do. Here each foot near the floor is
pinned (horizontally) where it landed while the root keeps its decoded
path, and the hip and knee are re-solved so the ankle reaches the pin; the
ankle keeps its decoded orientation, so the toe comes along. When the foot
lifts, the pin lets go over a few frames. Root features are untouched, so
travel, height, turning and timing stay as decoded.
"""

from __future__ import annotations

import torch

from livedance import skeleton as sk
from livedance.motion.representation import ROTATIONS, body_kinematics, root_path
from livedance.skeleton import JOINT_INDEX as J

#: (hip, knee, ankle, toe) of the left and the right leg.
LEGS = tuple(tuple(J[f"{side}_{part}"] for part in ("hip", "knee", "ankle", "foot")) for side in ("left", "right"))
_LEG_JOINTS = [j for leg in LEGS for j in leg[:3]]
#: The toe sits this much lower than the ankle on a flat foot (SMPL rest pose), metres.
_TOE_DROP = 0.06
#: A foot within half of this of the unit's lowest foot point is planted; at this height it is free, metres.
GROUND_HEIGHT = 0.06
#: After a foot lifts, its remaining offset from the decoded path shrinks by this factor per frame.
RELEASE = 0.7


def foot_heights(joints: torch.Tensor) -> torch.Tensor:
    """(..., T, 24, 3) joints -> (..., T, 2) height of each foot's lower point (ankle or toe; left, right), metres."""
    y = joints[..., 1]
    return torch.stack([torch.minimum(y[..., ankle] - _TOE_DROP, y[..., toe]) for _, _, ankle, toe in LEGS], dim=-1)


def contact_weights(heights: torch.Tensor) -> torch.Tensor:
    """(B, T, 2) foot heights -> (B, T, 2) how surely each foot is on the floor, 0..1.

    The floor is the unit's lowest foot point (a unit spans two beats, so
    some foot touches down in it); a foot within GROUND_HEIGHT / 2 of it
    is planted, above GROUND_HEIGHT it is free.
    """
    floor = heights.amin(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    return (2.0 - 2.0 * (heights - floor) / GROUND_HEIGHT).clamp(0.0, 1.0)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-9)


def _angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Angle between (..., 3) vectors, radians; atan2 keeps precision near 0 where acos does not."""
    return torch.atan2(torch.linalg.vector_norm(torch.cross(u, v, dim=-1), dim=-1), (u * v).sum(-1))


def _rotate(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) about unit ``axis`` (..., 3) by ``angle`` (...)."""
    return sk.axis_angle_to_matrix(axis * angle[..., None])


def solve_leg(hip: torch.Tensor, knee: torch.Tensor, ankle: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-bone IK: the rotations (..., 3, 3) that, applied on the left of the thigh's and the shin's
    global rotations, bring the ankle from ``ankle`` to ``target`` (all (..., 3) positions).

    The knee first bends or straightens in the leg's own plane until the
    hip-ankle distance is the hip-target distance (which keeps the hip-ankle
    direction), then the whole leg swings about the hip onto the target.
    Out-of-reach targets are reached as nearly as the bones allow.
    """
    thigh, shin = knee - hip, ankle - knee
    l1 = torch.linalg.vector_norm(thigh, dim=-1)
    l2 = torch.linalg.vector_norm(shin, dim=-1)
    reach = torch.linalg.vector_norm(target - hip, dim=-1).clamp((l1 - l2).abs() + 1e-4, (l1 + l2) * 0.9999)
    hip_now = _angle(thigh, ankle - hip)
    knee_now = _angle(-thigh, shin)
    hip_new = torch.acos(((l1**2 + reach**2 - l2**2) / (2 * l1 * reach)).clamp(-1.0, 1.0))
    knee_new = torch.acos(((l1**2 + l2**2 - reach**2) / (2 * l1 * l2)).clamp(-1.0, 1.0))
    bend_axis = _unit(torch.cross(ankle - hip, thigh, dim=-1))
    swing_axis = _unit(torch.cross(ankle - hip, target - hip, dim=-1))
    swing = _rotate(swing_axis, _angle(ankle - hip, target - hip))
    bend_hip = swing @ _rotate(bend_axis, hip_new - hip_now)
    return bend_hip, bend_hip @ _rotate(bend_axis, knee_new - knee_now)


def reach_with_legs(rot: torch.Tensor, glob: torch.Tensor, joints: torch.Tensor, legs: tuple[tuple[int, ...], ...], target: torch.Tensor) -> None:
    """Re-pose legs in place so each ankle reaches its ``target`` (..., L, 3), the feet keeping their orientation.

    ``rot`` (..., 24, 3, 3) local rotations, modified; ``glob`` and
    ``joints`` are their forward kinematics, read only; ``legs`` L
    (hip, knee, ankle, ...) index tuples, all solved at once.
    """
    hip, knee, ankle = ([leg[k] for leg in legs] for k in range(3))
    turn_thigh, turn_shin = solve_leg(joints[..., hip, :], joints[..., knee, :], joints[..., ankle, :], target)
    g_hip = turn_thigh @ glob[..., hip, :, :]
    g_knee = turn_shin @ glob[..., knee, :, :]
    rot[..., hip, :, :] = glob[..., sk.PARENTS[hip], :, :].transpose(-1, -2) @ g_hip
    rot[..., knee, :, :] = g_hip.transpose(-1, -2) @ g_knee
    rot[..., ankle, :, :] = g_knee.transpose(-1, -2) @ glob[..., ankle, :, :]


def plant_feet(feats: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Units (B, T, D) -> the same with planted feet held still on the floor.

    ``strength`` scales the contact weights (0 = as decoded).
    """
    if strength <= 0.0:
        return feats
    b, t, _ = feats.shape
    x = feats.to(torch.float64)  # acos/atan2 on float32 would leave sub-millimetre foot jitter
    rot, glob, joints = body_kinematics(x)  # body frame: heading and travel removed
    heading, travel = root_path(x)  # the unit's own floor frame, from its first frame
    ankles = joints[:, :, [leg[2] for leg in LEGS]]  # (B, T, 2, 3)
    decoded = travel[:, :, None] + (heading[:, :, None] @ ankles[..., None])[..., 0]  # world ankles
    w = contact_weights(foot_heights(joints)) * strength  # (B, T, 2)
    # Offset of each pin from the decoded ankle: a planted foot keeps its place
    # (the offset absorbs the decoded drift), a free one lets go geometrically.
    # Per frame: offset_i = keep_i * offset_(i-1) + w_i * drift_i, a linear
    # recurrence, solved in closed form with the running product of keep
    # (>= RELEASE per frame, so over a unit it stays far from underflow).
    flat = decoded[..., [0, 2]]
    drift = torch.zeros_like(flat)
    drift[:, 1:] = flat[:, :-1] - flat[:, 1:]
    keep = w + (1.0 - w) * RELEASE
    keep[:, 0] = 1.0
    gain = torch.cumprod(keep, dim=1)[..., None]  # (B, T, 2, 1)
    offset = gain * torch.cumsum(w[..., None] * drift / gain, dim=1)
    pinned = decoded.clone()
    pinned[..., [0, 2]] = flat + offset
    target = (heading[:, :, None].transpose(-1, -2) @ (pinned - travel[:, :, None])[..., None])[..., 0]  # body frame

    reach_with_legs(rot, glob, joints, LEGS, target)
    out = feats.clone()
    six = out[..., ROTATIONS].view(b, t, sk.NUM_JOINTS, 6)  # only the legs are rewritten
    six[:, :, _LEG_JOINTS] = sk.matrix_to_rot6d(rot[:, :, _LEG_JOINTS]).to(feats.dtype)
    return out
