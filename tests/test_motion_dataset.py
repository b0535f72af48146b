import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data

from livedance.errors import UserError
from livedance.motion import dataset as ds
from livedance.motion.aistpp import save_aistpp
from livedance.motion.bvh import write_smpl_bvh
from livedance.motion.dataset import assign_splits, load_unit_dataset
from livedance.motion.synthetic import synthetic_dance

@pytest.fixture(scope="module")
def motion_tree(tmp_path_factory) -> Path:
    """A small tree like the shipped data: salsa pairs (SMPL BVH, CMU names) and AIST++ pkls."""
    root = tmp_path_factory.mktemp("motion")
    (root / "salsa").mkdir()
    (root / "aist" / "motions").mkdir(parents=True)
    (root / "aist" / "keypoints3d").mkdir()
    rng = np.random.default_rng(0)
    for trial in range(1, 6):
        period = rng.uniform(0.45, 0.65)
        beats = 0.2 + np.arange(13) * period
        for subject, travel in ((60, 0.3), (61, -0.3)):  # lead and follow of one take
            clip = synthetic_dance(beats, fps=30.0, travel=travel, amplitude=rng.uniform(0.5, 1.0))
            write_smpl_bvh(root / "salsa" / f"{subject}_{trial:02d}.bvh", clip.rotations, clip.trans, clip.fps)
    for ch in range(1, 5):
        beats = 0.3 + np.arange(13) * 60.0 / 125.0  # mHO3 = 125 BPM
        clip = synthetic_dance(beats, fps=60.0, amplitude=0.6)
        save_aistpp(root / "aist" / "motions" / f"gHO_sBM_cAll_d19_mHO3_ch{ch:02d}.pkl", clip.rotations, clip.trans + [0, 1.3, 0], 95.0)
    with (root / "aist" / "keypoints3d" / "gHO_sBM_cAll_d19_mHO3_ch01.pkl").open("wb") as f:
        pickle.dump({"keypoints3d": np.zeros((3, 17, 3))}, f)  # must be skipped, not loaded
    return root


@pytest.fixture(scope="module")
def data(motion_tree, tmp_path_factory) -> ds.UnitDataset:
    return load_unit_dataset([motion_tree], cache_dir=tmp_path_factory.mktemp("cache"))


def test_dataset_fields_follow_the_contract(data):
    u = len(data)
    assert u > 0 and data.units.shape == (u, 32, 148) and data.units.dtype == np.float32
    for name in ("tempo", "energy", "busyness", "start_time", "end_time"):
        assert getattr(data, name).shape == (u,) and getattr(data, name).dtype == np.float32
    for name in ("style", "take", "sequence", "first_beat"):
        assert getattr(data, name).dtype == np.int64
    assert set(np.unique(data.split)) <= {"train", "val", "test"}
    assert data.style_names == ["house", "salsa"]
    assert data.feature_mean.shape == data.feature_std.shape == (148,)
    assert np.all(data.feature_std >= 1e-3)
    train = data.units[data.split == "train"].reshape(-1, 148)
    np.testing.assert_allclose(data.feature_mean, train.mean(0), atol=1e-4)
    # AIST++ tempo comes from the music ID; units span two beats of it.
    house = data.style == data.style_names.index("house")
    np.testing.assert_allclose(data.tempo[house], 125.0, rtol=0.02)
    assert np.all(data.energy > 0) and np.all((data.busyness >= 0) & (data.busyness <= 1))


def test_splits_never_share_a_take_and_partners_stay_together(data):
    for take in np.unique(data.take):
        assert np.unique(data.split[data.take == take]).size == 1
    names = np.array(data.take_names)
    # Subjects 60 (lead) and 61 (follow) of trial 3 are one take.
    salsa_takes = sorted({n for n in names if n.startswith("cmu")})
    assert salsa_takes == [f"cmu60_{t:02d}" for t in range(1, 6)]
    seqs_of_take = {data.sequence_names[s] for s in data.sequence[data.take == list(names).index("cmu60_03")]}
    assert {"60_03", "61_03"} <= seqs_of_take
    # Each style with >= 3 takes has a val and a test take; augmentation only in train.
    for s in range(len(data.style_names)):
        assert {"train", "val", "test"} == set(data.split[data.style == s])
    assert not np.any(data.mirrored[data.split != "train"])
    assert not np.any(data.first_beat[data.split != "train"])
    assert np.any(data.mirrored[data.split == "train"])


def test_order_lists_each_sequence_in_time_with_seamless_units(data):
    seen = np.concatenate(data.order)
    assert np.array_equal(np.sort(seen), np.arange(len(data)))
    for seq in data.order:
        assert np.unique(data.sequence[seq]).size == 1
        np.testing.assert_allclose(data.start_time[seq][1:], data.end_time[seq][:-1], atol=1e-5)
        # Seamless: a unit's last frame leads into the next unit's first pose.
        a, b = data.units[seq[:-1], -1, 4:], data.units[seq[1:], 0, 4:]
        assert np.abs(a - b).max() < 0.3


def test_mirrored_copy_mirrors_the_features(data):
    k = int(np.flatnonzero(data.mirrored)[0])
    name = data.sequence_names[data.sequence[k]].replace("~mirror", "")
    orig = [s for s in data.order if data.sequence_names[data.sequence[s[0]]] == name][0]
    mirr = [s for s in data.order if data.sequence[s[0]] == data.sequence[k]][0]
    a, b = data.units[orig], data.units[mirr]
    np.testing.assert_allclose(b[..., 0], a[..., 0], atol=1e-5)  # height
    np.testing.assert_allclose(b[..., 1], -a[..., 1], atol=1e-5)  # sideways step flips
    np.testing.assert_allclose(b[..., 3], -a[..., 3], atol=1e-5)  # turning flips


def test_cache_is_used_and_invalidated_by_a_changed_file(motion_tree, tmp_path, monkeypatch):
    first = load_unit_dataset([motion_tree], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("units-*.npz"))) == 1

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(ds, "build_unit_dataset", no_build)
    again = load_unit_dataset([motion_tree], cache_dir=tmp_path)
    np.testing.assert_array_equal(again.units, first.units)
    assert again.take_names == first.take_names and len(again.order) == len(first.order)
    np.testing.assert_array_equal(again.split, first.split)
    path = next((motion_tree / "salsa").glob("*.bvh"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AssertionError, match="rebuilt"):
        load_unit_dataset([motion_tree], cache_dir=tmp_path)


def test_assign_splits_is_stable_and_by_take():
    takes = {"a": [f"t{i}" for i in range(20)], "b": ["x", "y"]}
    s1 = assign_splits(takes)
    s2 = assign_splits({"a": list(reversed(takes["a"])), "b": ["y", "x"]})
    assert s1 == s2
    assert sorted(s1[t] for t in takes["a"]).count("test") == 3  # 15% of 20
    assert s1["x"] == s1["y"] == "train"  # too few takes to hold any out


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_unit_dataset([tmp_path / "nope"], cache_dir=tmp_path)
    (tmp_path / "d").mkdir()
    with (tmp_path / "d" / "wrong.pkl").open("wb") as f:
        pickle.dump({"poses": np.zeros((3, 72))}, f)
    with pytest.raises(UserError, match=r"wrong\.pkl.*smpl_poses"):
        load_unit_dataset([tmp_path / "d"], cache_dir=tmp_path)


def test_real_shipped_data_subset(tmp_path):
    roots = [shared_data("cmu-mocap-modern-dance-05-bvh", f"05_0{i}.bvh") for i in (1, 2)]
    roots += [shared_data("cmu-mocap-salsa-bvh", "61_follow", "61_03_scaled.bvh")]
    roots += [shared_data("aistpp-sample", "motions", "gBR_sBM_cAll_d04_mBR2_ch08.pkl")]
    data = load_unit_dataset(roots, cache_dir=tmp_path)
    assert data.style_names == ["break", "modern", "salsa"]
    assert np.all((data.tempo > 40) & (data.tempo < 260))
    assert 0.1 < float(np.median(data.energy)) < 3.0
    assert np.all(np.isfinite(data.units))
    # Root height is a standing-ish human's pelvis.
    assert 0.3 < float(np.median(data.units[..., 0])) < 1.1
