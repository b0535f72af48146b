"""A timeline of dance units laid on the dancer's beat clock.

Positions are music beats (the beat clock of :mod:`livedance.live.phase`;
integers are the beats the dance hits). Each unit is queued with its
*span*: how many music beats its two dance beats cover, which is the
metrical level it is danced at (:mod:`livedance.live.level`): 2 normally,
4 in half-time, 1 in double-time. Its 32 canonical frames are spread evenly
over the span, so the tempo lives entirely in how fast the beat clock runs
and every unit's kinematic beats (its frames 0 and 16) land on music beats
(every beat, every other beat in half-time, every half beat in
double-time). A unit starts where the one before it ends.

Seams: a new unit is joined to the previous one by a Hermite offset that
matches the previous unit's end value *and* velocity and decays to zero over
the first ``seam_frames`` frames, so poses and their speeds are continuous
across units whatever the decoder produced.

All arrays carry a leading dancer axis B.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

UNIT_BEATS = 2
UNIT_FRAMES = 32
FRAMES_PER_BEAT = UNIT_FRAMES // UNIT_BEATS


def hermite_offset(dx: np.ndarray, dv: np.ndarray, length: int) -> np.ndarray:
    """(B, D) start offset and start velocity -> (B, length, D) offset that goes
    from ``dx`` (slope ``dv`` per frame) to zero with zero slope."""
    s = (np.arange(length, dtype=np.float32) / length)[None, :, None]
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    return h00 * dx[:, None, :] + h10 * (length * dv[:, None, :])


@dataclass
class Unit:
    """A queued unit: its number, first music beat, span in music beats and features (B, 32, D)."""

    index: int
    start: float
    span: float
    feats: np.ndarray

    @property
    def end(self) -> float:
        return self.start + self.span

    @property
    def level(self) -> int:
        """Its metrical level: 0 on UNIT_BEATS music beats, -1 on twice as many, 1 on half."""
        return int(round(math.log2(UNIT_BEATS / self.span)))


@dataclass
class UnitTimeline:
    """A queue of units (B, 32, D), each laid on ``span`` music beats from its start.

    The generator appends units ahead of time; the frame clock samples
    features at beat positions. Units before the playing one are dropped.
    """

    seam_frames: int = 8

    def __post_init__(self) -> None:
        self._units: deque[Unit] = deque()
        self._end = 0.0  # where the next unit starts (the last queued one's end)
        self._next = 0  # number of the next unit

    def __len__(self) -> int:
        return len(self._units)

    @property
    def last_index(self) -> int:
        """Number of the last queued unit (-1 if empty)."""
        return self._units[-1].index if self._units else -1

    @property
    def end(self) -> float:
        """Music beat where the next unit will start."""
        return self._end

    def needs(self, position: float, lookahead_units: int = 1) -> int | None:
        """The unit number to generate next, if fewer than ``lookahead_units``
        queued units start after ``position``; else None."""
        if sum(u.start > position for u in self._units) >= lookahead_units:
            return None
        return self._next

    def restart_at(self, start: float) -> None:
        """Drop every queued unit; the next one starts at music beat ``start`` (re-entry)."""
        self._units.clear()
        self._end = float(start)

    def append(self, index: int, feats: np.ndarray, span: float = UNIT_BEATS, position: float | None = None) -> None:
        """Queue ``feats`` (B, 32, D) as unit ``index`` over ``span`` music beats,
        smoothing the seam with the unit before it when that is ``index - 1``.

        It starts where the queue ends; if the clock at ``position`` has already
        passed that, on the latest music beat a whole number of spans later
        (the unit then plays from its middle, as a late unit must).
        """
        feats = np.array(feats, dtype=np.float32, copy=True)
        start = self._end
        if position is not None and position >= start + span:
            start += span * math.floor((position - start) / span)
        if self._units and self._units[-1].index == index - 1 and self._units[-1].end == start:
            prev = self._units[-1].feats
            vel_prev = prev[:, -1] - prev[:, -2]
            expected = prev[:, -1] + vel_prev
            dx = expected - feats[:, 0]
            dv = vel_prev - (feats[:, 1] - feats[:, 0])
            n = min(self.seam_frames, feats.shape[1])
            feats[:, :n] += hermite_offset(dx, dv, n)
        elif self._units and self._units[-1].index >= index:
            raise ValueError(f"unit {index} appended after unit {self._units[-1].index}")
        self._units.append(Unit(index, start, float(span), feats))
        self._end = start + float(span)
        self._next = index + 1

    def clear_after(self, position: float) -> None:
        """Drop queued units that start after music beat ``position`` (the one
        playing there stays), e.g. so a new seed takes over from the next unit."""
        while self._units and self._units[-1].start > position:
            self._units.pop()
        if self._units:
            self._end = self._units[-1].end
            self._next = self._units[-1].index + 1  # the next unit joins this one's seam
        else:
            self._end = min(self._end, math.floor(position))

    def take_rows(self, rows: np.ndarray) -> None:
        """Keep dancer ``rows`` of every queued unit (repeats copy a dancer): the
        number of dancers changes without re-planning what is queued."""
        for unit in self._units:
            unit.feats = unit.feats[rows]

    def queued_after(self, position: float) -> list[Unit]:
        """Queued units that start after music beat ``position``."""
        return [u for u in self._units if u.start > position]

    def playing(self, position: float) -> Unit | None:
        """The queued unit covering music beat ``position``, dropping the ones before it."""
        while self._units and self._units[0].end <= position:
            self._units.popleft()
        if self._units and self._units[0].start <= position:
            return self._units[0]
        return None

    def sample(self, position: float) -> np.ndarray | None:
        """(B, D) features at beat ``position`` by linear interpolation between
        canonical frames (across the seam into the next unit when queued).
        Returns None if the playing unit is not in the queue (the caller
        holds the previous pose)."""
        unit = self.playing(position)
        if unit is None:
            return None
        cur = unit.feats
        c = (position - unit.start) * UNIT_FRAMES / unit.span
        k = min(int(c), UNIT_FRAMES - 1)
        frac = np.float32(c - k)
        if k + 1 < UNIT_FRAMES:
            nxt = cur[:, k + 1]
        else:
            following = self._units[1] if len(self._units) > 1 else None
            nxt = following.feats[:, 0] if following is not None and following.start == unit.end else cur[:, k]
        return cur[:, k] + frac * (nxt - cur[:, k])
