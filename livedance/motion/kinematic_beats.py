"""Kinematic beats: the moments a dance "hits", and the dance's tempo and phase.

Definitions follow the beat-alignment metric of Li et al. (AI Choreographer,
ICCV 2021), used by FACT, Bailando and EDGE: the motion's speed is the mean
over joints of the joint speed; smoothed with a Gaussian of sigma 5 frames at
60 fps; kinematic beats are its local minima (the dancer pauses on the beat).
All of it is offline analysis of recorded dances (for training and eval); the
live side estimates tempo from audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema, peak_prominences

#: Frame rate the metric is defined at.
METRIC_FPS = 60.0
#: Smoothing of the speed curve, frames at METRIC_FPS.
SPEED_SIGMA_FRAMES = 5.0
#: Tolerance of the beat-alignment score, frames at METRIC_FPS.
ALIGNMENT_SIGMA_FRAMES = 3.0


def mean_joint_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """(N, J, 3) joint positions, metres -> (N,) mean joint speed, m/s.

    Frame i holds the speed from frame i to i + 1 (the last frame repeats),
    so the curve lines up with the frames it is computed from.
    """
    step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1) * fps  # (N-1,)
    return np.concatenate([step, step[-1:]]) if step.size else np.zeros(len(joints))


def smoothed_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """(N, J, 3) -> (N,) mean joint speed smoothed with sigma 5 frames at 60 fps (scaled to ``fps``)."""
    return gaussian_filter1d(mean_joint_speed(joints, fps), SPEED_SIGMA_FRAMES * fps / METRIC_FPS, mode="nearest")


def kinematic_beats(joints: np.ndarray, fps: float = METRIC_FPS) -> np.ndarray:
    """Kinematic beats of a motion.

    Args:
        joints: (N, J, 3) joint positions, metres.
        fps: their frame rate.

    Returns:
        (B,) int64 frame indices (at ``fps``) of the local minima of the
        smoothed mean joint speed.
    """
    speed = smoothed_speed(np.asarray(joints, dtype=np.float64), fps)
    return argrelextrema(speed, np.less)[0].astype(np.int64)


def beat_alignment_score(motion_beats: np.ndarray, music_beats: np.ndarray, fps: float = METRIC_FPS) -> float:
    """Beat-alignment score: mean over music beats of exp(-d^2 / (2 * 3^2)).

    Args:
        motion_beats: (B,) kinematic beat positions, frames at ``fps``.
        music_beats: (M,) music beat positions, frames at ``fps``.
        fps: rate of both; distances are converted to frames at 60 fps, where
            the metric's sigma of 3 frames is defined.

    Returns:
        Score in [0, 1]; 0 when either list is empty.
    """
    motion = np.sort(np.asarray(motion_beats, dtype=np.float64))
    music = np.asarray(music_beats, dtype=np.float64)
    if motion.size == 0 or music.size == 0:
        return 0.0
    pos = np.clip(np.searchsorted(motion, music), 1, max(motion.size - 1, 1))
    d = np.minimum(np.abs(music - motion[pos - 1]), np.abs(music - motion[np.minimum(pos, motion.size - 1)]))
    d60 = d * METRIC_FPS / fps
    return float(np.mean(np.exp(-(d60**2) / (2 * ALIGNMENT_SIGMA_FRAMES**2))))


@dataclass(frozen=True)
class DanceTempo:
    """Tempo and beat grid of a dance.

    Attributes:
        bpm: beats per minute.
        period: frames per beat (at the analysed fps).
        phase: frame position of one grid beat, in [0, period).
        strength: autocorrelation of the kinematic-beat pulses at the period,
            about [-1, 1]: how periodic the dance is (below ~0.1, a guess).
    """

    bpm: float
    period: float
    phase: float
    strength: float


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """(N,) -> (N,) unbiased, normalised autocorrelation (lag 0 = 1)."""
    n = x.size
    x = x - x.mean()
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    ac = ac / max(ac[0], 1e-12)
    return ac * n / np.maximum(n - np.arange(n), 1)  # later lags sum fewer products


def _beat_pulses(joints: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic beats (B,) and the autocorrelation (N,) of their pulse train.

    Each beat is a pulse weighted by how deep its speed minimum is, blurred
    by 2 frames at 60 fps, so a clear stop counts more than a wobble.
    """
    speed = smoothed_speed(np.asarray(joints, dtype=np.float64), fps)
    beats = argrelextrema(speed, np.less)[0]
    pulses = np.zeros(speed.size)
    if beats.size:
        pulses[beats] = peak_prominences(-speed, beats)[0]
    pulses = gaussian_filter1d(pulses, 2.0 * fps / METRIC_FPS)
    ac = _autocorrelation(pulses) if beats.size > 1 else np.zeros(speed.size)
    return beats, ac


def _candidate_periods(fps: float, min_bpm: float, max_bpm: float) -> np.ndarray:
    """Beat periods to try, frames, on a quarter-frame (at 60 fps) grid."""
    return np.arange(60.0 * fps / max_bpm, 60.0 * fps / min_bpm + 1e-9, 0.25 * fps / METRIC_FPS)


def _period_scores(ac: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Two-tooth comb: mean autocorrelation at each period and at twice it."""
    if 2 * periods[-1] >= ac.size - 1:
        raise ValueError(f"motion too short for tempo estimation: {ac.size} frames")
    lag_axis = np.arange(ac.size)
    return 0.5 * (np.interp(periods, lag_axis, ac) + np.interp(2 * periods, lag_axis, ac))


def _best_period(score: np.ndarray, periods: np.ndarray, fps: float) -> float:
    """The period maximising the score times a mild log-normal prior around
    120 BPM (as librosa's), which settles tempo octaves scoring alike."""
    prior = np.exp(-0.5 * np.log2(60.0 * fps / periods / 120.0) ** 2)
    return float(periods[np.argmax(score * prior)])


def estimate_tempo(
    joints: np.ndarray,
    fps: float,
    bpm: float | None = None,
    min_bpm: float = 60.0,
    max_bpm: float = 200.0,
) -> DanceTempo:
    """Tempo of a dance from the periodicity of its kinematic beats, and their phase.

    Individual kinematic beats are noisy (extra minima mid-beat, missed ones
    in held poses), but their periodicity is robust. The beats become a pulse
    train whose autocorrelation is scored at every beat period L in
    ``[min_bpm, max_bpm]`` as the mean of the autocorrelation at L and 2L (a
    true beat period also repeats two beats later, which rules out sub-beat
    wiggles), times a prior around 120 BPM. The autocorrelation of the raw
    speed curve is not used: its smoothing makes short lags correlate, so it
    wins at the top of the range. The phase is the circular mean of the
    kinematic beats modulo the period.

    Args:
        joints: (N, J, 3) positions, metres.
        fps: frame rate.
        bpm: known tempo (e.g. AIST++'s music ID, or :func:`estimate_shared_tempo`
            of the take); then only the phase is estimated.

    Raises:
        ValueError: the motion is shorter than two of the slowest beats.
    """
    beats, ac = _beat_pulses(joints, fps)
    if bpm is None:
        periods = _candidate_periods(fps, min_bpm, max_bpm)
        period = _best_period(_period_scores(ac, periods), periods, fps)
    else:
        period = 60.0 * fps / bpm
    strength = float(np.interp(period, np.arange(ac.size), ac))
    if beats.size:
        angle = 2 * np.pi * beats / period
        phase = float(np.angle(np.exp(1j * angle).mean()) % (2 * np.pi) * period / (2 * np.pi))
    else:
        phase = 0.0
    return DanceTempo(bpm=60.0 * fps / period, period=period, phase=phase, strength=strength)


def estimate_shared_tempo(
    joints: list[np.ndarray], fps: float, min_bpm: float = 60.0, max_bpm: float = 200.0
) -> float:
    """One tempo (BPM) for several recordings danced to the same music (salsa
    lead and follow): their period scores are summed, weighted by length, so
    a partner with a clear pulse settles the tempo for one without.

    Raises:
        ValueError: every recording is too short.
    """
    periods = _candidate_periods(fps, min_bpm, max_bpm)
    total = np.zeros(periods.size)
    for j in joints:
        try:
            total += len(j) * _period_scores(_beat_pulses(j, fps)[1], periods)
        except ValueError:
            continue
    if not total.any():
        raise ValueError("motion too short for tempo estimation")
    return 60.0 * fps / _best_period(total, periods, fps)


def beat_grid(
    joints: np.ndarray, fps: float, tempo: DanceTempo | None = None, snap: float = 0.25
) -> np.ndarray:
    """Beat positions (fractional frames) covering the motion, locked to its kinematic beats.

    Walks forward one period at a time from the tempo's phase; where a
    kinematic beat lies within ``snap`` periods of the predicted beat, the
    beat moves onto it (so a human's drifting tempo is followed), otherwise
    the prediction stands (so a held pose does not lose the count). The
    period adapts slowly to the intervals actually seen.

    Returns:
        (B,) float64 increasing beat positions in [0, N - 1].
    """
    tempo = tempo or estimate_tempo(joints, fps)
    kin = kinematic_beats(joints, fps).astype(np.float64)
    n = len(joints)
    period = tempo.period
    t = tempo.phase % period
    beats: list[float] = []
    while t <= n - 1:
        if kin.size:
            near = kin[np.argmin(np.abs(kin - t))]
            if abs(near - t) <= snap * period and (not beats or near > beats[-1] + 0.5 * period):
                if beats:
                    period = 0.9 * period + 0.1 * np.clip(near - beats[-1], 0.8 * tempo.period, 1.25 * tempo.period)
                t = float(near)
        beats.append(t)
        t += period
    return np.array(beats)
