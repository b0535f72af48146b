"""``livedance bench motion --json``: does the dance stay human at every tempo and loudness?

The real offline engine (the path of ``livedance dance``: ``build_engine`` +
``frames_offline``, shipped or ``--checkpoint`` model, one dancer) dances to

* synthetic four-on-the-floor drum music (``livedance.music.synth``) at 60 to
  180 BPM every 10 BPM, each at three loudness levels (peak -30, -12 and
  0 dBFS), and
* the bundled demo song (``livedance/assets/demo.ogg``).

Per cell its output joints (dancer 0, from ``--skip`` seconds on, when the
dancer has locked on and faded in) are measured with
:func:`livedance.motion.envelope.motion_stats`, the ruler the checkpoint's
envelope of real takes was measured with, and compared with that envelope.

Beat offset: kinematic beats (local minima of the smoothed mean joint speed,
``livedance.motion.kinematic_beats``) of the output joints against the
music's *true* beats: for synthetic music the beat times the synthesiser
rendered, for the demo the madmom offline reference in
``../shared/data/librosa-data-music/beats-reference`` (null where that folder
is absent). Neither is the grid the engine warps onto. For each reference
beat the dance should hit, the distance to the nearest kinematic beat; mean
absolute, ms. The beats it should hit: every beat, or in half-time (the
level the engine reports) every other beat, whichever parity fits better.
The demo song is duple at 177 BPM eighth notes, and its half-note beat can
sit on either parity (madmom and librosa put it half a beat apart), so both
are tried there too.
The speed at beat / mid-beat ratio is taken at the dance's own beats: the
beats it hits, and in double-time also the half beats between them.

Targets per cell (issue 17, item 3), against the envelope's per-style
medians (the style danced; the engine composes in any style, so the
"typical style": the median of the style medians, see
``MotionEnvelope.reference``): mean joint speed within [0.3x the slowest
style's, 1.1x the fastest style's]; foot skate <= 1.2x; p99.9 per-frame
displacement <= 1.1x; jerk p95 <= 1.2x; beat offset < 40 ms. Item 5: the
two staccato ratios inside the real takes' range (p5 to p95 over every take).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from livedance.config import Settings
from livedance.motion.envelope import MotionEnvelope, MotionStats, motion_stats

#: Synthetic tempi (BPM) and loudness levels (name, peak gain).
TEMPI = tuple(range(60, 181, 10))
LOUDNESS = (("quiet", 10 ** (-30 / 20)), ("normal", 10 ** (-12 / 20)), ("loud", 1.0))
#: ``--quick``: fewer cells (club tempo and both ends, quiet and loud).
QUICK_TEMPI = (60, 90, 120, 130, 150, 180)
QUICK_LOUDNESS = ("quiet", "loud")
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo.ogg"
DEMO_REFERENCE = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "librosa-data-music" /
                  "beats-reference" / "Karissa_Hobbs_-_Lets_Go_Fishin.beats.txt")
#: Issue 17's limits, as multiples of the envelope's reference medians.
SPEED_LOW, SPEED_HIGH, SKATE_MAX, DISPLACEMENT_MAX, JERK_MAX = 0.3, 1.1, 1.2, 1.1, 1.2
OFFSET_MAX_MS = 40.0


@dataclass
class Cell:
    """One piece of music to dance to."""

    name: str
    audio: np.ndarray
    beats: np.ndarray | None  # true beat times, s
    bpm: float | None
    loudness: str
    reference: str  # what ``beats`` are
    other_parity: bool = False  # may the true beat sit half a beat later (see module doc)


def synthetic_cells(tempi: Iterable[int], loudness: Iterable[str], seconds: float, sr: int) -> list[Cell]:
    from livedance.music.synth import render

    gains = dict(LOUDNESS)
    out = []
    for bpm in tempi:
        for i, name in enumerate(loudness):
            # Seeds vary with the cell so timbre and bass line vary too; four-on-the-floor like a DJ set.
            t = render(float(bpm), seconds, sr, seed=100 + bpm + i, pattern="four", gain=gains[name])
            out.append(Cell(f"{bpm}bpm_{name}", t.audio, t.beats, float(bpm), name, "synthesised beat times"))
    return out


def demo_cell(sr: int) -> Cell:
    import librosa

    y, _ = librosa.load(DEMO, sr=sr, mono=True)
    beats = None
    if DEMO_REFERENCE.is_file():
        ref = np.loadtxt(DEMO_REFERENCE)
        beats = ref[ref < len(y) / sr]
    bpm = 60.0 / float(np.median(np.diff(beats))) if beats is not None else None
    return Cell("demo", y.astype(np.float32), beats, bpm, "as recorded",
                "madmom offline reference beats (../shared/data/librosa-data-music/beats-reference)", other_parity=True)


def beats_hit(joints: np.ndarray, fps: float, beats: np.ndarray, start: float, half_time: bool,
              other_parity: bool) -> tuple[np.ndarray, float | None]:
    """The true beats the dance should hit, and the mean absolute ms from each to
    the nearest kinematic beat of ``joints`` (frame 0 at ``start`` s).

    Every beat; in half-time every other beat; where the beat's parity is
    ambiguous (``other_parity``) also the points half-way between beats. Of
    those candidate grids, the one the kinematic beats fit best.
    """
    from livedance.motion.kinematic_beats import kinematic_beats

    kin = start + kinematic_beats(joints, fps) / fps
    end = start + (len(joints) - 1) / fps
    beats = np.asarray(beats, dtype=np.float64)
    refs = [beats]
    if other_parity and beats.size > 1:
        refs.append(0.5 * (beats[1:] + beats[:-1]))
    if half_time:
        refs = [r[p::2] for r in refs for p in (0, 1)]
    best: tuple[np.ndarray, float | None] = (refs[0], None)
    for r in refs:
        inside = r[(r >= start + 0.5) & (r <= end - 0.5)]  # a minimum needs frames either side
        if kin.size == 0 or inside.size == 0:
            continue
        err = float(np.mean(np.min(np.abs(inside[:, None] - kin[None, :]), axis=1))) * 1000.0
        if best[1] is None or err < best[1]:
            best = (r, err)
    return best


def dance_beats(hit: np.ndarray, level: int | None) -> np.ndarray:
    """The dance's own beats from the music beats it hits: in double-time (level 1)
    the half beats too."""
    if level != 1 or hit.size < 2:
        return hit
    return np.sort(np.concatenate([hit, 0.5 * (hit[1:] + hit[:-1])]))


def level_danced(frames: list[Any]) -> tuple[int | None, dict[str, float] | None]:
    """The level danced most (None until frames carry one) and the share of each."""
    levels = [getattr(f, "level", None) for f in frames]
    if not levels or levels[0] is None:
        return None, None
    count = Counter(int(x) for x in levels)
    return count.most_common(1)[0][0], {str(k): round(v / len(levels), 3) for k, v in sorted(count.items())}


def limits(env: MotionEnvelope, style: str | None = None) -> dict[str, Any]:
    """The targets' numbers from the envelope."""
    speeds = env.medians("speed").values()
    rng = {m: [env.overall.measures[m].p5, env.overall.measures[m].p95] for m in ("beat_speed_ratio", "peak_ratio")}
    return {
        "speed": [SPEED_LOW * min(speeds), SPEED_HIGH * max(speeds)],
        "skate": SKATE_MAX * env.reference("skate", style),
        "displacement": DISPLACEMENT_MAX * env.reference("displacement", style),
        "jerk": JERK_MAX * env.reference("jerk", style),
        "beat_offset_ms": OFFSET_MAX_MS,
        **rng,
    }


def judge(stats: MotionStats, offset: float | None, env: MotionEnvelope | None, style: str | None = None) -> dict[str, Any]:
    """Ratios to the envelope, target booleans, and ``excess``: the worst value / limit (> 1: a target missed)."""
    if env is None:
        return {"ratio": None, "ok": None, "excess": None}
    lim = limits(env, style)
    ratio = {m: round(getattr(stats, m) / env.reference(m, style), 3) for m in ("speed", "skate", "displacement", "jerk")}
    lo, hi = lim["speed"]
    over = {
        "speed": max(lo / max(stats.speed, 1e-9), stats.speed / hi),
        "skate": stats.skate / lim["skate"],
        "displacement": stats.displacement / lim["displacement"],
        "jerk": stats.jerk / lim["jerk"],
    }
    if offset is not None:
        over["beat_offset_ms"] = offset / OFFSET_MAX_MS
    for m in ("beat_speed_ratio", "peak_ratio"):
        v = getattr(stats, m)
        if v is not None:
            a, b = lim[m]
            ratio[m] = round(v / env.reference(m, style), 3)
            over[m] = max(a / max(v, 1e-9), v / b)
    ok = {m: bool(x <= 1.0) for m, x in over.items()}
    worst = max(over, key=lambda m: over[m])
    return {"ratio": ratio, "ok": ok, "excess": round(over[worst], 3), "excess_by": worst}


def dance_cell(settings: Settings, cell: Cell, skip: float, seed: int) -> tuple[np.ndarray, list[Any], float]:
    """The offline engine's dance to ``cell``: dancer 0's joints (N, 24, 3) from
    ``skip`` s on, those frames, and the engine's CPU seconds."""
    from livedance.bench.engine import run_offline

    frames, _, cpu, _ = run_offline(settings, cell.audio, 1, seed)
    kept = frames[int(round(skip * float(settings.engine.fps))) :]
    return np.stack([f.joints[0] for f in kept]).astype(np.float64), kept, cpu


def run_cell(settings: Settings, cell: Cell, skip: float, seed: int, env: MotionEnvelope | None) -> dict[str, Any]:
    fps = float(settings.engine.fps)
    joints, kept, cpu = dance_cell(settings, cell, skip, seed)
    level, shares = level_danced(kept)
    hit, offset, offbeat = None, None, None
    if cell.beats is not None:
        hit, offset = beats_hit(joints, fps, cell.beats, skip, level == -1, cell.other_parity)
        if hit.size > 1:
            # Chance level: the same measure half-way between the beats the dance should hit.
            offbeat = beats_hit(joints, fps, 0.5 * (hit[1:] + hit[:-1]), skip, False, False)[1]
    # The staccato ratio at the dance's own beats: in half-time every other music
    # beat, in double-time every beat and every half beat.
    stats = motion_stats(joints, fps, None if hit is None else dance_beats(hit, level) - skip)
    row: dict[str, Any] = {
        "cell": cell.name, "bpm": cell.bpm, "loudness": cell.loudness,
        "tracked_bpm": round(float(np.median([f.tempo for f in kept])), 1),
        "heard_energy": round(float(np.mean([f.energy for f in kept])), 3),
        "confidence": round(float(np.mean([f.confidence for f in kept])), 3),
        "level": level, "level_shares": shares,
        "speed": round(stats.speed, 3), "skate": round(stats.skate, 3),
        "displacement_p999": round(stats.displacement, 4), "jerk_p95": round(stats.jerk, 1),
        "beat_speed_ratio": None if stats.beat_speed_ratio is None else round(stats.beat_speed_ratio, 3),
        "peak_ratio": round(stats.peak_ratio, 3),
        "beat_offset_ms": None if offset is None else round(offset, 1),
        "offbeat_offset_ms": None if offbeat is None else round(offbeat, 1),
        "seconds_measured": round(stats.seconds, 1), "engine_cpu_s": round(cpu, 2),
    }
    row.update(judge(stats, offset, env, None))
    return row


def run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from livedance.live.commands import apply_engine_args
    from livedance.model.checkpoint import load_checkpoint

    apply_engine_args(args, settings)
    env = load_checkpoint(settings.engine.checkpoint).envelope
    sr = settings.audio.sample_rate
    seconds = float(args.seconds)
    skip = min(6.0, seconds / 3)
    quick = bool(getattr(args, "quick", False))
    cells = synthetic_cells(QUICK_TEMPI if quick else TEMPI, QUICK_LOUDNESS if quick else [n for n, _ in LOUDNESS], seconds, sr)
    cells.append(demo_cell(sr))
    rows = []
    t0 = time.monotonic()
    for cell in tqdm(cells, desc="bench motion", unit="cell", file=sys.stderr):
        rows.append(run_cell(settings, cell, skip, int(settings.engine.seed), env))
    judged = [r for r in rows if r["excess"] is not None]
    worst = max(judged, key=lambda r: r["excess"]) if judged else None
    missed = {}
    if judged:
        for key in judged[0]["ok"]:
            bad = [r["cell"] for r in judged if r["ok"].get(key) is False]
            missed[key] = {"cells_missed": len(bad), "of": len(judged), "cells": bad}
    result = {
        "benchmark": "motion",
        "checkpoint": str(settings.engine.checkpoint or "shipped"),
        "seed": int(settings.engine.seed),
        "music_seconds_per_cell": seconds, "measured_from_s": skip, "fps": float(settings.engine.fps),
        "envelope": None if env is None else {
            "source": env.source,
            "reference": {m: round(env.reference(m), 4) for m in ("speed", "skate", "displacement", "jerk",
                                                                "beat_speed_ratio", "peak_ratio")},
            "limits": limits(env),
            "style_tempo_bpm": {n: [round(s.tempo.p5), round(s.tempo.p50), round(s.tempo.p95)] for n, s in env.styles.items()},
        },
        "cells": rows,
        "targets_missed": missed,
        "worst_cell": worst,
        "all_targets_met": bool(judged) and all(all(r["ok"].values()) for r in judged),
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
