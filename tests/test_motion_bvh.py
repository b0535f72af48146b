from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_data

from livedance import skeleton as sk
from livedance.errors import UserError
from livedance.motion.bvh import read_bvh, smpl_from_bvh, write_smpl_bvh
from livedance.motion.retarget import CMU_ASF, CMU_CGSPEED, JointMap, detect_joint_map, retarget
from livedance.motion.synthetic import synthetic_dance

SALSA = SHARED_DATA / "cmu-mocap-salsa-bvh"
MODERN = SHARED_DATA / "cmu-mocap-modern-dance-05-bvh"


def random_motion(n: int = 40, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    aa = rng.normal(size=(n, 24, 3)) * 0.6
    aa[:5, 5] = [0.0, np.pi / 2, 0.0]  # ZYX gimbal lock on a few frames
    trans = rng.normal(size=(n, 3)) + [0.0, 1.0, 0.0]
    return sk.axis_angle_to_matrix(aa), trans


def test_bvh_export_import_export_is_stable(tmp_path):
    rot, trans = random_motion()
    joints = sk.forward_kinematics(rot, trans)[1]
    a, b = tmp_path / "a.bvh", tmp_path / "b.bvh"
    write_smpl_bvh(a, rot, trans, fps=30.0)
    motion = read_bvh(a)
    assert motion.fps == pytest.approx(30.0) and len(motion) == 40
    rot2, trans2 = smpl_from_bvh(motion)
    np.testing.assert_allclose(sk.forward_kinematics(rot2, trans2)[1], joints, atol=1e-4)
    write_smpl_bvh(b, rot2, trans2, fps=motion.fps)
    rot3, trans3 = smpl_from_bvh(read_bvh(b))
    np.testing.assert_allclose(sk.forward_kinematics(rot3, trans3)[1], joints, atol=1e-4)
    # The file's own FK (its offsets, its channel semantics) agrees too: the
    # writer and the reader do not just share one mistake.
    _, pos = motion.forward_kinematics()
    names = motion.skeleton.names
    np.testing.assert_allclose(pos[:, [names.index(n) for n in sk.JOINT_NAMES]] / 100.0, joints, atol=1e-4)


def _smpl_as_foreign_bvh(tmp_path: Path, clip, units_per_metre: float, z_up: bool) -> Path:
    """Write SMPL motion as a BVH in other units, optionally in a z-up world."""
    rot, trans = clip.rotations.copy(), clip.trans.copy()
    if z_up:
        to_z_up = sk.axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))  # y -> z
        rot[:, 0] = to_z_up @ rot[:, 0]
        trans = trans @ to_z_up.T
    path = tmp_path / "foreign.bvh"
    write_smpl_bvh(path, rot, trans, clip.fps, units_per_metre=units_per_metre)
    return path


@pytest.mark.parametrize("z_up", [False, True])
def test_retarget_of_an_smpl_proportioned_skeleton_is_exact(tmp_path, z_up):
    """With identical proportions, direction matching must reproduce the joints
    exactly, whatever the units (inches here) and up axis."""
    clip = synthetic_dance(0.3 + np.arange(8) * 0.5, fps=30.0, travel=0.4)
    motion = read_bvh(_smpl_as_foreign_bvh(tmp_path, clip, 39.37, z_up))
    identity = JointMap("smpl", {n: (n, n, 0.0) for n in sk.JOINT_NAMES})
    result = retarget(motion, identity)
    assert result.scale == pytest.approx(1 / 39.37, rel=1e-6)
    got = result.clip.joints()
    want = clip.joints()
    want = want - [0.0, want[:, 0, 1].min() - got[:, 0, 1].min(), 0.0]  # floor placement may shift y
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_unknown_skeleton_and_broken_files_are_user_errors(tmp_path):
    rot, trans = random_motion(5)
    path = tmp_path / "smpl.bvh"
    write_smpl_bvh(path, rot, trans, fps=30.0)
    with pytest.raises(UserError, match="no joint map"):
        detect_joint_map(read_bvh(path))
    text = path.read_text()
    truncated = tmp_path / "truncated.bvh"
    truncated.write_text(text[: len(text) - 200])
    with pytest.raises(UserError, match="truncated"):
        read_bvh(truncated)
    (tmp_path / "junk.bvh").write_text("hello world")
    with pytest.raises(UserError, match="not a BVH file"):
        read_bvh(tmp_path / "junk.bvh")
    with pytest.raises(UserError, match="cannot read"):
        read_bvh(tmp_path / "missing.bvh")


@pytest.mark.parametrize(
    "path, joint_map, bound",
    [
        (SALSA / "60_lead" / "60_01_scaled.bvh", CMU_CGSPEED, 0.08),
        (SALSA / "61_follow" / "61_05_scaled.bvh", CMU_CGSPEED, 0.08),
        (MODERN / "05_03.bvh", CMU_ASF, 0.12),
    ],
)
def test_retargeted_cmu_joints_match_the_source(path, joint_map, bound):
    """Positions of the retargeted SMPL joints vs the source's anchor points
    (scaled to SMPL's leg length): the residual is the two bodies' differing
    proportions (CMU torsos are shorter relative to the legs), so legs match
    to ~3 cm and the mean over all joints is bounded as in docs/model.md."""
    path = shared_data(*path.relative_to(SHARED_DATA).parts)
    result = retarget(read_bvh(path))
    assert result.joint_map is joint_map
    err = np.linalg.norm(result.clip.joints() - result.anchors, axis=-1)  # (N, 24)
    legs = [sk.JOINT_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    print(f"{path.name}: mean joint error {err[:, 1:].mean() * 100:.1f} cm, legs {err[:, legs].mean() * 100:.1f} cm")
    assert err[:, 1:].mean() < bound
    assert err[:, legs].mean() < 0.05
    # A plausible upright human on the floor.
    assert 0.8 < np.median(result.clip.trans[:, 1]) < 1.05
    feet = result.clip.joints()[:, [7, 8], 1].min(1)
    assert abs(np.median(feet) - sk.ANKLE_TO_SOLE) < 0.03
