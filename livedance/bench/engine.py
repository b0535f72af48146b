"""``livedance bench engine --json``: cost, timing and musicality of the whole loop.

All figures come from one run on this machine:

* ``realtime``: engine CPU seconds per second of music at 60 fps (analysis +
  generation + frames + FK), offline over a synthetic track, 1 and 8 dancers;
* ``units``: unit generation time, mean and p99;
* ``live``: the real-time runner on a paced file for a few seconds: frame
  interval statistics, dropped frames, CPU fraction of one core;
* ``beats``: kinematic beats of the produced motion (local minima of mean
  joint speed) against the music's known beats: beat-alignment score and
  mean absolute offset in ms on steady music, and after a tempo jump the
  number of beats until the motion is back within 40 ms.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livedance.config import Settings
from livedance.frames import Frame


def _engine(settings: Settings, dancers: int, seed: int = 0) -> Any:
    from livedance.live.commands import build_engine

    settings.engine.dancers = dancers
    settings.engine.seed = seed
    return build_engine(settings)


def run_offline(settings: Settings, audio: np.ndarray, dancers: int = 1, seed: int = 0) -> tuple[list[Frame], float, Any]:
    """Frames of the causal engine over ``audio`` and the CPU seconds it took."""
    from livedance.live.run import frames_offline

    engine = _engine(settings, dancers, seed)
    t0 = time.process_time()
    frames = list(frames_offline(engine, audio, settings.audio.sample_rate, settings.engine.fps))
    return frames, time.process_time() - t0, engine


def beat_offsets(frames: list[Frame], music_beats: np.ndarray, fps: float, after: float = 0.0) -> tuple[np.ndarray, float]:
    """Dancer 0's kinematic beats against the music's beats after ``after`` seconds.

    Returns ``(offsets, score)``: the signed offset (s) from each music beat to
    the nearest kinematic beat, and the beat-alignment score of those beats.
    """
    from livedance.motion.kinematic_beats import beat_alignment_score, kinematic_beats

    joints = np.stack([f.joints[0] for f in frames])
    motion = kinematic_beats(joints, fps).astype(np.float64) / fps
    beats = music_beats[(music_beats >= after) & (music_beats <= len(frames) / fps - 0.5)]
    if motion.size < 2 or beats.size == 0:
        return np.full(beats.shape, np.inf), 0.0
    idx = np.clip(np.searchsorted(motion, beats), 1, motion.size - 1)
    cand = np.stack([motion[idx - 1], motion[idx]])
    nearest = cand[np.argmin(np.abs(cand - beats), axis=0), np.arange(beats.size)]
    return nearest - beats, beat_alignment_score(motion * fps, beats * fps, fps)


@dataclass
class TimingSink:
    """Records when frames were emitted (for jitter)."""

    times: list[float] = field(default_factory=list)

    def send(self, frame: Frame) -> None:
        self.times.append(time.monotonic())

    def close(self) -> None:
        pass


def live_timing(settings: Settings, seconds: float, path: str) -> dict[str, float]:
    from livedance.audio.sources import FileSource
    from livedance.live.run import LiveRunner

    engine = _engine(settings, 1)
    sink = TimingSink()
    source = FileSource(path, settings.audio, realtime=True)
    runner = LiveRunner(engine, source, [sink], settings.engine.fps, 0.0)
    c0, w0 = time.process_time(), time.monotonic()
    runner.start()
    runner.stopped.wait(seconds)
    runner.stop()
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    dt = np.diff(np.asarray(sink.times[5:])) * 1000.0  # skip start-up frames
    period = 1000.0 / settings.engine.fps
    return {
        "seconds": round(wall, 2),
        "frames": len(sink.times),
        "fps": round(len(sink.times) / wall, 2),
        "dropped": runner.stats.dropped,
        "interval_ms_mean": round(float(dt.mean()), 3),
        "interval_ms_std": round(float(dt.std()), 3),
        "interval_ms_p99": round(float(np.percentile(dt, 99)), 3),
        "interval_ms_max": round(float(dt.max()), 3),
        "jitter_ms_p99": round(float(np.percentile(np.abs(dt - period), 99)), 3),
        "cpu_fraction_of_one_core": round(cpu / wall, 4),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    import soundfile as sf

    from livedance.music.synth import drum_track

    sr, fps = settings.audio.sample_rate, settings.engine.fps
    seconds = float(args.seconds)
    steady, steady_beats = drum_track(120, seconds, sr, seed=1, pattern="four")
    result: dict[str, Any] = {"benchmark": "engine", "fps": fps, "music_seconds": seconds}

    for dancers in (1, 8):
        frames, cpu, engine = run_offline(settings, steady, dancers)
        units = np.asarray(engine.stats.unit_seconds[1:]) * 1000.0  # [0] is the warm-up unit
        result[f"dancers_{dancers}"] = {
            "engine_cpu_per_music_second": round(cpu / seconds, 4),
            "unit_ms_mean": round(float(units.mean()), 3),
            "unit_ms_p99": round(float(np.percentile(units, 99)), 3),
            "units": int(units.size),
        }
        if dancers == 1:
            off, score = beat_offsets(frames, steady_beats, fps, after=4.0)
            result["steady_120bpm"] = {
                "beat_alignment_score": round(score, 4),
                "mean_abs_offset_ms": round(float(np.mean(np.abs(off))) * 1000, 1),
                "median_abs_offset_ms": round(float(np.median(np.abs(off))) * 1000, 1),
                "beats": int(off.size),
            }

    jump_at = seconds / 2
    jump, jump_beats = drum_track(110, seconds, sr, seed=2, pattern="rock", tempo=[(jump_at, 140.0)])
    frames, _, _ = run_offline(settings, jump, 1)
    off = np.abs(beat_offsets(frames, jump_beats, fps, after=jump_at)[0])
    within = off < 0.040
    # Beats until every later beat (bar an occasional miss) is within 40 ms.
    resync = next((i for i in range(off.size) if within[i:].mean() >= 0.8), off.size)
    result["tempo_jump_110_to_140"] = {
        "beats_until_in_sync": int(resync),
        "mean_abs_offset_ms_after_resync": round(float(np.mean(off[resync:])) * 1000, 1) if resync < off.size else None,
    }

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/steady.wav"
        sf.write(path, steady, sr)
        result["live"] = live_timing(settings, min(args.live_seconds, seconds), path)

    print(json.dumps(result, indent=None if args.json else 2))
    return 0
