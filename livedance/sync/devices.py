"""``livedance devices``: audio devices, then MIDI ports, then Ableton Link peers."""

from __future__ import annotations

import argparse
import importlib.util

from livedance.audio import devices as audio_devices

LOOK_SECONDS = 2.0


def run(args: argparse.Namespace, settings: object) -> int:
    audio_devices.run(args, settings)
    from livedance.sync.midi import list_ports

    api = getattr(getattr(settings, "midi", None), "api", "auto")
    inputs, outputs = list_ports(api)
    print("\nMIDI inputs (--midi-clock-in PORT):  " + (", ".join(inputs) if inputs else "none"))
    print("MIDI outputs (--midi-clock-out PORT): " + (", ".join(outputs) if outputs else "none"))
    if getattr(args, "no_link", False):
        return 0
    if importlib.util.find_spec("aalink") is None:
        print("Ableton Link: not installed (pip install 'livedance[link]')")
        return 0
    from livedance.sync.link import discover_peers

    peers, tempo = discover_peers(LOOK_SECONDS)
    seen = f"{peers} peer{'s' * (peers != 1)} at {tempo:.1f} BPM" if peers and tempo else "no peers"
    print(f"Ableton Link: {seen} seen in {LOOK_SECONDS:g} s (perform --link follow|lead)")
    return 0
