"""`livedance dance` and `livedance perform` as a user runs them: real files,
real UDP on 127.0.0.1, a real (virtual) audio device, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.motion.io import load_motion
from livedance.music.synth import drum_track
from loopback import perform_to

SR = 22050


def livedance(*args: str, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livedance.cli", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    audio, beats = drum_track(120, 12.0, 44100, seed=21, pattern="four")
    path = tmp_path_factory.mktemp("song") / "song.wav"
    sf.write(path, np.stack([audio, audio], axis=1), 44100)  # stereo 44.1 kHz: resampled, mixed down
    return path, beats


def test_dance_writes_every_format_and_is_reproducible(song, tmp_path: Path):
    path, beats = song
    out = tmp_path / "a.npz"
    r = livedance("dance", str(path), "-o", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert {"poses", "trans", "joints", "fps", "beats"} <= set(z.files)
        n = z["poses"].shape[0]
        assert z["poses"].shape == (n, 24, 3) and z["joints"].shape == (n, 24, 3) and z["trans"].shape == (n, 3)
        assert float(z["fps"]) == 60.0 and abs(n - 12.0 * 60) <= 1
        # The beats the engine tracked are the music's (after it locked).
        tracked = z["beats"]
        late = beats[beats > 4.0]
        assert np.all([np.min(np.abs(tracked - b)) < 0.07 for b in late[:-1]])
        first = {k: z[k].copy() for k in ("poses", "trans", "joints")}
    again = tmp_path / "b.npz"
    assert livedance("dance", str(path), "-o", str(again), "--seed", "3").returncode == 0
    with np.load(again) as z:
        for k, v in first.items():
            assert np.array_equal(z[k], v), f"{k} differs between two runs with one seed"
    for ext in (".bvh", ".pkl"):
        r = livedance("dance", str(path), "-o", str(tmp_path / f"c{ext}"), "--seed", "3")
        assert r.returncode == 0, r.stderr
        clip = load_motion(tmp_path / f"c{ext}")
        np.testing.assert_allclose(clip.joints()[::2][:100], first["joints"][::2][:100], atol=2e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["dance", "/nonexistent.wav", "-o", "x.npz"], "not found"),
        (["dance", "{song}", "-o", "x.txt"], "unknown extension"),
        (["dance", "{song}", "-o", "x.npz", "--checkpoint", "/nonexistent.pt"], "checkpoint"),
        (["perform", "--input", "{song}", "--osc", "localhost:notaport", "--seconds", "1"], "port"),
        (["perform", "--input", "{song}", "--dancers", "0", "--seconds", "1"], "dancers"),
    ],
)
def test_user_errors_are_one_line(song, tmp_path: Path, args: list[str], message: str):
    r = livedance(*[a.format(song=song[0]) for a in args], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0].lower() and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_perform_streams_osc_and_records_until_sigint(song, tmp_path: Path):
    path, _ = song
    rec = tmp_path / "live.npz"
    proc, rx = perform_to(path, rec)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(rx.packets) < 60 * 3 * 4:  # ~4 s of frames
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        rx.close()
    assert proc.returncode == 0, err
    msgs = rx.messages()
    frames = [p for a, p in msgs if a == "/livedance/frame"]
    assert len(frames) >= 200, f"only {len(frames)} frames arrived"
    idx = [p[0] for p in frames]
    assert idx == sorted(idx)
    pelvis = [p for a, p in msgs if a == "/livedance/d0/pelvis/pos"]
    assert len(pelvis) == len(frames) and all(len(p) == 3 for p in pelvis)
    # Recording was finalised on SIGINT and holds what was streamed.
    with np.load(rec) as z:
        assert z["poses"].shape[0] == len(frames)
        np.testing.assert_allclose(z["joints"][:, 0], np.array(pelvis), atol=1e-5)
    assert "performed" in out


@pytest.mark.slow
def test_perform_from_a_virtual_audio_device(pulse_sink, tmp_path: Path):
    audio, _ = drum_track(120, 10.0, 44100, seed=22, pattern="rock")
    wav = tmp_path / "drums.wav"
    sf.write(wav, audio, 44100)
    rec = tmp_path / "dev.npz"
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "perform", "--device", "pulse", "--no-window",
         "--seconds", "14", "--record", str(rec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        time.sleep(3.0)  # model load + warm-up before the music starts
        player = subprocess.Popen(["paplay", f"--device={pulse_sink.sink}", str(wav)])
        player.wait(timeout=30)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    with np.load(rec) as z:
        tempo = z["tempo"]
        joints = z["joints"]
    n = len(tempo)
    assert n > 10 * 60
    # While the music played the tracker heard 120 BPM and the body moved.
    assert np.median(np.abs(tempo[n // 3 : 2 * n // 3] - 120)) < 3
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=1) * 60
    assert speed[n // 3 : 2 * n // 3].mean() > 0.3


def test_dance_renders_video_with_the_music(tmp_path: Path):
    audio, _ = drum_track(120, 3.0, 44100, seed=23)
    song = tmp_path / "short.wav"
    sf.write(song, audio, 44100)
    video = tmp_path / "d.mp4"
    r = livedance("--set", "viewer.width=320", "--set", "viewer.height=180",
                  "dance", str(song), "-o", str(tmp_path / "d.npz"), "--video", str(video))
    assert r.returncode == 0, r.stderr
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,nb_frames,duration", "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()
    streams = {line.split(",")[0]: line.split(",") for line in probe}
    assert int(streams["video"][2]) == 180  # 3 s at 60 fps
    assert abs(float(streams["audio"][1]) - 3.0) < 0.05


@pytest.mark.slow
def test_live_video_from_a_device_has_the_captured_sound(pulse_sink, tmp_path: Path):
    """perform --device --video: the video carries what the device heard (it was
    silent), as long as the video; --play with a device is a one-line error."""
    audio, _ = drum_track(120, 8.0, 44100, seed=24, pattern="four")
    wav = tmp_path / "drums.wav"
    sf.write(wav, audio, 44100)
    video = tmp_path / "live.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "--set", "viewer.width=160", "--set", "viewer.height=90",
         "--set", "viewer.msaa=0", "perform", "--device", "pulse", "--no-window", "--seconds", "12",
         "--video", str(video)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The music loops until perform ends (its start-up time varies with the machine's load).
        while proc.poll() is None:
            subprocess.run(["paplay", f"--device={pulse_sink.sink}", str(wav)], timeout=30)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert not list(tmp_path.glob(".live*")), list(tmp_path.iterdir())  # scratch video and recording gone
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()
    streams = {line.split(",")[0]: float(line.split(",")[1]) for line in probe}
    assert set(streams) == {"video", "audio"}, probe
    assert abs(streams["audio"] - streams["video"]) < 0.3, streams
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-f", "f32le", "-ac", "1", "-ar", "8000", "-"],
        capture_output=True, timeout=60,
    ).stdout
    heard = np.frombuffer(pcm, dtype=np.float32)
    assert np.sqrt(np.mean(heard**2)) > 0.01  # not silent
    # The drums, at 120 BPM: the onset envelope repeats every 0.5 s.
    env = np.abs(heard[: len(heard) // 80 * 80]).reshape(-1, 80).mean(axis=1)  # 100 Hz envelope
    onset = np.maximum(np.diff(env), 0)
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), "full")[len(onset) - 1 :]
    assert abs(int(np.argmax(ac[30:80])) + 30 - 50) <= 2, np.argmax(ac[30:80]) + 30
    r = livedance("perform", "--device", "pulse", "--play", "--no-window", "--seconds", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--play" in r.stderr, r.stderr
