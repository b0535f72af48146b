"""The live engine's controls: what a VJ, the viewer's keys or OSC can change
while the dance runs.

One :class:`Controls` object is shared by writers (the OSC control server
thread, the viewer's key handler) and the engine, which takes a
:meth:`Controls.snapshot` once per frame: an immutable :class:`ControlState`
it can read without locks. Every setter validates and raises ``ValueError``
with the allowed range, so a bad value never reaches the engine.

Controls (``apply(name, value)`` names; ``None`` means "back to automatic"):

============== ======================= ===========================================
name           value                   meaning
============== ======================= ===========================================
style          int 0..styles-1 | None  dance style index; None = follow the music
energy_bias    float -1..1             push the dance calmer (<0) or wilder (>0)
temperature    float 0..4              composer sampling temperature (0 = greedy)
seed           int 0..2**31-1          reseed the composer (bumps ``seed_count``)
frozen         bool | None             hold the current pose; None toggles
tempo_override float 40..240 | None    force the tempo (BPM); None = beat tracker
tap            float | None            a tap-tempo tap at this monotonic time (None = now); from the
                                       third tap on it sets the tempo *and* the beat (taps land on beats)
dancers        int 1..64               number of dancers
latency_ms     float 0..2000           output latency to compensate (projector, network)
level          -1|0|1|name | None      metrical level: half/normal/double time; None or "auto" = by tempo
beat_hit       float 0..1              how hard dancers hit each beat: 0 = as real dancers do, 1 = a stop on every beat
============== ======================= ===========================================
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from livedance.config import Settings
from livedance.errors import UserError
from livedance.live.level import parse_level

#: A crowd: 64 dancers are one unit step of about 140 ms on two CPU cores
#: (`livedance bench engine --json`), well inside the one-unit-ahead budget.
MAX_DANCERS = 64
MIN_BPM, MAX_BPM = 40.0, 240.0
MAX_LATENCY_MS = 2000.0
MAX_TEMPERATURE = 4.0
#: Taps further apart than this start a new tap sequence (slower than 40 BPM).
TAP_RESET_SECONDS = 60.0 / MIN_BPM
#: Intervals averaged for tap tempo: enough to smooth a human's jitter, few
#: enough to follow a change of song within a bar.
TAP_WINDOW = 8

Value = float | int | bool | str | None  # str: only the level takes names


@dataclass(frozen=True, slots=True)
class ControlState:
    """An immutable view of all controls, taken once per frame by the engine."""

    style: int | None = None
    energy_bias: float = 0.0
    temperature: float = 1.0
    seed: int = 0
    seed_count: int = 0  # increments on every seed set, even to the same value
    frozen: bool = False
    tempo_override: float | None = None
    dancers: int = 1
    latency_ms: float = 0.0
    # Where tapped beats fall: a beat at this time (the taps' clock,
    # ``time.monotonic()``), with ``tempo_override`` as the period. None while
    # the tempo is not tapped: a forced tempo keeps the phase it was given.
    tap_beat: float | None = None
    level: int | None = None  # forced metrical level (-1 half, 0 normal, 1 double); None = chosen by tempo
    beat_hit: float = 0.0  # 0 = hit the beats as real dancers do, 1 = slow to a stop on every beat
    version: int = 0  # increments on every change: cheap "did anything change?"


def _number(name: str, value: Value) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} needs a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} needs a finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Value) -> int:
    number = _number(name, value)
    if number != int(number):
        raise ValueError(f"{name} needs a whole number, got {value!r}")
    return int(number)


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low:g}..{high:g}, got {value:g}")


class Controls:
    """Thread-safe live controls. Writers call the setters or :meth:`apply`;
    the engine calls :meth:`snapshot`."""

    def __init__(self, initial: ControlState | None = None, styles: int = 10) -> None:
        """``styles`` is the number of dance styles the model knows (AIST++ has 10 genres)."""
        self.styles = styles
        self._lock = threading.Lock()
        self._state = initial or ControlState()
        self._taps: deque[float] = deque(maxlen=TAP_WINDOW + 1)
        self._setters: dict[str, Callable[[Value], None]] = {
            "style": self.set_style,
            "energy_bias": self.set_energy_bias,
            "temperature": self.set_temperature,
            "seed": self.set_seed,
            "frozen": self.set_frozen,
            "tempo_override": self.set_tempo_override,
            "tap": self.tap,
            "dancers": self.set_dancers,
            "latency_ms": self.set_latency_ms,
            "level": self.set_level,
            "beat_hit": self.set_beat_hit,
        }

    @classmethod
    def from_settings(cls, settings: Settings, styles: int = 10) -> "Controls":
        """Start from the engine settings; out-of-range settings raise ValueError
        (an unknown ``engine.level``: UserError)."""
        controls = cls(styles=styles)
        engine = settings.engine
        controls.set_energy_bias(engine.energy_bias)
        controls.set_temperature(engine.temperature)
        controls.set_seed(engine.seed)
        controls.set_dancers(engine.dancers)
        controls.set_latency_ms(engine.latency_ms)
        controls.set_level(parse_level(engine.level))  # a bad setting: UserError naming it
        controls.set_beat_hit(engine.beat_hit)
        return controls

    def limit_styles(self, styles: int) -> None:
        """Accept only the ``styles`` the loaded model knows (the engine calls
        this with its checkpoint's count); a style set before and now out of
        range goes back to automatic."""
        self.styles = max(0, int(styles))
        with self._lock:
            if self._state.style is not None and self._state.style >= self.styles:
                self._state = replace(self._state, style=None, version=self._state.version + 1)

    @property
    def names(self) -> tuple[str, ...]:
        """The control names :meth:`apply` accepts."""
        return tuple(self._setters)

    def snapshot(self) -> ControlState:
        return self._state  # immutable, and swapped whole under the lock

    def apply(self, name: str, value: Value = None) -> None:
        """Set a control by name (see the module table). Raises KeyError for an
        unknown name, ValueError for a bad value."""
        try:
            setter = self._setters[name]
        except KeyError:
            raise KeyError(f"unknown control {name!r} (known: {', '.join(self._setters)})") from None
        setter(value)

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, version=self._state.version + 1, **changes)  # type: ignore[arg-type]

    # -- setters -----------------------------------------------------------

    def set_style(self, value: Value) -> None:
        if value is None:
            self._update(style=None)
            return
        style = _integer("style", value)
        _in_range("style", style, 0, self.styles - 1)
        self._update(style=style)

    def set_energy_bias(self, value: Value) -> None:
        bias = _number("energy_bias", value)
        _in_range("energy_bias", bias, -1.0, 1.0)
        self._update(energy_bias=bias)

    def set_temperature(self, value: Value) -> None:
        temperature = _number("temperature", value)
        _in_range("temperature", temperature, 0.0, MAX_TEMPERATURE)
        self._update(temperature=temperature)

    def set_seed(self, value: Value) -> None:
        seed = _integer("seed", value)
        _in_range("seed", seed, 0, 2**31 - 1)
        with self._lock:
            s = self._state
            self._state = replace(s, seed=seed, seed_count=s.seed_count + 1, version=s.version + 1)

    def set_frozen(self, value: Value) -> None:
        if value is None:
            with self._lock:
                s = self._state
                self._state = replace(s, frozen=not s.frozen, version=s.version + 1)
            return
        self._update(frozen=value if isinstance(value, bool) else bool(_number("frozen", value)))

    def set_tempo_override(self, value: Value) -> None:
        if value is None:
            self._update(tempo_override=None, tap_beat=None)
            return
        bpm = _number("tempo_override", value)
        _in_range("tempo_override", bpm, MIN_BPM, MAX_BPM)
        self._update(tempo_override=bpm, tap_beat=None)

    def set_dancers(self, value: Value) -> None:
        dancers = _integer("dancers", value)
        _in_range("dancers", dancers, 1, MAX_DANCERS)
        self._update(dancers=dancers)

    def set_latency_ms(self, value: Value) -> None:
        latency = _number("latency_ms", value)
        _in_range("latency_ms", latency, 0.0, MAX_LATENCY_MS)
        self._update(latency_ms=latency)

    def set_level(self, value: Value) -> None:
        try:
            level = None if value is None else parse_level(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        self._update(level=level)

    def set_beat_hit(self, value: Value) -> None:
        hit = _number("beat_hit", value)
        _in_range("beat_hit", hit, 0.0, 1.0)
        self._update(beat_hit=hit)

    def tap(self, value: Value = None) -> None:
        """One tap-tempo tap at ``value`` (``time.monotonic()`` seconds; None = now).

        From the third tap on, the tempo override and the beat follow the grid
        fitted through the recent taps (beats numbered by the median interval,
        which shrugs off one missed tap; then least squares, which averages a
        human's jitter out): ``tap_beat`` is the latest tap's place on it. A
        pause longer than one beat at 40 BPM starts a new sequence.
        """
        now = time.monotonic() if value is None else _number("tap", value)
        with self._lock:
            if self._taps and now <= self._taps[-1]:
                return  # a repeated or out-of-order tap carries no interval
            if self._taps and now - self._taps[-1] > TAP_RESET_SECONDS:
                self._taps.clear()
            self._taps.append(now)
            if len(self._taps) < 3:
                return
            taps = list(self._taps)
        intervals = sorted(b - a for a, b in zip(taps, taps[1:]))
        period = intervals[len(intervals) // 2]
        # Each tap's beat number on the grid of the median interval (a missed
        # tap skips one), then the least-squares grid through them all: its
        # period is the tempo, its beat at the last tap the phase.
        beats = [round((t - taps[-1]) / period) for t in taps]
        mk, mt = sum(beats) / len(beats), sum(taps) / len(taps)
        var = sum((k - mk) ** 2 for k in beats)
        if var > 0:
            period = sum((k - mk) * (t - mt) for k, t in zip(beats, taps)) / var
        anchor = mt - period * mk
        bpm = 60.0 / period if period > 0 else math.inf
        if MIN_BPM <= bpm <= MAX_BPM:
            self._update(tempo_override=bpm, tap_beat=anchor)
