"""The ``compute`` part of ``livedance bench engine``: unit latency per device and crowd size.

For each device torch can use here (the CPU, and the first CUDA GPU where
there is one) and 1, 8 and 64 dancers: the time of ``DanceModel.next_unit``
(compose, decode, beat re-timing, foot planting, the one copy to the host),
mean and p99 over a run of units after warm-up. The engine needs each unit
before the one playing ends (it keeps one unit ahead), so the budget is one
unit's length: two beats, 667 ms at 180 BPM. On the CPU the model runs on
one torch thread, as the engine runs it.

``frame_clock`` is the other clock: the engine's per-frame cost (beat clock,
timeline, FK, ``Frame``) with 1, 8 and 64 dancers, which must stay well
under 16.7 ms for 60 fps whatever computes the units.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

from livedance.config import Settings

DANCERS = (1, 8, 64)
#: The engine keeps one unit ahead: a unit must be ready within one unit (2 beats) at the fastest usual tempo.
BUDGET_MS = 2 * 60_000.0 / 180.0


def available_devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def unit_latency(settings: Settings, units: int = 24, warm: int = 3) -> dict[str, Any]:
    """``{device: {"device", "name", "dancers_N": {"unit_ms_mean", "unit_ms_p99", "units"}, ...}}``."""
    import torch

    from livedance.model.checkpoint import load_checkpoint
    from livedance.model.device import resolve_compute

    threads = torch.get_num_threads()
    out: dict[str, Any] = {}
    try:
        for name in available_devices():
            device = resolve_compute(name)
            if device.type == "cpu":
                torch.set_num_threads(1)  # as build_engine runs it
            model = load_checkpoint(settings.engine.checkpoint, device)
            ctx = model.descriptors.context_from_levels(124.0, 0.7, 0.5)
            entry: dict[str, Any] = {"device": str(device), "name": _device_name(device),
                                     "torch_threads": torch.get_num_threads() if device.type == "cpu" else None}
            for n in DANCERS:
                state = model.new_state(n, seed=0)
                times = []
                for i in range(warm + units):
                    t0 = time.perf_counter()
                    _, state = model.next_unit(state, ctx)  # ends in the copy to the host: synchronised
                    if i >= warm:
                        times.append(time.perf_counter() - t0)
                ms = np.asarray(times) * 1000.0
                entry[f"dancers_{n}"] = {
                    "unit_ms_mean": round(float(ms.mean()), 2),
                    "unit_ms_p99": round(float(np.percentile(ms, 99)), 2),
                    "units": int(ms.size),
                    "within_one_unit_at_180bpm": bool(np.percentile(ms, 99) < BUDGET_MS),
                }
            out[str(device)] = entry
            del model
    finally:
        torch.set_num_threads(threads)
    return out


def frame_clock(settings: Settings, audio: np.ndarray, frames: int = 240) -> dict[str, Any]:
    """Engine.frame cost (ms, mean and p99) with 1, 8 and 64 dancers, dancing to ``audio``
    (units made untimed between frames, as the generator thread does)."""
    import copy

    from livedance.live.commands import build_engine

    sr, fps = settings.audio.sample_rate, settings.engine.fps
    out: dict[str, Any] = {}
    for n in DANCERS:
        s = copy.deepcopy(settings)
        s.engine.dancers, s.engine.compute = n, "cpu"
        engine = build_engine(s)
        start = int(4.0 * fps)  # after the dancer has locked on and stepped in
        times = []
        pos = 0
        for i in range(start + frames):
            t = i / fps
            end = min(len(audio), int(round(t * sr)))
            if end > pos:
                engine.hear(audio[pos:end])
                pos = end
            engine.plan()
            t0 = time.perf_counter()
            engine.frame(t, t, 1.0 / fps)
            if i >= start:
                times.append(time.perf_counter() - t0)
        ms = np.asarray(times) * 1000.0
        out[f"dancers_{n}"] = {"frame_ms_mean": round(float(ms.mean()), 3), "frame_ms_p99": round(float(np.percentile(ms, 99)), 3)}
    return out
