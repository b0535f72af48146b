"""The beat tracker's period and phase: read below the tempo grid, corrected by
the tracked beats themselves, held through fills, and on real music against
the shared reference beats."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from livedance.config import BeatSettings, FeatureSettings
from livedance.music.beats import BeatState, BeatTracker
from livedance.music.features import FeatureExtractor
from livedance.music.synth import drum_track
from tests.conftest import shared_data

SR, HOP = 22050, 512


def analyse(y: np.ndarray, sr: int = SR) -> tuple[list[BeatState], np.ndarray]:
    fx = FeatureExtractor(FeatureSettings(), sr, HOP)
    block = fx(y)
    tracker = BeatTracker(BeatSettings(), fx.frame_rate, fx.onset_latency)
    states = tracker.hear(block)
    return states, np.array([s.beat_time for s in states if s.beat])


def clicks(bpm: float, seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A click track: 20 ms noise bursts exactly on the beat."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    n = int(0.02 * SR)
    burst = np.exp(-np.arange(n) / (0.003 * SR))
    beats = np.arange(0.0, seconds - 0.05, 60.0 / bpm)
    for t in beats:
        i = int(round(t * SR))
        y[i : i + n] += 0.5 * rng.standard_normal(n) * burst
    return y.astype(np.float32), beats


def nearest_error(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.array([e - truth[np.argmin(np.abs(truth - e))] for e in est])


@pytest.mark.parametrize("bpm", [131.8, 93.7, 152.3])
def test_a_tempo_between_the_grid_steps_is_read_to_half_a_percent(bpm: float):
    """The tempo is estimated on a 1 % grid; the beats' own spacing refines it.
    After 8 s every hop's tempo is within 0.5 % (measured at most 0.16, 0.11,
    0.34 %; on drum kits it was up to 1.6 % before the beats set the period
    at sub-hop precision) and every beat within 20 ms of the click (measured
    at most 8 ms)."""
    y, truth = clicks(bpm, 20.0)
    states, events = analyse(y)
    tempo = np.array([s.tempo for s in states if s.time >= 8.0])
    assert np.max(np.abs(tempo / bpm - 1.0)) < 0.005
    late = events[events >= 8.0]
    assert late.size >= 0.9 * np.sum(truth >= 8.0)
    assert np.max(np.abs(nearest_error(late, truth))) < 0.02


@pytest.mark.parametrize("before,after", [(120.0, 123.6), (130.0, 126.1), (140.0, 135.8)])
def test_a_three_percent_tempo_step_is_followed_within_four_beats(before: float, after: float):
    """A tempo that moves by 3 % (a DJ's pitch fader, a live band) is followed
    by the beats, not drifted through: every beat after the step within 35 ms
    (measured at most 25), the tempo within 1.2 % from the 4th beat on
    (measured at most 0.94 %) and within 0.6 % from the 8th (measured 0.47 %)."""
    step = 12.0
    y, truth = drum_track(before, 24.0, sr=SR, seed=1, pattern="rock", tempo=[(step, after)])
    states, events = analyse(y)
    new = truth[truth >= step - 1e-6]
    err = nearest_error(events[events >= step - 0.035], new)
    assert err.size >= len(new) - 2 and np.max(np.abs(err)) < 0.035
    times = np.array([s.time for s in states])
    tempo = np.array([s.tempo for s in states])
    assert np.max(np.abs(tempo[times >= new[4] + 0.05] / after - 1.0)) < 0.012
    assert np.max(np.abs(tempo[times >= new[8] + 0.05] / after - 1.0)) < 0.006


def spliced(bpm: float, parts: list[tuple[str, int]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bars of different drum patterns on one beat grid: ``parts`` = [(pattern, bars)]."""
    bar = 4 * 60.0 / bpm
    total = sum(bars for _, bars in parts) * bar
    rendered = {p: drum_track(bpm, total + 1.0, sr=SR, seed=seed, pattern=p)[0] for p, _ in parts}
    y = np.zeros(int(round(total * SR)), np.float32)
    t0 = 0.0
    for pattern, bars in parts:
        a, b = int(round(t0 * SR)), int(round((t0 + bars * bar) * SR))
        y[a:b] = rendered[pattern][a:b]
        t0 += bars * bar
    return y, np.arange(0.0, total - 1e-6, 60.0 / bpm)


@pytest.mark.parametrize("bpm", [100.0, 120.0, 128.0])
def test_syncopated_bars_and_breakbeats_keep_the_phase_and_tempo(bpm: float):
    """Bars of funk (kicks on the 'and's) and breakbeat inside a rock groove:
    the beats stay on the grid (measured: F 1.0, every beat within 19 ms) and
    the tempo steady (measured within 0.55 %; the period fit over fewer beats
    let a funk bar at 128 BPM pull it 3 % off)."""
    y, truth = spliced(bpm, [("rock", 6), ("funk", 2), ("break", 2), ("rock", 2), ("funk", 2), ("rock", 2)])
    states, events = analyse(y)
    start = 4.0
    est = events[(events >= start - 0.035) & (events <= truth[-1] + 0.07)]  # (the audio ends on a beat)
    assert mir_eval.beat.f_measure(truth[truth >= start], est, 0.07) >= 0.97
    assert np.max(np.abs(nearest_error(est, truth))) < 0.04
    tempo = np.array([s.tempo for s in states if s.time >= start])
    assert np.max(np.abs(tempo / bpm - 1.0)) < 0.015


@pytest.mark.parametrize(
    "bpm,points", [(120.0, [(8.0, 126.0), (16.0, 114.0), (24.0, 120.0)]), (100.0, [(6.0, 104.0), (12.0, 97.0), (18.0, 103.0), (24.0, 100.0)])]
)
def test_a_drifting_tempo_is_followed(bpm: float, points: list[tuple[float, float]]):
    """A tempo that drifts 5-10 % up and down (rubato, a live band): beats
    within 60 ms throughout (measured at most 25 and 40 ms), F >= 0.95
    (measured 0.99 and 1.0)."""
    y, truth = drum_track(bpm, 24.0, sr=SR, seed=5, pattern="rock", tempo=points, ramp=True)
    _, events = analyse(y)
    est = events[events >= 4.0 - 0.035]
    assert mir_eval.beat.f_measure(truth[truth >= 4.0], est, 0.07) >= 0.95
    assert np.max(np.abs(nearest_error(est, truth))) < 0.06


@pytest.mark.parametrize(
    "bpm,to,f_min,err_max",
    [(111.0, 86.0, 0.85, 0.12), (86.0, 111.0, 0.95, 0.06)],
    ids=["ritardando", "accelerando"],
)
def test_a_ritardando_or_accelerando_is_followed_without_losing_the_beat(bpm: float, to: float, f_min: float, err_max: float):
    """The tempo ramps 111 -> 86 BPM (or 86 -> 111) in 3 s, then holds (a
    ritardando into a slow section): the beats bend away from a line through
    the older ones, and the tracker must follow the bend, not hold the old
    period until the autocorrelation catches up. No lock loss (CMLt 1), F
    (70 ms) and the worst beat error as measured over seeds 0-3: ritardando
    F 0.88-0.92, worst 80-108 ms (before the ramp fit: F 0.84-0.88, worst
    142-145 ms, CMLt 0.96); accelerando F 1.0, worst 47 ms (36 ms before)."""
    y, truth = drum_track(bpm, 20.0, sr=SR, seed=1, pattern="rock", tempo=[(8.0, bpm), (11.0, to)], ramp=True)
    _, events = analyse(y)
    est = events[events >= 4.0 - 0.035]
    ref = truth[truth >= 4.0]
    assert mir_eval.beat.continuity(ref, est)[1] == 1.0
    assert mir_eval.beat.f_measure(ref, est, 0.07) >= f_min
    assert np.max(np.abs(nearest_error(est, truth))) < err_max


def test_an_accelerando_keeps_the_level_the_beats_lock_to():
    """Funk (kicks on the 'and's) accelerating 140 -> 190 BPM over 6 s: the
    autocorrelation, read through the 130 BPM prior, soon prefers half the
    new tempo, but the beats lock at the full one; while they lock only they
    change the metrical level (an octave is judged against the beats' own
    period too, which leads the lagging tempo estimate). Measured F 1.0 /
    CMLt 1.0, no hop at half tempo (before: F 0.85 / CMLt 0.53, 82 % of the
    hops after the ramp at half tempo)."""
    y, truth = drum_track(140.0, 24.0, sr=SR, seed=1, pattern="funk", tempo=[(8.0, 140.0), (14.0, 190.0)], ramp=True)
    states, events = analyse(y)
    ref, est = truth[truth >= 5.0], events[events >= 5.0 - 0.035]
    assert mir_eval.beat.f_measure(ref, est, 0.07) >= 0.95
    assert mir_eval.beat.continuity(ref, est)[1] >= 0.9  # CMLt
    tempo = np.array([s.tempo for s in states if s.time >= 14.0])
    assert np.all(tempo > 0.75 * 190.0)


def test_a_half_time_section_inside_a_song_keeps_the_level():
    """Four-on-the-floor at 120 BPM for 30 s, then three bars (12 beats) with
    the kick on every other beat only (half time, an off-beat hat between),
    then the full kick again: a DJ's beat counter stays at 120 throughout. A
    level the beats have confirmed for 60 beats needs a phrase (16 beats) of
    contrary evidence. Measured: 119.8-120.5 BPM at every hop after 5 s
    (with 8 beats: halved to 60 at the end of the section and still there 6 s
    later)."""
    y = np.concatenate(
        [
            drum_track(120.0, 30.0, sr=SR, seed=1, pattern="four")[0],
            drum_track(60.0, 6.0, sr=SR, seed=2, pattern="four")[0],
            drum_track(120.0, 6.0, sr=SR, seed=3, pattern="four")[0],
        ]
    )
    states, _ = analyse(y)
    tempo = np.array([s.tempo for s in states if s.time >= 5.0])
    assert np.all(np.abs(tempo / 120.0 - 1.0) < 0.02)


def test_a_new_song_gets_its_level_as_quickly_as_a_fresh_stream():
    """A DJ cuts from 40 s of four-on-the-floor at 128 BPM to a rock beat at
    75 BPM, which the 130 BPM prior first reads at 150: the old song's long
    confirmed level must not slow the new song's level correction. Measured:
    the tempo is within 4 % of 75 from 3.7 s after the cut on, 3.0 s from the
    start when the same song starts a stream (when the old song's confirmation
    carried over: 5.9 s with 8 beats of evidence needed, 9.4 s with 16)."""

    def settled(y: np.ndarray, start: float) -> float:
        states, _ = analyse(y)
        wrong = [s.time for s in states if s.time >= start and abs(s.tempo / 75.0 - 1.0) >= 0.04]
        return (wrong[-1] - start) if wrong else 0.0

    song = drum_track(75.0, 20.0, sr=SR, seed=2, pattern="rock")[0]
    fresh = settled(song, 0.0)
    cut = settled(np.concatenate([drum_track(128.0, 40.0, sr=SR, seed=1, pattern="four")[0], song]), 40.0)
    assert cut <= fresh + 1.5  # (the tempo switch itself takes up to a second)


def _reference_track(name: str) -> tuple[np.ndarray, np.ndarray]:
    import soundfile as sf

    folder = shared_data("librosa-data-music")
    ref = np.loadtxt(shared_data("librosa-data-music", "beats-reference", f"{name}.beats.txt"))
    audio = next(iter(sorted(folder.glob(f"*/{name}.hq.ogg"))), None)
    if audio is None:
        pytest.skip(f"shared data not present: {name}.hq.ogg")
    y, sr = sf.read(audio, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != SR:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    return y, ref


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,f_min",
    [
        # Drum & bass at 136 BPM: its fills score 3:2 and half time for a bar;
        # it used to jump to 91 and sit at 68 BPM (F 0.68). Measured F 1.0.
        ("admiralbob77_-_Choice_-_Drum-bass", 0.95),
        # A 3/4 waltz at 150 BPM. Measured F 0.99.
        ("147793__setuniman__sweet-waltz-0i-22mi", 0.95),
    ],
)
def test_real_music_against_the_shared_reference_beats(name: str, f_min: float):
    """Real recordings against the shared reference beats (madmom offline,
    checked): F and CMLt after the first 5 s (mir_eval's convention); after
    8 s the reported beat period's median within 0.5 % of the reference's
    (measured 0.24 % and 0.01 %), every hop at the reference's metrical level
    (no octave or 3:2 flips: within 4 %; measured at most 2.6 and 0.4 %)."""
    y, ref = _reference_track(name)
    states, events = analyse(y)
    r, e = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(events)
    assert mir_eval.beat.f_measure(r, e, 0.07) >= f_min
    assert mir_eval.beat.continuity(r, e)[1] >= 0.9  # CMLt
    r8 = ref[ref >= 8.0]
    period = float(np.median((r8[8:] - r8[:-8]) / 8.0))  # (8-beat spans: the reference is on a 10 ms grid)
    tempo = np.array([s.tempo for s in states if s.time >= 8.0])
    assert abs(np.median(60.0 / tempo) / period - 1.0) < 0.005
    assert np.all(np.abs(60.0 / tempo / period - 1.0) < 0.04)


@pytest.mark.slow
def test_rubato_keeps_the_metrical_level_through_an_accelerando():
    """The Hungarian Dance (strong rubato) accelerates from ~150 to ~185 BPM at
    15-24 s; the held tempo loses its support while the beats still lock, and
    the tempo estimate, read through the prior, offers half the new tempo
    (83 BPM). The switch keeps the level nearest the beats' own period; and
    at ~185-195 BPM (21-23.5 s) the bars' weak second beats do not halve
    it, the level having held for about 50 beats (a phrase of contrary evidence
    needed). Measured F 0.74 / CMLt 0.66, 181-195 BPM at 21.5-23.5 s (with 8
    beats of evidence enough: 0.73 / 0.60, halved to 92 BPM at 21.9 s; 0.69 /
    0.54 while the autocorrelation could still halve the tempo at 20-22 s
    with the beats locked; before the level-keeping switch 0.65 / 0.44, at
    83-95 BPM from 17.5 to 29 s); a dev-set track, so a guard against going
    back, not a proof."""
    y, ref = _reference_track("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)")
    states, events = analyse(y)
    r, e = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(events)
    assert mir_eval.beat.f_measure(r, e, 0.07) >= 0.7
    assert mir_eval.beat.continuity(r, e)[1] >= 0.62  # CMLt
    tempo = np.array([s.tempo for s in states if 18.0 <= s.time <= 23.0])
    assert np.median(tempo) > 130.0  # not half the ~170-190 BPM beat
    assert np.all(np.array([s.tempo for s in states if 21.5 <= s.time <= 23.5]) > 130.0)


@pytest.mark.parametrize("bpm,pattern", [(120.0, "rock"), (128.0, "four"), (100.0, "funk")])
def test_a_mix_into_a_song_half_a_beat_off_moves_the_phase_within_eight_beats(bpm: float, pattern: str):
    """A DJ cuts to the next song at the same tempo but half a beat off: the
    held phase (which keeps a boom-chick on the boom) must still let the new
    beats take over. Measured: every beat from the 6th, 1st and 2nd on (the
    tracker before the phase hold: 5th, 1st, 2nd)."""
    cut = 10.0
    a, beats_a = drum_track(bpm, 12.0, sr=SR, seed=3, pattern=pattern)
    b, beats_b = drum_track(bpm, 12.0, sr=SR, seed=4, pattern=pattern, start_beat=0.5, timbre="electro")
    y = np.concatenate([a[: int(cut * SR)], b])
    new = cut + beats_b
    _, events = analyse(y)
    hit = [bool(events.size) and np.min(np.abs(events - t)) < 0.07 for t in new]
    first = next(i for i in range(len(hit) + 1) if all(hit[i:]))
    assert first <= 8, "".join("x" if h else "." for h in hit)
