"""A live video's sound lines up with its pictures, to the frame.

`perform --device pulse --video` renders the frames it shows and muxes in the
sound the device captured. The reference here is independent of that chain:
clicks are played into a PulseAudio null sink by a player that notes when
each one reached the (virtual) DAC, and the frames go over OSC to a loopback
receiver that notes each one's presentation instant (its bundle timetag).
The click played at instant P belongs under the video frame that was shown
at P; the test finds each click in the video's decoded sound track and
measures how far from that frame it sits. The same clicks through the
offline path (`livedance dance --video`) measure the encoder's own offset.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.bench.live_soak import RATE, FrameReceiver, Player, offsets_to_nearest

FPS = 60.0
CLICK_EVERY = 0.5  # seconds
SECONDS = 14


def _clicks(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A click (4 ms of decaying noise) every half second, over a soft bass
    pulse the tracker can follow; the click times, seconds."""
    rng = np.random.default_rng(5)
    n = int(seconds * RATE)
    audio = np.zeros(n, np.float32)
    at = np.arange(0.25, seconds - 0.1, CLICK_EVERY)
    burst = (rng.standard_normal(int(0.004 * RATE)) * np.exp(-np.arange(int(0.004 * RATE)) / 40.0)).astype(np.float32)
    for t in at:
        i = int(round(t * RATE))
        audio[i : i + burst.size] += 0.8 * burst
    return audio, at


def _found(audio: np.ndarray, rate: float) -> np.ndarray:
    """Onset times (s) of the clicks in ``audio``: first sample over half the
    peak after at least 0.2 s under it."""
    x = np.abs(audio)
    loud = np.flatnonzero(x > 0.5 * x.max())
    if not loud.size:
        return np.zeros(0)
    starts = loud[np.concatenate([[True], np.diff(loud) > int(0.2 * rate)])]
    return starts / rate


def _decoded(video: Path) -> np.ndarray:
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"],
        capture_output=True, timeout=60, check=True,
    ).stdout
    return np.frombuffer(pcm, dtype=np.float32)


def test_the_encoders_own_offset_is_under_a_millisecond(tmp_path: Path):
    audio, at = _clicks(6.0)
    song = tmp_path / "clicks.wav"
    sf.write(song, audio, RATE)
    video = tmp_path / "offline.mp4"
    r = subprocess.run(
        [sys.executable, "-m", "livedance.cli", "--set", "viewer.width=160", "--set", "viewer.height=90",
         "--set", "viewer.msaa=0", "dance", str(song), "-o", str(tmp_path / "o.npz"), "--video", str(video)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    off = offsets_to_nearest(_found(_decoded(video), RATE), at)
    assert len(off) >= 10 and np.max(np.abs(off)) < 0.001, off


@pytest.mark.slow
def test_live_video_sound_sits_under_the_frame_shown_when_it_played(pulse_sink, tmp_path: Path):
    audio, at = _clicks(SECONDS + 30.0)  # longer than perform's start-up plus its run
    rx = FrameReceiver()
    player = Player(audio)
    video = tmp_path / "live.mp4"
    player.stream.start()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "livedance.cli", "--set", "viewer.width=160", "--set", "viewer.height=90",
             "--set", "viewer.msaa=0", "perform", "--device", "pulse", "--no-window", "--seconds", str(SECONDS),
             "--video", str(video), "--osc", f"127.0.0.1:{rx.port}"],
            capture_output=True, text=True, timeout=180,
        )
    finally:
        player.stream.stop()
        player.stream.close()
        rx.close()
    assert r.returncode == 0, r.stderr[-2000:]
    frames = np.array(rx.frames, dtype=np.float64)
    frames = frames[np.argsort(frames[:, 0])]
    index, arrival, music, late = frames.T
    # Each frame's presentation instant on the monotonic clock (its timetag).
    shown = arrival - late
    assert np.all(np.diff(index) == 1), "frames missing over loopback"
    # Where each played click belongs in the video: under the frame shown when
    # it played. A live video's frame k is the frame of music time
    # first + k / fps (the writer follows the music clock), so that is the
    # music time shown at that instant, less the first frame's.
    played = player.played_at(np.round(at * RATE).astype(np.int64))
    played = played[np.isfinite(played) & (played > shown[0] + 3.0) & (played < shown[-5])]  # after 3 s: the clock settles
    belongs = np.interp(played, shown, music) - music[0]
    found = _found(_decoded(video), RATE)
    found = found[(found > belongs[0] - CLICK_EVERY / 2) & (found < belongs[-1] + CLICK_EVERY / 2)]
    assert len(found) >= 0.8 * len(belongs), (len(found), len(belongs))
    off = offsets_to_nearest(found, belongs)
    print("live video: click offsets from the frame shown when it played, ms:", np.round(off * 1000, 1).tolist(),
          np.round(np.percentile(off * 1000, [0, 50, 100]), 1), "n", len(off), "clicks expected", len(belongs))
    # The median within two frames (33 ms), nine clicks in ten within six:
    # the chain is PortAudio's input latency figure and the music clock's
    # smoothing of bursty device blocks, which wanders with the machine's
    # load (median +17 to +23 ms, p90 40-90 ms, measured at load 7-8 on 2
    # cores); the encoder adds under 1 ms (above). A video whose frames
    # ignored the music clock (slots skipped by a stall) or a mux cut at the
    # wrong instant is off by far more.
    assert abs(np.median(off)) < 2 / FPS, np.round(off * 1000, 1)
    assert np.percentile(np.abs(off), 90) < 6 / FPS, np.round(off * 1000, 1)
