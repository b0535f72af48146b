"""MIDI clock on real ports: a JACK server (dummy driver, user space, no sound
card) carries the messages between rtmidi clients, as it would between
livedance and a drum machine or lighting desk. (This machine has no ALSA
sequencer; where neither exists, the tests skip with the reason.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from livedance.sync.midi import PPQN, ClockFollower, MidiClockIn, MidiClockOut, backend, interval_jitter

SERVER = f"livedance-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def jack(tmp_path_factory):
    """A private JACK server; JACK_DEFAULT_SERVER points rtmidi's clients at it."""
    if os.path.exists("/dev/snd/seq"):
        pytest.skip("an ALSA sequencer is present; these tests are written for JACK")  # pragma: no cover
    if shutil.which("jackd") is None:
        pytest.skip("no MIDI system: no ALSA sequencer (/dev/snd/seq) and no jackd (apt jackd2, scripts/setup.sh)")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_DEFAULT_SERVER=SERVER)
    # -p 64 at 48 kHz: a 1.3 ms period, the granularity JACK delivers MIDI at.
    # Its log goes to a file: the dummy driver reports every xrun, and a full
    # pipe would block the server (and every client with it).
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            ["jackd", "-n", SERVER, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "64"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                backend("jack")
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = log.read_text(errors="replace")[-300:] if proc.poll() is not None else "timeout"
                    pytest.skip(f"jackd did not start: {err}")
                time.sleep(0.2)
        yield backend("jack")
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        proc.terminate()
        proc.wait(timeout=10)


def test_devices_lists_midi_ports(jack):
    port = jack.open_input("livedance-test-listed", virtual=True)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "livedance.cli", "--set", "midi.api=jack", "devices", "--no-link"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        port.close()
    assert out.returncode == 0, out.stderr
    assert "livedance-test-listed" in out.stdout.split("MIDI outputs")[1]


def test_clock_out_reaches_a_real_port_on_time(jack):
    """A device's input port gets 24 pulses a beat; measured at the receiver."""
    received: list[tuple[float, object]] = []
    port = jack.open_input("livedance-test-drum-machine", virtual=True,
                           callback=lambda m: received.append((time.monotonic(), m)))
    out = MidiClockOut("drum-machine", api="jack")
    try:
        t0 = time.monotonic()
        # The frame clock's updates: a beat clock at 120 BPM, 60 times a second.
        while time.monotonic() - t0 < 3.0:
            now = time.monotonic()
            out.update(now, (now - t0) * 2.0, 2.0)
            time.sleep(1 / 60)
    finally:
        out.close()
        time.sleep(0.1)
        port.close()
    kinds = [m.type for _, m in received]
    first = received[0][1].pos  # the sixteenth the clock starts on: Start at 0, else Continue
    assert kinds[:2] == ["songpos", "start" if first == 0 else "continue"] and kinds[-1] == "stop"
    assert first <= 1
    pulses = [t for t, m in received if m.type == "clock"]
    stats = interval_jitter(pulses)
    print("MIDI clock out at the receiving port:", stats)
    assert len(pulses) == pytest.approx(3.0 * 48, abs=4)
    assert stats["median_ms"] == pytest.approx(1000 / 48, abs=0.7)
    # A JACK period is 1.3 ms; the rest is scheduling on a shared CPU (the
    # non-realtime dummy server stalls now and then: the tail is reported, not held).
    assert stats["p90_dev_ms"] < 4.0
    sent = interval_jitter(out.sender.sent)
    print("MIDI clock out, as sent:", sent)
    assert sent["mean_ms"] == pytest.approx(1000 / 48, abs=0.3)
    follower = ClockFollower()
    for t, m in received:
        follower.feed(m, t)
    assert follower.state(pulses[-1]).tempo == pytest.approx(120.0, abs=1.0)


def test_clock_in_follows_a_real_port(jack):
    import mido

    port = jack.open_output("livedance-test-lighting-desk", virtual=True)
    clock_in = MidiClockIn("lighting-desk", api="jack")
    try:
        time.sleep(0.2)
        period = 60.0 / 100.0 / PPQN  # 100 BPM
        port.send(mido.Message("start"))
        t0 = time.monotonic()
        for k in range(4 * PPQN):
            time.sleep(max(0.0, t0 + k * period - time.monotonic()))
            port.send(mido.Message("clock"))
        state = clock_in.state(time.monotonic())
    finally:
        clock_in.close()
        port.close()
    assert state is not None and state.source == "midi" and state.leads
    assert state.tempo == pytest.approx(100.0, abs=1.0)
    assert state.beat == pytest.approx(4.0, abs=0.1)
    assert np.isfinite(state.phase)
