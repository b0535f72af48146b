"""Typed settings: dataclass defaults, overridden by a TOML file, overridden by
the command line.

Each section of the TOML file is one dataclass below (``[audio]`` is
:class:`AudioSettings`, ...). Unknown sections or keys, and values of the
wrong type, are a :class:`~livedance.errors.UserError` naming the key, so a
typo never silently does nothing.

Where the file comes from, first match wins: ``--config PATH``, the
``LIVEDANCE_CONFIG`` environment variable, ``~/.config/livedance/config.toml``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livedance.errors import UserError


@dataclass
class AudioSettings:
    """Audio capture and analysis rate."""

    device: str | None = None  # input device index or name substring; None = default
    sample_rate: int = 22050  # analysis rate; devices at other rates are resampled
    hop: int = 512  # analysis hop, samples at sample_rate
    block: int = 512  # device callback size, frames at the device rate
    ring_seconds: float = 10.0  # ring buffer length
    channels: list[int] | int | None = None  # input channels to mix down, numbered from 1 (e.g. [3, 4]); N = the first N; None = the first two
    retry_seconds: float = 1.0  # how often to retry a lost input device
    stall_seconds: float = 2.0  # no callback for this long = the device is lost


@dataclass
class FeatureSettings:
    """Music features; must match what the checkpoint was trained with."""

    n_fft: int = 2048
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 11025.0
    chroma: bool = False
    floor_db: float = -30.0  # log-mel power floor (dB re full-scale sine ~ +54 dB); quieter = silence


@dataclass
class BeatSettings:
    """Causal beat tracker."""

    min_bpm: float = 60.0
    max_bpm: float = 200.0
    preferred_bpm: float = 130.0  # centre of the dance-natural tempo prior
    lookahead_beats: int = 4
    prior_octaves: float = 0.8  # width of the log-normal tempo prior
    harmonic_weight: float = 0.5  # weight of the autocorrelation at half the period
    meter_weight: float = 0.5  # weight of the autocorrelation at 2 and 4 periods (bar-level evidence)
    meter_window: float = 12.0  # seconds of onsets in that (long) autocorrelation
    meter_memory: float = 6.0  # seconds; its exponential weighting
    meter_margin: float = 0.1  # a related level (x2, 3/2, 4/3 ...) must score this much better over the long window...
    meter_floor: float = 0.7  # ...and at least this share of the best score over the short window
    tempo_window: float = 4.0  # seconds of onsets in the tempo autocorrelation
    tempo_memory: float = 2.0  # seconds; older onsets count less in it (exponential)
    tempo_follow: float = 0.04  # |log ratio| below which a new estimate is "the same tempo"
    tempo_margin: float = 0.15  # while locked, a new tempo must score this much (relative) above the current one
    switch_hops: int = 16  # hops a different tempo must persist before a jump (x3 for octaves)
    switch_loss: float = 0.6  # ...unless the held tempo scores below this share of its recent best: then at once
    beat_delay: float = 0.011  # seconds added to beat times (calibration: the DP lands slightly before the attacks)
    tightness: float = 250.0  # how strictly beats keep the period (Ellis' DP)
    level_seconds: float = 4.0  # time constant of the onset level used to normalise
    silence_level: float = 0.02  # onset level (dB flux) below which the input counts as silent
    min_confidence: float = 0.3  # beat events fire only at or above this confidence
    octave_up: float = 0.76  # midpoints this strong vs beats = tracking at half tempo: double it
    double_max_bpm: float = 160.0  # ...but not past this (off-beat chords, a boom-chick at 88, read as beats)
    level_beats: float = 3.0  # beats the level evidence must hold before a metrical correction...
    level_beats_max: float = 16.0  # ...rising to this (a 4-bar phrase) once a level has held for a while (+1 per 4 beats held since the beats confirmed it; a new song starts afresh)
    octave_down: float = 0.4  # every other beat this weak vs the rest = double tempo: halve it
    gate: float = 0.5  # normalised onset a beat needs within the last 1.25 beats to fire (else: a break)
    max_late: float = 0.25  # a beat found later than this (fraction of a beat) is not reported
    bass_weight: float = 1.0  # the tracker hears onset + this x the bass (< 200 Hz) onset, where the kick and bass mark the beat


@dataclass
class EngineSettings:
    """The live engine and its frame clock."""

    fps: float = 60.0
    latency_ms: float = 0.0  # output latency to compensate (projector, network)
    dancers: int = 1
    seed: int = 0
    temperature: float = 1.0
    energy_bias: float = 0.0
    stage_radius: float = 1.5  # metres; dancers stay within this circle
    tap_follows_music: bool = False  # a tapped tempo hands back to the tracker when it is confident at that tempo
    checkpoint: str | None = None  # None = the shipped checkpoint
    level: str = "auto"  # metrical level danced: auto, half, normal or double (units span 4, 2 or 1 music beats)
    beat_hit: float = 0.0  # how hard dancers hit each beat: 0 = as real dancers do, 1 = slow to a stop on every beat
    compute: str = "auto"  # where the dance model runs: auto (CUDA GPU if torch sees one, else CPU), cpu, cuda, cuda:N


@dataclass
class OscSettings:
    """OSC out (livedance scheme), VMC out and control in."""

    out: str | None = None  # "host:port" for the livedance scheme, None = off
    vmc: str | None = None  # "host:port" for VMC, None = off
    control: str | None = None  # "host:port" to listen for control, None = off
    default_out_port: int = 9000
    default_vmc_port: int = 39539
    default_control_port: int = 9001
    up_axis: str = "y"  # "y" or "z"
    units: str = "m"  # "m" or "cm"
    allow: list[str] = field(default_factory=list)  # control sender IPs; empty = any
    secret: str | None = None  # shared secret required on control messages
    timetags: bool = True  # bundle timetag = presentation time; false = "immediately"
    max_datagram: int = 1400  # bytes per UDP datagram (LAN MTU 1500, unfragmented)
    vmc_dancers: int = 1  # dancers sent over VMC; dancer k goes to the VMC port + k


@dataclass
class ViewerSettings:
    """Window and offscreen render."""

    width: int = 1280
    height: int = 720
    fullscreen: bool = False
    screen: int = 0
    hud: bool = True
    vsync: bool = True
    smpl_model: str | None = None  # path to the user's own SMPL model files
    fps: float = 60.0  # window redraw cap (vsync usually paces it)
    msaa: int = 4  # anti-aliasing samples; 0 = off (cheaper on CPU renderers)
    spacing: float = 0.0  # extra metres between dancers, side by side (the engine already spaces them)
    heartbeat: str | None = None  # file rewritten every second with viewer health (kiosk monitoring)
    watchdog_seconds: float = 5.0  # kiosk: a render loop stuck this long gets its window/context rebuilt


@dataclass
class LinkSettings:
    """Ableton Link (needs the optional extra: pip install 'livedance[link]')."""

    mode: str = "off"  # "off", "follow" (dance to the session's beat) or "lead" (publish the tracked beat)
    quantum: float = 4.0  # beats per bar; Link peers align bars on it
    start_stop: bool = True  # take part in Link start/stop sync (a stopped session stops a following dance)


@dataclass
class MidiSettings:
    """MIDI beat clock (24 pulses per quarter note) in and out."""

    clock_in: str | None = None  # input port name substring to follow, None = off
    clock_out: str | None = None  # output port name substring to send clock to, None = off
    api: str = "auto"  # rtmidi API: "auto", "alsa" or "jack"


@dataclass
class Settings:
    """All settings; one attribute per TOML section."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    beats: BeatSettings = field(default_factory=BeatSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    osc: OscSettings = field(default_factory=OscSettings)
    viewer: ViewerSettings = field(default_factory=ViewerSettings)
    link: LinkSettings = field(default_factory=LinkSettings)
    midi: MidiSettings = field(default_factory=MidiSettings)


DEFAULT_PATH = Path("~/.config/livedance/config.toml").expanduser()


def _accepts(tp: Any, value: Any) -> bool:
    """Does ``value`` (as parsed from TOML) fit the annotation ``tp``?"""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_accepts(item, v) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "") if not isinstance(tp, type) else tp.__name__


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def apply(settings: Settings, values: dict[str, Any], source: str) -> Settings:
    """Return ``settings`` updated from a nested ``{section: {key: value}}`` dict.

    Raises UserError naming ``source`` and the offending key.
    """
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    for name, table in values.items():
        if name not in sections:
            raise UserError(
                f"{source}: unknown section [{name}] (valid sections: {', '.join(sections)})"
            )
        if not isinstance(table, dict):
            raise UserError(f"{source}: '{name}' must be a [{name}] table of settings")
        section = getattr(settings, name)
        hints = _hints(type(section))
        for key, value in table.items():
            if key not in hints:
                raise UserError(
                    f"{source}: unknown key '{name}.{key}' (valid keys in [{name}]: {', '.join(hints)})"
                )
            if not _accepts(hints[key], value):
                raise UserError(
                    f"{source}: '{name}.{key}' must be {_type_name(hints[key])}, got {value!r}"
                )
            if hints[key] is float or float in typing.get_args(hints[key]):
                value = float(value) if isinstance(value, int) else value
            setattr(section, key, value)
    return settings


def parse_override(text: str) -> dict[str, Any]:
    """``"engine.fps=30"`` -> ``{"engine": {"fps": 30}}``; the value is read as TOML,
    falling back to a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"bad --set '{text}' (write SECTION.KEY=VALUE, e.g. --set engine.fps=30)")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return {section: {key: value}}


def load(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> Settings:
    """Defaults, then the TOML file (if any), then ``--set`` overrides."""
    settings = Settings()
    explicit = path or os.environ.get("LIVEDANCE_CONFIG")
    file = Path(explicit).expanduser() if explicit else DEFAULT_PATH
    if explicit or file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file {file} not found (check the path given to --config)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config file {file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{file}: not valid TOML ({exc}); fix the line it names") from None
        apply(settings, data, str(file))
    for text in overrides or []:
        apply(settings, parse_override(text), "--set")
    return settings


def to_toml(settings: Settings) -> str:
    """The effective settings as a TOML document (``None`` shown commented out)."""
    lines: list[str] = []
    for sec in dataclasses.fields(settings):
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(getattr(settings, sec.name)):
            value = getattr(getattr(settings, sec.name), f.name)
            if value is None:
                lines.append(f"# {f.name} = (unset)")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
