import numpy as np

from livedance import skeleton as sk
from livedance.live.idle import idle_features
from livedance.live.phase import BeatClock, wrap_phase
from livedance.live.timeline import FRAMES_PER_BEAT, UNIT_FRAMES, UnitTimeline

FPS = 60.0


def grid(t: float) -> tuple[float, float]:
    """(tempo, phase) of an ideal tracker: 120 BPM from 0 s, then at 8 s a jump
    to 150 BPM on a grid shifted by 0.13 s."""
    if t < 8.0:
        return 120.0, (t / 0.5) % 1.0
    return 150.0, ((t - 8.13) / 0.4) % 1.0


def test_beat_clock_relocks_within_four_beats_after_tempo_jump():
    clock = BeatClock()
    errors = []
    for i in range(int(16 * FPS)):
        t = i / FPS
        tempo, phase = grid(t)
        clock.advance(1 / FPS, tempo, phase)
        errors.append((t, abs(wrap_phase(clock.position % 1.0 - phase))))
    errors = np.array(errors)
    assert errors[(errors[:, 0] > 4) & (errors[:, 0] < 8), 1].max() < 0.01  # on the beat, not a frame late
    assert errors[(errors[:, 0] > 8) & (errors[:, 0] < 8.2), 1].max() > 0.2  # the jump was real
    after = errors[errors[:, 0] > 8.0 + 4 * 0.4]
    assert after[:, 1].max() < 0.05, "not back in sync within 4 beats of the jump"


def test_beat_clock_is_monotonic_and_reenters_on_a_unit_boundary():
    clock = BeatClock(position=3.3)
    clock.jump_to_phase(0.75, multiple=2)
    assert clock.position >= 3.3
    assert abs(clock.position % 1.0 - 0.75) < 1e-9
    assert (np.floor(clock.position) + 1) % 2 == 0
    before = clock.position
    for _ in range(100):
        assert clock.advance(1 / FPS, 128.0, 0.1) >= 0
    assert clock.position > before


def ramp_unit(start: float, slope: float, d: int = 5) -> np.ndarray:
    return (start + slope * np.arange(UNIT_FRAMES, dtype=np.float32))[None, :, None].repeat(d, axis=2)


def test_seams_are_continuous_in_value_and_velocity():
    tl = UnitTimeline(seam_frames=8)
    tl.append(0, ramp_unit(0.0, 1.0))
    tl.append(1, ramp_unit(36.0, -1.0))  # a 4-unit pop and a velocity flip at the seam
    positions = np.arange(0.0, 3.9, 1 / FRAMES_PER_BEAT / 4)  # the queue ends at 4
    values = np.array([tl.sample(p)[0, 0] for p in positions])
    steps = np.diff(values)
    seam = np.searchsorted(positions, 2.0)
    # Across the seam the motion carries on at the old speed: no jump.
    np.testing.assert_allclose(steps[seam - 3 : seam], 0.25, atol=1e-4)
    assert 0.15 < steps[seam] <= 0.25
    # Inside the seam window the correction stays gentle (pop spread over 8 frames).
    assert np.abs(steps).max() < 0.25 + 1.5 * 4 / 8 / 4 + 0.25
    assert np.abs(np.diff(steps)).max() < 0.15  # a velocity flip of 2/frame spread over 8 frames
    # After the seam window, the new unit plays as generated.
    np.testing.assert_allclose(tl.sample(2.0 + 12 / FRAMES_PER_BEAT)[0, 0], 36.0 - 12, atol=1e-4)


def test_timeline_needs_lookahead_and_drops_played_units():
    tl = UnitTimeline()
    assert tl.needs(0.0) == 0
    tl.append(0, ramp_unit(0, 1))
    assert tl.needs(0.0) == 1
    tl.append(1, ramp_unit(0, 1))
    assert tl.needs(0.5) is None
    assert tl.needs(2.1) == 2
    assert tl.sample(4.5) is None  # unit 2 missing: caller holds the pose
    assert len(tl) == 0


def test_idle_pose_is_a_relaxed_standing_body():
    feats = idle_features(1.0, 0.25, np.array([0, 1]))
    assert feats.shape == (2, 148)
    rot = sk.rot6d_to_matrix(feats[:, 4:].reshape(2, 24, 6).astype(np.float64))
    trans = np.zeros((2, 3))
    trans[:, 1] = feats[:, 0]
    _, joints = sk.forward_kinematics(rot, trans)
    j = sk.JOINT_INDEX
    # Arms hang: wrists well below shoulders; feet near the floor; head up.
    assert np.all(joints[:, j["left_wrist"], 1] < joints[:, j["left_shoulder"], 1] - 0.3)
    assert np.all(joints[:, j["right_wrist"], 1] < joints[:, j["right_shoulder"], 1] - 0.3)
    assert np.all(np.abs(joints[:, j["left_ankle"], 1] - (sk.ANKLE_TO_SOLE)) < 0.08)
    assert np.all(joints[:, j["head"], 1] > 1.4)
    # Two dancers do not breathe in lockstep.
    assert np.abs(feats[0] - feats[1]).max() > 1e-3
