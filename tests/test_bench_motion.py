"""``livedance bench motion``: its beat-offset reference and its verdicts, then one
real cell through the engine."""

from __future__ import annotations

import numpy as np
import pytest

from livedance import skeleton as sk
from livedance.bench.motion import beats_hit, dance_beats, judge, run_cell, synthetic_cells
from livedance.config import Settings
from livedance.model.checkpoint import load_checkpoint
from livedance.motion.envelope import MotionStats

FPS = 60.0


def _dipping(period: float, seconds: float = 12.0, phase: float = 0.0) -> np.ndarray:
    """A body gliding at 1 m/s that slows to 0.5 m/s every ``period`` s (at ``phase``)."""
    t = np.arange(int(seconds * FPS)) / FPS
    w = 2 * np.pi / period
    # A third of a frame off the grid: exactly between two frames, the two speed
    # samples either side of the slowest instant tie and neither is a strict minimum.
    x = t - 0.5 / w * np.sin(w * (t - phase - 0.3 / FPS))
    rest = np.asarray(sk.REST_JOINTS, dtype=np.float64)
    return rest[None] + np.stack([x, 0 * t, 0 * t], -1)[:, None, :]


def test_offset_is_measured_to_the_true_beats_with_the_right_parity():
    beats = np.arange(0.0, 12.0, 0.5)  # 120 BPM
    on, off = _dipping(0.5), _dipping(0.5, phase=0.25)
    hit, ms = beats_hit(on, FPS, beats, 0.0, half_time=False, other_parity=False)
    assert ms < 10 and np.array_equal(hit, beats)
    _, ms = beats_hit(off, FPS, beats, 0.0, half_time=False, other_parity=False)
    assert ms == pytest.approx(250, abs=10)  # a dance on the off-beat is a quarter second out
    # Half-time: kinematic beats every other beat, on either parity.
    for phase in (0.0, 0.5):
        hit, ms = beats_hit(_dipping(1.0, phase=phase), FPS, beats, 0.0, half_time=True, other_parity=False)
        assert ms < 10 and np.allclose(hit, beats[int(phase / 0.5) :: 2])
    # Where the beat's parity is ambiguous (the demo), the half-way points are a candidate grid.
    _, ms = beats_hit(off, FPS, beats, 0.0, half_time=False, other_parity=True)
    assert ms < 10
    # Double-time dances on the half beats too: those are its beats for the staccato ratio.
    assert np.allclose(dance_beats(beats[:3], 1), [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.array_equal(dance_beats(beats, 0), beats) and np.array_equal(dance_beats(beats, None), beats)


def test_verdicts_against_the_envelope():
    env = load_checkpoint().envelope
    human = MotionStats(speed=env.reference("speed"), skate=env.reference("skate"), displacement=env.reference("displacement"),
                        jerk=env.reference("jerk"), beat_speed_ratio=env.reference("beat_speed_ratio"),
                        peak_ratio=env.reference("peak_ratio"), seconds=10.0)
    v = judge(human, 10.0, env)
    assert all(v["ok"].values()) and v["excess"] <= 1.0
    assert v["ratio"]["speed"] == pytest.approx(1.0)
    whipping = MotionStats(**{**human.to_dict(), "displacement": 2 * env.reference("displacement")})
    v = judge(whipping, 10.0, env)
    assert v["ok"]["displacement"] is False and v["excess_by"] == "displacement" and v["excess"] > 1.7
    pumping = MotionStats(**{**human.to_dict(), "beat_speed_ratio": 0.3})
    assert judge(pumping, 10.0, env)["ok"]["beat_speed_ratio"] is False
    assert judge(human, 55.0, env)["ok"]["beat_offset_ms"] is False
    assert judge(human, 10.0, None)["ok"] is None  # a checkpoint without an envelope


@pytest.mark.slow
def test_one_cell_through_the_real_engine():
    settings = Settings()
    env = load_checkpoint().envelope
    (cell,) = synthetic_cells([130], ["loud"], 14.0, settings.audio.sample_rate)
    row = run_cell(settings, cell, 6.0, 0, env)
    assert abs(row["tracked_bpm"] - 130) < 3
    assert 0.2 < row["speed"] < 3.0 and row["seconds_measured"] == pytest.approx(8.0, abs=0.1)
    # Nearer the beats than half-way between them (chance level).
    assert row["beat_offset_ms"] is not None and row["beat_offset_ms"] < row["offbeat_offset_ms"]
    assert set(row["ok"]) == {"speed", "skate", "displacement", "jerk", "beat_offset_ms", "beat_speed_ratio", "peak_ratio"}


@pytest.mark.slow
def test_quiet_slow_music_is_danced_on_its_beats():
    """60 BPM drums at -30 dBFS fall under the listener's silence floor between
    hits; a gap between beats is not silence, so the dancer keeps dancing (it
    used to fade towards the idle groove every beat and miss the beats by
    133 ms in ``bench motion``), and its kinematic beats are on the true beats
    (with a stop on every beat, ``engine.beat_hit`` 1, so a fade shows)."""
    settings = Settings()
    settings.engine.beat_hit = 1.0
    env = load_checkpoint().envelope
    (cell,) = synthetic_cells([60], ["quiet"], 20.0, settings.audio.sample_rate)
    row = run_cell(settings, cell, 6.0, 0, env)
    assert abs(row["tracked_bpm"] - 60) < 2 and row["level"] == 0
    assert row["beat_offset_ms"] is not None and row["beat_offset_ms"] < 40
