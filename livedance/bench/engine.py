"""``livedance bench engine --json``: cost, timing and musicality of the whole loop.

All figures come from one run on this machine:

* ``realtime``: engine CPU seconds per second of music at 60 fps (analysis +
  generation + frames + FK), offline over a synthetic track, 1 and 8 dancers;
* ``units``: unit generation time, mean and p99;
* ``live``: the real-time runner on a paced file for a few seconds: frame
  interval statistics, dropped frames, CPU fraction of one core;
* ``beats``: kinematic beats of the produced motion (local minima of mean
  joint speed) against the music's known beats: beat-alignment score and
  mean absolute offset in ms on steady music; after a tempo jump (110 to
  140 BPM, and seven more changes) the beats for the dance clock to be back
  within 40 ms of every beat, and the kinematic offsets from then on;
* ``startup``: a real ``perform`` process from its start to listening, the
  first frame, the first beat and the dance, cold and warm cache
  (:mod:`livedance.bench.startup`);
* ``compute`` and ``frame_clock``: unit latency on each device torch can use
  here and the frame clock's cost, with 1, 8 and 64 dancers
  (:mod:`livedance.bench.compute`).
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


def run_offline(
    settings: Settings, audio: np.ndarray, dancers: int = 1, seed: int = 0
) -> tuple[list[Frame], np.ndarray, float, Any]:
    """Frames of the causal engine over ``audio``, the dance clock's beat
    position at each frame, and the CPU seconds it took."""
    from livedance.live.run import frames_offline

    engine = _engine(settings, dancers, seed)
    frames, positions = [], []
    t0 = time.process_time()
    for frame in frames_offline(engine, audio, settings.audio.sample_rate, settings.engine.fps):
        frames.append(frame)
        positions.append(engine.clock.position)
    return frames, np.asarray(positions), time.process_time() - t0, engine


def clock_errors(positions: np.ndarray, music_beats: np.ndarray, fps: float) -> np.ndarray:
    """Seconds between each music beat and the dance clock's nearest beat (an
    integer position), from the clock's position interpolated at the beat."""
    t = np.arange(len(positions)) / fps
    beats = music_beats[music_beats <= t[-1]]
    at = np.interp(beats, t, positions)
    rate = np.gradient(positions, t)
    return ((at + 0.5) % 1.0 - 0.5) / np.maximum(np.interp(beats, t, rate), 1e-6)


def beat_offsets(frames: list[Frame], music_beats: np.ndarray, fps: float, after: float = 0.0) -> tuple[np.ndarray, float]:
    """Dancer 0's kinematic beats against the music's beats after ``after`` seconds.

    Returns ``(offsets, score)``: the signed offset (s) from each music beat to
    the nearest kinematic beat, and the beat-alignment score of those beats.
    """
    from livedance.bench.live_soak import offsets_to_nearest
    from livedance.motion.kinematic_beats import beat_alignment_score, kinematic_beats

    joints = np.stack([f.joints[0] for f in frames])
    motion = kinematic_beats(joints, fps).astype(np.float64) / fps
    beats = music_beats[(music_beats >= after) & (music_beats <= len(frames) / fps - 0.5)]
    if motion.size < 2 or beats.size == 0:
        return np.full(beats.shape, np.inf), 0.0
    return -offsets_to_nearest(beats, motion), beat_alignment_score(motion * fps, beats * fps, fps)


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


#: Track changes to re-lock after: (BPM before, BPM after, drum pattern). The
#: first is the headline case; the rest cover slower, faster, 3:4-related and
#: 10 % changes.
JUMPS = [(110, 140.0, "rock"), (140, 110.0, "rock"), (100, 128.0, "four"), (125, 95.0, "rock"),
         (90, 120.0, "four"), (128, 100.0, "rock"), (120, 132.0, "rock"), (132, 120.0, "four")]


def run(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    import soundfile as sf

    from livedance.music.synth import drum_track

    sr, fps = settings.audio.sample_rate, settings.engine.fps
    seconds = float(args.seconds)
    steady, steady_beats = drum_track(120, seconds, sr, seed=1, pattern="four")
    result: dict[str, Any] = {"benchmark": "engine", "fps": fps, "music_seconds": seconds}

    for dancers in (1, 8):
        frames, positions, cpu, engine = run_offline(settings, steady, dancers)
        units = np.asarray(list(engine.stats.unit_seconds)[1:]) * 1000.0  # [0] is the warm-up unit
        result[f"dancers_{dancers}"] = {
            "engine_cpu_per_music_second": round(cpu / seconds, 4),
            "unit_ms_mean": round(float(units.mean()), 3),
            "unit_ms_p99": round(float(np.percentile(units, 99)), 3),
            "units": int(units.size),
        }
        if dancers == 1:
            off, score = beat_offsets(frames, steady_beats, fps, after=4.0)
            clock = np.abs(clock_errors(positions, steady_beats[steady_beats >= 4.0], fps))
            result["steady_120bpm"] = {
                "clock_mean_abs_error_ms": round(float(clock.mean()) * 1000, 1),
                "beat_alignment_score": round(score, 4),
                "mean_abs_offset_ms": round(float(np.mean(np.abs(off))) * 1000, 1),
                "median_abs_offset_ms": round(float(np.median(np.abs(off))) * 1000, 1),
                "beats": int(off.size),
            }

    jump_at = seconds / 2
    resyncs: dict[str, int] = {}
    for i, (before, after_bpm, pattern) in enumerate(JUMPS):
        jump, jump_beats = drum_track(before, seconds, sr, seed=2 + i, pattern=pattern, tempo=[(jump_at, after_bpm)])
        frames, positions, _, _ = run_offline(settings, jump, 1)
        after = jump_beats[jump_beats >= jump_at]
        clock = np.abs(clock_errors(positions, after, fps))
        # The dance's beat clock is in sync from the first beat after which every
        # beat is within 40 ms (beat 0 is the first beat at the new tempo).
        late = np.flatnonzero(clock >= 0.040)
        resync = int(late[-1] + 1) if late.size else 0
        if i == 0:
            # The headline case, with the kinematic beats from 4 beats on.
            off, score = beat_offsets(frames, jump_beats, fps, after=after[min(4, after.size - 1)])
            result["tempo_jump_110_to_140"] = {
                "beats_until_clock_in_sync": resync,
                "clock_error_ms_first_8_beats": [round(float(e) * 1000, 1) for e in clock[:8]],
                "kinematic_mean_abs_offset_ms_from_beat_4": round(float(np.mean(np.abs(off))) * 1000, 1),
                "kinematic_beat_alignment_score_from_beat_4": round(score, 4),
            }
        resyncs[f"{before:g}_to_{after_bpm:g}_{pattern}"] = resync
    beats = list(resyncs.values())
    result["tempo_jumps"] = resyncs
    result["tempo_jumps_beats_until_in_sync"] = {"median": float(np.median(beats)), "max": int(max(beats)),
                                                "within_4": f"{sum(r <= 4 for r in beats)}/{len(beats)}"}

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/steady.wav"
        sf.write(path, steady, sr)
        result["live"] = live_timing(settings, min(args.live_seconds, seconds), path)

    from livedance.bench.compute import frame_clock, unit_latency
    from livedance.model.device import resolve_compute

    result["engine_device"] = str(resolve_compute(settings.engine.compute))  # where the runs above made their units
    result["compute"] = unit_latency(settings)  # per device: unit latency with 1, 8 and 64 dancers
    result["frame_clock"] = frame_clock(settings, steady)

    from livedance.bench.startup import measure

    # The performer's first minute: process start -> listening -> first beat -> dancing.
    result["startup"] = measure()

    print(json.dumps(result, indent=None if args.json else 2))
    return 0
