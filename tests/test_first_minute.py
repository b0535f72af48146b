"""The performer's first minute, against real parts: PulseAudio's null sink,
an Xvfb window, a pseudo-terminal.

* ``perform`` says once, in one line, that it listens: device, rate, inputs,
  input latency; the terminal keeps its status line while the window is open.
* The input device's latency (PortAudio's figure) is added to the music
  clock on top of ``--latency``: a frame shows the music that much further on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livedance.audio.sources import DeviceSource
from livedance.config import AudioSettings, Settings
from livedance.frames import Frame
from livedance.live.commands import build_engine
from livedance.live.run import LiveRunner
from test_kiosk import _xvfb


class _Clocked:
    """A sink noting each frame's music time and what the audio clock read
    when it was made (the frame thread reads audio, then makes and sends it)."""

    def __init__(self, runner_ref: list[LiveRunner]) -> None:
        self.runner_ref = runner_ref
        self.pairs: list[tuple[float, float]] = []

    def send(self, frame: Frame) -> None:
        self.pairs.append((frame.time, self.runner_ref[0]._audio_time()))

    def close(self) -> None:
        pass


def test_the_input_latency_is_compensated_on_top_of_the_output_latency(pulse_sink):
    source = DeviceSource(AudioSettings(device="pulse"))
    engine = build_engine(Settings())
    ref: list[LiveRunner] = []
    sink = _Clocked(ref)
    runner = LiveRunner(engine, source, [sink], fps=60.0, latency=0.05)
    ref.append(runner)
    runner.start()
    try:
        time.sleep(3.0)
        latency_in = source.input_latency
        described = source.describe()
    finally:
        runner.stop()
    # PortAudio's figure for the open stream (~35 ms on PulseAudio: large
    # enough that leaving it out shows below).
    assert 0.02 < latency_in < 1.0, latency_in
    assert f"input latency {latency_in * 1000:.0f} ms" in described and "inputs 1+2" in described
    pairs = np.array(sink.pairs[60:])
    assert len(pairs) > 60
    # A frame shows the audio clock plus input and output latency; what is
    # left is the clock smoothing's residue (device blocks of ~12 ms).
    residue = pairs[:, 0] - pairs[:, 1] - 0.05 - latency_in
    assert abs(np.median(residue)) < 0.012, (np.median(residue), latency_in)


@pytest.mark.slow
def test_one_listening_line_and_the_status_line_stays_with_the_window(pulse_sink, tmp_path: Path):
    xvfb, display = _xvfb()
    env = {**os.environ, "DISPLAY": display}
    cmd = f"{sys.executable} -m livedance.cli perform --device pulse --window --seconds 8 --latency 40"
    try:
        # `script` gives perform a terminal (a pseudo-tty), as a performer's shell does.
        r = subprocess.run(["script", "-qfec", cmd, "/dev/null"], capture_output=True, text=True, timeout=180, env=env)
    finally:
        xvfb.kill()
        xvfb.wait()
    out = r.stdout
    assert r.returncode == 0, out[-3000:]
    listening = [line for line in re.split(r"[\r\n]+", out) if "listening to" in line]
    assert len(listening) == 1, out[-3000:]
    line = listening[0]
    assert "'pulse'" in line and "44100 Hz" in line and "inputs 1+2" in line, line
    assert re.search(r"input latency [1-9]\d* ms", line) and "output latency 40 ms" in line, line
    assert re.search(r"\d+\.\d s after start", line), line
    # The status line, redrawn in place while the window was open.
    status = re.findall(r"[\d.]+ BPM \| conf [\d.]+ \|.*?\| latency 40 \+ input \d+ ms", out)
    assert len(status) >= 5, out[-3000:]
