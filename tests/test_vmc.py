"""VMC output over real UDP on 127.0.0.1, read back by a python-osc server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from livedance import skeleton as sk
from livedance.config import OscSettings
from livedance.frames import Frame
from livedance.outputs.vmc import BONE_MAP, VmcSender
from loopback import OscCollector as Collector

#: Unity's HumanBodyBones names a VMC receiver maps (body, without fingers/eyes/jaw).
UNITY_BODY_BONES = {
    "Hips", "LeftUpperLeg", "RightUpperLeg", "LeftLowerLeg", "RightLowerLeg", "LeftFoot", "RightFoot",
    "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftShoulder", "RightShoulder", "LeftUpperArm",
    "RightUpperArm", "LeftLowerArm", "RightLowerArm", "LeftHand", "RightHand", "LeftToes", "RightToes",
}


def random_frame(dancers: int, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    rotations = sk.axis_angle_to_matrix(rng.normal(size=(dancers, 24, 3)))
    trans = rng.uniform(-1.5, 1.5, size=(dancers, 3)) + [0.0, 0.95, 0.0]
    return Frame.from_pose(3, 2.75, time.time(), rotations, trans)


def _unity_quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    # Unity's quaternion algebra is the usual one; only the component order differs.
    return sk.quaternion_to_matrix(np.asarray(q_xyzw, dtype=np.float64)[..., [3, 0, 1, 2]])


def _receive_one_avatar(frame: Frame) -> list[tuple[str, tuple]]:
    collector = Collector()
    try:
        sender = VmcSender.from_settings(OscSettings(vmc=f"127.0.0.1:{collector.port}"))
        sender.send(frame)
        sender.close()
        collector.wait_for(len(BONE_MAP) + 3)
        assert sender.stats.dropped == 0
    finally:
        collector.close()
    return collector.messages


def test_vmc_messages_follow_the_protocol_addresses_and_argument_types():
    messages = _receive_one_avatar(random_frame(1))
    addresses = [a for a, _ in messages]
    assert addresses[0] == "/VMC/Ext/Root/Pos"
    assert addresses[-2:] == ["/VMC/Ext/OK", "/VMC/Ext/T"]
    assert addresses.count("/VMC/Ext/Bone/Pos") == len(BONE_MAP) == len(addresses) - 3
    for address, args in messages:
        if address in ("/VMC/Ext/Root/Pos", "/VMC/Ext/Bone/Pos"):
            # s name, f px py pz, f qx qy qz qw
            assert len(args) == 8 and isinstance(args[0], str)
            assert all(type(v) is float for v in args[1:])
            assert np.linalg.norm(args[4:]) == pytest.approx(1.0, abs=1e-5)
        elif address == "/VMC/Ext/OK":
            assert all(type(v) is int for v in args) and args[0] == 1  # loaded
        else:
            assert len(args) == 1 and type(args[0]) is float and args[0] == 2.75
    assert messages[0][1][0] == "root"
    bones = [args[0] for a, args in messages if a == "/VMC/Ext/Bone/Pos"]
    assert set(bones) <= UNITY_BODY_BONES and len(set(bones)) == len(bones)


def test_unity_side_forward_kinematics_reproduces_the_pose():
    """Chain the received local transforms the way Unity does, mirror back to
    right-handed, and land on livedance's own joint positions: proves the
    handedness change is applied consistently to positions and rotations."""
    frame = random_frame(1, seed=3)
    messages = _receive_one_avatar(frame)
    root = np.array(messages[0][1][1:])
    local = {args[0]: np.array(args[1:]) for a, args in messages if a == "/VMC/Ext/Bone/Pos"}
    root_rot = _unity_quat_to_matrix(root[3:])
    unity_parent = {bone: BONE_MAP.get(sk.JOINT_NAMES[sk.PARENTS[sk.JOINT_INDEX[j]]]) for j, bone in BONE_MAP.items()}
    glob: dict[str, np.ndarray] = {}
    pos: dict[str, np.ndarray] = {}
    for joint, bone in BONE_MAP.items():  # SMPL order: parents first
        parent = unity_parent[bone]
        parent_rot, parent_pos = (root_rot, root[:3]) if parent is None else (glob[parent], pos[parent])
        pos[bone] = parent_pos + parent_rot @ local[bone][:3]
        glob[bone] = parent_rot @ _unity_quat_to_matrix(local[bone][3:])
    for joint, bone in BONE_MAP.items():
        back = pos[bone] * [-1.0, 1.0, 1.0]  # Unity (left-handed) -> livedance
        np.testing.assert_allclose(back, frame.joints[0, sk.JOINT_INDEX[joint]], atol=1e-5)


def test_rest_pose_is_identity_rotations_facing_forward():
    frame = Frame.from_pose(0, 0.0, time.time(), np.broadcast_to(np.eye(3), (1, 24, 3, 3)), np.array([[0.3, 0.9, 0.0]]))
    messages = _receive_one_avatar(frame)
    for address, args in messages:
        if address.endswith("/Pos"):
            np.testing.assert_allclose(args[4:], [0, 0, 0, 1], atol=1e-7)
    local = {args[0]: args[1:4] for a, args in messages if a == "/VMC/Ext/Bone/Pos"}
    assert local["LeftUpperArm"][0] < 0 < local["RightUpperArm"][0]  # Unity: +x is the avatar's right
    root = messages[0][1]
    assert root[1:4] == pytest.approx((-0.3, 0.0, 0.0))  # on the floor, x mirrored
    assert local["Hips"] == pytest.approx((0.0, 0.9, 0.0))


def test_each_avatar_gets_its_own_port():
    for _ in range(20):  # find two free consecutive ports
        first = Collector()
        try:
            second = Collector(first.port + 1)
            break
        except OSError:
            first.close()
    else:
        pytest.skip("no two consecutive free UDP ports")
    try:
        sender = VmcSender("127.0.0.1", first.port, avatars=2)
        frame = random_frame(3, seed=5)
        sender.send(frame)
        sender.close()
        for c in (first, second):
            c.wait_for(len(BONE_MAP) + 3)
        hips = [next(args for a, args in c.messages if args and args[0] == "Hips") for c in (first, second)]
        for k in range(2):
            assert hips[k][2] == pytest.approx(float(frame.trans[k, 1]), abs=1e-6)
        assert sender.stats.packets == 2 * 2  # two datagrams per avatar, third dancer not sent
    finally:
        first.close()
        second.close()


def test_vmc_datagrams_fit_the_lan_mtu():
    sender = VmcSender("127.0.0.1", 9)
    (datagrams,) = sender.encode(random_frame(1))
    sender.close()
    assert all(len(d) <= 1400 for d in datagrams)
    assert all(OscBundle.dgram_is_bundle(d) for d in datagrams)
    assert all(d[8:16] == (1).to_bytes(8, "big") for d in datagrams)  # "immediately"


def test_handedness_formula_matches_the_documentation():
    """docs/osc.md and vmc.py promise positions (-x, y, z) and quaternions (x, -y, -z, w)."""
    from livedance.outputs.vmc import UNITY

    rng = np.random.default_rng(9)
    q = sk.axis_angle_to_quaternion(rng.normal(size=(50, 3)))
    w, x, y, z = q.T
    np.testing.assert_allclose(UNITY.quaternions_xyzw(q), np.stack([x, -y, -z, w], axis=1), atol=1e-7)
    p = rng.normal(size=(50, 3))
    np.testing.assert_allclose(UNITY.positions(p), p * [-1, 1, 1], atol=1e-6)
    # Conjugating by the mirror is what the quaternion change does to the matrix.
    s = np.diag([-1.0, 1.0, 1.0])
    mirrored = s @ sk.quaternion_to_matrix(q) @ s
    np.testing.assert_allclose(_unity_quat_to_matrix(UNITY.quaternions_xyzw(q)), mirrored, atol=1e-6)
