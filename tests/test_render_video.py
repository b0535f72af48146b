"""Offscreen video: EGL render -> ffmpeg pipe -> MP4 with the music, checked with ffprobe."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.errors import UserError
from livedance.outputs.video import VideoWriter, frames_from_motion, load_motion, render_frames
from livedance.skeleton import REST_PELVIS_HEIGHT

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (apt-get install ffmpeg)")

FPS = 20.0
SR = 22050
SECONDS = 1.5
W, H = 96, 64


def probe(path: Path) -> dict[str, dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def motion(n: int) -> tuple[np.ndarray, np.ndarray]:
    poses = np.zeros((n, 24, 3))
    poses[:, 16, 2] = -1.0 + 0.6 * np.sin(np.arange(n) / 3.0)  # a waving arm
    trans = np.tile([0.0, REST_PELVIS_HEIGHT, 0.0], (n, 1))
    return poses, trans


@pytest.fixture
def song(tmp_path: Path) -> Path:
    t = np.arange(int(SR * SECONDS)) / SR
    path = tmp_path / "song.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    return path


def aac_frame_seconds() -> float:
    # ffmpeg's -shortest cuts audio on encoder-frame boundaries (1024 samples).
    return 1024 / SR


def test_video_frames_duration_and_audio_length_match(tmp_path: Path, song: Path) -> None:
    n = int(SECONDS * FPS)
    frames = frames_from_motion(*motion(n), FPS, beats=np.arange(0, SECONDS, 0.5))
    out = tmp_path / "dance.mp4"
    written = render_frames(frames, out, song, FPS, (W, H), progress=False)
    assert written == n
    streams = probe(out)
    video, audio = streams["video"], streams["audio"]
    assert int(video["nb_read_frames"]) == n
    assert (int(video["width"]), int(video["height"])) == (W, H)
    assert abs(float(video["duration"]) - n / FPS) < 1e-3
    assert abs(float(audio["duration"]) - SECONDS) <= aac_frame_seconds() + 0.01
    # The picture moves: first and last frames differ (the arm waved).
    first, last = (
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(out), "-vf", f"select=eq(n\\,{k})", "-frames:v", "1",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout
        for k in (0, n - 1)
    )
    assert len(first) == W * H * 3 and first != last


def test_audio_is_cut_to_the_video_and_offset(tmp_path: Path, song: Path) -> None:
    # Half a second of dance starting 0.5 s into the song: audio is 0.5 s long.
    n = int(0.5 * FPS)
    frames = frames_from_motion(*motion(n), FPS)
    out = tmp_path / "cut.mp4"
    render_frames(frames, out, song, FPS, (W, H), progress=False, audio_offset=0.5)
    streams = probe(out)
    assert int(streams["video"]["nb_read_frames"]) == n
    assert abs(float(streams["audio"]["duration"]) - 0.5) <= aac_frame_seconds() + 0.01


def test_live_send_never_blocks_and_keeps_every_frame(tmp_path: Path, song: Path) -> None:
    n = int(SECONDS * FPS)
    frames = frames_from_motion(*motion(n), FPS)
    out = tmp_path / "live.mp4"
    with VideoWriter(out, W, H, FPS, song) as writer:
        for f in frames:
            writer.send(f)  # queued: rendering happens on the writer's own thread
    assert writer.frames_written == n and writer.frames_repeated == 0
    assert int(probe(out)["video"]["nb_read_frames"]) == n


def test_live_backlog_repeats_frames_instead_of_growing(tmp_path: Path) -> None:
    n = 30
    frames = frames_from_motion(*motion(n), FPS)
    out = tmp_path / "backlog.mp4"
    with VideoWriter(out, W, H, FPS, None, max_backlog=2) as writer:
        for f in frames:
            writer.send(f)
    # However far behind the worker fell, the video has one picture per frame sent.
    assert writer.frames_written == n
    assert int(probe(out)["video"]["nb_read_frames"]) == n


def test_live_video_follows_the_music_clock_through_skips_and_steps_back(tmp_path: Path) -> None:
    n = 30
    frames = frames_from_motion(*motion(n), FPS)
    # The frame thread skipped slots 10-14 (a stall), then the music clock
    # stepped back by two frames (frames 22 and 23 repeat instants 20, 21).
    sent = frames[:10] + frames[15:22] + [dataclasses.replace(f, time=f.time - 2 / FPS) for f in frames[22:]]
    out = tmp_path / "clock.mp4"
    with VideoWriter(out, W, H, FPS, None) as writer:
        for f in sent:
            writer.send(f)
    # One video frame per music instant 0 .. 27: skipped ones hold the
    # picture, instants already in the video are not written twice.
    assert writer.slots_held == 5 and writer.frames_left_out == 2
    assert int(probe(out)["video"]["nb_read_frames"]) == 28


def test_bad_video_requests_are_user_errors(tmp_path: Path, song: Path) -> None:
    with pytest.raises(UserError, match="mp4"):
        VideoWriter(tmp_path / "x.gif", W, H, FPS)
    with pytest.raises(UserError, match="even"):
        VideoWriter(tmp_path / "x.mp4", 97, H, FPS)
    with pytest.raises(UserError, match="no such file"):
        VideoWriter(tmp_path / "x.mp4", W, H, FPS, tmp_path / "missing.wav")
    with pytest.raises(UserError, match="does not exist"):
        VideoWriter(tmp_path / "nope" / "x.mp4", W, H, FPS)


def test_render_command_writes_a_video(tmp_path: Path, song: Path) -> None:
    from livedance.cli import main

    poses, trans = motion(10)
    np.savez(tmp_path / "m.npz", poses=poses, trans=trans, fps=FPS, beats=np.array([0.0, 0.5]))
    assert load_motion(tmp_path / "m.npz")[2] == FPS
    out = tmp_path / "m.mp4"
    code = main(["render", str(tmp_path / "m.npz"), "-o", str(out), "--audio", str(song), "--size", f"{W}x{H}"])
    assert code == 0
    assert int(probe(out)["video"]["nb_read_frames"]) == 10
    assert main(["render", str(tmp_path / "missing.npz"), "-o", str(out)]) == 2


def test_no_egl_is_a_one_line_error_with_the_fix(tmp_path: Path) -> None:
    """A machine without a loadable libEGL: `livedance render` says what to install."""
    import os
    import sys

    fake = tmp_path / "lib"
    fake.mkdir()
    for name in ("libEGL.so.1", "libEGL.so"):
        (fake / name).write_text("not a library")  # dlopen finds this first and fails
    poses, trans = motion(3)
    np.savez(tmp_path / "m.npz", poses=poses, trans=trans, fps=FPS)
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake))
    proc = subprocess.run(
        [sys.executable, "-m", "livedance.cli", "render", str(tmp_path / "m.npz"), "-o", str(tmp_path / "x.mp4"),
         "--size", f"{W}x{H}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("livedance:")]
    assert len(lines) == 1 and "EGL" in lines[0] and "apt-get install libegl1" in lines[0]
    assert not (tmp_path / "x.mp4").exists()  # no empty, broken video left behind
