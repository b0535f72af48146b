"""Every [osc] setting takes effect: a kiosk's config file is all it has.

``test_osc_settings_each_change_something`` walks the fields of
:class:`~livedance.config.OscSettings` and, for each, changes it and shows that
a real sender, server or packet differs; a new setting without a probe here
fails the walk. ``test_perform_takes_osc_out_vmc_and_control_from_the_config``
runs ``livedance perform`` with only a config file (no --osc/--vmc/--control):
frames arrive on UDP loopback and a control sent to the configured port acts.
(``osc.out``/``vmc``/``control`` used to be read by nothing.)
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf

from livedance.config import OscSettings, Settings
from livedance.frames import Frame
from livedance.live.commands import _sinks
from livedance.live.controls import Controls
from livedance.live.osc_control import ControlServer
from livedance.music.synth import drum_track
from livedance.outputs.osc import OscSender
from livedance.outputs.vmc import VmcSender
from loopback import UdpCollector


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _msg(address: bytes, tags: bytes, payload: bytes = b"") -> bytes:
    pad = lambda b: b + b"\x00" * (4 - len(b) % 4)  # noqa: E731 - OSC string padding
    return pad(address) + pad(b"," + tags) + payload


def _frame() -> Frame:
    rot = np.broadcast_to(np.eye(3), (1, 24, 3, 3)).copy()
    rot[0, 1] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # a bent hip: the up axis shows in the joints
    return Frame.from_pose(7, 1.5, 1.5, rot, np.array([[0.3, 0.9, -0.2]]), tempo=120.0, beat_phase=0.25,
                           confidence=0.8, energy=0.5)


def _no_flags(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"osc": None, "vmc": None, "record": None, "video": None, "input": None, **kw})


def _sink_targets(s: OscSettings) -> list[tuple[str, tuple]]:
    settings = Settings(osc=s)
    sinks = _sinks(_no_flags(), settings)
    out = []
    for sink in sinks:
        udps = [sink._udp] if isinstance(sink, OscSender) else list(sink._senders)
        out.append((type(sink).__name__, tuple(u.target for u in udps)))
        sink.close()
    return out


def _control_applies(s: OscSettings, message: bytes) -> tuple[int, int]:
    """Send ``message`` to a real control server built from ``s``; (applied, ignored)."""
    s = dataclasses.replace(s, control=s.control or f"127.0.0.1:{_free_port()}")
    server = ControlServer.from_settings(s, Controls())
    try:
        port = server._sock.getsockname()[1]
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(message, ("127.0.0.1", port))
        tx.close()
        deadline = time.monotonic() + 3.0
        while server.stats.packets < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return server.stats.applied, sum(server.stats.ignored.values())
    finally:
        server.close()


ENERGY = _msg(b"/livedance/control/energy", b"f", struct.pack(">f", 0.5))


def _control_port(s: OscSettings) -> int:
    server = ControlServer.from_settings(s, Controls())
    try:
        return server._sock.getsockname()[1]
    finally:
        server.close()


#: Setting -> (changed value, what it shows). Each probe builds the real object.
PROBES: dict[str, tuple[Any, Callable[[OscSettings], Any]]] = {
    "out": ("127.0.0.1:9100", _sink_targets),
    "vmc": ("127.0.0.1:39600", _sink_targets),
    "control": (None, lambda s: None),  # proven by the perform run below (a server needs a free port)
    "default_out_port": (9123, lambda s: OscSender.from_settings(s)._udp.target),
    "default_vmc_port": (39777, lambda s: VmcSender.from_settings(s)._senders[0].target),
    "default_control_port": (None, lambda s: None),  # set to a free port in the test
    "up_axis": ("z", lambda s: OscSender.from_settings(s).frame_values(_frame())[0].tobytes()),
    "units": ("cm", lambda s: OscSender.from_settings(s).frame_values(_frame())[0].tobytes()),
    "allow": (["10.9.8.0/24"], lambda s: _control_applies(s, ENERGY)),
    "secret": ("s3cret", lambda s: _control_applies(s, ENERGY)),
    "timetags": (False, lambda s: b"".join(bytes(x) for x in OscSender.from_settings(s).encode(_frame()))[:64]),
    "max_datagram": (9000, lambda s: len(OscSender.from_settings(s).encode(_frame()))),
    "vmc_dancers": (3, lambda s: len(VmcSender.from_settings(s)._senders)),
}


def test_osc_settings_each_change_something():
    fields = [f.name for f in dataclasses.fields(OscSettings)]
    assert sorted(PROBES) == sorted(fields), "every [osc] setting needs a probe here"
    PROBES["default_control_port"] = (_free_port(), _control_port)
    unchanged = []
    for name in fields:
        value, probe = PROBES[name]
        if name == "control":
            continue
        base = probe(OscSettings())
        changed = probe(dataclasses.replace(OscSettings(), **{name: value}))
        if base == changed:
            unchanged.append(name)
    assert not unchanged, f"settings that change nothing: {unchanged}"


@pytest.mark.slow
def test_perform_takes_osc_out_vmc_and_control_from_the_config(tmp_path: Path):
    audio, _ = drum_track(120, 20.0, 44100, seed=4)
    song = tmp_path / "song.wav"
    sf.write(song, audio, 44100)
    osc, vmc = UdpCollector(), UdpCollector()
    control = _free_port()
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[osc]\nout = "127.0.0.1:{osc.port}"\nvmc = "127.0.0.1:{vmc.port}"\ncontrol = "127.0.0.1:{control}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "--config", str(config), "perform", "--no-window",
         "--input", str(song), "--seconds", "12"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + 90
        while len(osc.packets) < 120 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        # Two dancers, asked for on the configured control port.
        for _ in range(3):
            tx.sendto(_msg(b"/livedance/control/dancers", b"i", struct.pack(">i", 2)), ("127.0.0.1", control))
            time.sleep(0.1)
        out, err = proc.communicate(timeout=120)
    finally:
        tx.close()
        if proc.poll() is None:
            proc.kill()
        osc.close()
        vmc.close()
    assert proc.returncode == 0, err[-3000:]
    assert sum(b"/livedance/frame" in p for p in osc.packets) > 300, len(osc.packets)
    assert any(b"/VMC/Ext/Root/Pos" in p for p in vmc.packets), len(vmc.packets)
    assert any(b"/livedance/d1/" in p for p in osc.packets), "the control on the configured port did nothing"
