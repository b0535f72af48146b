"""Shared fixtures.

``SHARED_DATA`` / ``shared_data(*parts)``: the real motion, music and beat
data that sits beside the repository at ``../shared/data`` (never committed
to it); ``shared_data`` skips the test, saying what is missing, where the
checkout has none.

``pulse_sink``: a real virtual audio device for the whole session. It starts
a PulseAudio daemon if none is running, loads a null sink, makes it (and its
monitor source) the default, and keeps a silent stream playing into it, so
the sink never idles and the first capture callback comes at once, not
seconds late. Play into ``sink`` (e.g. ``paplay --device=SINK file.wav``) and
capture with sounddevice's "pulse" device: you hear what was played.
Everything it started is stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest


#: The shared data folder, a sibling of the repository root: ``<root>/../shared/data``.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """``SHARED_DATA / parts``; skips the calling test when that is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path} (a checkout without ../shared/data)")
    return path


@dataclass(frozen=True)
class PulseSink:
    sink: str  # null sink name: play here
    source: str  # its monitor: capture here (the default source while the fixture lives)
    module: int  # module index of the null sink


def _pactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)


def _server_up() -> bool:
    return _pactl("info").returncode == 0


@pytest.fixture(scope="session")
def pulse_sink() -> Iterator[PulseSink]:
    if not (shutil.which("pulseaudio") and shutil.which("pactl") and shutil.which("pacat")):
        pytest.skip("PulseAudio is not installed (scripts/setup.sh installs pulseaudio pulseaudio-utils)")
    started = False
    if not _server_up():
        # -n: no default.pa (no hardware probing); as root PulseAudio warns
        # but runs per-user, which is what we want (no --system D-Bus policy).
        proc = subprocess.run(
            ["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        for _ in range(100):
            if _server_up():
                break
            time.sleep(0.05)
        else:
            pytest.skip(f"cannot start PulseAudio: {proc.stderr.strip().splitlines()[-1:]}")
        started = True
    name = f"livedance_test_{os.getpid()}"
    res = _pactl("load-module", "module-null-sink", f"sink_name={name}", "rate=44100", "channels=2")
    if res.returncode != 0:
        pytest.skip(f"cannot load a PulseAudio null sink: {res.stderr.strip()}")
    module = int(res.stdout.strip())
    info = _pactl("info").stdout
    old = {k: line.split(":", 1)[1].strip() for line in info.splitlines() for k in ("Default Sink", "Default Source") if line.startswith(k)}
    _pactl("set-default-sink", name)
    _pactl("set-default-source", f"{name}.monitor")
    saved_env = {k: os.environ.get(k) for k in ("PULSE_SINK", "PULSE_SOURCE")}
    os.environ["PULSE_SINK"], os.environ["PULSE_SOURCE"] = name, f"{name}.monitor"
    zero = open("/dev/zero", "rb")
    keepalive = subprocess.Popen(
        ["pacat", "--playback", f"--device={name}", "--format=s16le", "--rate=44100", "--channels=2", "--latency-msec=50"],
        stdin=zero,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)  # let the sink start running
    try:
        yield PulseSink(sink=name, source=f"{name}.monitor", module=module)
    finally:
        keepalive.terminate()
        try:
            keepalive.wait(timeout=5)
        except subprocess.TimeoutExpired:
            keepalive.kill()
        zero.close()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if old.get("Default Sink") and old["Default Sink"] != name:
            _pactl("set-default-sink", old["Default Sink"])
        if old.get("Default Source") and old["Default Source"] != f"{name}.monitor":
            _pactl("set-default-source", old["Default Source"])
        _pactl("unload-module", str(module))
        if started:
            subprocess.run(["pulseaudio", "-k"], capture_output=True, timeout=10)
