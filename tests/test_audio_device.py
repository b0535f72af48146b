"""The live source on a real (virtual) device: PulseAudio null sink, another
process playing into it, sounddevice capturing its monitor. No mocks."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.audio.sources import DeviceSource
from livedance.config import AudioSettings, BeatSettings, FeatureSettings
from livedance.music.beats import BeatTracker
from livedance.music.features import FeatureExtractor
from livedance.music.synth import drum_track


@pytest.mark.slow
def test_tracker_locks_on_120bpm_from_a_real_device(pulse_sink, tmp_path: Path):
    sr_play = 44100
    audio, beats = drum_track(120, 8.0, sr=sr_play, seed=11, pattern="rock")
    wav = tmp_path / "drums.wav"
    sf.write(wav, np.stack([audio, audio], axis=1), sr_play)  # stereo: the source mixes down

    settings = AudioSettings(device="pulse")
    fx = FeatureExtractor(FeatureSettings(), settings.sample_rate, settings.hop)
    tracker = BeatTracker(BeatSettings(), fx.frame_rate, fx.onset_latency)
    captured: list[np.ndarray] = []
    events: list[float] = []
    with DeviceSource(settings) as src:
        assert src.device_rate == 44100 and src.channels == 2  # real resampling and mix-down
        src.read(1 << 16, timeout=0.5)  # drop whatever was buffered before playback
        player = subprocess.Popen(["paplay", f"--device={pulse_sink.sink}", str(wav)])
        try:
            t_end = time.monotonic() + 9.5
            while time.monotonic() < t_end:
                y = src.read(4096, timeout=0.1)
                captured.append(y)
                block = fx.process(y)
                events += [st.beat_time for st in tracker.process(block.onset) if st.beat]
        finally:
            player.wait(timeout=10)
        overruns = src.overruns
    assert overruns == 0
    y = np.concatenate(captured)
    # Where the music starts in the capture: the first clearly non-silent sample
    # (the track opens with a kick on beat 1).
    start = np.argmax(np.abs(y) > 0.05) / settings.sample_rate
    assert start > 0, "nothing was captured from the null sink monitor"
    truth = start + beats
    events_a = np.asarray(events)
    # Locked from the 5th beat on: every later beat is reported within 70 ms,
    # and nothing else is.
    later = truth[4:-1]
    err = np.array([np.min(np.abs(events_a - b)) for b in later])
    assert np.all(err < 0.07), f"beats after the 4th missed or off: {np.round(err, 3)}"
    # (up to the end of the music: a predicted beat just after it is a break's first beat)
    spurious = [e for e in events_a if truth[4] - 0.1 < e < truth[-1] + 0.25 and np.min(np.abs(truth - e)) > 0.07]
    assert not spurious, f"spurious beats {spurious}"
    assert abs(tracker.tempo - 120) < 3


def _start_private_pulse(runtime: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "PULSE_STATE_PATH": str(runtime)}
    (runtime / "native").unlink(missing_ok=True)  # a killed server leaves its socket behind
    proc = subprocess.Popen(
        [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
            f"--load=module-native-protocol-unix socket={runtime}/native auth-anonymous=1",
            "--load=module-null-sink sink_name=vanishing rate=44100 channels=1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        up = subprocess.run(["pactl", "-s", f"unix:{runtime}/native", "info"], capture_output=True, timeout=5)
        if up.returncode == 0:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.skip("cannot start a private PulseAudio server")


def _keepalive(runtime: Path) -> subprocess.Popen[bytes]:
    # Endless silence keeps the null sink running, so its monitor delivers.
    with open("/dev/zero", "rb") as zero:
        return subprocess.Popen(
            ["pacat", "--playback", "--device=vanishing", "--format=s16le", "--rate=44100", "--channels=1"],
            stdin=zero,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PULSE_SERVER": f"unix:{runtime}/native"},
        )


@pytest.mark.slow
def test_device_source_survives_the_device_disappearing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not shutil.which("pulseaudio") or not shutil.which("pacat"):
        pytest.skip("PulseAudio is not installed (scripts/setup.sh installs it)")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    # This process's PulseAudio clients (through ALSA's "pulse" device) go
    # to a private server that the test can kill without touching others.
    monkeypatch.setenv("PULSE_SERVER", f"unix:{runtime}/native")
    monkeypatch.setenv("PULSE_SOURCE", "vanishing.monitor")
    server = _start_private_pulse(runtime)
    feeder = _keepalive(runtime)
    settings = AudioSettings(device="pulse", channels=1, retry_seconds=0.3, stall_seconds=0.5)

    def pull(seconds: float) -> int:
        n, t_end = 0, time.monotonic() + seconds
        while time.monotonic() < t_end:
            n += src.read(4096, timeout=0.05).size
        return n

    try:
        with DeviceSource(settings) as src:
            assert pull(1.0) > 0.5 * settings.sample_rate
            server.kill()  # the device vanishes
            server.wait()
            feeder.kill()
            t_end = time.monotonic() + 5
            while not src.device_lost and time.monotonic() < t_end:
                src.read(4096, timeout=0.05)
            assert src.device_lost and src.lost_count == 1
            assert pull(0.5) == 0  # still alive, just no audio
            server = _start_private_pulse(runtime)  # it comes back
            feeder = _keepalive(runtime)
            t_end = time.monotonic() + 8
            while src.device_lost and time.monotonic() < t_end:
                src.read(4096, timeout=0.05)
            assert not src.device_lost, "did not reconnect"
            got, t_end = 0, time.monotonic() + 5
            while got < 0.3 * settings.sample_rate and time.monotonic() < t_end:
                got += pull(0.1)
            assert got >= 0.3 * settings.sample_rate, "reconnected but no audio flows"
            assert not src.device_lost
    finally:
        feeder.kill()
        server.kill()
        server.wait()


def test_a_stalled_reader_counts_overruns_and_carries_on(pulse_sink):
    # The smallest ring the source allows (~1.5 s at 44.1 kHz); stall past it.
    settings = AudioSettings(device="pulse", ring_seconds=0.1)
    with DeviceSource(settings) as src:
        time.sleep(2.2)
        assert src.overruns > 0  # the callback dropped blocks instead of blocking or crashing
        assert src.discard_backlog(keep_seconds=0.05) > 0
        before = src.overruns
        got, t_end = 0, time.monotonic() + 1.0
        while time.monotonic() < t_end:
            got += src.read(4096, timeout=0.05).size
        assert got > 0.7 * settings.sample_rate and src.overruns == before and not src.device_lost


def test_file_source_plays_to_the_device_and_is_paced_by_it(pulse_sink, tmp_path: Path):
    audio, _ = drum_track(120, 3.0, sr=44100, seed=12)
    wav = tmp_path / "drums.wav"
    sf.write(wav, audio, 44100)
    from livedance.audio.sources import FileSource

    settings = AudioSettings(device="pulse")
    with DeviceSource(settings) as mic:
        mic.read(1 << 16, timeout=0.2)
        heard: list[np.ndarray] = []
        with FileSource(wav, settings, realtime=True, play=True) as song:
            t0 = time.monotonic()
            delivered = 0
            while not song.finished and time.monotonic() - t0 < 8:
                delivered += song.read(4096, timeout=0.05).size
                heard.append(mic.read(4096))
            elapsed = time.monotonic() - t0
        t_end = time.monotonic() + 0.5
        while time.monotonic() < t_end:
            heard.append(mic.read(4096, timeout=0.05))
    assert delivered == song.samples.size
    assert 2.5 < elapsed < 4.5  # paced by the output device, about real time
    captured = np.concatenate(heard)
    # What was analysed was also played: the monitor heard the drums.
    assert np.sqrt(np.mean(captured**2)) > 0.3 * np.sqrt(np.mean(song.samples**2))
