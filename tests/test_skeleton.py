import numpy as np
import pytest
import torch

from livedance import skeleton as sk


def random_axis_angle(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random rotations, with a third of them near 0 and near pi where conversions break."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(0, np.pi, size=n)
    angle[: n // 6] = rng.uniform(0, 1e-7, size=n // 6)
    angle[n // 6 : n // 3] = np.pi - rng.uniform(1e-7, 1e-3, size=n // 3 - n // 6)
    return axis * angle[:, None]


def assert_rotation(m: np.ndarray) -> None:
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), eye, atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-6)


def test_tree_is_topologically_sorted_and_named_like_smpl():
    assert len(sk.JOINT_NAMES) == len(sk.PARENTS) == sk.REST_OFFSETS.shape[0] == 24
    assert sk.PARENTS[0] == -1 and all(sk.PARENTS[j] < j for j in range(1, 24))
    assert sk.JOINT_NAMES[sk.PARENTS[sk.JOINT_INDEX["left_wrist"]]] == "left_elbow"
    # The mirror permutation is an involution that swaps every left/right pair.
    assert np.array_equal(sk.MIRROR_PERMUTATION[sk.MIRROR_PERMUTATION], np.arange(24))
    assert sk.JOINT_NAMES[sk.MIRROR_PERMUTATION[sk.JOINT_INDEX["left_knee"]]] == "right_knee"


def test_rest_body_proportions_are_human():
    j = sk.REST_JOINTS
    assert 0.85 < sk.REST_PELVIS_HEIGHT < 1.05
    head_above_floor = j[sk.JOINT_INDEX["head"], 1] + sk.REST_PELVIS_HEIGHT
    assert 1.45 < head_above_floor < 1.75
    # +x is the body's left.
    assert j[sk.JOINT_INDEX["left_hand"], 0] > 0.6 > -0.6 > j[sk.JOINT_INDEX["right_hand"], 0]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_fk_of_zero_pose_gives_rest_joints(kind):
    rot = np.broadcast_to(np.eye(3), (5, 24, 3, 3)).copy()
    trans = np.tile([[0.5, 1.0, -2.0]], (5, 1))
    if kind == "torch":
        glob, joints = sk.forward_kinematics(torch.from_numpy(rot), torch.from_numpy(trans))
        glob, joints = glob.numpy(), joints.numpy()
    else:
        glob, joints = sk.forward_kinematics(rot, trans)
    np.testing.assert_allclose(joints, sk.REST_JOINTS[None] + trans[:, None], atol=1e-12)
    np.testing.assert_allclose(glob, rot, atol=1e-12)


def test_bone_lengths_preserved_under_random_rotations():
    rng = np.random.default_rng(1)
    poses = random_axis_angle(64 * 24, rng).reshape(64, 24, 3)
    trans = rng.normal(size=(64, 3))
    joints = sk.joints_from_axis_angle(poses, trans)
    child = np.arange(1, 24)
    lengths = np.linalg.norm(joints[:, child] - joints[:, sk.PARENTS[child]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(sk.REST_OFFSETS[1:], axis=-1), lengths.shape), atol=1e-9)
    np.testing.assert_allclose(joints[:, 0], trans, atol=1e-12)
    # ... and the rotations really moved the joints.
    assert np.abs(joints - (sk.REST_JOINTS[None] + trans[:, None])).max() > 0.3


def test_fk_numpy_and_torch_agree_and_keep_dtype():
    rng = np.random.default_rng(2)
    rot = sk.axis_angle_to_matrix(random_axis_angle(24 * 3, rng).reshape(3, 24, 3).astype(np.float32))
    assert rot.dtype == np.float32
    _, jn = sk.forward_kinematics(rot, np.zeros((3, 3), np.float32))
    _, jt = sk.forward_kinematics(torch.from_numpy(rot), torch.zeros(3, 3))
    assert jn.dtype == np.float32 and jt.dtype == torch.float32
    np.testing.assert_allclose(jn, jt.numpy(), atol=1e-6)


def _edge_axis_angles(rng: np.random.Generator) -> np.ndarray:
    """(24, 3): zero rotations and exact half turns, about coordinate axes and
    diagonals (where Shepperd's largest divisor ties) and random ones."""
    axes = np.concatenate([np.eye(3), [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]], rng.normal(size=(12, 3))])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return np.concatenate([np.zeros((6, 3)), np.pi * axes])


def _conversion_inputs(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, ...]]:
    aa = random_axis_angle(600, rng).reshape(25, 24, 3)
    aa[0] = _edge_axis_angles(rng)
    m = sk.axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    # Network-like 6D: real rotations plus noise (halves far from parallel,
    # where Gram-Schmidt is well conditioned even in float32) ...
    d6 = sk.matrix_to_rot6d(torch.from_numpy(m)).numpy() + 0.1 * rng.normal(size=(25, 24, 6))
    # ... and far from orthonormal: halves of any length at 30 to 150 degrees.
    a, b = rng.normal(size=(2, 12, 24, 3))
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    b -= (a * b).sum(-1, keepdims=True) * a
    b /= np.linalg.norm(b, axis=-1, keepdims=True)
    tilt = rng.uniform(np.pi / 6, 5 * np.pi / 6, size=(12, 24, 1))
    d6[:12] = np.concatenate([a, np.cos(tilt) * a + np.sin(tilt) * b], -1) * rng.uniform(0.1, 10, size=(12, 24, 2)).repeat(3, -1)
    q = rng.normal(size=(25, 24, 4))
    q[0, :4] = np.eye(4)  # w = 0 is a half turn
    return {
        "axis_angle_to_quaternion": (aa,),
        "quaternion_to_matrix": (q,),
        "axis_angle_to_matrix": (aa,),
        "matrix_to_quaternion": (m,),
        "matrix_to_rot6d": (m,),
        "rot6d_to_matrix": (d6,),
        "yaw_to_matrix": (np.concatenate([[0.0, np.pi, -np.pi, np.pi / 2], rng.uniform(-7, 7, size=(21,))]),),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(_conversion_inputs(np.random.default_rng(0))))
def test_numpy_path_matches_torch(name, dtype):
    # The per-frame conversions run numpy natively; hold them to torch.
    fn = getattr(sk, name)
    args = tuple(a.astype(dtype) for a in _conversion_inputs(np.random.default_rng(11))[name])
    out_np = fn(*args)
    out_torch = fn(*(torch.from_numpy(a) for a in args))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == dtype and out_np.shape == tuple(out_torch.shape)
    np.testing.assert_allclose(out_np, out_torch.numpy(), rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    # Unbatched inputs (a 0-d yaw, a single rotation) keep their shape too.
    core = 2 if name.startswith("matrix_") else 0 if name == "yaw_to_matrix" else 1
    for one in (tuple(a[0, ...] for a in args), tuple(a[(0,) * (a.ndim - core) + (...,)] for a in args)):
        assert fn(*one).shape == tuple(fn(*(torch.from_numpy(a) for a in one)).shape)


def test_edge_rotations_are_exact():
    aa = _edge_axis_angles(np.random.default_rng(12))
    for kind in (np.asarray, torch.from_numpy):
        q = np.asarray(sk.axis_angle_to_quaternion(kind(aa)))
        np.testing.assert_allclose(q[:6], np.tile([1.0, 0.0, 0.0, 0.0], (6, 1)), atol=0)
        np.testing.assert_allclose(q[6:, 0], 0.0, atol=1e-15)
        m = np.asarray(sk.axis_angle_to_matrix(kind(aa)))
        np.testing.assert_allclose(m[:6], np.broadcast_to(np.eye(3), (6, 3, 3)), atol=0)
        # A half turn about n is 2 n n^T - I; back to a quaternion it is +-(0, n).
        n = aa[6:] / np.pi
        np.testing.assert_allclose(m[6:], 2 * n[:, :, None] * n[:, None, :] - np.eye(3), atol=1e-15)
        back = np.asarray(sk.matrix_to_quaternion(kind(m)))
        np.testing.assert_allclose(np.abs(back[6:, 1:] * np.sign((back[6:, 1:] * n).sum(-1, keepdims=True))), np.abs(n), atol=1e-12)
        np.testing.assert_allclose(back[6:, 0], 0.0, atol=1e-12)


def test_axis_angle_matrix_round_trip():
    aa = random_axis_angle(3000, np.random.default_rng(3))
    m = sk.axis_angle_to_matrix(aa)
    assert_rotation(m)
    back = sk.matrix_to_axis_angle(m)
    # Near pi, aa and -aa are the same rotation: compare rotations there,
    # vectors elsewhere.
    np.testing.assert_allclose(sk.axis_angle_to_matrix(back), m, atol=1e-5)
    far_from_pi = np.linalg.norm(aa, axis=1) < np.pi - 1e-2
    np.testing.assert_allclose(back[far_from_pi], aa[far_from_pi], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), np.linalg.norm(aa, axis=1), atol=1e-5)


def test_matrix_agrees_with_rodrigues_formula():
    aa = random_axis_angle(200, np.random.default_rng(4))
    theta = np.linalg.norm(aa, axis=1)
    k = aa / np.maximum(theta, 1e-300)[:, None]
    kx = np.zeros((200, 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx -= np.swapaxes(kx, 1, 2)
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    expected = np.eye(3) + s * kx + (1 - c) * kx @ kx
    np.testing.assert_allclose(sk.axis_angle_to_matrix(aa), expected, atol=1e-9)


def test_quaternion_round_trips():
    aa = random_axis_angle(3000, np.random.default_rng(5))
    q = sk.axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    m = sk.quaternion_to_matrix(q)
    q2 = sk.matrix_to_quaternion(m)
    # q and -q are one rotation.
    err = np.minimum(np.abs(q2 - q).max(axis=1), np.abs(q2 + q).max(axis=1))
    assert err.max() < 1e-5
    np.testing.assert_allclose(sk.axis_angle_to_matrix(sk.quaternion_to_axis_angle(q)), m, atol=1e-5)


def test_rot6d_round_trip_and_projection():
    rng = np.random.default_rng(6)
    m = sk.axis_angle_to_matrix(random_axis_angle(3000, rng))
    np.testing.assert_allclose(sk.rot6d_to_matrix(sk.matrix_to_rot6d(m)), m, atol=1e-5)
    # Arbitrary 6-vectors (what a network outputs) become valid rotations.
    assert_rotation(sk.rot6d_to_matrix(rng.normal(size=(500, 6))))


def test_quaternion_multiply_composes_like_matrices():
    rng = np.random.default_rng(7)
    a, b = (sk.axis_angle_to_quaternion(random_axis_angle(100, rng)) for _ in range(2))
    np.testing.assert_allclose(
        sk.quaternion_to_matrix(sk.quaternion_multiply(a, b)),
        sk.quaternion_to_matrix(a) @ sk.quaternion_to_matrix(b),
        atol=1e-9,
    )


def test_float32_round_trip_within_1e5():
    aa = random_axis_angle(3000, np.random.default_rng(8)).astype(np.float32)
    m = sk.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(sk.axis_angle_to_matrix(sk.matrix_to_axis_angle(m)), m, atol=1e-5)
    np.testing.assert_allclose(sk.rot6d_to_matrix(sk.matrix_to_rot6d(m)), m, atol=1e-5)


def test_mirror_is_an_involution_and_mirrors_positions():
    rng = np.random.default_rng(9)
    rot = sk.axis_angle_to_matrix(0.5 * random_axis_angle(24 * 4, rng).reshape(4, 24, 3))
    np.testing.assert_allclose(sk.mirror_rotations(sk.mirror_rotations(rot)), rot, atol=1e-12)
    trans = np.zeros((4, 3))
    _, j = sk.forward_kinematics(rot, trans)
    _, jm = sk.forward_kinematics(sk.mirror_rotations(rot), trans)
    flipped = j[:, sk.MIRROR_PERMUTATION] * np.array([-1.0, 1.0, 1.0])
    # Exact up to the asymmetry of the SMPL rest offsets (a few cm at the hands).
    assert np.abs(jm - flipped).max() < 0.05


@pytest.mark.parametrize("order", ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"])
def test_euler_round_trip_every_order_including_gimbal_lock(order):
    rng = np.random.default_rng(7)
    angles = rng.uniform(-np.pi, np.pi, size=(200, 3))
    angles[:, 1] = rng.uniform(-np.pi / 2, np.pi / 2, size=200)
    angles[:20, 1] = np.pi / 2  # gimbal lock
    angles[20:40, 1] = -np.pi / 2
    m = sk.euler_to_matrix(angles, order)
    assert_rotation(m)
    back = sk.euler_to_matrix(sk.matrix_to_euler(m, order), order)
    np.testing.assert_allclose(back, m, atol=1e-9)
    # Away from gimbal lock the angles themselves come back.
    np.testing.assert_allclose(sk.matrix_to_euler(m[40:], order), angles[40:], atol=1e-9)


def test_euler_matches_composition_of_axis_rotations():
    a = np.array([0.3, -0.7, 1.1])
    rz = sk.axis_angle_to_matrix(np.array([0.0, 0.0, a[0]]))
    rx = sk.axis_angle_to_matrix(np.array([a[1], 0.0, 0.0]))
    ry = sk.axis_angle_to_matrix(np.array([0.0, a[2], 0.0]))
    np.testing.assert_allclose(sk.euler_to_matrix(a, "zxy"), rz @ rx @ ry, atol=1e-12)


def test_slerp_is_constant_speed_and_short_way():
    axis = np.array([0.0, 0.6, 0.8])
    q0 = sk.axis_angle_to_quaternion(np.zeros(3))
    q1 = -sk.axis_angle_to_quaternion(axis * 2.0)  # the long-way sign must be ignored
    t = np.linspace(0, 1, 9)
    q = sk.quaternion_slerp(np.broadcast_to(q0, (9, 4)), np.broadcast_to(q1, (9, 4)), t)
    np.testing.assert_allclose(sk.quaternion_to_axis_angle(q), axis * 2.0 * t[:, None], atol=1e-9)
    same = sk.quaternion_slerp(q0[None], q0[None], np.array([0.3]))
    np.testing.assert_allclose(same, q0[None], atol=1e-12)


def test_heading_yaw_ignores_pitch_and_inverts_yaw_to_matrix():
    yaw = np.linspace(-3.0, 3.0, 13)
    pitch = sk.axis_angle_to_matrix(np.array([1.2, 0.0, 0.0]))  # bending forward a lot
    m = sk.yaw_to_matrix(yaw) @ pitch
    np.testing.assert_allclose(sk.heading_yaw(m), yaw, atol=1e-9)
    # Yawing +90 degrees turns the body's forward (+z) to +x.
    np.testing.assert_allclose(sk.yaw_to_matrix(np.array([np.pi / 2]))[0] @ [0, 0, 1], [1, 0, 0], atol=1e-12)
