import numpy as np
import pytest

from livedance.motion.kinematic_beats import (
    beat_alignment_score,
    beat_grid,
    estimate_tempo,
    kinematic_beats,
    mean_joint_speed,
)
from livedance.motion.synthetic import synthetic_dance


@pytest.mark.parametrize("fps", [60.0, 30.0])
def test_kinematic_beats_of_a_synthetic_dance_are_found_within_one_frame(fps):
    beats = 0.437 + np.arange(18) * 0.55  # 109 BPM, off the frame grid
    clip = synthetic_dance(beats, fps=fps, seconds=10.4, travel=0.3)
    found = kinematic_beats(clip.joints(), fps)
    want = beats * fps
    # Every true beat has a kinematic beat within one frame, and nothing else is found.
    assert found.size == beats.size
    assert np.abs(found - want).max() <= 1.0


def test_mean_joint_speed_is_metres_per_second():
    n, fps = 61, 60.0
    joints = np.zeros((n, 3, 3))
    joints[:, :, 0] = np.arange(n)[:, None] * 0.02  # 2 cm per frame = 1.2 m/s
    np.testing.assert_allclose(mean_joint_speed(joints, fps), 1.2)


def test_tempo_and_phase_of_a_steady_dance():
    beats = 0.2 + np.arange(24) * 0.6  # 100 BPM
    clip = synthetic_dance(beats, seconds=14.5)
    tempo = estimate_tempo(clip.joints(), 60.0)
    assert tempo.bpm == pytest.approx(100.0, abs=1.5)
    # Phase: the grid passes through the beats (modulo the period).
    offset = (beats[0] * 60.0 - tempo.phase) / tempo.period
    assert abs(offset - round(offset)) < 1.0 / tempo.period
    assert tempo.strength > 0.5


def test_known_tempo_only_estimates_the_phase():
    clip = synthetic_dance(0.25 + np.arange(20) * 0.5, seconds=10.0)
    tempo = estimate_tempo(clip.joints(), 60.0, bpm=120.0)
    assert tempo.bpm == 120.0 and tempo.period == 30.0
    assert abs((tempo.phase - 15.0 + 15.0) % 30.0 - 15.0) <= 1.0


def test_beat_grid_follows_a_drifting_tempo():
    beats = np.cumsum(np.linspace(0.62, 0.42, 26))  # 97 -> 143 BPM
    clip = synthetic_dance(beats, seconds=beats[-1] + 0.2)
    grid = beat_grid(clip.joints(), 60.0)
    # The grid may predict one beat in the lead-in before the dance's first.
    grid = grid[grid > beats[0] * 60.0 - 10.0]
    assert grid.size == beats.size
    assert np.abs(grid - beats * 60.0).max() <= 1.5


def test_beat_alignment_score():
    music = np.array([30.0, 60.0, 90.0])
    assert beat_alignment_score(music, music, 60.0) == pytest.approx(1.0)
    # 3 frames off at 60 fps = one sigma.
    assert beat_alignment_score(music + 3.0, music, 60.0) == pytest.approx(np.exp(-0.5))
    # The same 50 ms offset at 30 fps (1.5 frames) scores the same.
    assert beat_alignment_score(music / 2 + 1.5, music / 2, 30.0) == pytest.approx(np.exp(-0.5))
    # Nearest motion beat counts; extra motion beats cost nothing.
    assert beat_alignment_score(np.array([0.0, 29.0, 45.0, 61.0, 90.0, 200.0]), music, 60.0) == pytest.approx(
        (2 * np.exp(-1 / 18) + 1) / 3
    )
    assert beat_alignment_score(np.array([]), music, 60.0) == 0.0


def test_partners_share_a_tempo_and_the_longer_recording_weighs_more():
    from livedance.motion.kinematic_beats import estimate_shared_tempo

    long_100 = synthetic_dance(0.2 + np.arange(30) * 0.6, seconds=18.0).joints()
    short_140 = synthetic_dance(0.1 + np.arange(12) * 60 / 140, seconds=5.0).joints()
    assert estimate_tempo(short_140, 60.0).bpm == pytest.approx(140.0, abs=2.0)
    assert estimate_shared_tempo([long_100, short_140], 60.0) == pytest.approx(100.0, abs=1.5)
    with pytest.raises(ValueError, match="too short"):
        estimate_shared_tempo([long_100[:60]], 60.0)
