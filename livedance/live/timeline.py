"""A timeline of dance units laid on the dancer's beat clock.

Unit ``j`` covers dance beats ``[2j, 2j + 2)``; its 32 canonical frames are
spread evenly over them, so the tempo lives entirely in how fast the beat
clock runs (see :mod:`livedance.live.phase`) and every unit's kinematic beats
(its frames 0 and 16) land on integer beat positions.

Seams: a new unit is joined to the previous one by a Hermite offset that
matches the previous unit's end value *and* velocity and decays to zero over
the first ``seam_frames`` frames, so poses and their speeds are continuous
across units whatever the decoder produced.

All arrays carry a leading dancer axis B.
"""

from __future__ import annotations

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
class UnitTimeline:
    """A queue of units (B, 32, D) indexed by unit number.

    The generator appends units ahead of time; the frame clock samples
    features at beat positions. Units before the playing one are dropped.
    """

    seam_frames: int = 8

    def __post_init__(self) -> None:
        self._units: deque[tuple[int, np.ndarray]] = deque()

    def __len__(self) -> int:
        return len(self._units)

    @property
    def last_index(self) -> int:
        """Number of the last queued unit (-1 if empty)."""
        return self._units[-1][0] if self._units else -1

    def needs(self, position: float, lookahead_units: int = 1) -> int | None:
        """The unit number to generate next, if the queue does not yet reach
        ``lookahead_units`` past the one playing at ``position``; else None."""
        playing = int(position // UNIT_BEATS)
        want = playing + lookahead_units
        if self.last_index >= want:
            return None
        return max(self.last_index + 1, playing)

    def append(self, index: int, feats: np.ndarray) -> None:
        """Queue ``feats`` (B, 32, D) as unit ``index``, smoothing the seam with the
        unit before it when that is ``index - 1``."""
        feats = np.array(feats, dtype=np.float32, copy=True)
        if self._units and self._units[-1][0] == index - 1:
            prev = self._units[-1][1]
            vel_prev = prev[:, -1] - prev[:, -2]
            expected = prev[:, -1] + vel_prev
            dx = expected - feats[:, 0]
            dv = vel_prev - (feats[:, 1] - feats[:, 0])
            n = min(self.seam_frames, feats.shape[1])
            feats[:, :n] += hermite_offset(dx, dv, n)
        elif self._units and self._units[-1][0] >= index:
            raise ValueError(f"unit {index} appended after unit {self._units[-1][0]}")
        self._units.append((index, feats))

    def take_rows(self, rows: np.ndarray) -> None:
        """Keep dancer ``rows`` of every queued unit (repeats copy a dancer): the
        number of dancers changes without re-planning what is queued."""
        self._units = deque((i, f[rows]) for i, f in self._units)

    def clear_after(self, index: int) -> None:
        """Drop queued units after unit ``index`` (e.g. to re-plan on re-entry)."""
        while self._units and self._units[-1][0] > index:
            self._units.pop()

    def _unit(self, index: int) -> np.ndarray | None:
        for i, f in self._units:
            if i == index:
                return f
        return None

    def sample(self, position: float) -> np.ndarray | None:
        """(B, D) features at beat ``position`` by linear interpolation between
        canonical frames (across the seam into the next unit when queued).
        Returns None if the playing unit is not in the queue (the caller
        holds the previous pose)."""
        index = int(position // UNIT_BEATS)
        while self._units and self._units[0][0] < index:
            self._units.popleft()
        cur = self._unit(index)
        if cur is None:
            return None
        c = (position - index * UNIT_BEATS) * FRAMES_PER_BEAT
        k = min(int(c), UNIT_FRAMES - 1)
        frac = np.float32(c - k)
        if k + 1 < UNIT_FRAMES:
            nxt = cur[:, k + 1]
        else:
            following = self._unit(index + 1)
            nxt = following[:, 0] if following is not None else cur[:, k]
        return cur[:, k] + frac * (nxt - cur[:, k])
