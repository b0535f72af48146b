import numpy as np
import pytest

from livedance import skeleton as sk
from livedance.motion.clip import MotionClip, place_on_floor
from livedance.motion.descriptors import describe_units, unit_busyness
from livedance.motion.representation import features_to_motion
from livedance.motion.resample import resample, sample_motion
from livedance.motion.synthetic import synthetic_dance
from livedance.motion.units import UNIT_FRAMES, cut_units


def turning_clip(n: int = 121, fps: float = 120.0) -> MotionClip:
    """Root turning at a constant 3 rad/s about a tilted axis, moving at 1 m/s."""
    t = np.arange(n) / fps
    axis = np.array([0.3, 1.0, 0.2]) / np.linalg.norm([0.3, 1.0, 0.2])
    aa = np.zeros((n, 24, 3))
    aa[:, 0] = np.outer(3.0 * t, axis)
    trans = np.stack([t, np.full(n, 0.9), np.zeros(n)], axis=1)
    return MotionClip(sk.axis_angle_to_matrix(aa), trans, fps)


def test_resampling_slerps_rotations_exactly():
    clip = turning_clip()
    down = resample(clip, 30.0)
    assert down.fps == 30.0 and len(down) == 31
    np.testing.assert_allclose(down.rotations, clip.rotations[::4], atol=1e-9)
    up = resample(clip, 200.0)
    # A constant-rate turn is exactly a slerp, so in-between frames are exact too.
    want = turning_clip(n=len(up), fps=200.0)
    np.testing.assert_allclose(up.rotations, want.rotations, atol=1e-9)
    np.testing.assert_allclose(up.trans, want.trans, atol=1e-9)


def test_sampling_across_a_quaternion_sign_flip_takes_the_short_way():
    # Two frames either side of a half turn: matrix_to_quaternion picks w >= 0,
    # so their quaternions have opposite signs; slerp must not swing round.
    aa = np.zeros((2, 24, 3))
    aa[0, 0] = [0.0, np.pi - 0.1, 0.0]
    aa[1, 0] = [0.0, -(np.pi - 0.1), 0.0]  # = pi + 0.1 about +y
    rot, _ = sample_motion(sk.axis_angle_to_matrix(aa), np.zeros((2, 3)), np.array([0.5]))
    np.testing.assert_allclose(rot[0, 0], sk.axis_angle_to_matrix(np.array([0.0, np.pi, 0.0])), atol=1e-9)


def test_units_span_two_beats_and_replay_the_dance():
    beats = 0.3 + np.arange(13) * 0.5
    clip = synthetic_dance(beats, fps=60.0, travel=0.6)
    cut = cut_units(clip, beats * 60.0)
    assert len(cut) == 6 and cut.features.shape == (6, UNIT_FRAMES, 148)
    np.testing.assert_allclose(cut.end - cut.start, 60.0)
    np.testing.assert_allclose(cut.start[1:], cut.end[:-1])
    # Decoding unit 2 from the pose it starts in gives back the clip's motion
    # over those two beats (sampled on the canonical grid).
    k = 2
    rot, trans = features_to_motion(
        cut.features[k], clip.trans[int(cut.start[k])], float(sk.heading_yaw(clip.rotations[int(cut.start[k]), 0][None])[0])
    )
    frames = cut.start[k] + np.arange(UNIT_FRAMES) * 60.0 / UNIT_FRAMES
    want_rot, want_trans = sample_motion(clip.rotations, clip.trans, frames)
    np.testing.assert_allclose(rot, want_rot, atol=1e-4)
    np.testing.assert_allclose(trans, want_trans, atol=1e-4)


def test_same_dance_at_double_tempo_gives_the_same_units_and_double_energy():
    slow_beats = 0.3 + np.arange(9) * 0.8
    fast_beats = 0.3 + np.arange(9) * 0.4
    slow = synthetic_dance(slow_beats, fps=60.0, travel=0.5)
    fast = synthetic_dance(fast_beats, fps=60.0, travel=1.0)  # same distance per beat
    cs, cf = cut_units(slow, slow_beats * 60), cut_units(fast, fast_beats * 60)
    np.testing.assert_allclose(cs.features, cf.features, atol=2e-3)
    ds, df = describe_units(cs, slow.joints(), 60.0), describe_units(cf, fast.joints(), 60.0)
    np.testing.assert_allclose(ds.tempo, 75.0, rtol=1e-6)
    np.testing.assert_allclose(df.tempo, 150.0, rtol=1e-6)
    np.testing.assert_allclose(df.energy / ds.energy, 2.0, rtol=0.02)
    np.testing.assert_allclose(df.busyness, ds.busyness, atol=1e-3)


def test_busyness_rises_with_motion_between_the_beats():
    t = np.arange(UNIT_FRAMES + 1) / UNIT_FRAMES  # one unit = 2 beats
    joints = np.zeros((3, UNIT_FRAMES + 1, 24, 3))
    for i, cycles_per_beat in enumerate((1, 2, 4)):
        joints[i, :, :, 0] = 0.1 * np.sin(2 * np.pi * 2 * cycles_per_beat * t)[:, None]
    busy = unit_busyness(joints)
    assert busy[0] < 0.2 < 0.8 < busy[1] < busy[2]


def test_place_on_floor_puts_the_soles_at_zero():
    clip = synthetic_dance(0.3 + np.arange(5) * 0.5, fps=30.0)
    lifted = MotionClip(clip.rotations, clip.trans + [0.0, 0.7, 0.0], clip.fps)
    placed = place_on_floor(lifted)
    joints = placed.joints()
    # Lowest point of the feet: ankle minus its height over the sole, or the
    # toe joint minus its (2 cm) height; the knees are bent, so the toes touch.
    toe_lift = sk.REST_JOINTS[[10, 11], 1].min() - sk.REST_JOINTS[[7, 8], 1].min() + sk.ANKLE_TO_SOLE
    sole = np.minimum(joints[:, [7, 8], 1].min(1) - sk.ANKLE_TO_SOLE, joints[:, [10, 11], 1].min(1) - toe_lift)
    assert abs(np.median(sole)) < 2e-3
    assert sole.min() > -0.05
    np.testing.assert_allclose(placed.trans[:, [0, 2]], lifted.trans[:, [0, 2]])


@pytest.mark.parametrize("beats", [np.array([0.1]), np.array([0.1, 0.6])])
def test_too_few_beats_give_no_units(beats):
    clip = synthetic_dance(np.array([0.1, 0.6, 1.1]), fps=30.0)
    assert len(cut_units(clip, beats * 30)) == 0
