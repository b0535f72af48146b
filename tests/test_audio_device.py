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
                events += [st.beat_time for st in tracker.hear(block) if st.beat]
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


@pytest.mark.slow
def test_channels_pick_the_inputs_a_mixer_delivers_the_master_on(pulse_sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 4-channel virtual interface: drums on inputs 3/4, a 440 Hz tone on 1/2.
    ``channels=[3, 4]`` hears the drums only, the default (1, 2) the tone only;
    inputs the device lacks are a one-line error naming the range."""
    import subprocess as sp
    import sys

    from livedance.errors import UserError

    name = f"livedance_quad_{os.getpid()}"
    quad = "front-left,front-right,rear-left,rear-right"  # named, so PulseAudio maps 1:1 (no remixing)
    res = sp.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}", "rate=44100", "channels=4",
                  f"channel_map={quad}"],
                 capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    module = res.stdout.strip()
    rate = 44100
    drums, _ = drum_track(120, 6.0, sr=rate, seed=2, pattern="rock")
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(drums.size) / rate).astype(np.float32)
    wav = tmp_path / "quad.wav"
    sf.write(wav, np.stack([tone, tone, drums, drums], axis=1), rate)
    monkeypatch.setenv("PULSE_SOURCE", f"{name}.monitor")
    try:
        master = DeviceSource(AudioSettings(device="pulse", channels=[3, 4]))
        front = DeviceSource(AudioSettings(device="pulse"))
        assert master.picked == [2, 3] and front.picked == [0, 1]
        caught: dict[str, list[np.ndarray]] = {"master": [], "front": []}
        with master, front:
            master.read(1 << 16, timeout=0.3)
            front.read(1 << 16, timeout=0.3)
            player = sp.Popen(["paplay", f"--device={name}", f"--channel-map={quad}", str(wav)])
            try:
                t_end = time.monotonic() + 5.0
                while time.monotonic() < t_end:
                    caught["master"].append(master.read(4096, timeout=0.05))
                    caught["front"].append(front.read(4096, timeout=0.05))
            finally:
                player.wait(timeout=15)
        sr = master.sample_rate

        def tone_share(y: np.ndarray) -> float:
            spec = np.abs(np.fft.rfft(y)) ** 2
            f = np.fft.rfftfreq(y.size, 1.0 / sr)
            return float(spec[(f > 430) & (f < 450)].sum() / max(spec.sum(), 1e-12))

        m, fr = np.concatenate(caught["master"]), np.concatenate(caught["front"])
        assert np.sqrt(np.mean(m**2)) > 0.02 and np.sqrt(np.mean(fr**2)) > 0.05, "nothing captured"
        assert tone_share(fr) > 0.9, tone_share(fr)  # 1/2: the tone
        assert tone_share(m) < 0.01, tone_share(m)  # 3/4: drums, no tone
        with pytest.raises(UserError, match="inputs 1 to 32"):
            DeviceSource(AudioSettings(device="pulse", channels=[33, 34]))
        r = sp.run([sys.executable, "-m", "livedance.cli", "perform", "--device", "pulse", "--channels", "3,x",
                    "--no-window", "--seconds", "1"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--channels" in r.stderr, r.stderr
        r = sp.run([sys.executable, "-m", "livedance.cli", "devices"], capture_output=True, text=True, timeout=60)
        assert "--channels 3,4" in r.stdout and " 32  " in r.stdout, r.stdout
    finally:
        sp.run(["pactl", "unload-module", module], capture_output=True, timeout=10)
