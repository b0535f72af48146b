import numpy as np

from livedance import skeleton as sk
from livedance.motion import units
from livedance.motion.representation import FEATURE_DIM, features_to_motion, motion_to_features


def spinning_walk(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    aa = rng.normal(size=(n, 24, 3)) * 0.3
    # Root turns 1.5 turns (past +-pi, so yaw wrapping is exercised) while tilting.
    aa[:, 0] = np.stack([np.full(n, 0.3), np.linspace(0, 3 * np.pi, n), np.zeros(n)], axis=1)
    trans = np.cumsum(rng.normal(size=(n, 3)) * 0.03, axis=0) + [1.0, 0.9, -2.0]
    return sk.axis_angle_to_matrix(aa), trans


def test_contract_constants():
    assert FEATURE_DIM == 148
    assert (units.MODEL_FPS, units.BEATS_PER_UNIT, units.UNIT_FRAMES) == (30, 2, 32)


def test_features_round_trip_to_motion():
    rot, trans = spinning_walk()
    feats = motion_to_features(rot, trans)
    assert feats.shape == (60, FEATURE_DIM) and feats.dtype == np.float32
    yaw0 = float(sk.heading_yaw(rot[:1, 0])[0])
    rot2, trans2 = features_to_motion(feats, trans[0], yaw0)
    np.testing.assert_allclose(rot2, rot, atol=1e-5)
    np.testing.assert_allclose(trans2, trans, atol=1e-5)


def test_features_do_not_depend_on_where_or_which_way_the_dance_starts():
    rot, trans = spinning_walk()
    turn = sk.yaw_to_matrix(np.array([1.1]))[0]
    moved_rot = rot.copy()
    moved_rot[:, 0] = turn @ rot[:, 0]
    moved_trans = (turn @ trans[:, :, None])[:, :, 0] + [5.0, 0.0, -3.0]
    np.testing.assert_allclose(
        motion_to_features(moved_rot, moved_trans), motion_to_features(rot, trans), atol=1e-5
    )


def test_root_features_mean_what_the_contract_says():
    n = 10
    rot = np.broadcast_to(np.eye(3), (n, 24, 3, 3)).copy()
    # Facing +x (yaw +90 degrees) and stepping 5 cm per frame along +x = straight ahead.
    rot[:, 0] = sk.yaw_to_matrix(np.full(n, np.pi / 2))
    trans = np.stack([np.arange(n) * 0.05, np.full(n, 0.93), np.zeros(n)], axis=1)
    f = motion_to_features(rot, trans)
    np.testing.assert_allclose(f[:, 0], 0.93, atol=1e-6)
    np.testing.assert_allclose(f[:, 1:3], np.tile([0.0, 0.05], (n, 1)), atol=1e-6)
    np.testing.assert_allclose(f[:, 3], 0.0, atol=1e-6)
    # Heading removed from the root: the root's 6D is the identity's.
    np.testing.assert_allclose(f[:, 4:10], np.tile([1, 0, 0, 0, 1, 0], (n, 1)), atol=1e-6)


def test_body_joints_are_the_body_without_travel_or_turning_on_numpy_and_torch():
    import torch

    from livedance.motion.representation import body_joints

    rot, trans = spinning_walk()
    feats = motion_to_features(rot, trans)
    got = body_joints(feats.astype(np.float64))
    # Same body, root heading taken out, pelvis over the origin at its own height.
    world = sk.forward_kinematics(rot, trans)[1]
    yaw = sk.heading_yaw(rot[:, 0])
    unturn = sk.yaw_to_matrix(-yaw)[:, None]  # (N, 1, 3, 3)
    local = (unturn @ (world - trans[:, None] * [1.0, 0.0, 1.0])[..., None])[..., 0]
    np.testing.assert_allclose(got, local, atol=1e-4)
    np.testing.assert_allclose(body_joints(torch.from_numpy(feats)).numpy(), got, atol=1e-4)
