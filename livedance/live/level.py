"""The metrical level: how many music beats one dance unit spans.

A unit holds two dance beats. Played on two music beats (*normal*), a unit
danced at 86 BPM and heard at 130 BPM moves 1.5 times faster than it was
danced; a dancer at that tempo moves on every other beat instead. So the
engine picks, per unit, one of three levels:

====== ===== ============================ =========================
level  name  music beats per unit (span)  dance tempo
====== ===== ============================ =========================
-1     half  4                            music tempo / 2
0      normal 2                           music tempo
1      double 1                           music tempo x 2
====== ===== ============================ =========================

It picks the level whose dance tempo is nearest (in log tempo) the median
tempo at which the style's training units were danced, a dance tempo above
it counting ``faster`` times as far as one below (a unit played faster than
it was danced is what leaves the realism envelope: its bounds on speed,
skate, per-frame move and jerk are upper bounds), and keeps the level it has
until another is nearer by ``margin`` (hysteresis: a tempo wavering on the
boundary, or a slow ramp across it, changes level once). Kinematic beats
still land on music beats: on every beat in normal time, every other beat
in half-time, and every beat plus every half beat in double-time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from livedance.errors import UserError

#: Level names and their numbers (the OSC control and stream use the numbers).
LEVELS = {"half": -1, "normal": 0, "double": 1}
#: Music beats a unit spans at level 0.
NORMAL_SPAN = 2
#: Median tempo (BPM) of the shipped data's units, all styles: the centre used
#: when a checkpoint says nothing about its styles' tempi (measured on the
#: training set of CMU salsa, CMU modern and the AIST++ sample: 88.2 BPM).
DEFAULT_CENTRE_BPM = 88.2


def span(level: int) -> float:
    """Music beats one unit covers at ``level``."""
    return NORMAL_SPAN * 2.0 ** (-level)


def dance_tempo(music_bpm: float, level: int) -> float:
    """The tempo the unit is danced at when the music plays at ``music_bpm``."""
    return music_bpm * 2.0**level


def parse_level(value: object) -> int | None:
    """A setting or control value -> a forced level (-1, 0, 1) or None for auto.

    Accepts ``"auto"``, ``"half"``, ``"normal"``, ``"double"`` and the
    numbers -1, 0, 1 (as numbers or strings).

    Raises:
        UserError: anything else.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return None
        if text in LEVELS:
            return LEVELS[text]
        try:
            value = float(text)
        except ValueError:
            value = text
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) in (-1.0, 0.0, 1.0):
        return int(value)
    raise UserError(f"level {value!r} is not one of auto, half, normal, double (or -1, 0, 1)")


def level_name(level: int | None) -> str:
    """-1 -> "half", None -> "auto"."""
    if level is None:
        return "auto"
    return {v: k for k, v in LEVELS.items()}[level]


@dataclass
class LevelChooser:
    """Chooses the level of each unit from the tempo, with hysteresis.

    Attributes:
        centres: per style id, the median tempo (BPM) its units were danced
            at; style ids missing (and "any style") use ``default``.
        default: the centre for any style (the median over all units).
        faster: weight of a dance tempo above the centre against one below.
        margin: log-tempo advantage another level needs to take over (0.04:
            4%). With the shipped checkpoint (centre 87.8 BPM) the engine
            goes half-time above 122 BPM and back to normal below 117, and
            double-time below 59 (where the beat tracker never goes: forced
            only, or a style danced faster, e.g. street-jazz below about 83 BPM).
        hold_beats: music beats another level must stay the better one before
            it takes over (the beat tracker may read an octave off for its
            first seconds: at 60 BPM it read 120 for 2.7 s, and the 4-beat
            half-time units chosen on that played on for 3 s after it).
        level: the level chosen last (normal until a tempo says otherwise).
    """

    centres: dict[int, float] = field(default_factory=dict)
    default: float = DEFAULT_CENTRE_BPM
    faster: float = 1.25
    margin: float = 0.04
    hold_beats: float = 8.0
    level: int = 0
    _candidate: int | None = field(default=None, repr=False)
    _since: float = field(default=0.0, repr=False)

    @classmethod
    def for_model(cls, model: Any) -> "LevelChooser":
        centres, default = level_centres(model)
        return cls(centres=centres, default=default)

    def centre(self, style: int) -> float:
        return self.centres.get(int(style), self.default)

    def choose(self, music_bpm: float, style: int = -1, forced: int | None = None, now: float | None = None) -> int:
        """The level of the next unit for music at ``music_bpm``; ``forced`` wins.

        ``now``: the beat clock's position (music beats), for ``hold_beats``;
        None takes a better level at once."""
        if forced is not None:
            self.level = forced
            return forced
        c = math.log(self.centre(style))
        t = math.log(max(music_bpm, 1.0))

        def distance(level: int) -> float:
            d = t + level * math.log(2.0) - c
            return d * self.faster if d > 0 else -d

        best = min(LEVELS.values(), key=distance)
        if best == self.level or distance(best) >= distance(self.level) - self.margin:
            self._candidate = None
            return self.level
        if best != self._candidate:
            self._candidate, self._since = best, (now if now is not None else 0.0)
        if now is None or now - self._since >= self.hold_beats:
            self.level, self._candidate = best, None
        return self.level


def level_centres(model: Any) -> tuple[dict[int, float], float]:
    """Per style id, the median tempo its units were danced at, and that of all
    styles: from the checkpoint's realism envelope (``model.envelope``, the
    tempo of every beat of the training takes) when it has one, else the
    shipped data's median for every style (:data:`DEFAULT_CENTRE_BPM`)."""
    envelope = getattr(model, "envelope", None)
    if envelope is None:
        return {}, DEFAULT_CENTRE_BPM
    names = list(getattr(model, "style_names", []))
    centres = {
        names.index(name): float(env.tempo.p50)
        for name, env in envelope.styles.items()
        if name in names and math.isfinite(env.tempo.p50)
    }
    overall = float(envelope.overall.tempo.p50)
    return centres, overall if math.isfinite(overall) else DEFAULT_CENTRE_BPM
