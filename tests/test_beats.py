"""The causal beat tracker on synthetic music with known beats."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from livedance.config import BeatSettings, FeatureSettings
from livedance.music.beats import BeatState, BeatTracker
from livedance.music.features import FeatureExtractor
from livedance.music.synth import drum_track

SR, HOP = 22050, 512
WINDOW = 0.07  # the usual 70 ms beat-matching tolerance


def analyse(y: np.ndarray) -> tuple[list[BeatState], np.ndarray, BeatTracker]:
    fx = FeatureExtractor(FeatureSettings(), SR, HOP)
    tracker = BeatTracker(BeatSettings(), fx.frame_rate, fx.onset_latency)
    block = fx(y)
    states = tracker.hear(block)  # as the engine feeds it
    events = np.array([s.beat_time for s in states if s.beat], dtype=np.float64)
    return states, events, tracker


def f_after_lock(truth: np.ndarray, events: np.ndarray, lock_beats: int = 4) -> float:
    """F-measure from the (lock_beats+1)-th true beat on."""
    start = truth[lock_beats] - WINDOW / 2
    # Beats are annotated only while the audio lasts; a prediction past the
    # last one is not an error.
    end = truth[-1] + WINDOW
    events = events[(events >= start) & (events <= end)]
    return float(mir_eval.beat.f_measure(truth[truth >= start], events, WINDOW))


@pytest.mark.parametrize(
    "bpm,pattern,timbre",
    [(90, "rock", "acoustic"), (120, "four", "electro"), (128, "four", "808"), (150, "rock", "808"), (136, "rock", "electro")],
)
def test_steady_patterns_lock_within_four_beats(bpm: float, pattern: str, timbre: str):
    y, truth = drum_track(bpm, 16.0, sr=SR, seed=bpm, pattern=pattern, timbre=timbre)
    _, events, tracker = analyse(y)
    assert f_after_lock(truth, events) >= 0.95
    assert abs(tracker.tempo / bpm - 1) < 0.03


def test_prefers_the_dance_tempo_over_half_or_double():
    for bpm in (70, 95, 150, 180):
        y, _ = drum_track(bpm, 12.0, sr=SR, seed=3, pattern="rock")
        _, _, tracker = analyse(y)
        assert abs(tracker.tempo / bpm - 1) < 0.03, f"{bpm} BPM tracked at {tracker.tempo:.1f}"


@pytest.mark.parametrize("before,after", [(100, 130), (132, 96)])
def test_relocks_within_four_beats_after_a_tempo_jump(before: float, after: float):
    jump = 10.0
    y, truth = drum_track(before, 20.0, sr=SR, seed=4, pattern="rock", tempo=[(jump, after)])
    states, events, tracker = analyse(y)
    new = truth[truth >= jump - 1e-6]
    assert f_after_lock(new, events) >= 0.95
    assert abs(tracker.tempo / after - 1) < 0.03


def test_follows_a_tempo_ramp():
    y, truth = drum_track(100, 20.0, sr=SR, seed=5, tempo=[(20.0, 135.0)], ramp=True)
    _, events, _ = analyse(y)
    assert f_after_lock(truth, events) >= 0.95


@pytest.mark.parametrize(
    "kw,target",
    [
        (dict(swing=0.33, bpm=108), 0.95),
        (dict(start_beat=2.5, bpm=124), 0.95),
        # Syncopated patterns: measured 0.94 and 0.88 (the break's off-beat
        # kick pulls some beats 40-80 ms early); recorded as such.
        (dict(pattern="funk", bpm=110), 0.9),
        (dict(pattern="break", bpm=140, timbre="electro"), 0.85),
    ],
)
def test_swing_syncopation_and_mid_bar_start(kw: dict, target: float):
    bpm = kw.pop("bpm")
    y, truth = drum_track(bpm, 16.0, sr=SR, seed=6, **kw)
    _, events, _ = analyse(y)
    assert f_after_lock(truth, events) >= target


def test_noise_and_reverb():
    y, truth = drum_track(122, 16.0, sr=SR, seed=7, noise_db=10.0, reverb=0.4, timbre="808")
    _, events, _ = analyse(y)
    assert f_after_lock(truth, events) >= 0.95


def test_break_drops_confidence_coasts_and_fires_no_beats():
    bpm, a, b = 120.0, 8.0, 12.0
    y, truth = drum_track(bpm, 18.0, sr=SR, seed=8, breaks=[(a, b)])
    states, events, _ = analyse(y)
    period = 60.0 / bpm
    # A sudden break cannot be foreseen: the beat predicted one beat into it may
    # still fire; none after it.
    # (A beat reported within the 70 ms window of the first beat after the
    # break is that beat, not one in the break.)
    in_break = events[(events > a + 1.1 * period) & (events < b - WINDOW / 2)]
    assert in_break.size == 0, f"beats fired in the break: {in_break}"
    late = [s for s in states if a + 1.5 < s.time < b]
    assert max(s.confidence for s in late) < 0.2
    # Predictions coast on the old beat grid through the silence...
    s = late[-1]
    np.testing.assert_allclose(np.diff(s.next_beats), period, atol=0.02)
    grid_err = (np.asarray(s.next_beats) - truth[0]) / period
    # (tempo is known to ~1%, so after 4 s of silence the grid is within a quarter beat)
    assert np.max(np.abs(grid_err - np.round(grid_err))) < 0.25
    # ...so the music is back in step at once.
    assert f_after_lock(truth[truth >= b], events, lock_beats=0) >= 0.95


def test_digital_silence_and_garbage_give_no_beats():
    fr = SR / HOP
    tracker = BeatTracker(BeatSettings(), fr)
    states = tracker.process(np.zeros(int(10 * fr)))
    assert not any(s.beat for s in states) and all(s.confidence == 0.0 for s in states)
    states = tracker.process(np.array([np.nan, np.inf, -np.inf, -1.0] * 50))
    assert not any(s.beat for s in states)
    assert all(np.isfinite(s.tempo) and len(s.next_beats) == 4 for s in states)


def test_state_contract_and_offline_equals_online():
    y, _ = drum_track(126, 12.0, sr=SR, seed=9, pattern="four")
    fx = FeatureExtractor(FeatureSettings(), SR, HOP)
    block = fx(y)
    settings = BeatSettings(lookahead_beats=6)
    tracker = BeatTracker(settings, fx.frame_rate, fx.onset_latency)
    offline = tracker.track(block.onset, block.bass_onset)
    tracker.reset()
    # Live: audio in chunks of any size through the features, as the engine feeds it.
    rng = np.random.default_rng(0)
    states: list[BeatState] = []
    i = 0
    while i < y.size:
        n = int(rng.integers(1, 40 * HOP))
        live = fx.process(y[i : i + n])
        states += tracker.hear(live)
        i += n
    online = np.array([s.beat_time for s in states if s.beat])
    assert online.size > 15
    np.testing.assert_array_equal(online, offline)
    for s in states[200:]:
        assert len(s.next_beats) == 6 and s.next_beats[0] > s.time - 1e-9
        assert np.all(np.diff(s.next_beats) > 0) and 0.0 <= s.phase < 1.0 and 0.0 <= s.confidence <= 1.0
        if s.beat:
            assert s.beat_time is not None and s.beat_time <= s.time + 1e-9
    # Reported when the audio reaches the beat: at most one hop late when locked.
    late = [s.time - s.beat_time for s in states[300:] if s.beat]
    assert max(late) <= 1.0 / fx.frame_rate + 0.05


@pytest.mark.slow
def test_bench_beats_runs_and_beats_librosa():
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "livedance.cli", "bench", "beats", "--json", "--seconds", "10"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    summary = result["summary"]
    assert len(result["items"]) >= 21
    assert summary["overall"]["ours"]["f"] >= summary["overall"]["librosa"]["f"]
    assert summary["latency_ms"]["p90"] <= summary["latency_ms"]["limit"]
    assert summary["cpu_per_audio_s"]["ours"] < 0.05


def test_demo_clip_locks_to_the_reference_beats_without_flips():
    """The shipped demo song (real music) after 8 s: beats within 70 ms of a
    checked reference, on the beat (not the off-beat), and one steady tempo,
    no octave or 3:2/4:3 flips.

    The reference (tests/data/demo_beats.txt) is the line through the shared
    madmom reference beats of the song, checked against its bass onsets (the
    file's header says how). The song is a boom-chick: bass on the beat,
    chords between; the tracker used to lock onto the chords, half a beat
    off, as did this file's earlier librosa reference. Measured: F 1.0,
    tempo 88.0-89.0 BPM (85.8-91.3 before the beats set the period).
    """
    from pathlib import Path

    import soundfile as sf

    root = Path(__file__).resolve().parents[1]
    y, sr = sf.read(root / "livedance" / "assets" / "demo.ogg", dtype="float32")
    assert sr == SR and y.ndim == 1
    ref = np.loadtxt(Path(__file__).with_name("data") / "demo_beats.txt")
    period = float(np.polyfit(np.arange(ref.size), ref, 1)[0])
    assert abs(60.0 / period - 88.5) < 0.5 and np.all(np.abs(np.diff(ref) / period - 1) < 0.1)  # evenly spaced
    states, events, _ = analyse(y)
    start = 8.0
    truth = ref[ref >= start]
    est = events[(events >= start - WINDOW / 2) & (events <= ref[-1] + WINDOW)]
    assert mir_eval.beat.f_measure(truth, est, WINDOW) >= 0.95
    tempo = np.array([s.tempo for s in states if s.time >= start])
    assert np.all(np.abs(tempo / 88.5 - 1) < 0.015), f"tempo {tempo.min():.1f}-{tempo.max():.1f} BPM"


def test_plain_float_shortcuts_match_numpy_to_the_bit():
    """The tracker replaces a few numpy calls by plain floats where the result
    is the same to the bit: np.mean of fewer than 8 values (numpy sums them
    left to right), np.interp on the tempo grid and the grid lookups. Guard
    those assumptions against a numpy that sums or interpolates otherwise."""
    from livedance.music.beats import _mean

    rng = np.random.default_rng(0)
    for n in range(1, 8):
        for _ in range(300):
            v = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
            assert _mean(v.tolist()) == float(np.mean(v))
            assert _mean(v[::2].tolist()) == float(v[::2].mean())
    tracker = BeatTracker(BeatSettings(), SR / HOP)
    n = len(tracker._grid_lag)
    for x in np.concatenate([rng.uniform(-1.0, n, 2000), np.arange(n, dtype=np.float64), [-0.5, n - 1.0, n + 0.5]]):
        assert tracker._grid_lag_at(float(x)) == float(np.interp(x, np.arange(n), tracker._grid_lag))
    from bisect import bisect_left

    for bpm in np.concatenate([rng.uniform(40.0, 260.0, 500), tracker._grid_bpm]):
        assert bisect_left(tracker._grid_bpm_list, float(bpm)) == int(np.searchsorted(tracker._grid_bpm, bpm))


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Broadband noise: white, or clicks at random (Poisson, 8 per second) times, like sparse applause."""
    if kind == "white":
        return rng.standard_normal(n)
    y = np.zeros(n)
    burst = rng.standard_normal((int(8 * n / SR), int(0.01 * SR))) * np.exp(-np.arange(int(0.01 * SR)) / (0.002 * SR))
    at = (np.cumsum(rng.exponential(SR / 8.0, len(burst)))).astype(int)
    for i, b in zip(at[at < n - burst.shape[1]], burst):
        y[i : i + b.size] += rng.uniform(0.3, 1.0) * b
    return y


@pytest.mark.parametrize("kind", ["white", "clicks"])
def test_confidence_falls_when_music_gives_way_to_noise(kind: str):
    """Between songs or in a noisy room the beat is gone, however loud the
    noise: confidence must fall below the engine's 0.25 within 4 s (measured:
    white 2.5 s, clicks 1.3 s) and stay low, while steady music keeps it
    near 1.0 after lock (measured 0.99 from 4 s). Clicks used to keep it at 1.0:
    the beat strength alone finds some click near every predicted beat."""
    change = 16.0
    music, _ = drum_track(120, change, sr=SR, seed=12, pattern="rock")
    noise = _noise(kind, int(12 * SR), np.random.default_rng(12))
    noise *= np.sqrt(np.mean(music.astype(np.float64) ** 2) / np.mean(noise**2))  # the same RMS
    states, _, _ = analyse(np.concatenate([music, noise]).astype(np.float32))
    t = np.array([s.time for s in states])
    c = np.array([s.confidence for s in states])
    assert c[(t >= 4.0) & (t < change)].min() >= 0.9
    fell = t[(t >= change) & (c < 0.25)]
    assert fell.size and fell[0] - change <= 4.0
    late = c[t >= change + 4.0]  # (measured: clicks 0.9 % of the hops at or above 0.25, peak 0.28)
    assert np.mean(late >= 0.25) < 0.05 and late.max() < 0.5  # (the engine re-enters the dance at 0.5)


def test_confidence_holds_through_the_demo_song():
    """Real music is less periodic than the synthetic kits: after lock (8 s)
    the demo song's confidence stays above 0.35 (measured 0.63; 0.44 before
    whole periods in the tempo range were searched too) until its 2 s fade-out."""
    from pathlib import Path

    import soundfile as sf

    y, _ = sf.read(Path(__file__).resolve().parents[1] / "livedance" / "assets" / "demo.ogg", dtype="float32")
    states, _, _ = analyse(y)
    c = np.array([s.confidence for s in states if 8.0 <= s.time < 28.0])
    assert c.min() >= 0.35


@pytest.mark.parametrize(
    "bpm,pattern,timbre", [(120, "rock", "acoustic"), (95, "funk", "electro"), (150, "rock", "808"), (90, "rock", "acoustic")]
)
def test_confidence_reaches_the_dance_threshold_within_a_second_of_the_first_beat(bpm: float, pattern: str, timbre: str):
    """The engine starts dancing at 0.5: performers notice every second of
    standing still at the start of a stream (measured 0.5-0.7 s after the
    first beat; it was 2.7-3.4 s while the periodicity held it down until
    its window had filled)."""
    y, truth = drum_track(bpm, 8.0, sr=SR, seed=bpm, pattern=pattern, timbre=timbre)
    states, _, _ = analyse(y)
    start = next(s.time for s in states if s.confidence >= 0.5)
    assert start - truth[0] <= 1.0


@pytest.mark.parametrize("before,after,seed", [(100, 130, 4), (128, 100, 7), (110, 140, 2)])
def test_confidence_stays_above_the_dance_threshold_through_a_tempo_jump(before: float, after: float, seed: int):
    """A track change is still music: the confidence the dancer sees must not
    dip towards the engine's 0.25 (measured: 0.86 at the least; it dipped to
    0.19-0.38 while the periodicity was read at the tracked tempo only, which
    for a while after the change is the old one)."""
    jump = 10.0
    y, _ = drum_track(before, 18.0, sr=SR, seed=seed, pattern="rock", tempo=[(jump, after)])
    states, _, _ = analyse(y)
    assert min(s.confidence for s in states if s.time >= 4.0) >= 0.5
