"""The dancer's beat clock: a phase-locked loop that follows the beat tracker.

The timeline is indexed in *dance beats* (a float that grows by one per
beat), not in seconds. Each frame the clock advances by ``dt * tempo / 60``
plus a correction that pulls its fractional part toward the tracker's beat
phase. That is the continuous form of "warp each unit onto the predicted
beats, and re-warp when the estimate moves": the playback position never
jumps (no pops), and a tempo or phase change is absorbed within about a beat
instead of snapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def wrap_phase(x: float) -> float:
    """Wrap a phase difference (in beats) to [-0.5, 0.5)."""
    return (x + 0.5) % 1.0 - 0.5


def grid_phase(t: float, beat_time: float, tempo_bpm: float) -> float:
    """Beat phase in [0, 1) at time ``t`` of the beat grid with a beat at
    ``beat_time`` and period ``60 / tempo_bpm`` (times on one clock, seconds).

    The one seam through which any beat source steers :class:`BeatClock`
    (its ``target_phase``): the tracker's predicted beat, tapped beats, an
    external clock's beat."""
    return ((t - beat_time) * tempo_bpm / 60.0) % 1.0


@dataclass
class BeatClock:
    """Continuous, monotonic beat position locked to a tracker's phase.

    Attributes:
        position: beats since start; integers are the beats the dance hits.
        correction: fraction of the phase error removed per beat, for small
            errors (the tracker's jitter: smoothed, not followed).
        catch_up: the same for errors of ``catch_up_error`` beats and more
            (a re-lock after a tempo change: caught within about a beat).
        max_rate_change: the clock never runs faster or slower than the
            tracker's tempo by more than this fraction (keeps motion sane
            while it catches up).
    """

    position: float = 0.0
    correction: float = 1.5
    catch_up: float = 3.0
    catch_up_error: float = 0.15
    max_rate_change: float = 0.6
    rate: float = 2.0  # beats per second applied on the last frame

    def advance(self, dt: float, tempo_bpm: float, target_phase: float | None) -> float:
        """Move the clock by one frame of ``dt`` seconds so that it lands on
        ``target_phase`` (the tracker's beat phase in [0, 1) at the music time
        of the frame being made, or None to free-run). Returns the beats
        advanced (never negative)."""
        base = tempo_bpm / 60.0
        rate = base
        if target_phase is not None:
            # Steer where the clock is about to be, not where it was: the
            # frame being made shows the target's time, one dt after the last.
            error = wrap_phase(target_phase - ((self.position + base * dt) % 1.0))
            gain = self.correction + (self.catch_up - self.correction) * min(1.0, abs(error) / self.catch_up_error)
            rate = base * (1.0 + gain * error)
        self.rate = min(max(rate, base * (1 - self.max_rate_change)), base * (1 + self.max_rate_change))
        step = self.rate * dt
        self.position += step
        return step

    def jump_to_phase(self, phase: float, multiple: int = 1) -> None:
        """Move forward so that ``position % 1 == phase`` and the next integer is a
        multiple of ``multiple`` (used to re-enter on the beat at a unit start)."""
        nxt = math.floor(self.position) + 1
        nxt += (-nxt) % multiple
        candidate = nxt - (1.0 - phase) if phase > 0 else float(nxt)
        if candidate < self.position:  # the clock is monotonic: skip ahead instead
            candidate += multiple
        self.position = candidate
