"""Every documented setting takes effect: a kiosk's config file is all it has.

For each section of :class:`~livedance.config.Settings` a test walks the
section's fields and, for each, changes it and shows that the real component
built from the settings behaves or outputs differently (a probe per field:
the changed value and what it shows). A new setting without a probe here
fails its section's walk (``sorted(probes) == sorted(fields)``).

* ``[osc]``: senders, the control server and packets (and
  ``test_perform_takes_osc_out_vmc_and_control_from_the_config`` runs
  ``livedance perform`` with only a config file: frames arrive on UDP
  loopback and a control sent to the configured port acts; ``osc.out``/
  ``vmc``/``control`` used to be read by nothing).
* ``[features]``: the feature block of a synthetic drum track.
* ``[beats]``: the tracker's tempo, confidence, phase, beat flag and
  look-ahead per hop, on a signal where the setting's mechanism acts (a
  3:2 tempo change for the metre choice and tempo hysteresis, a 140 BPM track
  begun at half tempo for the doubling, a beat that halves after a held level).
* ``[engine]``: the dance the real engine (shipped checkpoint) makes offline,
  a live runner's timetags (``latency_ms``), a tap handed to the music.
* ``[audio]``: a file source and the engine's analysis rate, and a real input
  device (PulseAudio null sink) for device, channels, block, ring, retry, stall.
* ``[viewer]``: the window on a real X server (Xvfb): screenshots, its
  size, place and swap interval, its redraw rate, heartbeat file and watchdog.
* ``[link]``/``[midi]``: the sync hub ``perform`` builds, Link inside a private
  network namespace, MIDI on a private JACK server.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Container

import numpy as np
import pytest
import soundfile as sf

from livedance.config import (
    AudioSettings,
    BeatSettings,
    EngineSettings,
    FeatureSettings,
    LinkSettings,
    MidiSettings,
    OscSettings,
    Settings,
    ViewerSettings,
)
from livedance.frames import Frame
from livedance.live.commands import _sinks
from livedance.live.controls import Controls
from livedance.live.osc_control import ControlServer
from livedance.music.beats import BeatTracker
from livedance.music.features import FeatureExtractor
from livedance.music.synth import drum_track
from livedance.outputs.osc import OscSender
from livedance.outputs.vmc import VmcSender
from loopback import UdpCollector
from test_sync_midi import jack  # noqa: F401 - the private JACK server fixture (used by the MIDI walk)


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
    PROBES["default_control_port"] = (_free_port(), _control_port)
    unchanged = _walk(OscSettings, PROBES, skip={"control"})
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


# ---------------------------------------------------------------------------
# The walk, for the sections below.

SR = 22050
#: Files the probes write (a song, a second checkpoint, a heartbeat); removed at exit.
_TMP = tempfile.TemporaryDirectory(prefix="livedance-settings-")


def _walk(cls: type, probes: dict[str, tuple], skip: Container[str] = ()) -> list[str]:
    """The fields of ``cls`` whose change shows nothing; asserts each has a probe
    (``skip``: fields proven by a test of their own, not walked).

    ``probes[name]`` is ``(changed value, probe)`` or ``(changed value, probe,
    {other fields of the base})``: the probe builds the real object from the
    settings and returns what it shows. Probes of one base are compared with
    the base's own result (computed once per probe and base)."""
    fields = [f.name for f in dataclasses.fields(cls)]
    assert sorted(probes) == sorted(fields), f"every [{cls.__name__}] setting needs a probe here"
    seen: dict[tuple, Any] = {}
    unchanged = []
    for name in fields:
        if name in skip:
            continue
        value, probe, *rest = probes[name]
        base = cls(**(rest[0] if rest else {}))
        key = (probe, repr(base))
        if key not in seen:
            seen[key] = probe(base)
        changed = probe(dataclasses.replace(base, **{name: value}))
        print(f"{cls.__name__}.{name} = {value!r}: {str(seen[key])[:60]} -> {str(changed)[:60]}")  # shown on a failure
        if seen[key] == changed:
            unchanged.append(name)
    return unchanged


def _digest(*arrays: Any) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else repr(a).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# [features]


def _features(s: FeatureSettings) -> str:
    block = FeatureExtractor(s, SR, 512)(_drums())
    return _digest(*[getattr(block, f.name) for f in dataclasses.fields(block)])


@functools.cache
def _drums() -> np.ndarray:
    return drum_track(120, 4.0, SR, seed=2, pattern="rock")[0]


FEATURE_PROBES: dict[str, tuple] = {
    "n_fft": (1024, _features),
    "n_mels": (32, _features),
    "fmin": (80.0, _features),
    "fmax": (6000.0, _features),
    "chroma": (True, _features),
    "floor_db": (-50.0, _features),
}


def test_feature_settings_each_change_something():
    unchanged = _walk(FeatureSettings, FEATURE_PROBES)
    assert not unchanged, f"settings that change nothing: {unchanged}"


# ---------------------------------------------------------------------------
# [beats]: the tracker fed as the engine feeds it (tests/test_beats.py), its
# state per hop: tempo, confidence, phase, beat flag, look-ahead length.
# Each mechanism acts only on some music: a probe names the signal it needs.


@functools.cache
def _beat_blocks() -> dict[str, Any]:
    fx = FeatureExtractor(FeatureSettings(), SR, 512)
    signals = {
        # a steady beat with a break: tempo, phase, confidence, events, silence
        "plain": drum_track(120, 12.0, SR, 1, pattern="rock", breaks=[(6.6, 8.4)])[0],
        # 120 -> 80 BPM (3:2): the metre choice among related tempi and the
        # hysteresis a related tempo meets while locked
        "related": drum_track(120, 16.0, SR, 2, pattern="rock", tempo=[(8.0, 80.0)])[0],
        # 140 BPM heard first at 70 (preferred_bpm = 70 below): the midpoints
        # are as strong as the beats, so the level doubles (up to double_max_bpm)
        "half": drum_track(140, 10.0, SR, 1, pattern="rock")[0],
        # a kick every beat at 120 that drops every other one (60): the level
        # confirmed for 20 beats must hold against the new evidence for longer
        "halves": np.concatenate([drum_track(120, 10.0, SR, 1, pattern="four")[0],
                                  drum_track(60, 5.0, SR, 2, pattern="four")[0]]),
    }
    return {"fx": fx, **{k: FeatureExtractor(FeatureSettings(), SR, 512)(y) for k, y in signals.items()}}


def _beats_on(signal: str) -> Callable[[BeatSettings], str]:
    def probe(s: BeatSettings) -> str:
        blocks = _beat_blocks()
        fx = blocks["fx"]
        tracker = BeatTracker(s, fx.frame_rate, fx.onset_latency)
        states = tracker.hear(blocks[signal])
        return _digest(np.array([[st.tempo, st.confidence, st.phase, float(st.beat), len(st.next_beats)] for st in states]))

    probe.__name__ = f"beats_on_{signal}"
    return probe


_PLAIN, _RELATED, _HALF, _HALVES = (_beats_on(k) for k in ("plain", "related", "half", "halves"))
_AT_70 = {"preferred_bpm": 70.0}

BEAT_PROBES: dict[str, tuple] = {
    "min_bpm": (130.0, _PLAIN),
    "max_bpm": (110.0, _PLAIN),
    "preferred_bpm": (90.0, _PLAIN),
    "lookahead_beats": (1, _PLAIN),
    "prior_octaves": (0.3, _PLAIN),
    "harmonic_weight": (2.0, _PLAIN),
    "meter_weight": (0.0, _PLAIN),
    "meter_window": (4.0, _PLAIN),
    "meter_memory": (1.0, _RELATED),
    "meter_margin": (5.0, _RELATED),  # no metre correction at all
    "meter_floor": (1.5, _RELATED),  # (likewise: the short window never backs one)
    "tempo_window": (8.0, _PLAIN),
    "tempo_memory": (4.0, _PLAIN),
    "tempo_follow": (0.2, _PLAIN),
    "tempo_margin": (3.0, _RELATED),  # the 3:2 tempo never scores that much better
    "switch_hops": (64, _PLAIN),
    "switch_loss": (0.0, _RELATED),  # never a clear switch
    "beat_delay": (0.05, _PLAIN),
    "tightness": (20.0, _PLAIN),
    "level_seconds": (1.0, _PLAIN),
    "silence_level": (1.0, _PLAIN),
    "min_confidence": (0.95, _PLAIN),
    "octave_up": (2.0, _HALF, _AT_70),  # never doubles
    "double_max_bpm": (100.0, _HALF, _AT_70),  # may not double to 140
    "level_beats": (6.0, _HALF, _AT_70),
    "level_beats_max": (3.0, _HALVES),  # no longer hold: halves as soon as a fresh level would
    "octave_down": (0.95, _PLAIN),
    "gate": (3.0, _PLAIN),
    "max_late": (0.0, _PLAIN),
    "bass_weight": (0.0, _PLAIN),
}


def test_beat_settings_each_change_something():
    unchanged = _walk(BeatSettings, BEAT_PROBES)
    assert not unchanged, f"settings that change nothing: {unchanged}"


# ---------------------------------------------------------------------------
# [engine]: the real engine (build_engine, as `perform` builds it, with the
# controls made from the settings) dancing offline to a few seconds of drums.


@functools.cache
def _song() -> np.ndarray:
    return drum_track(120, 6.0, SR, seed=3, pattern="four")[0]


def _engine(s: EngineSettings) -> Any:
    from livedance.live.commands import build_engine
    from livedance.live.controls import Controls

    settings = Settings(engine=s)
    return build_engine(settings, Controls.from_settings(settings))


def _dance(s: EngineSettings) -> str:
    from livedance.live.run import frames_offline

    engine = _engine(s)
    frames = list(frames_offline(engine, _song(), SR, s.fps))
    assert engine.weight > 0.5, "the dancer never started dancing: nothing below would show"
    return _digest(len(frames), *[np.round(f.joints, 4) for f in frames], [(f.level, f.dancers) for f in frames])


def _tapped_tempo(s: EngineSettings) -> float:
    """Taps at 116 BPM on music at 120: the tempo danced at the end."""
    from livedance.live.run import frames_offline

    engine = _engine(s)
    taps = list(1.0 + (60.0 / 116.0) * np.arange(5))
    tempo = 0.0
    for i, f in enumerate(frames_offline(engine, _song(), SR, s.fps)):
        while taps and taps[0] <= i / s.fps:
            engine.controls.tap(taps.pop(0))
        tempo = f.tempo
    return round(tempo)


def _timetag_lead(s: EngineSettings) -> float:
    """The live runner (as `perform` makes it, paced by a file in real time):
    how far ahead of their sending the frames' timetags lie, seconds."""
    from livedance.audio.sources import FileSource
    from livedance.live.run import LiveRunner

    wav = _wav()
    settings = Settings(engine=s)
    engine = _engine(s)
    leads: list[float] = []

    class Sink:
        def send(self, frame: Frame) -> None:
            leads.append(frame.wall_time - time.time())

        def close(self) -> None:
            pass

    source = FileSource(wav, settings.audio, realtime=True)
    runner = LiveRunner(engine, source, [Sink()], s.fps, s.latency_ms / 1000.0)
    runner.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(leads) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop()
    assert len(leads) >= 30, "the live runner made no frames"
    return round(float(np.median(leads)), 1)


@functools.cache
def _wav() -> str:
    path = Path(_TMP.name) / "drums.wav"
    sf.write(path, drum_track(120, 8.0, 44100, seed=5)[0], 44100)
    return str(path)


@functools.cache
def _other_checkpoint() -> str:
    """The shipped checkpoint with its composer's weights perturbed: another
    checkpoint, as a retrained one would be (a file of the real format)."""
    import torch

    from livedance.model.checkpoint import read_checkpoint, save_checkpoint

    payload = read_checkpoint(None)
    gen = torch.Generator().manual_seed(0)
    payload["weights"] = {
        k: v + 0.05 * v.std() * torch.randn(v.shape, generator=gen) if k.startswith("composer.") and v.is_floating_point() and v.numel() > 1 else v
        for k, v in payload["weights"].items()
    }
    return str(save_checkpoint(Path(_TMP.name) / "other.pt", payload))


def _compute_device(s: EngineSettings) -> str:
    """Where the dance model runs. Without a CUDA GPU here, "auto" and "cpu"
    both mean the CPU (a one-line error for "cuda" is no change), so this asks
    as if torch saw a GPU: "auto" picks it, "cpu" keeps off it. On a machine
    with one, the real engine's model is asked where it runs."""
    import torch

    from livedance.model.device import resolve_compute

    if torch.cuda.is_available():
        return str(_engine(s).model.device)
    real = torch.cuda.is_available, torch.cuda.current_device
    torch.cuda.is_available, torch.cuda.current_device = (lambda: True), (lambda: 0)
    try:
        return str(resolve_compute(s.compute))
    finally:
        torch.cuda.is_available, torch.cuda.current_device = real


ENGINE_PROBES: dict[str, tuple] = {
    "fps": (30.0, _dance),
    "latency_ms": (500.0, _timetag_lead),
    "dancers": (2, _dance),
    "seed": (7, _dance),
    "temperature": (0.5, _dance),
    "energy_bias": (0.6, _dance),
    "stage_radius": (0.05, _dance),
    "tap_follows_music": (True, _tapped_tempo),
    "checkpoint": (None, _dance),  # set to a second checkpoint in the test
    "level": ("double", _dance),
    "beat_hit": (1.0, _dance),
    "compute": ("cpu", _compute_device),
}


@pytest.mark.slow
def test_engine_settings_each_change_something():
    probes = dict(ENGINE_PROBES, checkpoint=(_other_checkpoint(), _dance))
    assert _dance(EngineSettings()) == _dance(EngineSettings()), "the dance is not deterministic: the walk would prove nothing"
    unchanged = _walk(EngineSettings, probes)
    assert not unchanged, f"settings that change nothing: {unchanged}"


# ---------------------------------------------------------------------------
# [audio]: the analysis rate of a file source and of the engine; a real input
# device (the PulseAudio null sink's monitor, as tests/test_audio_device.py
# captures it) for the device settings. How a lost device is retried and a
# stall called is proven end to end by tests/test_faults.py (a sound server
# killed and a process frozen under perform); here, that the settings set
# those clocks of the real source.


@functools.cache
def _model() -> Any:
    from livedance.model.checkpoint import load_checkpoint

    return load_checkpoint(None)


def _analysis(s: AudioSettings) -> tuple:
    """(the engine's analysis frames per second, samples a file gives at the analysis rate)."""
    from livedance.audio.sources import FileSource
    from livedance.live.engine import Engine

    engine = Engine(Settings(audio=s), _model())
    return engine.tracker.frame_rate, FileSource(_wav(), s, realtime=False).samples.shape[0]


def _on_device(look: Callable[[Any], Any], start: bool = False) -> Callable[[AudioSettings], Any]:
    def probe(s: AudioSettings) -> Any:
        from livedance.audio.sources import DeviceSource

        source = DeviceSource(s)
        try:
            if start:
                source.start()
            return look(source)
        finally:
            source.close()

    probe.__name__ = f"on_device_{look.__name__}"
    return probe


def _retry_in(source: Any) -> float:
    """Seconds until the first reopen after the device is lost."""
    source._lose("a probe")
    return round(source._next_retry - time.monotonic(), 1)


def _lost_after_3s_silence(source: Any) -> bool:
    """Is a device that delivered nothing for 3 s called lost?"""
    source._last_progress = time.monotonic() - 3.0
    source._watchdog()
    return source.device_lost


def _device_name(source: Any) -> str:
    return source.device.name


def _ring_capacity(source: Any) -> int:
    return source._ring.capacity


def _mixed_channels(source: Any) -> tuple:
    return tuple(source.picked), source.channels


def _stream_block(source: Any) -> int:
    return source._stream.blocksize


AUDIO_PROBES: dict[str, tuple] = {
    "device": ("pulse", _on_device(_device_name)),  # the default input is ALSA's "default"
    "sample_rate": (16000, _analysis),
    "hop": (256, _analysis),
    "block": (1024, _on_device(_stream_block, start=True)),
    "ring_seconds": (30.0, _on_device(_ring_capacity)),
    "channels": ([2], _on_device(_mixed_channels)),
    "retry_seconds": (5.0, _on_device(_retry_in)),
    "stall_seconds": (5.0, _on_device(_lost_after_3s_silence)),
}


def test_audio_settings_each_change_something(pulse_sink):
    unchanged = _walk(AudioSettings, AUDIO_PROBES)
    assert not unchanged, f"settings that change nothing: {unchanged}"


# ---------------------------------------------------------------------------
# [viewer]: the real window on a real X server (Xvfb, Mesa's GLX), as in
# tests/test_viewer.py. Screenshots are of the first frame drawn (no framing
# motion yet: the same settings draw the same image, checked below).


def _split_screens() -> None:
    """Make pyglet see the display's one 800x360 screen as two monitors side
    by side (480x360, and 320x240 at x = 480). Xvfb has one RandR output, and
    pyglet's Xinerama path fails on a two-screen Xvfb ('XlibScreenXinerama'
    has no 'is_primary'), so the split is made on pyglet's own screen
    objects; the windows really open on the display."""
    import pyglet
    import pyglet.window  # its shadow window asks for the default screen first: before the split

    display = pyglet.display.get_display()
    left, right = copy.copy(display.get_screens()[0]), copy.copy(display.get_screens()[0])
    left.width, left.height = 480, 360
    right.x, right.width, right.height = 480, 320, 240
    display.get_screens = lambda: [left, right]


def _two_dancers() -> Frame:
    from livedance.skeleton import REST_PELVIS_HEIGHT

    rot = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 24, 3, 3)).copy()
    return Frame.from_pose(0, 0.0, 0.0, rot, np.array([[-0.4, REST_PELVIS_HEIGHT, 0.0], [0.4, REST_PELVIS_HEIGHT, 0.0]]))


_shown: dict[tuple, dict[str, Any]] = {}


def _show(s: ViewerSettings, kiosk: bool = False, seconds: float = 0.0, stall: float = 0.0) -> dict[str, Any]:
    """Run a real viewer on two dancers; what it showed (cached per settings)."""
    import logging

    from livedance.outputs.viewer import Viewer

    key = (repr(s), kiosk, seconds, stall)
    if key in _shown:
        return _shown[key]
    viewer = Viewer(s, kiosk=kiosk)
    viewer.submit(_two_dancers())
    viewer.request_screenshot()
    seen: dict[str, Any] = {}
    warnings: list[str] = []

    class Warned(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    def until() -> bool:
        window = viewer._window
        if viewer.last_screenshot is not None and "shot" not in seen:
            seen.update(shot=viewer.last_screenshot, location=window.get_location(), vsync=window.vsync,
                        samples=window.config.samples, started=time.monotonic())
        if stall and viewer.stats.frames_drawn == 3 and "stalled" not in seen:
            seen["stalled"] = True
            time.sleep(stall)  # wedge the loop (the kiosk's watchdog may rebuild it)
        drawn = viewer.stats.frames_drawn >= (6 if stall else 1)  # (a stall: drawing again after it)
        return "shot" in seen and time.monotonic() - seen["started"] >= seconds and drawn

    body_log = logging.getLogger("livedance.outputs.body")
    handler = Warned(logging.WARNING)
    body_log.addHandler(handler)
    try:
        deadline = time.monotonic() + 30.0
        viewer.run(until=lambda: until() or time.monotonic() > deadline)
    finally:
        body_log.removeHandler(handler)
    assert "shot" in seen, "the viewer drew nothing"
    shot = seen.pop("shot")
    seen.update(shape=shot.shape, image=_digest(shot), frames=viewer.stats.frames_drawn, recoveries=viewer.stats.recoveries,
                body=viewer._body.name, warnings=warnings)
    _shown[key] = seen
    return seen


def _looks(*keys: str, **how: Any) -> Callable[[ViewerSettings], tuple]:
    def probe(s: ViewerSettings) -> tuple:
        seen = _show(s, **how)
        return tuple(seen[k] for k in keys)

    probe.__name__ = "looks_" + "_".join(keys)
    return probe


def _redraws_in_a_second(s: ViewerSettings) -> bool:
    """More than 8 redraws in a second (capped at 4 fps: at most 5)?"""
    seen = _show(s, seconds=1.0)
    return seen["frames"] > 8


def _heartbeat_written(s: ViewerSettings) -> bool:
    _show(s)
    return HEARTBEAT.exists() and json.loads(HEARTBEAT.read_text())["frames_drawn"] >= 1


HEARTBEAT = Path(_TMP.name) / "heartbeat.json"
_SMALL = {"width": 240, "height": 180, "msaa": 0, "hud": False}
_IMAGE = _looks("shape", "image")

VIEWER_PROBES: dict[str, tuple] = {
    "width": (320, _IMAGE, _SMALL),
    "height": (240, _IMAGE, _SMALL),
    "fullscreen": (True, _looks("shape", "location"), _SMALL),  # the 480x360 screen 0
    "screen": (1, _looks("shape", "location"), dict(_SMALL, fullscreen=True)),  # the 320x240 screen at x = 480
    "hud": (True, _IMAGE, _SMALL),
    "vsync": (False, _looks("vsync"), _SMALL),  # the window's swap interval (Xvfb has no vertical blank to pace by)
    # Without smplx (the optional [smpl] extra) and the licensed SMPL files,
    # the viewer says it cannot load the model and keeps the built-in body
    # (the fall-back is tests/test_render.py's); with them the body is the user's.
    "smpl_model": ("SMPL_NEUTRAL.pkl", _looks("body", "warnings"), _SMALL),
    "fps": (4.0, _redraws_in_a_second, _SMALL),
    "msaa": (4, _looks("samples", "image"), _SMALL),
    "spacing": (1.0, _IMAGE, _SMALL),
    "heartbeat": (str(HEARTBEAT), _heartbeat_written, _SMALL),
    "watchdog_seconds": (1.0, _looks("recoveries", kiosk=True, stall=2.0), _SMALL),  # a 2 s stall: rebuilt, or not
}


def _viewer_walk() -> list[str]:
    """The walk, in a child process of its own (pyglet keeps its first X
    connection for the life of the process, and the viewer exits the process
    when that display goes: tests/test_viewer.py's display comes later)."""
    _split_screens()
    small = ViewerSettings(**_SMALL)
    first = _show(small)["image"]
    _shown.clear()
    assert _show(small)["image"] == first, "the first frame drawn differs run to run: the walk would prove nothing"
    return _walk(ViewerSettings, VIEWER_PROBES)


@pytest.mark.slow
def test_viewer_settings_each_change_something():
    from livedance.bench.xvfb import start_xvfb

    started = start_xvfb(800, 360)
    if started is None:
        pytest.skip("Xvfb is missing or did not start (apt-get install xvfb)")
    proc, display = started
    child = "import json, test_settings_effect as t; print(json.dumps(t._viewer_walk()))"
    try:
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=240, check=False,
                             cwd=Path(__file__).parent, env=dict(os.environ, DISPLAY=display))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(out.stdout)
    assert out.returncode == 0, out.stderr[-3000:]
    unchanged = json.loads(out.stdout.strip().splitlines()[-1])
    assert not unchanged, f"settings that change nothing: {unchanged}"


# ---------------------------------------------------------------------------
# [link] / [midi]: the sync hub `perform` builds from the settings
# (SyncHub.from_args with no --link/--midi flags). Link joins a session: it
# runs in a child inside a private network namespace holding only loopback
# (as tests/test_sync_link.py runs its peers). MIDI opens ports on a private
# JACK server (tests/test_sync_midi.py's fixture); a virtual port here plays
# the drum machine or lighting desk.

_LINK_CHILD = r"""
import argparse, asyncio, json, sys, time, warnings
import aalink
from livedance.config import LinkSettings, Settings
from livedance.live.syncing import SyncHub
warnings.simplefilter("ignore", DeprecationWarning)  # aalink's loop argument
peer = None
out = []
for fields, transport in json.loads(sys.argv[1]):
    hub = SyncHub.from_args(argparse.Namespace(), Settings(link=LinkSettings(**fields)))
    if hub is None:
        out.append(None)
        continue
    try:
        state = hub.state(time.monotonic())
        seen = [type(hub.link).__name__, state.mode, state.quantum, hub.link.session._link.quantum]
        if transport:  # a DJ's app joins, plays, stops: is the dance told to stop?
            if peer is None:
                peer = aalink.Link(120.0, asyncio.new_event_loop())
                peer.start_stop_sync_enabled = True
                peer.enabled = True
            deadline = time.monotonic() + 10.0
            while hub.link.session.peers < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            for playing in (True, False):  # (each waits 2 s at most for the hub to hear it)
                peer.playing = playing
                deadline = time.monotonic() + 2.0
                while hub.link.session.read().playing != playing and time.monotonic() < deadline:
                    time.sleep(0.02)
                hub.state(time.monotonic())  # (the follower notes a transport seen playing)
            seen.append(["peers", hub.link.session.peers, "playing after the stop", hub.state(time.monotonic()).playing])
        out.append(seen)
    finally:
        hub.close()
print(json.dumps(out))
"""


def _link_hubs(settings: list[tuple[LinkSettings, bool]]) -> list[Any]:
    """What each hub shows (and, where asked, what it makes of a peer's
    transport), built in one child in a private network namespace."""
    from test_sync_link import NETNS, _why_not

    if _why_not is not None:
        pytest.skip(_why_not)
    fields = [(dataclasses.asdict(s), transport) for s, transport in settings]
    out = subprocess.run(["unshare", "--net", "sh", "-c", NETNS, sys.executable, "-c", _LINK_CHILD, json.dumps(fields)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


LINK_CHANGES: dict[str, tuple] = {
    "mode": ("follow", {}),  # off: no Link at all
    "quantum": (3.0, {"mode": "follow"}),  # the bar the session and the dance count
    "start_stop": (False, {"mode": "follow"}),  # a peer's stop stops the dance, or is not heard
}


@pytest.mark.slow
def test_link_settings_each_change_something():
    fields = [f.name for f in dataclasses.fields(LinkSettings)]
    assert sorted(LINK_CHANGES) == sorted(fields), "every [link] setting needs a probe here"
    pytest.importorskip("aalink", reason="Link support not installed: pip install 'livedance[link]' (scripts/setup.sh does)")
    runs = [(LinkSettings(**base), dataclasses.replace(LinkSettings(**base), **{name: value}))
            for name, (value, base) in LINK_CHANGES.items()]
    shown = _link_hubs([(s, name == "start_stop") for name, pair in zip(LINK_CHANGES, runs) for s in pair])
    unchanged = []
    for k, name in enumerate(LINK_CHANGES):
        print(f"LinkSettings.{name}: {shown[2 * k]} -> {shown[2 * k + 1]}")
        if shown[2 * k] == shown[2 * k + 1]:
            unchanged.append(name)
    assert shown[1][:2] == ["LinkFollower", "follow"]
    assert not unchanged, f"settings that change nothing: {unchanged}"


def _midi_hub(s: MidiSettings) -> Any:
    """The hub's MIDI ends: the ports they opened, or why none could open."""
    from livedance.errors import UserError
    from livedance.live.syncing import SyncHub

    try:
        hub = SyncHub.from_args(argparse.Namespace(), Settings(midi=s))
    except UserError as exc:
        return f"refused: {str(exc)[:40]}"
    if hub is None:
        return None
    try:
        return (hub.midi_in and hub.midi_in.name, hub.midi_out and hub.midi_out.name)
    finally:
        hub.close()


MIDI_PROBES: dict[str, tuple] = {
    "clock_in": ("lighting-desk", _midi_hub),
    "clock_out": ("drum-machine", _midi_hub),
    # The MIDI system the ports open on: "auto" is JACK here (no ALSA
    # sequencer); asked for ALSA, the hub goes to ALSA and finds none.
    "api": ("alsa", _midi_hub, {"clock_in": "lighting-desk"}),
}


@pytest.mark.usefixtures("jack")
def test_midi_settings_each_change_something():
    from livedance.sync.midi import backend

    system = backend("jack")
    desk = system.open_output("livedance-test-lighting-desk", virtual=True)
    drums = system.open_input("livedance-test-drum-machine", virtual=True)
    try:
        unchanged = _walk(MidiSettings, MIDI_PROBES)
        assert not unchanged, f"settings that change nothing: {unchanged}"
    finally:
        desk.close()
        drums.close()


def test_every_setting_has_a_probe():
    """Whatever a walk above skips for want of a device (PulseAudio, Xvfb,
    JACK, a network namespace), a setting without a probe still fails here."""
    walks = {
        AudioSettings: AUDIO_PROBES, FeatureSettings: FEATURE_PROBES, BeatSettings: BEAT_PROBES,
        EngineSettings: ENGINE_PROBES, OscSettings: PROBES, ViewerSettings: VIEWER_PROBES,
        LinkSettings: LINK_CHANGES, MidiSettings: MIDI_PROBES,
    }
    sections = {type(getattr(Settings(), f.name)) for f in dataclasses.fields(Settings)}
    assert sections == set(walks), "a [section] without a walk here"
    for cls, probes in walks.items():
        assert sorted(probes) == sorted(f.name for f in dataclasses.fields(cls)), f"every [{cls.__name__}] setting needs a probe here"
