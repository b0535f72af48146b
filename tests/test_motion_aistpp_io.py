import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data

from livedance import skeleton as sk
from livedance.errors import UserError
from livedance.motion.aistpp import load_aistpp, parse_name, save_aistpp
from livedance.motion.clip import place_on_floor
from livedance.motion.io import load_motion, save_motion
from livedance.motion.kinematic_beats import estimate_tempo
from livedance.motion.synthetic import synthetic_dance

def write_published_format(path: Path, poses: np.ndarray, trans_m: np.ndarray, scaling: float) -> None:
    """An AIST++ motion pkl exactly as the dataset ships them (float32, cm-like scaled trans)."""
    data = {
        "smpl_loss": 1.5,
        "smpl_poses": poses.reshape(len(poses), 72).astype(np.float32),
        "smpl_scaling": np.array([scaling], dtype=np.float32),
        "smpl_trans": (trans_m * scaling).astype(np.float32),
    }
    with path.open("wb") as f:
        pickle.dump(data, f)


def test_aistpp_loader_reads_the_published_format(tmp_path):
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(50, 24, 3)) * 0.5
    trans = rng.normal(size=(50, 3)) + [0.0, 1.6, 0.0]
    path = tmp_path / "gHO_sBM_cAll_d19_mHO3_ch01.pkl"
    write_published_format(path, poses, trans, scaling=93.5)
    clip = load_aistpp(path)
    assert clip.fps == 60.0 and len(clip) == 50 and clip.name == path.stem
    np.testing.assert_allclose(clip.trans, trans, atol=1e-5)
    np.testing.assert_allclose(clip.rotations, sk.axis_angle_to_matrix(poses), atol=1e-5)
    name = parse_name(path.stem)
    assert (name.genre_name, name.music, name.music_bpm) == ("house", "mHO3", 125.0)
    assert parse_name("gBR_sBM_cAll_d04_mBR2_ch08").music_bpm == 100.0
    assert parse_name("my_dance") is None


def test_aistpp_writer_round_trips(tmp_path):
    clip = synthetic_dance(0.2 + np.arange(6) * 0.5, fps=60.0, travel=0.5)
    path = tmp_path / "out.pkl"
    save_aistpp(path, clip.rotations, clip.trans, scaling=90.0)
    with path.open("rb") as f:
        raw = pickle.load(f)
    assert raw["smpl_poses"].shape == (len(clip), 72) and raw["smpl_poses"].dtype == np.float32
    assert raw["smpl_scaling"].shape == (1,)
    back = load_aistpp(path)
    np.testing.assert_allclose(back.joints(), clip.joints(), atol=1e-4)


def test_wrong_pkl_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "keypoints.pkl"
    with path.open("wb") as f:
        pickle.dump({"keypoints3d": np.zeros((4, 17, 3))}, f)
    with pytest.raises(UserError, match="needs keys smpl_poses") as exc:
        load_aistpp(path)
    assert "\n" not in str(exc.value)
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot read"):
        load_aistpp(tmp_path / "bad.pkl")


def test_real_aistpp_sample():
    motions = shared_data("aistpp-sample", "motions")
    files = sorted(motions.glob("*.pkl"))
    assert files, f"no AIST++ motion .pkl in {motions}"
    for path in files:
        clip = place_on_floor(load_aistpp(path))
        joints = clip.joints()
        # Metres, y up, a human: pelvis below 1.1 m (break dancers crouch
        # low: 0.54 m median in d04, head often level with the pelvis).
        assert 0.4 < np.median(clip.trans[:, 1]) < 1.1, path.name
        assert np.percentile(joints[:, 15, 1] - joints[:, 0, 1], 90) > 0.4  # upright at times
        # 60 fps: realistic mean joint speeds (m/s), not 2x off.
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean() * clip.fps
        assert 0.2 < speed < 3.0
        # The known music tempo gives a phase; the beats are genuinely periodic.
        tempo = estimate_tempo(joints, clip.fps, bpm=parse_name(path.stem).music_bpm)
        assert 0.0 <= tempo.phase < tempo.period


@pytest.mark.parametrize("ext", [".npz", ".bvh", ".pkl"])
def test_save_and_load_motion_round_trip(tmp_path, ext):
    clip = synthetic_dance(0.2 + np.arange(6) * 0.5, fps=60.0, travel=0.5)
    path = tmp_path / f"dance{ext}"
    beats = np.array([0.2, 0.7, 1.2])
    save_motion(path, clip.rotations, clip.trans, clip.fps, beats=beats, tempo=np.float64(120.0))
    back = load_motion(path)
    assert back.fps == pytest.approx(60.0)
    np.testing.assert_allclose(back.joints(), clip.joints(), atol=1e-4)
    if ext == ".npz":
        with np.load(path) as z:
            assert z["poses"].shape == (len(clip), 24, 3)
            np.testing.assert_allclose(z["joints"], clip.joints(), atol=1e-5)
            assert float(z["fps"]) == 60.0
        np.testing.assert_allclose(back.meta["beats"], beats)
        assert float(back.meta["tempo"]) == 120.0


def test_pkl_export_resamples_to_60_fps(tmp_path):
    clip = synthetic_dance(0.2 + np.arange(6) * 0.5, fps=30.0)
    save_motion(tmp_path / "d.pkl", clip.rotations, clip.trans, 30.0)
    back = load_motion(tmp_path / "d.pkl")
    assert back.fps == 60.0 and len(back) == 2 * len(clip) - 1
    np.testing.assert_allclose(back.joints()[::2], clip.joints(), atol=1e-4)


def test_unknown_extension_names_the_supported_ones(tmp_path):
    clip = synthetic_dance(np.array([0.2, 0.7]), fps=30.0)
    with pytest.raises(UserError, match=r"\.npz, \.bvh, \.pkl"):
        save_motion(tmp_path / "d.fbx", clip.rotations, clip.trans, 30.0)
    with pytest.raises(UserError, match="use one of"):
        load_motion(tmp_path / "d.txt")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="missing poses"):
        load_motion(tmp_path / "other.npz")


def test_mirroring_a_clip_mirrors_its_joint_positions():
    clip = synthetic_dance(0.2 + np.arange(6) * 0.5, fps=30.0, travel=0.5)
    rng = np.random.default_rng(5)
    # Make it asymmetric, so a no-op "mirror" could not pass.
    rot = clip.rotations @ sk.axis_angle_to_matrix(rng.normal(size=(len(clip), 24, 3)) * 0.3)
    trans = clip.trans + [0.4, 0.0, 0.0]
    asym = type(clip)(rot, trans, clip.fps)
    flip = np.array([-1.0, 1.0, 1.0])
    # On a left/right-symmetric skeleton, mirroring is exact...
    sym = 0.5 * (sk.REST_OFFSETS + sk.REST_OFFSETS[sk.MIRROR_PERMUTATION] * flip)
    m = asym.mirrored()
    joints = sk.forward_kinematics(asym.rotations, asym.trans, sym)[1]
    mirrored = sk.forward_kinematics(m.rotations, m.trans, sym)[1]
    np.testing.assert_allclose(mirrored, joints[:, sk.MIRROR_PERMUTATION] * flip, atol=1e-9)
    assert np.abs(mirrored - joints).max() > 0.3
    # ...and on SMPL's own (asymmetric by a few mm) it is close.
    err = np.linalg.norm(m.joints() - asym.joints()[:, sk.MIRROR_PERMUTATION] * flip, axis=-1)
    assert err.mean() < 0.02
    np.testing.assert_allclose(m.mirrored().joints(), asym.joints(), atol=1e-9)
