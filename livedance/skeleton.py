"""The SMPL 24-joint skeleton: kinematic tree, rest offsets, forward kinematics
and rotation conversions.

This module is the single owner of these facts; nothing else in livedance
re-derives joint names, parents, offsets or conversions.

Conventions
-----------
* Coordinates: metres, y up, +z the body's forward, +x the body's left (SMPL's
  own frame).
* Quaternions are scalar-first ``(w, x, y, z)``.
* 6D rotations are the first two *columns* of the rotation matrix,
  concatenated: ``(r00, r10, r20, r01, r11, r21)`` (Zhou et al., CVPR 2019).
* Axis-angle is a 3-vector whose direction is the axis and norm the angle.

Every function accepts a ``numpy.ndarray`` or a ``torch.Tensor`` with any
leading batch shape and returns the same kind of array with the same dtype.
The conversions the frame clock calls every frame on a few small arrays
(6D, yaw, axis-angle and quaternion to and from matrices) and forward
kinematics are written once over operations numpy and torch share, and run
natively on either, because torch's per-op dispatch costs more than the
arithmetic there; the tests hold their numpy results to their torch ones.
The rest are torch implementations that numpy inputs are wrapped around (not
copied).
"""

from __future__ import annotations

import collections
import functools
from typing import Callable, TypeVar, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]
F = TypeVar("F", bound=Callable[..., object])

NUM_JOINTS = 24

#: Joint names exactly as SMPL (and the ``smplx`` package) name them.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
JOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(JOINT_NAMES)}

#: Parent of each joint (-1 for the root). Parents always precede children.
PARENTS: np.ndarray = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
    dtype=np.int64,
)

#: Rest offset of each joint from its parent, metres, y up (root: zero).
#: These are the joint locations of the SMPL *neutral* body at zero shape
#: (``J_regressor @ v_template`` of basicModel_neutral, Loper et al. 2015),
#: differenced along the tree, as published in EDGE's ``vis.py``
#: (Tseng et al., CVPR 2023). Only these 72 numbers are used; no SMPL model
#: file is read or shipped.
REST_OFFSETS: np.ndarray = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.05858135, -0.08228004, -0.01766408],
        [-0.06030973, -0.09051332, -0.01354254],
        [0.00443945, 0.12440352, -0.03838522],
        [0.04345142, -0.38646945, 0.008037],
        [-0.04325663, -0.38368791, -0.00484304],
        [0.00448844, 0.1379564, 0.02682033],
        [-0.01479032, -0.42687458, -0.037428],
        [0.01905555, -0.4200455, -0.03456167],
        [-0.00226458, 0.05603239, 0.00285505],
        [0.04105436, -0.06028581, 0.12204243],
        [-0.03483987, -0.06210566, 0.13032329],
        [-0.0133902, 0.21163553, -0.03346758],
        [0.07170245, 0.11399969, -0.01889817],
        [-0.08295366, 0.11247234, -0.02370739],
        [0.01011321, 0.08893734, 0.05040987],
        [0.12292141, 0.04520509, -0.019046],
        [-0.11322832, 0.04685326, -0.00847207],
        [0.2553319, -0.01564902, -0.02294649],
        [-0.26012748, -0.01436928, -0.03126873],
        [0.26570925, 0.01269811, -0.00737473],
        [-0.26910836, 0.00679372, -0.00602676],
        [0.08669055, -0.01063603, -0.01559429],
        [-0.0887537, -0.00865157, -0.01010708],
    ],
    dtype=np.float64,
)


def _rest_joints(offsets: np.ndarray) -> np.ndarray:
    joints = np.zeros_like(offsets)
    for j in range(1, NUM_JOINTS):
        joints[j] = joints[PARENTS[j]] + offsets[j]
    return joints


#: Rest joint positions relative to the pelvis, metres (24, 3).
REST_JOINTS: np.ndarray = _rest_joints(REST_OFFSETS)

#: Pelvis height above the floor in the rest pose: the ankles' depth below the
#: pelvis plus a sole (the foot joint sits ~5 cm above the ground in SMPL).
ANKLE_TO_SOLE = 0.08
REST_PELVIS_HEIGHT: float = float(-REST_JOINTS[[7, 8], 1].min() + ANKLE_TO_SOLE)

#: Index permutation that swaps left and right joints (for mirroring).
MIRROR_PERMUTATION: np.ndarray = np.array(
    [
        JOINT_INDEX[n.replace("left_", "@").replace("right_", "left_").replace("@", "right_")]
        for n in JOINT_NAMES
    ],
    dtype=np.int64,
)


def _levels() -> tuple[tuple[int, int, slice | np.ndarray], ...]:
    depth = np.zeros(NUM_JOINTS, dtype=np.int64)
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    # SMPL numbers its joints level by level, so each level is one slice.
    assert np.all(np.diff(depth) >= 0), "joints must be numbered by tree depth"
    levels = []
    prev_lo = 0
    for d in range(1, int(depth.max()) + 1):
        lo, hi = int(np.searchsorted(depth, d)), int(np.searchsorted(depth, d, side="right"))
        p = PARENTS[lo:hi] - prev_lo
        # Slices are views (one parent broadcasts); only a real gather copies.
        if np.all(p == p[0]):
            parents: slice | np.ndarray = slice(int(p[0]), int(p[0]) + 1)
        elif np.all(np.diff(p) == 1):
            parents = slice(int(p[0]), int(p[-1]) + 1)
        else:
            parents = p
        levels.append((lo, hi, parents))
        prev_lo = lo
    return tuple(levels)


#: Each tree level below the root for forward kinematics: its joints' slice
#: [lo, hi) and where their parents sit within the level above.
_LEVELS: tuple[tuple[int, int, slice | np.ndarray], ...] = _levels()


#: Children lists, handy for drawing bones.
BONES: tuple[tuple[int, int], ...] = tuple((int(PARENTS[j]), j) for j in range(1, NUM_JOINTS))


# ---------------------------------------------------------------------------
# numpy/torch polymorphism. The per-frame conversions are written once over an
# array namespace picked from their input (see the module docstring); the rest
# are torch implementations that numpy inputs are wrapped around.


#: numpy's or torch's spelling of the operations the conversions use.
#: Arguments go by position, where numpy's ``axis`` and torch's ``dim``
#: agree; the operations the two spell differently get their own field:
#: ``asarray(x, like)`` and ``zeros(like, shape)`` with like's dtype (and
#: device), ``take_along(x, indices, axis)`` with indices broadcast over the
#: other axes, ``norm(x)`` -> (..., 1) over the last axis, ``clamp_min(x,
#: floor)`` with a scalar floor, ``cross(a, b)`` over the last axis;
#: ``float64`` is the dtype that gets a tighter epsilon.
_Namespace = collections.namedtuple(
    "_Namespace",
    "float64 sqrt sin cos where ones_like asarray zeros argmax stack cat take_along norm clamp_min cross",
)


_YZX = np.array([1, 2, 0])
_ZXY = np.array([2, 0, 1])


def _norm_np(x: np.ndarray) -> np.ndarray:
    # np.linalg.norm's generic dispatch costs more than this on tiny arrays.
    return np.sqrt((x * x).sum(-1, keepdims=True))


def _cross_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # By rolled components: np.cross's checks and broadcasting cost more than
    # the arithmetic on a frame's 24 joints.
    return a[..., _YZX] * b[..., _ZXY] - a[..., _ZXY] * b[..., _YZX]


_NUMPY = _Namespace(
    float64=np.float64, sqrt=np.sqrt, sin=np.sin, cos=np.cos, where=np.where, ones_like=np.ones_like,
    asarray=lambda x, like: np.asarray(x, like.dtype),
    zeros=lambda like, shape: np.zeros(shape, like.dtype), argmax=np.argmax, stack=np.stack,
    cat=np.concatenate, take_along=np.take_along_axis, norm=_norm_np, clamp_min=np.maximum, cross=_cross_np,
)
_TORCH = _Namespace(
    float64=torch.float64, sqrt=torch.sqrt, sin=torch.sin, cos=torch.cos, where=torch.where, ones_like=torch.ones_like,
    asarray=lambda x, like: torch.as_tensor(x, dtype=like.dtype, device=like.device),
    zeros=lambda like, shape: like.new_zeros(shape), argmax=torch.argmax, stack=torch.stack,
    cat=torch.cat, take_along=torch.take_along_dim, norm=functools.partial(torch.linalg.vector_norm, dim=-1, keepdim=True),
    clamp_min=torch.clamp_min, cross=functools.partial(torch.linalg.cross, dim=-1),
)


def _namespace(x: Array) -> _Namespace:
    return _TORCH if isinstance(x, torch.Tensor) else _NUMPY


def _polymorphic(fn: F) -> F:
    """Run the torch ``fn`` on numpy inputs too, returning numpy."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        was_numpy = any(isinstance(a, np.ndarray) for a in args)
        # np.ascontiguousarray would promote 0-d arrays to 1-d; keep shapes.
        targs = [torch.from_numpy(a if a.flags.c_contiguous else a.copy()) if isinstance(a, np.ndarray) else a for a in args]
        out = fn(*targs, **kwargs)
        if not was_numpy:
            return out
        if isinstance(out, tuple):
            return tuple(o.numpy() for o in out)
        return out.numpy()

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# Rotation conversions.


def axis_angle_to_quaternion(aa: Array) -> Array:
    """(..., 3) axis-angle -> (..., 4) unit quaternion (w, x, y, z)."""
    xp = _namespace(aa)
    angle = xp.norm(aa)
    half = 0.5 * angle
    small = angle < 1e-4
    # sin(a/2)/a with its Taylor series near zero, so tiny angles stay exact.
    safe = xp.where(small, xp.ones_like(angle), angle)
    scale = xp.where(small, 0.5 - angle * angle / 48.0, xp.sin(half) / safe)
    return xp.cat([xp.cos(half), aa * scale], -1)


@_polymorphic
def quaternion_to_axis_angle(q: Array) -> Array:
    """(..., 4) quaternion (w, x, y, z), any norm -> (..., 3) axis-angle, angle in [0, pi]."""
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    # q and -q are the same rotation; w >= 0 picks the angle in [0, pi].
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    sin_half = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-4
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    scale = torch.where(small, 2.0 + angle * angle / 12.0, angle / safe)
    return v * scale


def quaternion_to_matrix(q: Array) -> Array:
    """(..., 4) quaternion (w, x, y, z), any norm -> (..., 3, 3) rotation matrix."""
    xp = _namespace(q)
    q = q / xp.norm(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = xp.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(m: Array) -> Array:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion with w >= 0.

    Shepperd's method: of the four algebraically equal formulas, use the one
    whose divisor is largest, so the result is accurate at every angle
    (including pi, where the trace formula breaks down).
    """
    xp = _namespace(m)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    four_sq = xp.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    root = xp.sqrt(xp.clamp_min(four_sq, 0.0))  # = 2 * |w|, 2|x|, 2|y|, 2|z|
    # Row k is 4 * q_k * q, computed from the k-th formula.
    cand = xp.stack(
        [
            xp.stack([root[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            xp.stack([m21 - m12, root[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            xp.stack([m02 - m20, m10 + m01, root[..., 2] ** 2, m12 + m21], -1),
            xp.stack([m10 - m01, m20 + m02, m21 + m12, root[..., 3] ** 2], -1),
        ],
        -2,
    )
    best = xp.argmax(four_sq, -1)
    chosen = xp.take_along(cand, best[..., None, None], -2)[..., 0, :]
    chosen = chosen / xp.norm(chosen)
    return xp.where(chosen[..., :1] < 0, -chosen, chosen)


def axis_angle_to_matrix(aa: Array) -> Array:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix."""
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


@_polymorphic
def matrix_to_axis_angle(m: Array) -> Array:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle, angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def matrix_to_rot6d(m: Array) -> Array:
    """(..., 3, 3) rotation matrix -> (..., 6): first two columns."""
    return _namespace(m).cat([m[..., :, 0], m[..., :, 1]], -1)


def rot6d_to_matrix(d6: Array) -> Array:
    """(..., 6) -> (..., 3, 3) rotation matrix by Gram-Schmidt.

    Any 6-vector with non-parallel halves maps to a valid rotation, which is
    why networks predict this form.
    """
    xp = _namespace(d6)
    a, b = d6[..., :3], d6[..., 3:]
    eps = 1e-12 if d6.dtype == xp.float64 else 1e-6
    c0 = a / xp.clamp_min(xp.norm(a), eps)
    # Tensor.sum takes numpy's keepdims as well as its own keepdim.
    b = b - (c0 * b).sum(-1, keepdims=True) * c0
    c1 = b / xp.clamp_min(xp.norm(b), eps)
    return xp.stack([c0, c1, xp.cross(c0, c1)], -1)


@_polymorphic
def quaternion_multiply(a: Array, b: Array) -> Array:
    """Hamilton product of (..., 4) quaternions (w, x, y, z): rotation a after b."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


_AXES = {"x": 0, "y": 1, "z": 2}


def _axis_rotation(angle: Array, axis: int) -> Array:
    """(...,) angles in radians -> (..., 3, 3) rotation about one coordinate axis."""
    xp = _namespace(angle)
    c, s = xp.cos(angle), xp.sin(angle)
    # Filled in place: on one frame's yaw, stacking nine components costs
    # about three times as much.
    m = xp.zeros(c, angle.shape + (3, 3))
    j, k = (axis + 1) % 3, (axis + 2) % 3
    m[..., axis, axis] = 1.0
    m[..., j, j] = c
    m[..., k, k] = c
    m[..., k, j] = s
    m[..., j, k] = -s
    return m


@_polymorphic
def euler_to_matrix(angles: Array, order: str) -> Array:
    """(..., 3) Euler angles (radians) -> (..., 3, 3) rotation matrix.

    ``order`` names the axes in the order the angles are given, e.g. ``"zxy"``;
    the rotation is ``R_order[0] @ R_order[1] @ R_order[2]`` (intrinsic
    rotations, the way BVH ``CHANNELS`` are applied).
    """
    axes = [_AXES[a] for a in order.lower()]
    m = _axis_rotation(angles[..., 0], axes[0])
    for k in (1, 2):
        m = m @ _axis_rotation(angles[..., k], axes[k])
    return m


@_polymorphic
def matrix_to_euler(m: Array, order: str) -> Array:
    """(..., 3, 3) rotation matrix -> (..., 3) Euler angles (radians), inverse of :func:`euler_to_matrix`.

    Works for the six orders of three distinct axes. The middle angle is in
    [-pi/2, pi/2]; at gimbal lock the first angle absorbs the free rotation.
    """
    i, j, k = (_AXES[a] for a in order.lower())
    if len({i, j, k}) != 3:
        raise ValueError(f"Euler order {order!r} must name three distinct axes")
    # Parity of the permutation (i, j, k) decides the signs of the formulas.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    mid = torch.asin(torch.clamp(sign * m[..., i, k], -1.0, 1.0))
    first = torch.atan2(-sign * m[..., j, k], m[..., k, k])
    last = torch.atan2(-sign * m[..., i, j], m[..., i, i])
    locked = torch.abs(m[..., i, k]) > 1.0 - 1e-9
    # At gimbal lock m[j,k], m[k,k], m[i,j], m[i,i] all vanish: put the whole
    # free rotation in the first angle, read from the block that survives.
    first_locked = torch.atan2(sign * m[..., k, j], m[..., j, j])
    first = torch.where(locked, first_locked, first)
    last = torch.where(locked, torch.zeros_like(last), last)
    return torch.stack([first, mid, last], dim=-1)


@_polymorphic
def quaternion_slerp(q0: Array, q1: Array, t: Array) -> Array:
    """Spherical interpolation of (..., 4) unit quaternions at (...,) fractions t in [0, 1].

    Takes the short way round (q and -q are the same rotation) and falls back
    to normalised linear interpolation where the two are nearly equal.
    """
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = torch.abs(dot).clamp(max=1.0)
    t = t[..., None]
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    w1 = torch.where(near, t, torch.sin(t * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)


@_polymorphic
def heading_yaw(m: Array) -> Array:
    """(..., 3, 3) body orientation -> (...,) heading: yaw about +y, radians.

    Read from the body's left axis (+x) projected on the floor rather than from
    its forward axis, because dancers bend forward and back far more than they
    roll sideways, so the left axis stays well away from vertical.
    """
    return torch.atan2(-m[..., 2, 0], m[..., 0, 0])


def yaw_to_matrix(yaw: Array) -> Array:
    """(...,) yaw about +y, radians -> (..., 3, 3) rotation."""
    return _axis_rotation(yaw, 1)


# ---------------------------------------------------------------------------
# Forward kinematics.


def forward_kinematics(rotations: Array, trans: Array, offsets: Array | None = None) -> tuple[Array, Array]:
    """Global joint rotations and positions from local rotations.

    Args:
        rotations: (..., 24, 3, 3) local rotation of each joint relative to its
            parent (the root's is the global orientation).
        trans: (..., 3) world position of the pelvis, metres.
        offsets: (24, 3) or (..., 24, 3) rest offsets; defaults to
            :data:`REST_OFFSETS`.

    Returns:
        ``(global_rotations, joints)``: (..., 24, 3, 3) and (..., 24, 3).

    It only uses ``@``, ``+``, indexing and concatenation, which numpy and
    torch share, so it runs natively on either: the frame clock calls it on
    small numpy arrays every frame, where torch's per-op dispatch would cost
    6x more. It steps a tree level at a time (8 steps, not 23 joints),
    because on one frame the cost is the number of operations, not their
    size; each joint still sums its parent's terms in the same order.
    """
    xp = _namespace(rotations)
    offsets = xp.asarray(REST_OFFSETS if offsets is None else offsets, rotations)
    glob = [rotations[..., :1, :, :]]
    pos = [xp.asarray(trans, rotations)[..., None, :]]
    for lo, hi, parents in _LEVELS:
        parent_rot = glob[-1][..., parents, :, :]
        glob.append(parent_rot @ rotations[..., lo:hi, :, :])
        pos.append(pos[-1][..., parents, :] + (parent_rot @ offsets[..., lo:hi, :, None])[..., 0])
    return xp.cat(glob, -3), xp.cat(pos, -2)


@_polymorphic
def joints_from_axis_angle(poses: Array, trans: Array) -> Array:
    """(..., 24, 3) axis-angle poses and (..., 3) root translation -> (..., 24, 3) joints."""
    return forward_kinematics(axis_angle_to_matrix(poses), trans)[1]


@_polymorphic
def mirror_rotations(rotations: Array) -> Array:
    """Mirror (..., 24, 3, 3) local rotations across the body's sagittal plane (x -> -x).

    Swaps left and right joints and conjugates each rotation by the
    reflection diag(-1, 1, 1). Because :data:`REST_OFFSETS` are not exactly
    symmetric, positions mirror to within a few millimetres.
    """
    s = torch.tensor([-1.0, 1.0, 1.0], dtype=rotations.dtype, device=rotations.device)
    flipped = rotations * s[:, None] * s[None, :]
    return flipped[..., torch.from_numpy(MIRROR_PERMUTATION), :, :]
