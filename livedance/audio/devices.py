"""Find audio devices by index or name, and the ``livedance devices`` command."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

from livedance.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: float
    is_default_input: bool
    is_default_output: bool


def load_sounddevice() -> Any:
    """The sounddevice module; UserError if PortAudio itself is missing."""
    try:
        import sounddevice
    except OSError as exc:  # PortAudio shared library missing
        raise UserError(f"cannot use audio devices: {exc} (install libportaudio2: scripts/setup.sh)") from None
    return sounddevice


def list_devices() -> list[DeviceInfo]:
    sd = load_sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise UserError(f"cannot list audio devices: {exc}") from None
    return [
        DeviceInfo(
            index=i,
            name=str(d["name"]),
            hostapi=str(apis[d["hostapi"]]["name"]),
            inputs=int(d["max_input_channels"]),
            outputs=int(d["max_output_channels"]),
            default_rate=float(d["default_samplerate"]),
            is_default_input=i == default_in,
            is_default_output=i == default_out,
        )
        for i, d in enumerate(devices)
    ]


def pick_channels(spec: list[int] | int | None, device: DeviceInfo) -> list[int]:
    """The 0-based input channels to mix down from ``spec`` (``audio.channels``
    / ``--channels``: channel numbers from 1, e.g. ``[3, 4]`` for a mixer's
    master on inputs 3/4; an int N for the first N; None for the first two)."""
    have = device.inputs
    if spec is None:
        return list(range(min(2, have)))
    if isinstance(spec, int):
        if not 1 <= spec <= have:
            raise UserError(f"audio.channels = {spec} but '{device.name}' has {have} input channels (use 1 to {have}, or a list like [3, 4])")
        return list(range(spec))
    picked = [int(c) for c in spec]
    if not picked or len(set(picked)) != len(picked) or any(not 1 <= c <= have for c in picked):
        raise UserError(
            f"channels {','.join(map(str, picked)) or '(none)'}: '{device.name}' has inputs 1 to {have} "
            f"(name each once, e.g. --channels 3,4; see `livedance devices`)"
        )
    return [c - 1 for c in picked]


def parse_channels(text: str) -> list[int]:
    """``"3,4"`` -> ``[3, 4]`` (the ``--channels`` flag); UserError if not numbers."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        raise UserError(f"--channels {text!r}: give input channel numbers from 1, comma-separated (e.g. --channels 3,4)") from None


def find_device(spec: str | int | None, kind: str = "input") -> DeviceInfo:
    """Resolve ``spec`` (None = system default, an index, or a name substring)."""
    devices = list_devices()
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    if not usable:
        raise UserError(f"no audio {kind} device found (connect one, or start PulseAudio; see `livedance devices`)")
    if spec is None or spec == "":
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d
        return usable[0]
    text = str(spec).strip()
    if text.isdigit():
        idx = int(text)
        for d in usable:
            if d.index == idx:
                return d
        raise UserError(f"no audio {kind} device with index {idx} (run `livedance devices` for the list)")
    matches = [d for d in usable if text.lower() in d.name.lower()]
    if not matches:
        names = ", ".join(f"{d.index}: {d.name}" for d in usable)
        raise UserError(f"no audio {kind} device matches '{text}' (available: {names})")
    if len(matches) > 1:
        log.info("device '%s' matches %d devices; using %s", text, len(matches), matches[0].name)
    return matches[0]


def run(args: argparse.Namespace, settings: object) -> int:
    """``livedance devices``: print input and output devices."""
    devices = list_devices()
    if not devices:
        print("no audio devices found (connect one, or start PulseAudio)")
        return 0
    print(f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  name (host API)")
    for d in devices:
        mark = ("<" if d.is_default_input else " ") + (">" if d.is_default_output else " ")
        print(f"{d.index:>3}{mark}{d.inputs:>3} {d.outputs:>3}  {d.default_rate:>6.0f}  {d.name} ({d.hostapi})")
    print("\n< default input, > default output; choose one with --device INDEX_OR_NAME or [audio] device;")
    print("in/out are channel counts: pick inputs with --channels 3,4 or [audio] channels = [3, 4] (default: 1,2)")
    return 0
