"""A causal beat and tempo tracker that predicts the next beats.

Input: the onset envelope (:attr:`FeatureBlock.onset`), one value per hop, as
it arrives. Output, at every hop: tempo, beat phase, confidence, the
predicted times of the next beats, and a beat event when a beat passes.

How (all causal, per hop):

* **Normalise** the onset by its slow running level, so gain does not matter,
  and track a fast running level to tell music from silence.
* **Tempo**: an exponentially weighted autocorrelation of the last few
  seconds, read on a log-spaced BPM grid, times a log-normal prior centred on
  ``preferred_bpm`` (the dance-natural range wins half/double ambiguity), with
  hysteresis (persistence, and while locked a margin over the current
  tempo's score) so the tempo does not flicker; but when the tracked tempo
  loses much of its own score (a track change) the new one takes over at
  once, and the beat DP is replayed at the new period over the onsets it
  still holds, so the phase is right from the first beat after the switch.
* **Metre**: a second, long autocorrelation (``meter_window``) picks among
  the tempi related to that estimate by 2, 3/2 and 4/3 by bar-level evidence
  (A(2L), A(4L)): real music with steady eighth notes correlates at 2, 3
  and 4 of them almost alike over a few seconds.
* **Beats**: the dynamic programme of Ellis (2007), run forward only: the
  cumulative score C(t) = onset(t) + max_tau [C(tau) - tightness *
  log^2((t - tau) / period)] with back-links (as in Stark et al., 2009, for
  real-time use). The best recent C is the last beat; its back-links give
  the previous beats, and a line fitted through them predicts the next ones.
  The onset it hears is the plain one plus the bass onset (below 200 Hz),
  so a kick or bass note on the beat outweighs chords between the beats.
* **Period and phase from the beats**: the line goes through the beats'
  sub-hop positions (the onset peak around each), over the longest trailing
  run of up to 8 beats that lies straight, so the period is read well below
  the 1 % tempo grid and a tempo change is followed within a few beats; a
  single stray beat does not tilt it. The phase is held: a chain of beats
  half a beat off the grid takes over only when its cumulative score leads
  clearly, not when it wins one beat (a boom-chick, an off-beat bass).
* **Metrical level**: the autocorrelation alone often prefers half or double
  tempo. The tracked beats settle it: if the midpoints between beats are as
  strong as the beats, the tempo is doubled; if every other beat is weak,
  it is halved (within ``min_bpm``..``max_bpm``; doubled only up to
  ``double_max_bpm``). The longer the beats have confirmed a level, the
  longer contrary evidence must last; and once a tempo has held for 8 beats,
  one related to it by 3:2, 4:3 or 2:1 must persist before it takes over
  (a fill is not a track change).
* **Events**: a beat event fires on the hop whose audio reaches a predicted
  beat, when confidence is high enough; in silence the predictions coast on
  the last tempo and no events fire.
* **Confidence**: how strong the onsets on the tracked beats are (the lock,
  which also gates events and tempo switches), times how periodic the last
  few seconds are at the tracked tempo or the best other one (the onset
  envelope's autocorrelation there, as a share of its variance), so it falls
  when music gives way to noise of any loudness, not only to silence, but not
  when the music changes tempo.

Offline, :meth:`BeatTracker.track` pushes a whole envelope through the same
object, so offline and live beat times agree by construction.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from livedance.config import BeatSettings
from livedance.music.features import FeatureBlock

# Normalised onsets are clipped here for the tempo and beat scores, so one
# huge hit (a crash, a door) cannot own them; typical beats are 3-8.
_CLIP = 10.0
# Periodicity (see _update_periodicity) mapped to confidence: 0 at or below
# _PERIODIC_NONE, 1 at or above _PERIODIC_FULL. Measured (tempo window 4 s):
# broadband noise and random clicks 0.0-0.2 (rare peaks 0.35), the demo song
# after lock 0.22-0.6, the synthetic kits 0.45-0.85 (through tempo jumps
# mostly over 0.3, the newest seconds read at the rival tempo too).
_PERIODIC_NONE = 0.15
_PERIODIC_FULL = 0.3
_TRUST_SECONDS = 2.0
# The beat-line fit (see _predict): up to this many beats, shortened until
# its mean squared residual (hops^2) is at most _STRAIGHT (clicks: ~0.02);
# the phase's share on the line (the rest on the last beat itself).
_FIT_MAX = 8
_STRAIGHT = 0.1
_ANCHOR_LINE = 0.5
# The tempo-ramp fit (see _ramp): 5 to _FIT_MAX beats; the parabola's mean
# squared residual (hops^2) at most _RAMP_SQ and _RAMP_GAIN of the line's; the
# last two intervals each at least _RAMP_BEND (log) off the line's period; its
# period _RAMP_FROM to _RAMP_RANGE (log) off the tempo estimate (nearer, the
# line's 4 % window serves: drum & bass fills bend the beats 5 % for a bar,
# and a parabola through them would report it); the DP's period pulled
# towards it with this time constant (s). Tuned on the synthetic ritardando
# (111 -> 86 BPM in 3 s) and checked on the dev set (docs/engine.md).
_RAMP_MIN = 5
_RAMP_GAIN = 0.5
_RAMP_FROM = 0.07
_RAMP_RANGE = 0.3
_RAMP_SQ = 0.25
_RAMP_BEND = 0.02
_RAMP_PULL_SECONDS = 0.75
# A tempo switch's metrical level: half or double the new tempo is taken if
# within this (log) of the beats' period (see _update_tempo).
_NEAR_BEATS = 0.1
# Tempo ratios (log) a fill or bridge makes look like the beat; how close
# (log) a new tempo must be to one to count as related; and how many times
# switch_hops such a tempo must persist before the tracker takes it.
_RELATED = tuple(math.log(r) for r in (1.5, 2.0 / 3.0, 4.0 / 3.0, 0.75, 3.0, 1.0 / 3.0))
_RELATED_TOL = 0.015
_RELATED_PERSIST = 6
# Phase hold (see _predict): a best beat further than this share of a beat off
# the current grid replaces the grid's own only if its chain's cumulative score
# leads by this many beats' worth of onsets (chains merge at a lead of about
# tightness * log(1.5)^2 = 41, i.e. ~10 beats' worth).
_PHASE_SLACK = 0.2
_PHASE_MARGIN = 6.0


def _line(y: list[float], ks: list[float], kk: float) -> tuple[float, float, float]:
    """Least-squares line through ``y`` at centred indices ``ks`` (k.k = ``kk``):
    slope, mean, and mean squared residual."""
    n = len(y)
    mean = sum(y) / n
    dev = [v - mean for v in y]
    slope = sum(k * d for k, d in zip(ks, dev)) / kk
    sq = sum((d - slope * k) ** 2 for k, d in zip(ks, dev)) / n
    return slope, mean, sq


def _mean(values: list[float]) -> float:
    """np.mean of a few floats, to the bit: numpy sums fewer than 8 values left
    to right, starting from the first."""
    total = values[0]
    for v in values[1:]:
        total += v
    return total / len(values)


@dataclass(frozen=True, slots=True)
class BeatState:
    """The tracker's view after one hop."""

    time: float  # audio time at the end of this hop, seconds
    tempo: float  # BPM
    phase: float  # position within the current beat, [0, 1)
    confidence: float  # [0, 1]; low in silence, breaks, noise and before lock
    next_beats: tuple[float, ...]  # predicted times of the next beats (> time), seconds
    beat: bool = False  # a beat passed on this hop
    beat_time: float | None = None  # when that beat was (<= time), seconds


class _History:
    """Fixed-length float history with contiguous views of the last ``n`` values
    (a doubled buffer: every value is written twice, no copying on read)."""

    def __init__(self, length: int, fill: float = 0.0) -> None:
        self.length = length
        self._buf = np.full(2 * length, fill, dtype=np.float64)
        self._i = 0  # next write slot

    def push(self, v: float) -> None:
        self._buf[self._i] = v
        self._buf[self._i + self.length] = v
        self._i = (self._i + 1) % self.length

    def last(self, n: int) -> np.ndarray:
        """The last ``n`` values, oldest first (a view)."""
        end = self._i + self.length
        return self._buf[end - n : end]

    def overwrite_last(self, values: np.ndarray) -> None:
        """Replace the last ``len(values)`` values (oldest first)."""
        n = len(values)
        idx = (self._i - n + np.arange(n)) % self.length
        self._buf[idx] = values
        self._buf[idx + self.length] = values


class BeatTracker:
    """Causal beat tracker; ``process`` online, ``track`` offline (same code)."""

    def __init__(self, settings: BeatSettings, frame_rate: float, onset_latency: float = 0.0) -> None:
        """``frame_rate``: onset values per second. ``onset_latency``: how far
        the onset envelope's peak lags the attack in the audio, seconds (pass
        :attr:`FeatureExtractor.onset_latency`)."""
        if not 0 < settings.min_bpm < settings.max_bpm:
            raise ValueError("beats.min_bpm must be > 0 and below beats.max_bpm")
        self.settings = settings
        self.frame_rate = float(frame_rate)
        self.onset_latency = float(onset_latency)
        fr = self.frame_rate
        s = settings
        self._lag_min = int(math.floor(60.0 * fr / s.max_bpm))
        self._lag_max = int(math.ceil(60.0 * fr / s.min_bpm)) + 1
        # Autocorrelation lags: the tempo range, plus half periods (the
        # salience reads A(L/2) too).
        # The metre term reads A(2L) and A(4L) as well (bar-level evidence).
        self._lags = np.arange(max(1, self._lag_min // 2 - 1), 4 * self._lag_max + 2)
        # Two exponentially weighted autocorrelations over one gather: a short
        # one (tempo_window/tempo_memory) that follows tempo changes, and a long
        # one (meter_window/meter_memory) for the metre term, whose bar-level
        # lags need many bars of evidence on real music.
        short_win = int(round(s.tempo_window * fr))
        self._win = max(short_win, int(round(s.meter_window * fr)))
        age = np.arange(self._win)[::-1]
        self._acf_weights = np.stack(
            [
                np.where(age < short_win, np.exp(-age / (s.tempo_memory * fr)), 0.0),
                np.exp(-age / (s.meter_memory * fr)),
            ],
            axis=1,
        )  # (win, 2)
        self._hist_len = self._win + int(self._lags[-1]) + 2
        starts = self._hist_len - self._win - self._lags
        self._acf_index = starts[:, None] + np.arange(self._win)[None, :]  # (lags, win) gather
        self._full_pairs = np.broadcast_to(self._acf_weights.sum(axis=0), (len(self._lags), 2))  # once all is heard
        self._full_ok = self._full_pairs > 0.25 * self._acf_weights.sum(axis=0)
        self._full_all = bool(self._full_ok.all())
        self._full_den = np.maximum(self._full_pairs, 1e-9)
        self._cur = np.empty((self._win, 2))
        self._lagged = np.empty((len(self._lags), self._win))
        # Periodicity over the short window: its weights, and buffers for the
        # compressed onsets it reads (a metrical correction may take the
        # period 3 % past the longest).
        self._pw = self._acf_weights[self._win - short_win :, 0].copy()
        self._pw_sum = float(self._pw.sum())
        self._pdev = np.empty(short_win)
        self._pneed = int(2.06 * self._lag_max) + 2  # hops they reach back: two periods of the tracked tempo or its rival
        self._rival_band = int(math.ceil(s.tempo_follow / math.log(1.01)))  # grid steps within tempo_follow
        self._plog = np.empty(short_win + self._pneed)
        # Its search over the tempo range: the autocorrelation at every whole
        # lag from half the shortest period to twice the longest (one strided
        # view of the compressed onsets, copied into a fixed buffer), and the
        # matrix that combs it into A(L) + hw A(L/2) + mw A(2L) at each whole
        # period L (A(L/2) between the hops either side for odd L).
        lo, hi = self._lag_min // 2, 2 * self._lag_max
        self._plagged_view = sliding_window_view(self._plog, short_win)[self._pneed - hi : self._pneed - lo + 1][::-1]
        self._plagged = np.empty(self._plagged_view.shape)
        self._pacf = np.empty(hi - lo + 1)
        periods = np.arange(self._lag_min, self._lag_max + 1)
        self._pcomb_matrix = np.zeros((len(periods), hi - lo + 1))
        rows = np.arange(len(periods))
        self._pcomb_matrix[rows, periods - lo] += 1.0
        self._pcomb_matrix[rows, periods // 2 - lo] += 0.5 * s.harmonic_weight
        self._pcomb_matrix[rows, (periods + 1) // 2 - lo] += 0.5 * s.harmonic_weight
        self._pcomb_matrix[rows, 2 * periods - lo] += s.meter_weight
        self._pcomb = np.empty(len(periods))
        self._trust_step = 1.0 / (_TRUST_SECONDS * fr)
        # Tempo grid: 1% steps, log-spaced.
        n_grid = int(math.ceil(math.log(s.max_bpm / s.min_bpm) / math.log(1.01))) + 1
        self._grid_bpm = s.min_bpm * (s.max_bpm / s.min_bpm) ** np.linspace(0.0, 1.0, n_grid)
        self._grid_lag = 60.0 * fr / self._grid_bpm
        self._grid_bpm_list = self._grid_bpm.tolist()
        self._grid_lag_list = self._grid_lag.tolist()
        self._neg_grid_lag = -self._grid_lag
        self._grid_lags4 = np.concatenate([self._grid_lag, 0.5 * self._grid_lag, 2.0 * self._grid_lag, 4.0 * self._grid_lag])
        self._metre_ratios = np.array([0.5, 2.0 / 3.0, 0.75, 1.0, 4.0 / 3.0, 1.5, 2.0])
        self._metre_ratios_list = self._metre_ratios.tolist()
        self._prior = np.exp(-0.5 * (np.log2(self._grid_bpm / s.preferred_bpm) / s.prior_octaves) ** 2)
        self._dp_len = 2 * self._lag_max + 8 + int(6 * 60.0 * fr / s.min_bpm)
        self._slow = math.exp(-1.0 / (s.level_seconds * fr))
        self._fast = math.exp(-1.0 / (0.5 * fr))
        self._held_decay = math.exp(-2.0 / (s.tempo_window * fr))  # per tempo update (every 2 hops)
        # Beat-line fit over ``run`` beats: centred indices k and k.k.
        self._fit_k = {}
        for run in range(3, _FIT_MAX + 1):
            k = np.arange(run, dtype=np.float64) - 0.5 * (run - 1)
            self._fit_k[run] = (k.tolist(), float(k @ k))
        self._ramp_pull = 1.0 - math.exp(-1.0 / (_RAMP_PULL_SECONDS * fr))  # per hop
        # and for the tempo-ramp fit (see _ramp): centred k^2 (orthogonal to 1 and k) and q.q
        self._fit_q = {}
        for run in range(_RAMP_MIN, _FIT_MAX + 1):
            k = np.arange(run, dtype=np.float64) - 0.5 * (run - 1)
            q = k * k - float(np.mean(k * k))
            self._fit_q[run] = (q.tolist(), float(q @ q))
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything: the next value is hop 0."""
        self._t = -1  # index of the last processed hop
        self._onsets = _History(self._hist_len)
        self._centred = np.zeros(self._hist_len)  # the onset history less its mean (see _update_tempo)
        rows = slice(self._acf_index[-1, 0], self._acf_index[0, 0] + 1)  # the lags, longest first: [::-1]
        self._lagged_view = sliding_window_view(self._centred, self._win)[rows][::-1]
        self._heard = np.zeros(self._hist_len)
        self._heard_view = sliding_window_view(self._heard, self._win)[rows][::-1]
        # Unclipped copy for the metrical-level check: clipping (which keeps
        # one huge hit from owning the DP) would flatten accent ratios.
        self._accents = _History(self._hist_len)
        self._cum = _History(self._dp_len)
        self._link = _History(self._dp_len, fill=-1.0)  # back-link: absolute hop index
        self._level = 0.0  # slow running mean of the raw onset (bias-corrected below)
        self._level_w = 0.0
        self._recent = 0.0  # fast running mean of the raw onset
        self.period = 60.0 * self.frame_rate / self.settings.preferred_bpm  # hops per beat
        self._candidate = self.period
        self._candidate_count = 0
        self._tempo_since = -1  # hop since which the estimates have followed the tracked tempo (-1: not yet)
        self._held_ref = 0.0  # recent best score of the tracked tempo
        self._fold = 1.0  # metrical correction applied to tempo estimates
        self._level_votes = 0  # hops in a row voting for double (+) or half (-) tempo
        self._level_hold = 0  # no level correction before this hop
        self._level_since = -1  # hop at which the beats first confirmed the current level (-1: not yet)
        self._level_run = 0  # hops in a row on which they confirmed it
        self._level_ok = False  # the beats confirm the current metrical level
        self._anchor = -1.0  # fractional hop index of the last beat
        self._beat_period = self.period
        self._last_event = -math.inf  # audio time of the last reported beat
        self._confidence = 0.0
        self._strength = 0.0
        self._score = np.zeros(len(self._grid_bpm))  # the last tempo score (see _update_tempo)
        self._periodicity: float | None = None  # see _update_periodicity; None: not measured yet
        self._quiet = -1  # last hop of the last break (-1: none yet, the stream starts in one)
        self._periodic_trust = 1.0  # the periodicity as a confidence factor, rate-limited upwards (_report)
        self._last_loud = -math.inf  # last hop whose (clipped) onset reached the gate
        self._dp_key: tuple[float, int] | None = None  # (period, longest) of the cached DP steps

    # ----------------------------------------------------------------- public
    @property
    def tempo(self) -> float:
        return 60.0 * self.frame_rate / self._beat_period

    def process(self, onset_values: np.ndarray, bass: np.ndarray | None = None) -> list[BeatState]:
        """Advance by one hop per value; one :class:`BeatState` per hop.

        ``bass``: the same hops' bass onset (:attr:`FeatureBlock.bass_onset`),
        added at ``bass_weight``; without it the tracker hears ``onset`` alone."""
        x = np.asarray(onset_values, dtype=np.float64).ravel()
        if bass is not None and self.settings.bass_weight:
            x = x + self.settings.bass_weight * np.asarray(bass, dtype=np.float64).ravel()
        return [self._step(v) for v in x.tolist()]

    def hear(self, block: FeatureBlock) -> list[BeatState]:
        """Advance by one feature block, hearing what the engine hears (the
        onset plus the bass onset): the one way every caller feeds the tracker."""
        return self.process(block.onset, block.bass_onset)

    def track(self, onset: np.ndarray, bass: np.ndarray | None = None) -> np.ndarray:
        """Offline: beat times (seconds) of a whole envelope, from a fresh state."""
        self.reset()
        times = [st.beat_time for st in self.process(onset, bass) if st.beat]
        return np.asarray(times, dtype=np.float64)

    # --------------------------------------------------------------- the hop
    def _hop_time(self, hop: float) -> float:
        """Audio time (s) of an onset seen at (fractional) hop index ``hop``."""
        return (hop + 1.0) / self.frame_rate - self.onset_latency + self.settings.beat_delay

    def _step(self, raw: float) -> BeatState:
        s = self.settings
        self._t += 1
        t = self._t
        raw = raw if math.isfinite(raw) and raw > 0.0 else 0.0
        # Bias-corrected slow level: right from the first hops, not after 8 s.
        self._level = self._slow * self._level + (1.0 - self._slow) * raw
        self._level_w = self._slow * self._level_w + (1.0 - self._slow)
        level = max(self._level / self._level_w, s.silence_level)
        self._recent = self._fast * self._recent + (1.0 - self._fast) * raw
        x = min(raw / level, _CLIP)
        self._onsets.push(x)
        self._accents.push(raw / level)
        if x >= s.gate:
            self._last_loud = t

        heard = self._heard_recently(2.0)
        if not heard:
            self._quiet = t
        if t % 2 == 0 and heard:
            self._update_tempo()  # (in a break the tempo is kept, not re-estimated from silence)
            if t % 4 == 0:  # (a measure over seconds: every 4th hop is plenty, and halves its cost)
                self._update_periodicity()
        self._dp(x)
        if self._heard_recently(0.75):
            self._predict()
        # else: a break; keep anchor and period, so predictions coast on the
        # last tempo and the first beats after it land in phase.
        return self._report()

    def _heard_recently(self, beats: float = 1.25) -> bool:
        """Was there any real onset within the last ``beats`` beats?"""
        # (the last n onsets reach the gate iff the last loud hop is among them)
        n = min(int(beats * self.period) + 1, self._hist_len)
        return self._last_loud > self._t - n

    def _update_tempo(self) -> None:
        s = self.settings
        hist = self._onsets.last(self._hist_len)
        valid = min(self._t + 1, self._hist_len)  # hops actually heard (the rest is pre-start padding)
        seen = hist[self._hist_len - valid :]
        centred = self._centred  # zero before the first hop heard (valid only grows until reset)
        np.subtract(seen, np.add.reduce(seen) / valid, out=centred[self._hist_len - valid :])  # (= seen.mean())
        cur = np.multiply(centred[-self._win :, None], self._acf_weights, out=self._cur)
        # acf[k] = sum_i cur[i] * centred[i - lag_k]: one gather + matmul over lagged views.
        # (the lags are consecutive, so the lagged windows are one strided view of
        # the centred buffer, copied into a fixed contiguous one)
        lagged = self._lagged
        np.copyto(lagged, self._lagged_view)
        acf = lagged @ cur  # (lags, 2): short, long
        # Unbiased: divide by the weight of the pairs that were both heard, so
        # short lags do not win just because more of their pairs exist.
        if valid == self._hist_len:
            acf = acf / self._full_den if self._full_all else np.where(self._full_ok, acf / self._full_den, 0.0)
        else:
            heard = self._heard  # 1 on the hops heard, 0 before (valid only grows until reset)
            heard[self._hist_len - valid :] = 1.0
            np.copyto(lagged, self._heard_view)  # = heard[self._acf_index]; acf is computed, the buffer is free
            pairs = lagged @ (heard[-self._win :, None] * self._acf_weights)
            acf = np.where(pairs > 0.25 * self._acf_weights.sum(axis=0), acf / np.maximum(pairs, 1e-9), 0.0)
        long = acf[:, 1]
        # A(L), A(L/2), A(2L), A(4L) on the grid in one interpolation.
        # (all four are used clipped at 0)
        interp = np.interp(self._grid_lags4, self._lags, acf[:, 0])
        a, a_half, a2, a4 = np.maximum(interp, 0.0, out=interp).reshape(4, -1)
        # A(L/2) backs candidates whose half period is periodic too: with 8th
        # notes (hats) around, it keeps the beat from being taken for them.
        # The weight and prior were fitted on the synthetic patterns (see
        # docs/engine.md): plain A(L) x prior picks the 8th or half-note level too often.
        meter = a2 + a4
        score = (a + s.harmonic_weight * a_half + s.meter_weight * meter) * self._prior
        self._score = score  # (for _rival)
        k = int(score.argmax())
        if score[k] <= 0.0:
            return
        k = self._metre(k, long, score)
        lag = self._grid_lag[k]
        if 0 < k < len(score) - 1:  # parabolic refinement between grid points
            y0, y1, y2 = score[k - 1], score[k], score[k + 1]
            curve = y0 - 2.0 * y1 + y2
            d = 0.5 * (y0 - y2) / curve if curve < 0 else 0.0
            lag = self._grid_lag_at(k + d)
        # After a metrical correction the autocorrelation still prefers the
        # old level; read its estimates at the corrected level.
        raw, lag = lag, lag * self._fold
        if not self._lag_min <= lag <= self._lag_max:
            return  # the corrected level would leave [min_bpm, max_bpm]
        # How well the music still supports the tempo being tracked, against
        # how well it did in the last few seconds.
        j = min(max(self._tracked_grid_index(), 1), len(score) - 2)
        held = max(score.item(j - 1), score.item(j), score.item(j + 1))
        self._held_ref = max(held, self._held_ref * self._held_decay)
        ratio = lag / self.period
        if abs(math.log(ratio)) < s.tempo_follow:
            # Same tempo (or a ramp): follow smoothly.
            self.period += 0.25 * (lag - self.period)
            if self._tempo_since < 0:
                self._tempo_since = self._t
            self._candidate_count = 0
            return
        # Half or double the tempo: of the tracked period, or of the beats' own
        # (which an accelerando moves first: the estimate lags it by seconds).
        octave = any(
            min(abs(math.log2(lag / q) - r) for r in (-1.0, 1.0)) < 0.05 for q in (self.period, self._beat_period)
        )
        if octave and self._confidence >= s.min_confidence:
            # While the beats lock, the metrical level is theirs to change
            # (_check_level, on the accents at the beats and between them);
            # the autocorrelation's preference for half/double, read through
            # the tempo prior, does not count.
            self._candidate_count = 0
            return
        # A track change shows as the held tempo losing much of its support
        # while another takes the lead; that switches at once (each hop of
        # waiting is a hop the dance is off the beat). A new tempo merely
        # scoring higher does not: real music keeps 3:2 and 4:3 related
        # periods close behind the beat, sometimes well above it for a bar.
        # Within a song, fills and breakdowns make periods 3:2 or 4:3 of the
        # beat score best for a bar or two (a drum & bass fill, a half-time
        # bridge): a tempo so related must persist, never switch at once.
        # (only once the tempo has held for 8 beats: the first estimates of a
        # stream, or of a new song, may sit at 3:4 of the beat for a moment)
        settled = self._tempo_since >= 0 and self._t - self._tempo_since >= 8.0 * self.period
        related = octave or (settled and min(abs(math.log(ratio) - r) for r in _RELATED) < _RELATED_TOL)
        clear = not related and held < s.switch_loss * self._held_ref
        # Otherwise hysteresis on evidence, not only on time: while locked, a
        # different tempo must score clearly better than the current one.
        if not clear and self._confidence >= s.min_confidence and score[k] < (1.0 + s.tempo_margin) * held:
            self._candidate_count = max(0, self._candidate_count - 1)
            return
        if abs(math.log(lag / self._candidate)) < s.tempo_follow:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = lag, 1
        need = s.switch_hops * (3 if octave else _RELATED_PERSIST if related else 1)
        if clear or self._candidate_count * 2 >= need or self._strength < 0.05:
            if clear and self._confidence >= s.min_confidence:
                # The held tempo lost its support while the beats still lock:
                # often a tempo that ramped away (an accelerando the estimate
                # lagged), which the autocorrelation's prior then reads at
                # half or double. If half or double the new tempo lies within
                # _NEAR_BEATS of the beats' own period, take that level
                # (a new song at another tempo lies further off either way).
                for f in (0.5, 2.0):
                    if self._lag_min <= f * lag <= self._lag_max and abs(math.log(f * lag / self._beat_period)) < _NEAR_BEATS:
                        lag = f * lag
            self.period = lag
            self._candidate_count = 0
            self._held_ref = float(score[k])
            self._tempo_since = self._t
            if not octave:
                # A real tempo change: the old correction need not hold for the
                # new music; take the level the prior prefers, the beats will
                # correct it (_check_level).
                if self._fold != 1.0 and self._lag_min <= raw <= self._lag_max and self._prior_at(raw) > self._prior_at(lag):
                    self.period = raw
                self._fold = 1.0
                self._redo_dp()
                if abs(math.log(self.period / self._beat_period)) >= _NEAR_BEATS:
                    # A new song, not a tempo the beats had already followed
                    # there: the old level's confirmation does not carry over
                    # (_check_level), so a level the prior got wrong is
                    # corrected as quickly as at the start of a stream.
                    self._level_since, self._level_run = -1, 0

    def _update_periodicity(self) -> None:
        """How periodic the last few seconds are, at the tracked tempo or another.

        The beat strength (mean onset at the DP's beats) cannot tell music
        from noise: the DP picks the strongest onsets about a period apart,
        and random clicks or applause always offer some. This asks the
        onsets themselves, unchosen: the correlation of the compressed onset
        envelope with itself one period back (plus the tempo score's half and
        double period terms, at its weights), over the tempo window, centred
        on its own mean, as a share of its variance. Music gives 0.2-0.9,
        noise of any colour or density 0-0.2, so it falls within a few
        seconds of music giving way to noise.

        Across a tempo change the older half of the window is periodic at the
        old tempo and the newer half at the new one, each only half of the
        whole, and until the tracker switches, the new tempo is only its best
        rival (see _rival): so the newer half counts at the better of the
        tracked period and the rival. Noise is periodic at neither, nor fully
        at any other period (searched last, see below).
        """
        need = self._pneed
        # Only the music since the stream started or a break ended: silence in
        # the window would read as a beat missing. Until a second of it is
        # heard, the value from before the break holds (none at the start).
        n = min(len(self._pw), self._t - self._quiet - need)
        if n < self.frame_rate:
            return
        m = n + need
        # log(1 + x): a correlation over a few seconds is otherwise owned by
        # its few biggest onsets; compressed, it counts onsets on the grid.
        x = np.log1p(self._onsets.last(m), out=self._plog[:m])
        w = self._pw[len(self._pw) - n :]
        cur = x[need:]
        wsum = self._pw_sum if n == len(self._pw) else float(w.sum())
        dev = np.subtract(cur, float(w @ cur) / wsum, out=self._pdev[:n])
        np.multiply(dev, w, out=dev)  # weighted deviations: they sum to 0, so the lagged windows need no centring
        var = float(dev @ cur)
        if var <= 1e-12:
            self._periodicity = 0.0
            return
        norm = (1.0 + self.settings.harmonic_weight + self.settings.meter_weight) * var
        full = _PERIODIC_FULL * norm
        old, new = self._comb_halves(self.period, dev, x)
        if old + new < full:  # (at or above it, nothing below could change the confidence)
            new = max(new, self._comb_halves(self._rival(), dev, x)[1])
        total = old + new
        if total < full and n == len(self._pw):  # (the search's lagged view is of a full window)
            # Real music may be periodic at a level the tracker does not
            # follow: the demo song reads fully periodic at 3/2 of its beat
            # period where the beat itself reads 0.23. So the best whole period
            # in the tempo range counts too, but only if fully periodic:
            # partly periodic ones turn up in noise when all are searched.
            np.copyto(self._plagged, self._plagged_view)
            np.matmul(self._plagged, dev, out=self._pacf)
            np.matmul(self._pcomb_matrix, self._pacf, out=self._pcomb)
            best = float(self._pcomb.max())
            if best >= full:
                total = best
        self._periodicity = total / norm

    def _tracked_grid_index(self) -> int:
        """Where the tracked tempo falls on the tempo grid, at the score's level
        (before the metrical correction): ``np.searchsorted`` without the call."""
        return bisect_left(self._grid_bpm_list, 60.0 * self.frame_rate * self._fold / self.period)

    def _rival(self) -> float:
        """The period (hops) of the best tempo in the last tempo score clearly
        apart from the tracked one: across a tempo change, the new one, long
        before it wins."""
        score = self._score
        j = self._tracked_grid_index()
        lo, hi = max(j - self._rival_band, 0), j + self._rival_band + 1  # the tracked tempo's neighbourhood
        rivals = [int(score[:lo].argmax())] if lo else []
        if hi < len(score):
            rivals.append(hi + int(score[hi:].argmax()))
        return self._grid_lag_list[max(rivals, key=score.item)] if rivals else self.period

    def _comb_halves(self, period: float, dev: np.ndarray, x: np.ndarray) -> tuple[float, float]:
        """The comb A(P) + hw A(P/2) + mw A(2P) of the weighted deviations ``dev``
        against the compressed onsets ``x``, over the older and the newer half of the window."""
        s = self.settings
        need, half, m = self._pneed, len(dev) // 2, len(x)
        old = new = 0.0
        for lag, weight in ((period, 1.0), (0.5 * period, s.harmonic_weight), (2.0 * period, s.meter_weight)):
            i = int(lag)  # (fractional lags: linearly between the hops either side)
            f = lag - i
            at, before = x[need - i : m - i], x[need - i - 1 : m - i - 1]
            a, b = float(dev[:half] @ at[:half]), float(dev[:half] @ before[:half])
            old += weight * (a + f * (b - a))
            a, b = float(dev[half:] @ at[half:]), float(dev[half:] @ before[half:])
            new += weight * (a + f * (b - a))
        return old, new

    def _grid_lag_at(self, x: float) -> float:
        """``float(np.interp(x, np.arange(n), self._grid_lag))`` to the bit: numpy's
        formula (slope * (x - x_j) + y_j) on unit steps, without the call."""
        gl = self._grid_lag_list
        if x < 0.0:
            return gl[0]
        if x > len(gl) - 1:
            return gl[-1]
        j = math.floor(x)
        if j == len(gl) - 1 or x == j:
            return gl[j]
        return (gl[j + 1] - gl[j]) / 1.0 * (x - j) + gl[j]

    def _prior_at(self, lag: float | np.ndarray) -> np.ndarray:
        """The tempo prior at periods of ``lag`` hops (the grid runs from long to short periods)."""
        return np.interp(np.negative(lag), self._neg_grid_lag, self._prior)

    def _metre(self, k: int, long: np.ndarray, score: np.ndarray) -> int:
        """Pick the metrical level of grid tempo ``k`` from the long autocorrelation.

        Real music keeps periods related by 2, 3/2 and 4/3 close behind the
        beat in a few seconds of onsets (a song with steady eighth notes
        correlates at 2, 3 and 4 of them alike); which one is the beat shows
        at bar-level lags (2 and 4 periods) over many bars. Among the
        candidates related to ``k`` the one whose comb A(L) + A(L/2)/2 +
        w (A(2L) + A(4L)) over the long window, times the prior, is best wins,
        if it beats ``k`` by ``meter_margin``. Only related candidates are
        considered, so a real tempo change (which the short autocorrelation
        follows) is not held back by the old tempo in the long window.
        """
        s = self.settings
        if s.meter_weight <= 0.0 or self._t + 1 < self._hist_len // 2:
            return k
        # (a handful of candidates: plain floats, one interpolation for A(L), A(L/2), A(2L), A(4L))
        g = self._grid_lag_list[k]
        lo, hi = self._grid_lag_list[-1], self._grid_lag_list[0]
        lags = [x for x in (g * r for r in self._metre_ratios_list) if lo <= x <= hi]
        n = len(lags)
        v = np.interp(lags + [0.5 * x for x in lags] + [2.0 * x for x in lags] + [4.0 * x for x in lags], self._lags, long)
        np.maximum(v, 0.0, out=v)
        v = v.tolist()
        prior = self._prior_at(lags).tolist()
        hw, mw = s.harmonic_weight, s.meter_weight
        comb = [(v[i] + hw * v[n + i] + mw * (v[2 * n + i] + v[3 * n + i])) * prior[i] for i in range(n)]
        here = min(range(n), key=lambda i: abs(lags[i] - g))  # (the first of equals, as np.argmin)
        best = max(range(n), key=comb.__getitem__)  # (the first of equals, as np.argmax)
        if comb[best] <= (1.0 + s.meter_margin) * comb[here]:
            return k
        j = int(np.argmin(np.abs(self._grid_lag - lags[best])))
        # The recent onsets must back it too: after a real tempo change the
        # long window still holds the old tempo, which may sit near 4/3 or 3/2
        # of the new one.
        near = score[max(0, j - 1) : j + 2].max()
        return j if near >= s.meter_floor * score[k] else k

    def _dp(self, x: float) -> None:
        t = self._t
        key = (self.period, min(int(round(2.0 * self.period)), t))
        if key != self._dp_key:  # the steps and penalties change only with the period
            steps, penalty = self._dp_steps(key[1])
            self._dp_key, self._dp_cache = key, (int(steps[0]) if steps.size else 0, key[1], penalty)
        first, longest, penalty = self._dp_cache
        if penalty.size == 0:
            self._cum.push(x)
            self._link.push(-1.0)
            return
        prev = self._cum.last(longest)[: longest - first + 1][::-1]  # C(t - d), d = first .. longest
        j = int((prev - penalty).argmax())
        self._cum.push(x + prev[j] - penalty[j])
        self._link.push(float(t - first - j))

    def _dp_steps(self, longest: int) -> tuple[np.ndarray, np.ndarray]:
        """Beat-to-beat steps d (hops) the DP may take at the current period, up to ``longest``, and their penalties."""
        p = self.period
        d = np.arange(max(1, int(round(0.5 * p))), longest + 1)
        return d, self.settings.tightness * np.log(d / p) ** 2

    def _redo_dp(self) -> None:
        """Re-run the DP over the onsets it still holds, at the new period.

        After a tempo jump the stored scores and back-links follow the old
        period: the tight step penalty keeps them on the old grid for beats,
        so the phase would lag the new tempo by several beats. The music
        since the jump is already heard; replaying it at the new period puts
        the last beat on it at once.
        """
        # Called from the tempo update, before this hop's own DP step: the
        # scores held are those of hops t - n .. t - 1.
        t = self._t
        n = min(t, self._dp_len)
        x = self._onsets.last(n + 1)[:-1]
        cum, link = np.array(x), np.full(n, -1.0)
        steps, penalty = self._dp_steps(int(round(2.0 * self.period)))
        for i in range(int(steps[0]), n):
            m = int(np.searchsorted(steps, i, side="right"))  # steps that stay inside the replay
            cand = cum[i - steps[:m]] - penalty[:m]
            j = int(np.argmax(cand))
            cum[i] += cand[j]
            link[i] = float(t - n + i - steps[j])
        self._cum.overwrite_last(cum)
        self._link.overwrite_last(link)

    def _predict(self) -> None:
        # Plain Python floats on these few values (numpy's overhead dominates
        # at this size); sums run left to right as np.mean/np.dot do for fewer
        # than 8 values, so the results are the same to the bit.
        t = self._t
        p = self.period
        span = int(round(p))
        if t < span:
            return
        b = t - span + 1 + int(self._cum.last(span).argmax())  # best C(t - span + 1 .. t)
        held = t >= self._level_hold and self._tempo_since >= 0 and t - self._tempo_since >= 4.0 * p
        if held and self._anchor >= 0.0 and self._confidence >= self.settings.min_confidence and t >= 2 * span:
            # Hold the phase: chains of beats a half beat apart (boom and
            # chick, kick and off-beat bass) often trade the lead for a beat
            # or two. If the best recent beat is far off the current grid, the
            # best beat on the grid before it stays the last beat unless the
            # other chain's cumulative score (the music's long-run preference)
            # leads clearly. (Not in the first beats of a tempo or level: the
            # chain it starts on is a guess.)
            bp = self._beat_period
            off = (b - self._anchor) / bp
            if abs(off - round(off)) > _PHASE_SLACK:
                g = self._anchor + math.floor(off) * bp  # the grid's beat before b
                back = self._cum.last(2 * span)
                first = t - 2 * span + 1
                lo, hi = max(int(math.ceil(g - _PHASE_SLACK * bp)), first), min(int(math.floor(g + _PHASE_SLACK * bp)), t)
                if lo <= hi:
                    j = lo + int(back[lo - first : hi - first + 1].argmax())
                    if back.item(b - first) - back.item(j - first) < _PHASE_MARGIN * self._strength:
                        b = j
        # Back-trace up to _FIT_MAX beats for a least-squares line through them.
        dp_len = self._dp_len
        links = self._link.last(dp_len)
        beats = [b]
        bt = b
        while len(beats) < max(9, _FIT_MAX):
            prev = links.item(bt - t - 1 + dp_len) if t - bt < dp_len else -1.0
            if prev < 0 or t - prev >= dp_len:
                break
            bt = int(prev)
            beats.append(bt)
        beats.reverse()
        hist_len = self._hist_len
        onsets = self._onsets.last(hist_len)
        total, n = 0.0, 0
        for bt in beats[-5:]:
            if t - bt < hist_len:
                v = onsets.item(bt - t - 1 + hist_len)
                total, n = (v if n == 0 else total + v), n + 1
        self._strength = total / n if n else 0.0
        self._check_level(beats, self._accents.last(hist_len))
        # Fit only the trailing run of beats spaced about one period apart
        # (after a tempo or level change the older ones follow the old grid),
        # on their sub-hop positions (the onset peak around each DP beat).
        beats = beats[-_FIT_MAX:]
        run = 1
        while run < len(beats) and 0.75 * p < beats[-run] - beats[-run - 1] < 1.25 * p:
            run += 1
        if run >= 3:
            y = [bt + self._peak_offset(bt, onsets) for bt in beats[-run:]]
            if beats[-1] == t:
                # A beat on this very hop: its peak's sub-hop position needs the
                # next value. Until then (one hop) the period holds and the
                # phase moves towards it, at the others' mean sub-hop offset.
                y[-1] = t + (sum(y[:-1]) - sum(beats[-run:-1])) / (run - 1)
                bp = self._beat_period
                g = self._anchor + round((y[-1] - self._anchor) / bp) * bp
                if self._anchor >= 0.0 and abs(y[-1] - g) < 0.25 * bp:
                    self._anchor = g + (1.0 - _ANCHOR_LINE) * (y[-1] - g)
                    return
            # The longest trailing run that lies on a straight line (a long fit
            # reads the period to a fraction of a hop; a tempo change bends the
            # line, and the fit then keeps only the beats since), down to 5
            # beats (fewer make busy real music's tempo jitter by 2-3 %).
            full = run
            while True:
                slope, mean, sq = _line(y[-run:], *self._fit_k[run])
                if sq <= _STRAIGHT or run <= 5:
                    break
                run -= 1
            stray = 0.0
            if sq > _STRAIGHT and full >= 5:
                # One stray beat at the end (a fill, the last hit before a
                # break) must not tilt the line: if the others lie on one, it
                # keeps their period; the phase still moves towards it (below).
                # Else the tempo is changing: the short fit follows it.
                # (A stray is a hop or more off; a tempo change moves the beats
                # less at first.)
                fit = _line(y[-full:-1], *self._fit_k[full - 1])
                off = y[-1] - (fit[1] + fit[0] * (self._fit_k[full - 1][0][-1] + 1.0))
                if fit[2] <= _STRAIGHT and abs(off) >= 1.0:
                    slope, mean, sq = fit
                    run = full - 1
                    stray = off
            # Trust the fit's period near the tempo estimate (it absorbs ramps),
            # and further off when four or more beats lie on a straight line
            # (a tempo change the DP has followed before the autocorrelation).
            straight = run >= 4 and sq <= _STRAIGHT
            period = slope if abs(math.log(slope / p)) < (0.12 if straight else 0.04) else p
            # Keep the phase half on the actual last beat; the line only smooths jitter.
            on_line = mean + slope * (self._fit_k[run][0][-1] + (1.0 if stray else 0.0))
            if not straight and not stray and full >= _RAMP_MIN:
                # The beats bend (a ritardando or accelerando): a parabola
                # through them reads the tempo at their end, where the line
                # reads their average (a tempo ramp's beats fall ever further
                # behind a line through the older ones).
                for n in range(full, _RAMP_MIN - 1, -1):
                    ramp = self._ramp(y[-n:], n)
                    if ramp is not None:
                        break
                if ramp is not None and _RAMP_FROM <= abs(math.log(ramp[0] / p)) < _RAMP_RANGE:
                    period, on_line = ramp
                    # The DP's own period follows too (its tight step penalty
                    # would hold the beats on the old tempo while the
                    # autocorrelation, seconds long, catches up).
                    self.period += self._ramp_pull * (period - self.period)
            anchor = on_line + (1.0 - _ANCHOR_LINE) * (y[-1] - on_line)
        else:
            period, anchor = p, float(b)
        self._beat_period = period
        self._anchor = anchor

    def _ramp(self, y: list[float], n: int) -> tuple[float, float] | None:
        """A tempo ramp through the beats ``y``: the period of the next beat and
        the position of the last one on the parabola through them, if the
        parabola fits them well (mean squared residual at most _RAMP_SQ) and
        clearly better than a line (at most _RAMP_GAIN of its residual)."""
        ks, kk = self._fit_k[n]
        qs, qq = self._fit_q[n]
        mean = sum(y) / n
        dev = [v - mean for v in y]
        slope = sum(k * d for k, d in zip(ks, dev)) / kk
        curve = sum(q * d for q, d in zip(qs, dev)) / qq
        line_sq = sum((d - slope * k) ** 2 for k, d in zip(ks, dev)) / n
        sq = sum((d - slope * k - curve * q) ** 2 for k, q, d in zip(ks, qs, dev)) / n
        if sq > _RAMP_SQ or sq > _RAMP_GAIN * line_sq:
            return None
        last = ks[-1]
        period = slope + curve * (2.0 * last + 1.0)
        # A real ramp, not jitter a parabola happens to fit: the last two
        # intervals both clearly off the beats' average period, the way the
        # curve bends (both longer in a ritardando, both shorter in an accelerando).
        for a, b in zip(y[-3:], y[-2:]):
            d = b - a
            if (d - slope) * curve <= 0.0 or abs(math.log(d / slope)) < _RAMP_BEND:
                return None
        return period, mean + slope * last + curve * qs[-1]

    def _peak_offset(self, bt: int, onsets: np.ndarray) -> float:
        """Sub-hop offset of the onset peak at hop ``bt`` (parabola through the
        hops either side; 0 if ``bt`` is not a peak or its next hop is unheard)."""
        t = self._t
        i = bt - t - 1 + self._hist_len
        if bt >= t or i < 1:
            return 0.0
        y0, y1, y2 = onsets.item(i - 1), onsets.item(i), onsets.item(i + 1)
        curve = y0 - 2.0 * y1 + y2
        if curve >= 0.0 or y1 < y0 or y1 < y2:
            return 0.0
        return 0.5 * (y0 - y2) / curve

    def _check_level(self, beats: list[int], onsets: np.ndarray) -> None:
        """Correct the metrical level from the beats themselves.

        At the right level every beat has a strong onset and the midpoints
        between beats are clearly weaker. Tracking at half tempo shows as
        midpoints as strong as the beats (they are the missed beats);
        tracking at double tempo shows as every other beat being weak (they
        are off-beats). Either, held for two beats, halves or doubles the
        period (3 % slack at the ends of the tempo range, where estimates of
        exactly min_bpm or max_bpm land either side). Measured on the
        synthetic kits: at the right level midpoint/beat <= 0.72 and
        weak/strong beat >= 0.44.
        """
        s = self.settings
        t = self._t
        beats = [bt for bt in beats[-6:] if bt > t - self._hist_len + 2]  # still in the onset history
        if t < self._level_hold:
            return
        if len(beats) < 5:
            self._level_votes = 0
            self._level_ok = False
            return
        # The onsets around the beats as floats: near[h - lo] is the onset at hop
        # h, for h from one before the first beat to one after the last (or now).
        lo = beats[0] - 1
        base = self._hist_len - 1 - t  # onsets[h + base] is the onset at hop h
        near = onsets[lo + base : min(beats[-1] + 2, t + 1) + base].tolist()
        top = len(near) - 1

        def peak(i: int) -> float:  # tolerate +-1 hop of jitter
            i -= lo
            return max(near[i - 1], near[i], near[min(i + 1, top)])

        on = [peak(bt) for bt in beats]
        mid = [peak(round(0.5 * (beats[i + 1] + beats[i]))) for i in range(len(beats) - 1)]  # (half to even, as np.round)
        even, odd = _mean(on[::2]), _mean(on[1::2])
        up = _mean(mid) >= s.octave_up * _mean(on) and 60.0 * self.frame_rate / (0.5 * self.period) <= min(1.03 * s.max_bpm, s.double_max_bpm)
        down = min(even, odd) < s.octave_down * max(even, odd) and 60.0 * self.frame_rate / (2.0 * self.period) >= s.min_bpm / 1.03
        vote = 1 if up else -1 if down else 0
        self._level_ok = vote == 0
        votes = self._level_votes
        self._level_votes = votes + vote if vote and (votes > 0) - (votes < 0) in (0, vote) else vote
        # The longer a level has held since the beats first confirmed it, the
        # longer the evidence against it must last: real songs have sections with a weaker backbeat or busier
        # off-beats, and the level must not flip back and forth with them (up
        # to a phrase, level_beats_max: a half-time bar or three, a 2/4 accent
        # through an accelerando, are not a new level).
        self._level_run = self._level_run + 1 if vote == 0 else 0
        if self._level_run >= 2.0 * self.period and self._level_since < 0:
            self._level_since = t  # confirmed for two beats in a row
        held_beats = (t - self._level_since) / self.period if self._level_since >= 0 else 0.0
        need = s.level_beats + min(s.level_beats_max - s.level_beats, held_beats / 4.0)
        if abs(self._level_votes) >= need * self.period:
            factor = 0.5 if self._level_votes > 0 else 2.0
            self.period *= factor
            self._fold *= factor
            self._candidate_count = self._level_votes = 0
            self._level_hold = t + int(6 * self.period)  # let the beat grid settle first
            self._level_since = -1
            self._level_ok = True  # and keep the autocorrelation from undoing it meanwhile

    def _report(self) -> BeatState:
        s = self.settings
        t = self._t
        period = self._beat_period
        activity = self._recent / max(self._level / max(self._level_w, 1e-12), s.silence_level)
        act = min(1.0, max(0.0, (activity - 0.15) / 0.35)) if self._recent > s.silence_level else 0.0
        periodic = min(1.0, max(0.0, (self._strength - 1.0) / 1.5))
        self._confidence = act * periodic
        # Reported: also the periodicity of the last seconds, so noise after the
        # music (which keeps the beat strength up) lets it fall. The lock
        # confidence above alone gates events and tempo switches, as before.
        # Quick to doubt, slow to trust (0 to 1 in _TRUST_SECONDS): noise
        # sometimes lines up with the tempo for a second, music stays periodic.
        # Until the first measurement (the stream's first seconds) there is no
        # evidence against the beat, so the dance starts as soon as the lock does.
        if self._periodicity is not None:
            now_periodic = min(1.0, max(0.0, (self._periodicity - _PERIODIC_NONE) / (_PERIODIC_FULL - _PERIODIC_NONE)))
            self._periodic_trust = min(now_periodic, self._periodic_trust + self._trust_step)
        confidence = self._confidence * self._periodic_trust
        beat, beat_time = False, None
        now = (t + 1) / self.frame_rate
        period_s = period / self.frame_rate
        if self._anchor >= 0:
            # Beats at anchor + k*period in audio time; the one the audio has
            # just reached fires now, if it was not reported already.
            anchor = self._hop_time(self._anchor)
            due = anchor + math.floor((now - anchor) / period_s) * period_s
            if (
                self._heard_recently()
                and due - self._last_event > 0.5 * period_s
                and now - due <= s.max_late * period_s
                and self._confidence >= s.min_confidence
            ):
                beat, beat_time = True, float(due)
                self._last_event = due
            phase = ((now - due) / period_s) % 1.0
        else:
            due, phase = now, 0.0
        nxt = tuple([float(due + i * period_s) for i in range(1, s.lookahead_beats + 1)])
        return BeatState(
            time=(t + 1) / self.frame_rate,
            tempo=float(60.0 * self.frame_rate / period),
            phase=phase,
            confidence=confidence,
            next_beats=nxt,
            beat=beat,
            beat_time=beat_time,
        )
