"""The recorder streams frames to disk while the show runs and writes the motion file at close."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedance import skeleton as sk
from livedance.frames import BeatEvent, Frame
from livedance.motion.io import load_motion
from livedance.outputs.recorder import Recorder


def frame(i: int, dancers: int, rng: np.random.Generator) -> Frame:
    rot = sk.axis_angle_to_matrix(rng.normal(size=(dancers, 24, 3)) * 0.4)
    trans = rng.normal(size=(dancers, 3))
    beats = (BeatEvent(index=i, time=i / 60.0, tempo=120.0),) if i % 30 == 0 else ()
    return Frame(index=i, time=i / 60.0, wall_time=0.0, trans=trans, rotations=rot, joints=np.zeros((dancers, 24, 3)),
                 tempo=120.0 + i, beats=beats)


def test_frames_go_to_disk_as_they_come_and_round_trip_with_changing_dancer_counts(tmp_path: Path):
    rng = np.random.default_rng(0)
    counts = [1] * 40 + [3] * 50 + [2] * 30
    frames = [frame(i, n, rng) for i, n in enumerate(counts)]
    rec = Recorder(tmp_path / "show.npz", 60.0)
    scratch = lambda: list(tmp_path.glob(".show.npz.*.frames"))  # noqa: E731
    sizes = []
    for f in frames:
        rec.send(f)
        rec._scratch.flush()
        sizes.append(scratch()[0].stat().st_size)
    # Each frame's rotations and positions are on disk once sent (float64, all dancers).
    assert sizes[-1] == sum(n * (24 * 9 + 3) * 8 for n in counts) and np.all(np.diff(sizes) > 0)
    rec.close()
    assert not scratch(), "the scratch file must go once the motion file is written"
    z = np.load(tmp_path / "show.npz")
    np.testing.assert_array_equal(z["dancers"], counts)
    np.testing.assert_allclose(z["all_rotations"][50, :3], frames[50].rotations)
    np.testing.assert_allclose(z["all_trans"][100, :2], frames[100].trans)
    assert np.isnan(z["all_trans"][100, 2]).all() and np.isnan(z["all_trans"][0, 1:]).all()
    np.testing.assert_allclose(z["trans"], np.stack([f.trans[0] for f in frames]))
    np.testing.assert_allclose(z["tempo"], [f.tempo for f in frames])
    np.testing.assert_allclose(z["beats"], [i / 60.0 for i in range(0, len(frames), 30)])


def test_one_dancer_to_bvh(tmp_path: Path):
    rng = np.random.default_rng(1)
    frames = [frame(i, 1, rng) for i in range(20)]
    rec = Recorder(tmp_path / "show.bvh", 60.0)
    for f in frames:
        rec.send(f)
    rec.close()
    rec.close()  # every exit path calls it; the second call does nothing
    motion = load_motion(tmp_path / "show.bvh")
    np.testing.assert_allclose(motion.trans, np.stack([f.trans[0] for f in frames]), atol=1e-4)
