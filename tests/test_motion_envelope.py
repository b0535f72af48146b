"""The realism envelope's measures on motions whose answers are known analytically,
and the envelope of real takes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import shared_data

from livedance import skeleton as sk
from livedance.motion.envelope import (
    MEASURES,
    MotionEnvelope,
    jerk_magnitudes,
    measure_envelope,
    motion_stats,
    summarise,
)
from livedance.skeleton import JOINT_INDEX as J

FPS = 60.0


def _body(n: int, height: float = 0.0) -> np.ndarray:
    """(n, 24, 3) rest-pose joints, the feet at ``height`` above y = 0."""
    rest = np.asarray(sk.REST_JOINTS, dtype=np.float64)
    rest = rest - np.array([0.0, rest[[J["left_foot"], J["right_foot"]], 1].min() - height, 0.0])
    return np.repeat(rest[None], n, axis=0)


def _glide(path: np.ndarray) -> np.ndarray:
    """The rest body carried along ``path`` (n, 3) rigidly."""
    return _body(len(path)) + path[:, None, :]


def test_constant_velocity_body():
    t = np.arange(600) / FPS
    joints = _glide(np.stack([1.5 * t, 0.0 * t, 0.0 * t], -1))
    s = motion_stats(joints, FPS)
    assert s.speed == pytest.approx(1.5, rel=1e-9)
    assert s.displacement == pytest.approx(1.5 / FPS, rel=1e-9)
    assert s.jerk == pytest.approx(0.0, abs=1e-6)
    assert s.peak_ratio == pytest.approx(1.0, rel=1e-9)
    assert s.beat_speed_ratio is None
    assert s.seconds == pytest.approx(599 / FPS)
    # The feet slide along the floor the whole time: that is all skate...
    assert s.skate == pytest.approx(1.5, rel=1e-9)
    # ...unless the floor is a metre below them.
    assert motion_stats(joints, FPS, floor=-1.0).skate == 0.0


def test_skate_counts_only_feet_in_contact():
    n = 600
    t = np.arange(n) / FPS
    joints = _body(n)
    left, right = J["left_foot"], J["right_foot"]
    joints[:, left, 0] += 0.3 * t  # planted foot sliding at 0.3 m/s
    joints[:, right, 1] += 0.2  # the other foot 20 cm up, swinging fast
    joints[:, right, 2] += 2.0 * t
    assert motion_stats(joints, FPS, floor=0.0).skate == pytest.approx(0.3, rel=1e-9)
    # Half the time the left foot lifts as well: only its contact frames count.
    joints[n // 2 :, left, 1] += 0.5
    joints[n // 2 :, left, 0] += 3.0 * (t[n // 2 :] - t[n // 2])
    assert motion_stats(joints, FPS, floor=0.0).skate == pytest.approx(0.3, rel=1e-9)


def test_jerk_of_a_cubic_and_of_spikes():
    t = np.arange(300) / FPS
    c = 0.7
    cubic = _glide(np.stack([c * t**3, 0 * t, 0 * t], -1))
    assert motion_stats(cubic, FPS).jerk == pytest.approx(6 * c, rel=1e-6)  # x''' = 6c everywhere
    # A 1 cm one-frame glitch every 20 frames: third differences d, -3d, 3d, -d,
    # so the top 10% of jerk samples are 3d fps^3; the glitch frames (10% of
    # frame steps) move d.
    d = 0.01
    still = _body(2000, height=0.5)
    still[10::20] += np.array([d, 0.0, 0.0])
    assert jerk_magnitudes(still, FPS).max() == pytest.approx(3 * d * FPS**3, rel=1e-9)
    s = motion_stats(still, FPS)
    assert s.jerk == pytest.approx(3 * d * FPS**3, rel=1e-9)
    assert s.displacement == pytest.approx(d, rel=1e-9)


def test_measured_at_60_fps_whatever_the_rate():
    """The same motion sampled at 120 and 30 fps measures as at 60 fps (per-frame
    displacement is per 60 fps frame, not per input frame)."""

    def wave(fps: float) -> np.ndarray:
        t = np.arange(int(10 * fps)) / fps
        return _glide(np.stack([0.4 * np.sin(2 * np.pi * 0.7 * t), 0.1 * np.sin(2 * np.pi * 1.3 * t) + 0.3, 0 * t], -1))

    ref = motion_stats(wave(60.0), 60.0)
    for fps in (120.0, 30.0):
        s = motion_stats(wave(fps), fps)
        assert s.speed == pytest.approx(ref.speed, rel=0.01)
        assert s.displacement == pytest.approx(ref.displacement, rel=0.02)


def test_staccato_ratios_of_a_speed_that_dips_on_the_beat():
    """x(t) = v t - (a / w) sin(w t): speed v - a cos(w t), slowest on the beats
    t = k T. The smoothing (Gaussian, sigma 5 frames at 60 fps) scales the
    modulation by g = exp(-(w sigma)^2 / 2)."""
    v, a, period = 1.0, 0.5, 0.5  # 120 BPM
    w = 2 * np.pi / period
    t = np.arange(int(20 * FPS)) / FPS
    joints = _glide(np.stack([v * t - a / w * np.sin(w * t), 0 * t, 0 * t], -1))
    g = np.exp(-((w * 5 / FPS) ** 2) / 2)
    beats = np.arange(2, 38) * period  # away from the ends
    s = motion_stats(joints, FPS, beats)
    assert s.beat_speed_ratio == pytest.approx((v - g * a) / (v + g * a), rel=0.01)
    assert s.peak_ratio == pytest.approx((v + g * a * np.cos(0.05 * np.pi)) / v, rel=0.01)
    # Beats shifted half a period land on the fastest moments.
    assert motion_stats(joints, FPS, beats + period / 2).beat_speed_ratio == pytest.approx(
        (v + g * a) / (v - g * a), rel=0.01)
    # Beats outside the motion do not count.
    assert motion_stats(joints, FPS, np.array([-5.0, 100.0])).beat_speed_ratio is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        motion_stats(np.zeros((3, 24, 3)), FPS)
    with pytest.raises(ValueError):
        motion_stats(np.zeros((100, 17, 3)), FPS)


def test_envelope_summary_and_round_trip_through_a_checkpoint_load():
    t = np.arange(600) / FPS
    beats = np.arange(1.0, 9.0, 0.5)
    slow = motion_stats(_glide(np.stack([0.5 * t, 0 * t, 0 * t], -1)), FPS, beats)
    fast = motion_stats(_glide(np.stack([2.0 * t, 0 * t, 0 * t], -1)), FPS, beats)
    env = summarise({"a": [slow, slow, fast], "b": [fast]}, {"a": [90.0] * 10 + [120.0], "b": [130.0]}, "test")
    assert env.styles["a"].takes == 3 and env.overall.takes == 4
    assert env.styles["a"].median("speed") == pytest.approx(0.5)
    assert env.styles["b"].tempo.p50 == pytest.approx(130.0)
    assert env.reference("speed", "b") == pytest.approx(2.0)
    assert env.reference("speed") == pytest.approx(1.25)  # median of the style medians 0.5 and 2.0
    assert set(env.styles["a"].measures) == set(MEASURES)
    buf = io.BytesIO()
    torch.save({"envelope": env.to_dict()}, buf)
    buf.seek(0)
    back = MotionEnvelope.from_dict(torch.load(buf, weights_only=True)["envelope"])
    assert back == env


def test_envelope_of_real_takes():
    """AIST++ sample: two break and two street-jazz takes, tempo from the music ID."""
    env = measure_envelope([shared_data("aistpp-sample", "motions")])
    assert set(env.styles) == {"break", "street-jazz"}
    assert env.styles["break"].takes == 2 and env.overall.takes == 4
    # AIST++ break here is danced to mBR2 (100 BPM in the AIST++ naming).
    assert env.styles["break"].tempo.p50 == pytest.approx(100.0, abs=3.0)
    for s in env.styles.values():
        assert 0.2 < s.median("speed") < 3.0  # a dancing human, m/s
        assert 0.02 < s.median("displacement") < 0.5
        assert 0.5 < s.median("beat_speed_ratio") < 1.2
        assert s.median("peak_ratio") > 1.0


def test_shipped_checkpoint_carries_the_envelope_of_its_training_data():
    from livedance.model.checkpoint import load_checkpoint

    model = load_checkpoint()
    env = model.envelope
    assert env is not None
    assert set(env.styles) == set(model.style_names)
    salsa = env.styles["salsa"]
    assert salsa.takes == 28  # both partners of the 14 CMU salsa takes
    assert 70 < salsa.tempo.p50 < 100  # salsa was danced around 86 BPM, not club tempo
    assert 1.0 < salsa.median("speed") < 1.6


def test_checkpoint_without_envelope_still_loads(tmp_path):
    """Checkpoints from before the envelope load with ``envelope = None`` (the engine
    falls back); a damaged envelope is a one-line error, not a traceback."""
    from livedance.errors import UserError
    from livedance.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

    payload = read_checkpoint()
    old = {k: v for k, v in payload.items() if k != "envelope"}
    assert load_checkpoint(save_checkpoint(tmp_path / "old.pt", old)).envelope is None
    bad = dict(payload, envelope={"styles": {"salsa": {"takes": 1}}})
    with pytest.raises(UserError, match="unreadable envelope"):
        load_checkpoint(save_checkpoint(tmp_path / "bad.pt", bad))


def test_composer_training_stores_the_envelope_it_is_given(tmp_path):
    """`train composer` measures the envelope on its --data and stores it; here the
    measured envelope of real takes goes with a tiny synthetic training run."""
    from livedance.model.checkpoint import load_checkpoint
    from livedance.model.composer import ComposerConfig
    from livedance.model.vae import UnitVAEConfig
    from livedance.train.common import TrainConfig
    from livedance.train.composer import train_composer
    from livedance.train.data import synthetic_units
    from livedance.train.units import train_units

    env = measure_envelope([shared_data("aistpp-sample", "motions")])
    data = synthetic_units(takes=8, units_per_take=6)
    tiny = UnitVAEConfig(hidden=24, init_dim=8, move_dim=8)
    train_units(data, tmp_path / "u.pt", TrainConfig(steps=2, batch=8, val_every=2), tiny, progress=False)
    cfg = TrainConfig(steps=2, batch=8, val_every=2)
    ccfg = ComposerConfig(hidden=16, move_dim=8, init_dim=8, n_styles=2)
    train_composer(data, tmp_path / "u.pt", tmp_path / "c.pt", cfg, ccfg, window=4, progress=False, envelope=env)
    assert load_checkpoint(tmp_path / "c.pt").envelope == env
    train_composer(data, tmp_path / "u.pt", tmp_path / "n.pt", cfg, ccfg, window=4, progress=False)
    assert load_checkpoint(tmp_path / "n.pt").envelope is None
