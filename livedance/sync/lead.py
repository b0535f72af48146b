"""When and what to publish to a shared beat clock while livedance leads it.

Peers (a VJ's visuals, a lighting desk) lock to every change we publish, so
the tracker's hop-sized jitter must not reach them: the phase error is
smoothed, small tempo and phase differences are left alone, and changes are
at most one per ``interval`` seconds. With no confidence nothing is
published and the session keeps running as it is.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


def wrap(x: float, period: float) -> float:
    """Wrap ``x`` to [-period/2, period/2)."""
    return (x + 0.5 * period) % period - 0.5 * period


@dataclass(frozen=True, slots=True)
class Publish:
    """A change to commit to the session: either may be None (leave it)."""

    tempo: float | None
    beat: float | None  # the session's beat at the decision instant


@dataclass
class LeadPolicy:
    """Decides each frame what the leader publishes (pure: no clock, no I/O).

    Attributes:
        min_confidence: tracker confidence needed to publish anything.
        tempo_step: BPM; smaller tempo differences are not published.
        phase_step: seconds; smaller (smoothed) phase errors are not corrected.
        interval: seconds; at most one change per interval.
        smoothing: seconds; time constant of the phase-error average (the
            tracker's beat times jitter by about a hop, ~23 ms).
    """

    min_confidence: float = 0.5
    tempo_step: float = 0.4
    phase_step: float = 0.008
    interval: float = 1.0
    smoothing: float = 0.5
    _last: float = field(default=-math.inf, repr=False)
    _error: float = field(default=0.0, repr=False)  # smoothed phase error, beats
    _t: float | None = field(default=None, repr=False)
    _barred: bool = field(default=False, repr=False)  # bar position set from the beat index

    def reset(self) -> None:
        self._last, self._error, self._t, self._barred = -math.inf, 0.0, None, False

    def decide(
        self,
        t: float,
        confidence: float,
        tempo: float,
        beat: float,
        session_tempo: float,
        session_beat: float,
        quantum: float,
    ) -> Publish | None:
        """What to publish at time ``t`` (s), given the tracker's ``tempo`` and
        ``beat`` (running beat index + phase at ``t``) and the session's.

        The first publish after a lock moves the session's bar so that its
        position is the tracker's beat index modulo ``quantum`` (the smallest
        move that does); later ones correct within a beat only, so the bar
        count never slips with the tracker's jitter."""
        if confidence < self.min_confidence or not math.isfinite(beat) or tempo <= 0:
            self.reset()  # the next lock sets the bar again
            return None
        if not self._barred:
            self._barred, self._last, self._t, self._error = True, t, t, 0.0
            return Publish(round(tempo, 2), session_beat + wrap(beat - session_beat, quantum))
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        self._error += (1.0 - math.exp(-dt / self.smoothing)) * (wrap(beat - session_beat, 1.0) - self._error)
        if t - self._last < self.interval:
            return None
        new_tempo = round(tempo, 2) if abs(tempo - session_tempo) > self.tempo_step else None
        shift = self._error
        new_beat = session_beat + shift if abs(shift) * 60.0 / tempo > self.phase_step else None
        if new_tempo is None and new_beat is None:
            return None
        self._last = t
        if new_beat is not None:
            self._error = 0.0  # measured against the moved session from now on
        return Publish(new_tempo, new_beat)


class BeatLine:
    """The tracker's recent beats as a line, beat index against time.

    A beat-to-beat prediction jitters by about a hop (23 ms); a least-squares
    line through the last ``window`` reported beats gives both the tempo (its
    slope) and the beat position at any time to a few milliseconds, which is
    what Link peers should lock to. A gap (a missed beat, a break) or a tempo
    change starts the line afresh.
    """

    def __init__(self, window: int = 16, min_beats: int = 4) -> None:
        self.window, self.min_beats = window, min_beats
        self._index: deque[int] = deque(maxlen=window)
        self._time: deque[float] = deque(maxlen=window)
        self._fit: tuple[float, float, float] | None = None  # (time, beat, beats per second), per new beat

    def add(self, index: int, t: float, tempo: float) -> None:
        """A beat the tracker reported: its running ``index`` and time ``t``
        (s), and the tracker's tempo then (BPM)."""
        if self._time:
            gap = (t - self._time[-1]) * tempo / 60.0
            if index != self._index[-1] + 1 or abs(gap - 1.0) > 0.15:
                self.clear()
        self._index.append(index)
        self._time.append(t)
        self._fit = None
        if len(self._time) >= self.min_beats:  # fitted once per beat, read every frame
            k = np.fromiter(self._index, np.float64, len(self._index))
            x = np.fromiter(self._time, np.float64, len(self._time))
            slope, intercept = np.polyfit(x - x[-1], k - k[-1], 1)  # beats per second
            if slope > 0:
                self._fit = (x[-1], k[-1] + intercept, slope)

    def clear(self) -> None:
        self._index.clear()
        self._time.clear()
        self._fit = None

    def at(self, t: float) -> tuple[float, float] | None:
        """(beat position, tempo in BPM) at time ``t``; None with too few beats."""
        if self._fit is None:
            return None
        t0, beat0, rate = self._fit
        return beat0 + rate * (t - t0), 60.0 * rate
