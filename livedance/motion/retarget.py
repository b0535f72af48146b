"""Retarget a BVH motion of any skeleton onto the SMPL 24-joint skeleton.

Method: bone-direction matching. Each SMPL joint is *anchored* at a point of
the source skeleton (a joint, or a point on the segment between two joints
where the skeletons split the spine or shoulder differently). Then, per frame
and vectorised over frames:

* a joint with one SMPL child is rotated so its SMPL bone points exactly
  along the source bone between the two anchors; its twist about the bone
  comes from the source joint's own rotation;
* a joint with several children (pelvis: hips + spine; spine3: neck +
  collars) turns from its rest pose the way the source's child bones turn
  together (best fit, Kabsch), so a rest pose maps to SMPL's rest pose even
  where the two skeletons' rest geometry differs;
* leaf joints (head, hands, toes) follow the source joint's rotation.

Bone *lengths* stay SMPL's: the motion is scaled by the ratio of leg lengths
(unit-free, so inches, centimetres and CMU's odd ASF units all work), so
joint positions match the source's up to the two bodies' proportions (the
mean error is measured in the tests and reported in docs/model.md).

Axes: the world up axis is detected from the motion (the direction from
pelvis to neck, averaged over the take, snapped to a file axis), so y-up and
z-up files both work. The source's rest pose may be anything (T-pose, A-pose,
lying along x as Bandai-Namco's is): rest differences are absorbed per bone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livedance import skeleton as sk
from livedance.errors import UserError
from livedance.motion.bvh import BvhMotion
from livedance.motion.clip import MotionClip, place_on_floor

#: An anchor: point ``(1 - t) * a + t * b`` between source joints a and b;
#: joint a's rotation supplies the twist.
Anchor = tuple[str, str, float]


def _at(name: str) -> Anchor:
    return (name, name, 0.0)


@dataclass(frozen=True)
class JointMap:
    """Where each of the 24 SMPL joints sits on a source skeleton."""

    name: str
    anchors: dict[str, Anchor]

    def __post_init__(self) -> None:
        missing = set(sk.JOINT_NAMES) - set(self.anchors)
        if missing:
            raise ValueError(f"joint map {self.name} lacks SMPL joints {sorted(missing)}")

    def source_joints(self) -> set[str]:
        return {n for a, b, _ in self.anchors.values() for n in (a, b)}


def _sided(left: dict[str, Anchor], right_of: dict[str, str]) -> dict[str, Anchor]:
    """Add the right side of a map by renaming the left side's source joints."""
    out = dict(left)
    for smpl, (a, b, t) in left.items():
        if smpl.startswith("left_"):
            out["right_" + smpl[5:]] = (right_of.get(a, a), right_of.get(b, b), t)
    return out


#: CMU database as converted to BVH by cgspeed ("MotionBuilder-friendly",
#: 43 joints: hip, abdomen, chest, neck, head, l/rCollar, l/rShldr, ...; the
#: salsa takes 60/61). The SMPL spine has one more joint than this one
#: (abdomen, chest), so spine3 sits a third of the way up chest -> neck, where
#: the collars branch off. SMPL's toe joint is the foot's End Site; its hand
#: joint is the middle finger's base.
CMU_CGSPEED = JointMap(
    "cmu-cgspeed",
    _sided(
        {
            "pelvis": _at("hip"),
            "spine1": _at("abdomen"),
            "spine2": _at("chest"),
            "spine3": ("chest", "neck", 0.35),
            "neck": _at("neck"),
            "head": _at("head"),
            "left_hip": _at("lThigh"),
            "left_knee": _at("lShin"),
            "left_ankle": _at("lFoot"),
            "left_foot": _at("lFoot_end"),
            "left_collar": _at("lCollar"),
            "left_shoulder": _at("lShldr"),
            "left_elbow": _at("lForeArm"),
            "left_wrist": _at("lHand"),
            "left_hand": _at("lMid1"),
        },
        {n: "r" + n[1:] for n in ("lThigh", "lShin", "lFoot", "lFoot_end", "lCollar", "lShldr", "lForeArm", "lHand", "lMid1")},
    ),
)

#: CMU database in its native ASF/AMC skeleton exported to BVH (31 joints:
#: Hips, LHipJoint, LeftUpLeg, ..., LowerBack, Spine, Spine1, Neck, Neck1,
#: Head, LeftShoulder, LeftArm, ...; the modern-dance takes of subject 05).
#: Several ASF joints sit at zero offset from their parent (LHipJoint,
#: LowerBack, Neck, LeftShoulder, LeftFingerBase), so anchors skip them: the
#: spine starts at Spine, the collar sits 35% of the way from the spine top
#: (LeftShoulder) to the shoulder (LeftArm), the hand at LeftHandIndex1.
CMU_ASF = JointMap(
    "cmu-asf",
    _sided(
        {
            "pelvis": _at("Hips"),
            "spine1": _at("Spine"),
            "spine2": _at("Spine1"),
            "spine3": ("Spine1", "Neck1", 0.4),
            "neck": _at("Neck1"),
            "head": _at("Head"),
            "left_hip": _at("LeftUpLeg"),
            "left_knee": _at("LeftLeg"),
            "left_ankle": _at("LeftFoot"),
            "left_foot": _at("LeftToeBase"),
            "left_collar": ("LeftShoulder", "LeftArm", 0.35),
            "left_shoulder": _at("LeftArm"),
            "left_elbow": _at("LeftForeArm"),
            "left_wrist": _at("LeftHand"),
            "left_hand": _at("LeftHandIndex1"),
        },
        {
            n: n.replace("Left", "Right")
            for n in ("LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftHandIndex1")
        },
    ),
)

#: Bandai Namco Research Motion Dataset (22 joints: Hips, Spine, Chest, Neck,
#: Head, Shoulder_L, UpperArm_L, ...). CC BY-NC data: experiments only.
BANDAI_NAMCO = JointMap(
    "bandai-namco",
    _sided(
        {
            "pelvis": _at("Hips"),
            "spine1": ("Hips", "Spine", 0.5),
            "spine2": _at("Spine"),
            "spine3": _at("Chest"),
            "neck": _at("Neck"),
            "head": _at("Head"),
            "left_hip": _at("UpperLeg_L"),
            "left_knee": _at("LowerLeg_L"),
            "left_ankle": _at("Foot_L"),
            "left_foot": _at("Toes_L"),
            "left_collar": _at("Shoulder_L"),
            "left_shoulder": _at("UpperArm_L"),
            "left_elbow": _at("LowerArm_L"),
            "left_wrist": _at("Hand_L"),
            "left_hand": _at("Hand_L_end"),
        },
        {
            n: n.replace("_L", "_R")
            for n in ("UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L", "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L", "Hand_L_end")
        },
    ),
)

JOINT_MAPS: tuple[JointMap, ...] = (CMU_CGSPEED, CMU_ASF, BANDAI_NAMCO)


def detect_joint_map(motion: BvhMotion) -> JointMap:
    """The first known joint map whose source joints all exist in the motion's skeleton."""
    names = set(motion.skeleton.names)
    for jmap in JOINT_MAPS:
        if jmap.source_joints() <= names:
            return jmap
    known = ", ".join(m.name for m in JOINT_MAPS)
    raise UserError(
        f"{motion.name or 'BVH'}: no joint map for this skeleton (root {motion.skeleton.names[0]!r}, "
        f"{len(names)} joints); known skeletons: {known}, or SMPL-named joints; "
        "add a JointMap for it in livedance/motion/retarget.py"
    )


# ---------------------------------------------------------------------------
# Vectorised geometry.


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _min_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors u, v -> (..., 3, 3) smallest rotation taking u to v."""
    u, v = np.broadcast_arrays(u, v)
    w = 1.0 + (u * v).sum(-1, keepdims=True)
    axis = np.cross(u, v)
    # Opposite vectors: any half-turn about an axis perpendicular to u works.
    opposite = w[..., 0] < 1e-9
    if np.any(opposite):
        perp = np.cross(u[opposite], [1.0, 0.0, 0.0])
        bad = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[bad] = np.cross(u[opposite][bad], [0.0, 1.0, 0.0])
        axis = axis.copy()
        w = w.copy()
        axis[opposite] = _normalize(perp)
        w[opposite] = 0.0
    return sk.quaternion_to_matrix(np.concatenate([w, axis], axis=-1))


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations best taking directions a (K, 3) onto b (N, K, 3): (N, 3, 3)."""
    h = np.einsum("ki,nkj->nij", a, b)  # sum_k a_k b_k^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)))
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[:, 2, 2] = d
    return np.swapaxes(vt, 1, 2) @ fix @ np.swapaxes(u, 1, 2)


def _body_frame(joints: np.ndarray) -> np.ndarray:
    """(24, 3) SMPL-ordered joint positions -> (3, 3) body axes (left, up, forward) as columns."""
    idx = sk.JOINT_INDEX
    left = _normalize(joints[idx["left_hip"]] - joints[idx["right_hip"]])
    up = joints[idx["neck"]] - joints[idx["pelvis"]]
    up = _normalize(up - (up @ left) * left)
    return np.stack([left, up, np.cross(left, up)], axis=1)


def _up_axis_rotation(up: np.ndarray) -> np.ndarray:
    """Rotation taking the file axis nearest to ``up`` onto +y (identity for y-up files)."""
    k = int(np.argmax(np.abs(up)))
    axis = np.zeros(3)
    axis[k] = np.sign(up[k])
    return _min_rotation(axis, np.array([0.0, 1.0, 0.0]))


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetargetResult:
    """A retargeted clip plus what it was matched against (for checks and reports).

    Attributes:
        clip: the SMPL motion, feet on the floor.
        anchors: (N, 24, 3) the source's anchor points in the same (scaled,
            y-up, floor-shifted) frame, metres: where each SMPL joint
            "should" be.
        scale: metres per source unit applied.
        joint_map: the map used.
    """

    clip: MotionClip
    anchors: np.ndarray
    scale: float
    joint_map: JointMap


def retarget(motion: BvhMotion, joint_map: JointMap | None = None) -> RetargetResult:
    """Retarget a BVH motion onto the SMPL skeleton (feet on y = 0, metres, y up)."""
    jmap = joint_map or detect_joint_map(motion)
    skel = motion.skeleton
    glob, pos = motion.forward_kinematics()  # (N, J, 3, 3), (N, J, 3)
    rest = skel.rest_positions()
    ia = np.array([skel.index(jmap.anchors[n][0]) for n in sk.JOINT_NAMES])
    ib = np.array([skel.index(jmap.anchors[n][1]) for n in sk.JOINT_NAMES])
    t = np.array([jmap.anchors[n][2] for n in sk.JOINT_NAMES])[:, None]

    def anchor_points(p: np.ndarray) -> np.ndarray:
        return (1.0 - t) * p[..., ia, :] + t * p[..., ib, :]

    idx = sk.JOINT_INDEX
    rest_anchor = anchor_points(rest)  # (24, 3) file units, file rest frame
    legs = [("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle")]

    def leg_length(p: np.ndarray) -> float:
        return float(np.mean([np.linalg.norm(p[idx[k]] - p[idx[h]]) + np.linalg.norm(p[idx[a]] - p[idx[k]]) for h, k, a in legs]))

    src_leg = leg_length(rest_anchor)
    if src_leg <= 0:
        raise UserError(f"{motion.name}: the skeleton's legs have zero length; the BVH OFFSETs are broken")
    scale = leg_length(sk.REST_JOINTS) / src_leg

    world = anchor_points(pos)  # (N, 24, 3) file units and axes
    up = _normalize(world[:, idx["neck"]] - world[:, idx["pelvis"]]).mean(0)
    w = _up_axis_rotation(up)
    world = scale * (world @ w.T)
    glob_w = w @ glob  # rest-relative rotations, now landing in the y-up world

    # Turn SMPL's rest body into the source's rest body as a whole (their
    # body frames: left, up, forward); the per-bone fixes below do the rest.
    rest_frame = _body_frame(rest_anchor) @ _body_frame(sk.REST_JOINTS).T

    n = len(motion)
    g = np.empty((n, sk.NUM_JOINTS, 3, 3))
    fixes: dict[int, np.ndarray] = {}
    children = {j: [c for c in range(sk.NUM_JOINTS) if sk.PARENTS[c] == j] for j in range(sk.NUM_JOINTS)}
    for j in range(sk.NUM_JOINTS):
        kids = children[j]
        if len(kids) == 1:
            c = kids[0]
            a = _normalize(sk.REST_OFFSETS[c])
            b_rest = _normalize(rest_anchor[c] - rest_anchor[j])
            fix = _min_rotation(rest_frame @ a, b_rest) @ rest_frame
            fixes[j] = fix
            g0 = glob_w[:, ia[j]] @ fix
            b = _normalize(world[:, c] - world[:, j])
            g[:, j] = _min_rotation(g0 @ a, b) @ g0
        elif kids:
            # Kabsch alone would tilt the joint wherever the two skeletons'
            # rest geometry differs (CMU's hip joints sit level with its root,
            # SMPL's 8 cm below), so only the rotation *from the rest pose* is
            # taken from the fit: Q = K(t) K_rest^T, rest-aligned like above.
            a_dirs = _normalize(sk.REST_OFFSETS[kids]) @ rest_frame.T
            b_rest = _normalize(rest_anchor[kids] - rest_anchor[j])
            k_rest = _kabsch(a_dirs, b_rest[None])[0]
            b_dirs = _normalize(world[:, kids] - world[:, j : j + 1])
            g[:, j] = _kabsch(a_dirs, b_dirs) @ k_rest.T @ rest_frame
            fixes[j] = rest_frame
        else:
            fix = fixes.get(int(sk.PARENTS[j]), rest_frame)
            g[:, j] = glob_w[:, ia[j]] @ fix

    local = np.empty_like(g)
    local[:, 0] = g[:, 0]
    parents = sk.PARENTS[1:]
    local[:, 1:] = np.swapaxes(g[:, parents], -1, -2) @ g[:, 1:]
    # Skeletons disagree about where the pelvis is relative to the hips (CMU's
    # root sits level with the hip joints, SMPL's 8 cm above them), so place
    # SMPL's pelvis where its hip centre lands on the source's hip centre:
    # that keeps the legs, and so the feet, where the source has them.
    hips = [idx["left_hip"], idx["right_hip"]]
    hip_offset = (g[:, 0] @ sk.REST_JOINTS[hips].mean(0))  # (N, 3) pelvis -> hip centre
    trans = world[:, hips].mean(1) - hip_offset
    clip = MotionClip(local, trans, motion.fps, name=motion.name)
    grounded = place_on_floor(clip)
    shift = grounded.trans[0] - clip.trans[0]
    return RetargetResult(grounded, world + shift, scale, jmap)
