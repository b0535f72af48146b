"""The metrical level: units span 4, 2 or 1 music beats (half, normal, double
time) so they play near the tempo they were danced at; chosen with
hysteresis, forced by setting, OSC (real UDP) or key, and reported in the OSC
stream and recorded files. Engine runs use the shipped checkpoint and
synthetic music whose true beats are known."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from livedance.config import Settings
from livedance.errors import UserError
from livedance.live.commands import build_engine
from livedance.live.controls import Controls
from livedance.live.level import LevelChooser, dance_tempo, parse_level, span
from livedance.live.osc_control import ControlServer
from livedance.live.run import frames_offline
from livedance.motion.kinematic_beats import kinematic_beats, mean_joint_speed
from livedance.music.synth import drum_track

SR = 22050
FPS = 60.0


def test_level_follows_a_tempo_ramp_without_flapping():
    chooser = LevelChooser()
    rng = np.random.default_rng(0)
    up = np.linspace(90.0, 165.0, 400)
    tempi = np.concatenate([up, up[::-1]]) * (1 + 0.01 * rng.standard_normal(800))  # a tracker's 1% jitter
    levels = np.array([chooser.choose(float(t)) for t in tempi])
    assert levels[0] == 0 and levels[399] == -1 and levels[-1] == 0
    assert np.count_nonzero(np.diff(levels)) == 2, "the level flapped on the boundary"
    # Up and back down at different tempi: the hysteresis band.
    assert tempi[np.argmax(levels == -1)] > tempi[400 + np.argmax(levels[400:] == 0)]
    # Slow music goes double-time; a forced level wins over the tempo.
    assert LevelChooser().choose(55.0) == 1
    assert chooser.choose(160.0, forced=0) == 0
    # On the beat clock, a new level must stay the better one for 8 beats: a
    # tracker reading an octave off for a few beats changes nothing.
    held = LevelChooser()
    assert [held.choose(130.0, now=b) for b in (0.0, 4.0, 7.9)] == [0, 0, 0]
    assert held.choose(65.0, now=8.5) == 0 and held.choose(130.0, now=9.0) == 0  # the count starts again
    assert held.choose(130.0, now=16.9) == 0 and held.choose(130.0, now=17.0) == -1


def test_level_values_and_spans():
    assert [parse_level(v) for v in ("auto", "half", "Normal", "double", -1, 0, 1, "1")] == [None, -1, 0, 1, -1, 0, 1, 1]
    for bad in ("triple", 2, 0.5, True):
        with pytest.raises(UserError, match="auto, half, normal, double"):
            parse_level(bad)
    assert [span(level) for level in (-1, 0, 1)] == [4.0, 2.0, 1.0]
    assert dance_tempo(130.0, -1) == 65.0


def dance(audio: np.ndarray, controls: Controls | None = None, **engine: object):
    settings = Settings()
    for k, v in engine.items():
        setattr(settings.engine, k, v)
    eng = build_engine(settings, controls)
    frames, positions, starts = [], [], []
    for f in frames_offline(eng, audio, SR, FPS):
        frames.append(f)
        positions.append(eng.clock.position)
        unit = eng.timeline.playing(eng.clock.position)
        starts.append(np.nan if unit is None else unit.start)
    return frames, np.asarray(positions), np.asarray(starts), eng


@pytest.fixture(scope="module")
def club():
    audio, beats = drum_track(130, 20.0, SR, seed=13, pattern="four", gain=0.9)
    return audio, beats, dance(audio)


@pytest.mark.slow
def test_club_tempo_dances_half_time_on_every_other_true_beat(club):
    audio, beats, (frames, positions, starts, eng) = club
    t = np.arange(len(frames)) / FPS
    level = np.array([f.level for f in frames])
    late = t > 6.0
    assert (level[late] == -1).all(), f"levels after 6 s: {np.unique(level[late])}"
    joints = np.stack([f.joints[0] for f in frames])
    # Half-time plays units near the tempo they were danced at: human speed
    # (the data's style medians are 0.58-1.65 m/s; normal time here was 1.6).
    speed = mean_joint_speed(joints[late], FPS).mean()
    assert 0.3 < speed < 1.2, f"{speed:.2f} m/s"
    # Kinematic beats land on the true beats the dance hits: every other one,
    # where a unit starts or reaches its middle.
    dance_positions = np.concatenate([np.unique(starts[late]), np.unique(starts[late]) + 2.0])
    hit_times = np.interp(dance_positions, positions, t)
    hit_times = hit_times[(hit_times > 7.0) & (hit_times < 19.0)]
    truth = beats[np.abs(beats[:, None] - hit_times[None]).argmin(0)]
    assert np.abs(truth - hit_times).max() < 0.05, "the dance beats are not on true beats"
    # The dancer hits them as real dancers do (engine.beat_hit 0), not with a
    # stop on each: its kinematic beats sit nearer the beats it hits than the
    # beats in between, which carry mostly none of their own.
    motion = kinematic_beats(joints, FPS) / FPS
    off = np.median(np.abs(motion[None, :] - truth[:, None]).min(1))
    others = np.setdiff1d(beats[(beats > 7.5) & (beats < 18.5)], truth)
    between = np.median(np.abs(motion[None, :] - others[:, None]).min(1))
    assert off < 0.09 and between > 1.5 * off, f"{off * 1000:.0f} ms from the beats danced, {between * 1000:.0f} ms from the others"


@pytest.mark.slow
def test_setting_forces_the_level(club):
    audio, *_ = club
    frames, *_ = dance(audio[: 10 * SR], level="normal")
    t = np.arange(len(frames)) / FPS
    assert all(f.level == 0 for f, ti in zip(frames, t) if ti > 2.0)
    with pytest.raises(UserError, match="engine.level|level 'fast'"):
        Controls.from_settings(_settings(level="fast"))


def _settings(**engine: object) -> Settings:
    s = Settings()
    for k, v in engine.items():
        setattr(s.engine, k, v)
    return s


@pytest.mark.slow
def test_osc_control_forces_the_level_over_real_udp(club):
    audio, *_ = club
    controls = Controls.from_settings(Settings())
    server = ControlServer(controls, "127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(server.address)
        sent = 0

        def send(*args: object) -> None:
            nonlocal sent
            b = OscMessageBuilder("/livedance/control/level")
            for a in args:
                b.add_arg(a)
            sock.send(b.build().dgram)
            sent += 1
            deadline = time.monotonic() + 3.0
            while server.stats.packets < sent and time.monotonic() < deadline:
                time.sleep(0.005)

        send("double")
        assert controls.snapshot().level == 1
        send(0)
        assert controls.snapshot().level == 0
        send()  # no argument: back to automatic
        assert controls.snapshot().level is None
        send("sideways")  # refused, counted, ignored
        assert controls.snapshot().level is None and server.stats.ignored.get("out of range") == 1
        send(-1)
        assert controls.snapshot().level == -1
        # The engine dances what was forced: half-time at 130 BPM either way, so force normal.
        send("normal")
        frames, *_ = dance(audio[: 10 * SR], controls)
        assert all(f.level == 0 for f in frames[int(2 * FPS) :])
    finally:
        sock.close()
        server.close()


def test_livedance_control_sets_the_level_by_name_or_number():
    from livedance.cli import main

    controls = Controls()
    with ControlServer(controls, "127.0.0.1", 0) as server:
        to = f"127.0.0.1:{server.address[1]}"
        assert main(["control", "level", "half", "--to", to]) == 0
        deadline = time.monotonic() + 3.0
        while controls.snapshot().level != -1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert controls.snapshot().level == -1
        assert main(["control", "level", "1", "--to", to]) == 0
        while controls.snapshot().level != 1 and time.monotonic() < deadline + 3.0:
            time.sleep(0.005)
        assert controls.snapshot().level == 1
        assert main(["control", "energy", "lots", "--to", to]) == 2  # a one-line user error


def test_viewer_key_cycles_the_level():
    from livedance.outputs.viewer import SHORTCUTS, next_level

    assert [next_level(x) for x in (None, -1, 0, 1)] == [-1, 0, 1, None]
    assert any(s.key == "L" for s in SHORTCUTS)


@pytest.mark.slow
def test_recorded_files_carry_the_level_per_frame(tmp_path, club):
    from livedance.outputs.recorder import Recorder

    audio, _, (frames, *_rest) = club
    rec = Recorder(tmp_path / "out.npz", FPS)
    for f in frames:
        rec.send(f)
    rec.close()
    data = np.load(tmp_path / "out.npz")
    assert data["level"].shape == (len(frames),)
    np.testing.assert_array_equal(data["level"], [f.level for f in frames])
    assert (data["level"][-60:] == -1).all()


def test_a_dropout_while_dancing_carries_on_without_a_pop():
    """Music that drops out for a moment (the dance has begun fading to idle,
    not finished) comes back: the dance carries on where it was, no jump of
    the clock or a new unit under a body still on show."""
    audio, _ = drum_track(100, 20.0, SR, seed=21, pattern="four", gain=0.9, breaks=[(10.0, 10.9)])
    frames, positions, *_ = dance(audio)
    t = np.arange(len(frames)) / FPS
    joints = np.stack([f.joints[0] for f in frames])
    step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)
    around = (t[1:] > 9.5) & (t[1:] < 14.0)
    assert step[around].max() < 0.2, f"pop of {step[around].max():.2f} m at {t[1:][around][np.argmax(step[around])]:.2f} s"
    # The beat clock steps at most 1.6x its tempo per frame (the loop's limit): no jump.
    # (Before: the dropout re-entered by jumping the clock ~1 beat and starting a new unit.)
    assert np.diff(positions)[around].max() <= 1.6 * 100 / 60 / FPS + 1e-9
