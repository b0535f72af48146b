"""``livedance bench soak --json [--seconds WALL]``: hours of music through the
engine, as fast as the CPU goes, looking for what only long runs show.

The engine is driven exactly as ``livedance dance`` drives it
(:func:`livedance.live.run.frames_offline`'s loop, one frame's audio at a
time, each unit generated when the timeline needs it), but over an endless
synthetic programme made in 60 s chunks (never more than one chunk of audio in
memory): drum tracks from :func:`livedance.music.synth.drum_track` at
70-170 BPM with every pattern and kit, a tempo change inside every chunk,
breaks, swing, noise and reverb, and now and then a minute of silence or of
loud noise. It runs for ``--seconds`` of wall time (default 30; the figures in
docs/kiosk.md use 600) and reports:

* ``hours_simulated`` and ``simulated_per_wall`` (the speed-up);
* ``rss_growth_mb_after_warmup``: peak resident memory (VmRSS, from
  /proc/self/status) minus the value after the first 5 simulated minutes;
  also the RSS slope over the second half, MB per simulated hour;
* ``max_drift_ms``: how far the analysis clock (the beat tracker's time of the
  last hop) strays from the audio clock (samples fed / rate), beyond the
  at-most-one-hop it lags by construction; and the frame clock's music time
  against the audio clock (zero offline by construction, reported anyway);
* ``frames_dropped``: 0 by construction offline (a frame is computed for every
  1/fps of music; the live runner's drops are the ``bench engine`` live figures);
* ``stage``: the dancer's largest distance from its home spot vs the stage radius;
* ``sizes``: every list/deque/array/dict inside the engine (tracker, features,
  listener, timeline, clock, music view, stats) after warm-up and at the end;
  ``grew`` lists the ones that grew (an unbounded queue shows up here);
* ``log_records``: warnings and errors logged during the run (log growth);
* ``osc_time_resolution_ms_at_end``: the OSC ``/livedance/frame`` time is a
  float32; its resolution at the final music time (8 ms after 24 h).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import time
from typing import Any, Iterator

import numpy as np

from livedance.config import Settings

CHUNK_SECONDS = 60.0
WARMUP_SECONDS = 300.0  # simulated: caches, allocator pools and numba are settled by then
SAMPLE_EVERY = 600  # frames between memory / size samples (10 s of music)


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def programme(sr: int, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """Endless varied music, one ``CHUNK_SECONDS`` chunk at a time."""
    from livedance.music.synth import PATTERNS, TIMBRES, drum_track

    rng = np.random.default_rng(seed)
    patterns = sorted(PATTERNS)
    k = 0
    while True:
        k += 1
        roll = rng.random()
        n = int(CHUNK_SECONDS * sr)
        if roll < 0.04:
            yield "silence", np.zeros(n, np.float32)
            continue
        if roll < 0.07:
            yield "noise", (rng.uniform(-1.0, 1.0, n) * rng.uniform(0.1, 1.0)).astype(np.float32)
            continue
        bpm = float(rng.uniform(70.0, 170.0))
        change = float(rng.uniform(10.0, 50.0))
        new_bpm = float(np.clip(bpm * rng.choice([0.8, 0.9, 1.1, 1.25, 0.5, 2.0]), 60.0, 180.0))
        a = float(rng.uniform(5.0, 50.0))
        breaks = [(a, a + float(rng.uniform(1.0, 6.0)))] if rng.random() < 0.5 else []
        audio, _ = drum_track(
            bpm, CHUNK_SECONDS, sr, seed=int(rng.integers(1 << 30)),
            pattern=patterns[k % len(patterns)], timbre=TIMBRES[k % len(TIMBRES)],
            swing=float(rng.choice([0.0, 0.0, 0.2, 0.33])), tempo=[(change, new_bpm)], ramp=bool(rng.random() < 0.3),
            breaks=breaks, start_beat=float(rng.choice([0.0, 0.5, 1.5])),
            noise_db=float(rng.uniform(5.0, 30.0)) if rng.random() < 0.3 else None,
            reverb=float(rng.uniform(0.0, 0.5)), gain=float(rng.uniform(0.1, 0.9)),
        )
        yield f"{patterns[k % len(patterns)]} {bpm:.0f}->{new_bpm:.0f} BPM", audio.astype(np.float32)


def sizes(engine: Any) -> dict[str, int]:
    """Length of every container attribute of the engine's parts (one level deep)."""
    parts = {
        "engine": engine, "tracker": engine.tracker, "features": engine.features, "listener": engine.listener,
        "timeline": engine.timeline, "clock": engine.clock, "music": engine.music, "stats": engine.stats,
    }
    out: dict[str, int] = {}
    for name, obj in parts.items():
        for attr, value in vars(obj).items() if hasattr(obj, "__dict__") else ():
            if isinstance(value, (list, tuple, dict, set, bytes, bytearray)) or hasattr(value, "maxlen"):
                out[f"{name}.{attr}"] = len(value)
            elif isinstance(value, np.ndarray):
                out[f"{name}.{attr}"] = int(value.size)
    out["timeline.units"] = len(engine.timeline)
    return out


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def soak(settings: Settings, wall_seconds: float, seed: int = 0) -> dict[str, Any]:
    from livedance.live.commands import build_engine

    engine = build_engine(settings)
    sr, fps = settings.audio.sample_rate, float(settings.engine.fps)
    hop = settings.audio.hop
    dt = 1.0 / fps
    counter = _Count()
    logging.getLogger().addHandler(counter)
    radius = settings.engine.stage_radius if engine.dancers == 1 else None
    t_start = time.monotonic()
    cpu_start = time.process_time()
    i = 0  # frame index
    fed = 0  # samples heard
    chunk_start = 0  # sample index of the current chunk's first sample
    max_drift = 0.0  # analysis clock vs audio clock, beyond one hop
    max_frame_lag = 0.0  # frame music time vs audio clock
    max_offset = 0.0
    warm_rss: float | None = None
    warm_sizes: dict[str, int] = {}
    warm_objects = 0
    peak_rss = 0.0
    rss_trace: list[tuple[float, float]] = []
    chunks = 0
    kinds: dict[str, int] = {}
    non_finite = 0
    try:
        for name, audio in programme(sr, seed):
            chunks += 1
            kind = name.split()[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            chunk_end = chunk_start + audio.shape[0]
            while True:
                t = i * dt
                end = int(round(t * sr))
                if end > chunk_end:
                    break
                if end > fed:
                    engine.hear(audio[fed - chunk_start : end - chunk_start])
                    fed = end
                engine.plan()
                frame = engine.frame(t, t, dt)
                i += 1
                audio_time = fed / sr
                # The tracker's time is that of the last complete hop: it lags
                # the audio by less than one hop (plus the extractor's frame).
                lag = audio_time - engine.music.time
                max_drift = max(max_drift, abs(lag) - hop / sr if lag > hop / sr or lag < 0 else 0.0)
                max_frame_lag = max(max_frame_lag, abs(t - audio_time))
                max_offset = max(max_offset, float(np.hypot(engine.offset[:, 0], engine.offset[:, 2]).max()))
                if i % SAMPLE_EVERY == 0:
                    if not (np.isfinite(frame.rotations).all() and np.isfinite(frame.trans).all()):
                        non_finite += 1
                    rss = rss_mb()
                    rss_trace.append((t, rss))
                    if warm_rss is None and t >= WARMUP_SECONDS:
                        gc.collect()
                        warm_rss, warm_sizes, warm_objects = rss_mb(), sizes(engine), len(gc.get_objects())
                    elif warm_rss is not None:
                        peak_rss = max(peak_rss, rss)
            chunk_start = chunk_end
            if time.monotonic() - t_start >= wall_seconds:
                break
    finally:
        logging.getLogger().removeHandler(counter)
    wall = time.monotonic() - t_start
    cpu = time.process_time() - cpu_start
    music_seconds = i * dt
    gc.collect()
    end_sizes = sizes(engine)
    end_objects = len(gc.get_objects())
    half = [(t, r) for t, r in rss_trace if t >= music_seconds / 2]
    slope = float(np.polyfit([t / 3600 for t, _ in half], [r for _, r in half], 1)[0]) if len(half) >= 3 else None
    grew = {k: [warm_sizes[k], v] for k, v in end_sizes.items() if k in warm_sizes and v > warm_sizes[k]}
    return {
        "benchmark": "soak",
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "hours_simulated": round(music_seconds / 3600.0, 3),
        "simulated_per_wall": round(music_seconds / wall, 1),
        "frames": i,
        "chunks": chunks,
        "chunk_kinds": kinds,
        "frames_dropped": 0,
        "frames_dropped_note": "offline: a frame is computed for every 1/fps of music, none can be dropped; "
        "live frame drops are measured by `livedance bench engine` (live section)",
        "warmup_simulated_seconds": WARMUP_SECONDS,
        "rss_mb_after_warmup": None if warm_rss is None else round(warm_rss, 1),
        "rss_mb_peak_after_warmup": round(peak_rss, 1) if warm_rss is not None else None,
        "rss_growth_mb_after_warmup": None if warm_rss is None else round(max(peak_rss, warm_rss) - warm_rss, 2),
        "rss_slope_mb_per_simulated_hour_second_half": None if slope is None else round(slope, 3),
        "python_objects_growth_after_warmup": None if warm_rss is None else end_objects - warm_objects,
        "max_drift_ms": round(max_drift * 1000.0, 3),
        "max_drift_note": "analysis clock (tracker time of the last hop) vs audio clock (samples fed / rate), "
        "beyond the less-than-one-hop lag it has by construction",
        "max_frame_vs_audio_ms": round(max_frame_lag * 1000.0, 3),
        "stage": {
            "max_distance_from_home_m": round(max_offset, 3),
            "stage_radius_m": radius if radius is not None else settings.engine.stage_radius,
            "inside": bool(max_offset <= (radius or settings.engine.stage_radius) + 1e-9),
        },
        "non_finite_frames_sampled": non_finite,
        "sizes_after_warmup": warm_sizes,
        "sizes_at_end": end_sizes,
        "grew": grew,
        "units": engine.stats.units,
        "beats": engine.stats.beats,
        "log_records": counter.count,
        "osc_time_resolution_ms_at_end": round(float(np.spacing(np.float32(music_seconds))) * 1000.0, 3),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "live", False):
        # The real runner as a user runs it (livedance.bench.live_soak).
        from livedance.bench.live_soak import run as run_live

        return run_live(float(args.seconds), bool(args.json))
    result = soak(settings, float(args.seconds))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
