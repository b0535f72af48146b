"""What the dancer hears: loudness, busyness and silence from the music features.

Live input has no fixed level (a whisper-quiet line-in, a clipping DJ
feed), so loudness is judged relative to a slowly decaying running peak
(automatic gain control) and mapped to [0, 1]. Busyness is the share of
recent onset strength that falls *between* beats (beat phase more than
``on_beat`` away from a beat), the music analogue of the dance's busyness
(share of motion energy above the beat frequency, ``motion.descriptors``). Both are *levels* in [0, 1]; the
engine maps them onto the dance data's own descriptor distribution with the
quantiles stored in the checkpoint (:class:`livedance.model.context.DescriptorStats`),
which is how motion-only training data is conditioned on music.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ListenerSettings:
    silence_db: float = -50.0  # RMS below this (dBFS) is silence
    # Seconds below the floor before we call it silence: longer than the gap
    # between the hits of quiet, slow music (at 0.6 s the dancer faded towards
    # the idle groove between the beats of 60 BPM drums at -30 dBFS, and missed
    # them by 133 ms; at 1.0 s, 25 ms: docs/engine.md, bench motion).
    silence_hold: float = 1.0
    dynamic_range_db: float = 24.0  # loudness below peak that maps to energy 0
    peak_decay_db_per_s: float = 1.0  # running peak forgets this fast
    smoothing_s: float = 0.5  # time constant of energy/busyness smoothing
    busy_window_s: float = 2.0
    on_beat: float = 0.15  # beats either side of a beat that count as "on" it


@dataclass
class Listening:
    """The listener's view after the latest hop."""

    energy: float = 0.0  # [0, 1], loudness relative to the recent peak
    busyness: float = 0.0  # [0, 1], onset density
    silent: bool = True
    level_db: float = -120.0


class Listener:
    """Hop-by-hop loudness/busyness/silence; ``update`` takes a block of hops."""

    def __init__(self, hop_seconds: float, settings: ListenerSettings | None = None) -> None:
        self.s = settings or ListenerSettings()
        self.dt = hop_seconds
        self.peak_db = -60.0
        self.quiet_for = 1e9
        self.state = Listening()
        n = max(1, int(round(self.s.busy_window_s / hop_seconds)))
        self._onsets = np.zeros(n, dtype=np.float64)
        self._off_beat = np.zeros(n, dtype=np.float64)
        self._pos = 0
        self._alpha = 1.0 - np.exp(-hop_seconds / self.s.smoothing_s)

    def update(self, rms: np.ndarray, onset: np.ndarray, phase: np.ndarray) -> Listening:
        """Consume per-hop RMS (linear), onset strength and beat phase in [0, 1),
        arrays of equal length."""
        st = self.state
        for r, o, ph in zip(np.asarray(rms, np.float64), np.asarray(onset, np.float64), np.asarray(phase, np.float64)):
            db = 20.0 * np.log10(max(float(r), 1e-6)) if np.isfinite(r) else -120.0
            self.peak_db = max(db, self.peak_db - self.s.peak_decay_db_per_s * self.dt, self.s.silence_db + 6)
            self.quiet_for = self.quiet_for + self.dt if db < self.s.silence_db else 0.0
            loud = np.clip((db - (self.peak_db - self.s.dynamic_range_db)) / self.s.dynamic_range_db, 0.0, 1.0)
            o = float(o) if np.isfinite(o) and db > self.s.silence_db else 0.0
            off = min(ph, 1.0 - ph) > self.s.on_beat if np.isfinite(ph) else False
            self._onsets[self._pos] = o
            self._off_beat[self._pos] = o if off else 0.0
            self._pos = (self._pos + 1) % self._onsets.size
            total = self._onsets.sum()
            busy = self._off_beat.sum() / total if total > 1e-9 else 0.0
            st.energy += self._alpha * (float(loud) - st.energy)
            st.busyness += self._alpha * (busy - st.busyness)
            st.level_db = db
        st.silent = self.quiet_for >= self.s.silence_hold
        if st.silent:
            st.energy *= 0.0
        return st

