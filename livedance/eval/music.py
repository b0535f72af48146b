"""The engine dancing to synthetic music whose beats are known: beat alignment
scored against beats the engine did not warp onto.

The held-out-take dances of ``eval.dances`` are units stretched onto a beat
grid and scored against that same grid, so they cannot tell whether the
engine finds the beat. Here the real offline engine (as ``livedance dance``)
hears synthetic four-on-the-floor drums (``livedance.music.synth``); its
kinematic beats are scored against the beat times the synthesiser rendered.
In half-time (when the engine reports it) the beats it should hit are every
other beat, whichever parity fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livedance.config import Settings
from livedance.motion.envelope import MotionStats, motion_stats
from livedance.motion.kinematic_beats import beat_alignment_score, kinematic_beats

#: Tempi (BPM) danced by default: a salsa tempo, the middle, club tempo.
DEFAULT_BPM = (90.0, 120.0, 150.0)
#: Seconds of music per tempo, and the start left out (the dancer locks on and fades in).
SECONDS, SKIP = 24.0, 6.0


@dataclass
class MusicDance:
    """The engine's dance to one synthetic track (from ``SKIP`` s on)."""

    bpm: float
    joints: np.ndarray  # (N, 24, 3)
    fps: float
    beats: np.ndarray  # true beat times the dance should hit, s from joints[0]
    alignment: float  # beat-alignment score against those beats
    offset_ms: float | None  # mean |offset| from each to the nearest kinematic beat
    level: int | None  # metrical level danced most (None: the engine does not say)
    stats: MotionStats


def engine_dances(settings: Settings, bpms: list[float], seed: int, seconds: float = SECONDS) -> list[MusicDance]:
    from livedance.bench.motion import beats_hit, dance_beats, dance_cell, level_danced, synthetic_cells

    fps = float(settings.engine.fps)
    out = []
    for bpm, cell in zip(bpms, synthetic_cells([int(b) for b in bpms], ["normal"], seconds, settings.audio.sample_rate)):
        joints, frames, _ = dance_cell(settings, cell, SKIP, seed)
        level, _ = level_danced(frames)
        hit, offset = beats_hit(joints, fps, cell.beats, SKIP, level == -1, False)
        rel = hit - SKIP
        rel = rel[(rel >= 0.5) & (rel <= (len(joints) - 1) / fps - 0.5)]
        alignment = beat_alignment_score(kinematic_beats(joints, fps), rel * fps, fps)
        stats = motion_stats(joints, fps, dance_beats(rel, level))
        out.append(MusicDance(float(bpm), joints, fps, rel, alignment, offset, level, stats))
    return out
