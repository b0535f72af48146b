"""Reproducible synthetic drum music with ground-truth beat times.

For tests, benchmarks and demos: drum patterns at any tempo, several
timbres, swing, tempo ramps and jumps, breaks, noise and reverb. Everything
is derived from ``seed``, so the same call always gives the same audio.

    audio, beats = drum_track(120, 10.0)               # 10 s at 120 BPM
    audio, beats = drum_track(100, 20.0, tempo=[(10.0, 130)])  # jump at 10 s
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.signal import fftconvolve, lfilter

# 16th-note grids for one 4/4 bar: velocity per step (0 = silent).
PATTERNS: dict[str, dict[str, Sequence[float]]] = {
    # kick on 1 and 3, snare on 2 and 4, closed hats on 8ths
    "rock": {
        "kick": [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        "snare": [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        "hat": [0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0],
    },
    # four-on-the-floor: kick every beat, clap on 2 and 4, open hat off-beat
    "four": {
        "kick": [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
        "snare": [0, 0, 0, 0, 0.8, 0, 0, 0, 0, 0, 0, 0, 0.8, 0, 0, 0],
        "hat": [0, 0, 0.4, 0, 0, 0, 0.4, 0, 0, 0, 0.4, 0, 0, 0, 0.4, 0],
    },
    # syncopated funk: kick on 1, the "and" of 2 and the "a" of 3
    "funk": {
        "kick": [1, 0, 0, 0, 0, 0, 0.8, 0, 0, 0, 0.9, 0, 0, 0, 0, 0.6],
        "snare": [0, 0, 0, 0, 1, 0, 0, 0.3, 0, 0.3, 0, 0, 1, 0, 0, 0],
        "hat": [0.4, 0.2, 0.4, 0.2, 0.4, 0.2, 0.4, 0.2, 0.4, 0.2, 0.4, 0.2, 0.4, 0.2, 0.4, 0.2],
    },
    # breakbeat
    "break": {
        "kick": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        "snare": [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0.4],
        "hat": [0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0, 0.5, 0, 0.3, 0],
    },
}

TIMBRES = ("acoustic", "electro", "808")


@dataclass(frozen=True)
class Track:
    """A rendered track and its annotations."""

    audio: np.ndarray  # (n,) float32 mono
    sample_rate: int
    beats: np.ndarray  # ground-truth beat times, seconds (only where music plays)
    downbeats: np.ndarray  # beat times that start a bar


def _env(n: int, sr: int, decay_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (decay_s * sr))


def _instruments(timbre: str, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot samples for the kit."""
    if timbre not in TIMBRES:
        raise ValueError(f"unknown timbre {timbre!r}; choose from {TIMBRES}")
    n = int(0.5 * sr)
    t = np.arange(n) / sr
    hi, lo, kdec, sdec = {"acoustic": (110, 50, 0.12, 0.10), "electro": (150, 55, 0.08, 0.06), "808": (90, 42, 0.35, 0.12)}[timbre]
    f = lo + (hi - lo) * np.exp(-t / 0.03)  # pitch sweep down
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(n, sr, kdec)
    kick[: int(0.002 * sr)] += rng.uniform(-0.5, 0.5, int(0.002 * sr))  # beater click
    noise = rng.standard_normal(n)
    body = np.sin(2 * np.pi * (180 if timbre != "808" else 220) * t) * _env(n, sr, 0.05)
    snare_noise = lfilter([1, -0.9], [1], noise) * _env(n, sr, sdec)  # brighter than white
    snare = 0.5 * body + 0.5 * snare_noise / np.abs(snare_noise).max()
    hat = lfilter([1, -1], [1, 0.3], rng.standard_normal(n)) * _env(n, sr, 0.02 if timbre != "808" else 0.04)
    return {
        "kick": (kick / np.abs(kick).max()).astype(np.float64),
        "snare": snare / np.abs(snare).max(),
        "hat": 0.6 * hat / np.abs(hat).max(),
    }


def _beat_clock(bpm: float, seconds: float, tempo: Sequence[tuple[float, float]], ramp: bool) -> np.ndarray:
    """Beat times from a tempo map: ``tempo`` = [(time_s, bpm), ...] changes
    (instant jumps, or linear ramps between the points if ``ramp``)."""
    points = [(0.0, float(bpm)), *[(float(t), float(b)) for t, b in tempo]]
    dt = 0.001
    grid = np.arange(0.0, seconds + 4.0, dt)
    pt, pb = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    if ramp:
        bpm_t = np.interp(grid, pt, pb)
    else:
        bpm_t = pb[np.searchsorted(pt, grid, side="right") - 1]
    phase = np.concatenate([[0.0], np.cumsum(bpm_t[:-1] / 60.0 * dt)])  # beats elapsed
    k = np.arange(0, int(phase[-1]))
    return np.interp(k, phase, grid)


def drum_track(bpm: float, seconds: float, sr: int = 22050, seed: int = 0, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Render a drum track; return ``(audio float32 mono, beat_times)``.

    ``options`` are :func:`render`'s keyword arguments (pattern, timbre,
    swing, tempo, ramp, breaks, start_beat, noise_db, reverb, bass, gain).
    """
    t = render(bpm, seconds, sr, seed, **options)
    return t.audio, t.beats


def render(
    bpm: float,
    seconds: float,
    sr: int = 22050,
    seed: int = 0,
    *,
    pattern: str = "rock",
    timbre: str = "acoustic",
    swing: float = 0.0,
    tempo: Sequence[tuple[float, float]] = (),
    ramp: bool = False,
    breaks: Sequence[tuple[float, float]] = (),
    start_beat: float = 0.0,
    noise_db: float | None = None,
    reverb: float = 0.0,
    bass: bool = True,
    gain: float = 0.5,
) -> Track:
    """Render a drum track as a :class:`Track` (audio, beats, downbeats).

    Args:
        bpm: starting tempo.
        tempo: later tempo points [(time_s, bpm)]; jumps, or ramps if ``ramp``.
        pattern: one of :data:`PATTERNS`; timbre: one of :data:`TIMBRES`.
        swing: 0..0.5, delay of off-beat 16ths/8ths as a fraction of a 8th note.
        breaks: [(start_s, end_s)] of silence; no beats are annotated there.
        start_beat: beats into the bar at time 0 (e.g. 1.5 = starts mid-bar).
        noise_db: add white noise at this SNR (dB) if given.
        reverb: 0..1 wet mix of a synthetic 1.2 s room.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {tuple(PATTERNS)}")
    rng = np.random.default_rng(seed)
    kit = _instruments(timbre, sr, rng)
    n = int(round(seconds * sr))
    out = np.zeros(n + sr, dtype=np.float64)
    # Beat clock starts `start_beat` beats before time 0 so the track can open mid-bar.
    lead = float(start_beat)
    clock = _beat_clock(bpm, seconds + 8.0, tempo, ramp)
    lead_period = 60.0 / bpm
    clock = np.concatenate([-lead_period * np.arange(int(np.ceil(lead)) + 1, 0, -1), clock])
    beat_idx = np.arange(clock.shape[0]) - (int(np.ceil(lead)) + 1)  # beat number at each clock entry

    def time_of(pos: float) -> float:
        # `pos` counts beats from the bar start at time -lead*period.
        x = pos - lead
        return float(np.interp(x, beat_idx, clock))

    steps = PATTERNS[pattern]
    n_beats = int(np.searchsorted(clock, seconds)) + int(np.ceil(lead)) + 2
    vel_jitter = rng.uniform(0.85, 1.0, size=(n_beats * 4, 3))
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    for step in range(n_beats * 4):
        beat_pos = step / 4.0
        frac16 = step % 4
        if frac16 == 2:
            beat_pos += swing * 0.5  # off-beat 8th: swing it
        elif frac16 in (1, 3):
            beat_pos += swing * 0.25
        at = time_of(beat_pos)
        if at < 0 or at >= seconds:
            continue
        i0 = int(round(at * sr))
        for j, name in enumerate(("kick", "snare", "hat")):
            v = steps[name][step % 16]
            if v:
                s = kit[name]
                m = min(s.shape[0], out.shape[0] - i0)
                out[i0 : i0 + m] += v * vel_jitter[step, j] * s[:m]
        if bass and frac16 == 0:
            # A pitched line on the beats so it is not drums only.
            dur = int(0.9 * (time_of(beat_pos + 1) - at) * sr)
            m = min(dur, out.shape[0] - i0)
            if m > 0:
                tt = np.arange(m) / sr
                f = root * (1.5 if (step // 4) % 4 == 2 else 1.0)
                out[i0 : i0 + m] += 0.25 * np.sin(2 * np.pi * f * tt) * np.minimum(1, tt / 0.01) * _env(m, sr, 0.3)
    out = out[:n]
    if reverb > 0:
        ir_n = int(1.2 * sr)
        ir = rng.standard_normal(ir_n) * _env(ir_n, sr, 0.25)
        ir /= np.sqrt(np.sum(ir**2))
        wet = fftconvolve(out, ir)[:n]
        out = (1 - reverb) * out + reverb * wet
    out *= gain / max(np.abs(out).max(), 1e-9)
    beats = np.array([time_of(float(b)) for b in range(n_beats)])
    beats = beats[(beats >= 0) & (beats < seconds)]
    downbeats = np.array([time_of(4.0 * b) for b in range(n_beats // 4 + 2)])
    downbeats = downbeats[(downbeats >= 0) & (downbeats < seconds)]
    for a, b in breaks:
        out[int(a * sr) : int(b * sr)] = 0.0
        # After a break the first beat is only annotated if its hit is heard.
        keep = (beats < a) | (beats >= b)
        beats, downbeats = beats[keep], downbeats[(downbeats < a) | (downbeats >= b)]
    if noise_db is not None:
        p = np.mean(out**2)
        out = out + rng.standard_normal(n) * np.sqrt(p / 10 ** (noise_db / 10))
    return Track(audio=out.astype(np.float32), sample_rate=sr, beats=beats, downbeats=downbeats)


def render_on_beats(
    beats: np.ndarray,
    loudness_db: np.ndarray,
    subdivisions: np.ndarray,
    sr: int = 22050,
    seed: int = 0,
    timbre: str = "electro",
    gain: float = 0.3,
) -> np.ndarray:
    """Drums on given beat times, each beat as loud and as busy as asked.

    For paired test data made from a dance: ``beats`` (B,) increasing times
    (e.g. a take's kinematic beats), ``loudness_db`` (B,) the gain of each
    beat's hits (0 = full), ``subdivisions`` (B,) hats per beat (1, 2, 3 or
    4). Kick on every beat, snare on every other one, a bass note per beat.
    Every track is scaled by the same ``gain`` (not to its own peak), so
    loudness compares between beats *and* between tracks. Returns (n,)
    float32 mono, one second past the last beat.
    """
    beats = np.asarray(beats, dtype=np.float64)
    rng = np.random.default_rng(seed)
    kit = _instruments(timbre, sr, rng)
    n = int(round((beats[-1] + 1.0) * sr)) if beats.size else sr
    out = np.zeros(n, dtype=np.float64)
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)

    def hit(sample: np.ndarray, at: float, gain: float) -> None:
        i0 = int(round(at * sr))
        m = min(sample.shape[0], n - i0)
        if 0 <= i0 and m > 0:
            out[i0 : i0 + m] += gain * sample[:m]

    for i, t in enumerate(beats):
        period = (beats[i + 1] - t) if i + 1 < beats.size else (t - beats[i - 1] if i else 0.5)
        g = 10.0 ** (float(loudness_db[i]) / 20.0)
        hit(kit["kick"], t, g)
        if i % 2:
            hit(kit["snare"], t, 0.8 * g)
        k = max(1, int(subdivisions[i]))
        for j in range(k):
            hit(kit["hat"], t + period * j / k, (0.5 if j == 0 else 0.35) * g * rng.uniform(0.85, 1.0))
        m = min(int(0.9 * period * sr), n - int(round(t * sr)))
        if m > 0:
            tt = np.arange(m) / sr
            hit(np.sin(2 * np.pi * root * tt) * np.minimum(1, tt / 0.01) * _env(m, sr, 0.3), t, 0.25 * g)
    return np.clip(gain * out, -1.0, 1.0).astype(np.float32)
