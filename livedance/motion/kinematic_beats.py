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
    train (each weighted by how deep its speed minimum is, blurred by 2 frames
    at 60 fps); its autocorrelation is scored at every beat period L in
    ``[min_bpm, max_bpm]`` (quarter-frame grid) as the mean of the
    autocorrelation at L and 2L (a two-tooth comb: a true beat period also
    repeats at the bar-half, which rules out sub-beat wiggles), times a mild
    log-normal prior around 120 BPM (librosa's) to settle tempo octaves. The
    autocorrelation of the raw speed curve is not used: its smoothing makes
    short lags correlate and wins at the top of the range. The phase is the
    circular mean of the kinematic beats modulo the period.

    Args:
        joints: (N, J, 3) positions, metres.
        fps: frame rate.
        bpm: known tempo (e.g. AIST++'s music ID); then only the phase is estimated.
    """
    joints = np.asarray(joints, dtype=np.float64)
    speed = smoothed_speed(joints, fps)
    beats = argrelextrema(speed, np.less)[0]
    n = speed.size
    pulses = np.zeros(n)
    if beats.size:
        pulses[beats] = peak_prominences(-speed, beats)[0]
    pulses = gaussian_filter1d(pulses, 2.0 * fps / METRIC_FPS)
    ac = _autocorrelation(pulses) if beats.size > 1 else np.zeros(n)
    lag_axis = np.arange(n)
    if bpm is None:
        lags = np.arange(60.0 * fps / max_bpm, 60.0 * fps / min_bpm + 1e-9, 0.25 * fps / METRIC_FPS)
        if 2 * lags[-1] >= n - 1:
            raise ValueError(f"motion too short for tempo estimation: {n} frames at {fps} fps")
        comb = 0.5 * (np.interp(lags, lag_axis, ac) + np.interp(2 * lags, lag_axis, ac))
        prior = np.exp(-0.5 * np.log2(60.0 * fps / lags / 120.0) ** 2)
        period = float(lags[np.argmax(comb * prior)])
    else:
        period = 60.0 * fps / bpm
    strength = float(np.interp(period, lag_axis, ac))
    if beats.size:
        angle = 2 * np.pi * beats / period
        phase = float(np.angle(np.exp(1j * angle).mean()) % (2 * np.pi) * period / (2 * np.pi))
    else:
        phase = 0.0
    return DanceTempo(bpm=60.0 * fps / period, period=period, phase=phase, strength=strength)


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
