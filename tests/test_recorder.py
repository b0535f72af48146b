"""The recorder streams frames to disk while the show runs and writes the motion file at close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livedance import skeleton as sk
from livedance.frames import BeatEvent, Frame
from livedance.motion.io import load_motion
from livedance.outputs.recorder import Recorder


def frame(i: int, dancers: int, rng: np.random.Generator) -> Frame:
    rot = sk.axis_angle_to_matrix(rng.normal(size=(dancers, 24, 3)) * 0.4)
    trans = rng.normal(size=(dancers, 3))
    beats = (BeatEvent(index=i, time=i / 60.0, tempo=120.0),) if i % 30 == 0 else ()
    return Frame(index=i, time=i / 60.0, wall_time=0.0, trans=trans, rotations=rot, joints=np.zeros((dancers, 24, 3)),
                 tempo=120.0 + i, beats=beats)


def test_frames_go_to_disk_as_they_come_and_round_trip_with_changing_dancer_counts(tmp_path: Path):
    rng = np.random.default_rng(0)
    counts = [1] * 40 + [3] * 50 + [2] * 30
    frames = [frame(i, n, rng) for i, n in enumerate(counts)]
    rec = Recorder(tmp_path / "show.npz", 60.0)
    scratch = lambda: list(tmp_path.glob(".show.npz.*.frames"))  # noqa: E731
    sizes = []
    for f in frames:
        rec.send(f)
        rec._scratch.flush()
        sizes.append(scratch()[0].stat().st_size)
    # Each frame's record is on disk once sent: its 4-word head, beat times,
    # then rotations and positions of all dancers (float64), after a 16-byte file header.
    beats = [len(f.beats) for f in frames]
    assert sizes[-1] == 16 + sum((4 + k + n * (24 * 9 + 3)) * 8 for n, k in zip(counts, beats)) and np.all(np.diff(sizes) > 0)
    rec.close()
    assert not scratch(), "the scratch file must go once the motion file is written"
    z = np.load(tmp_path / "show.npz")
    np.testing.assert_array_equal(z["dancers"], counts)
    np.testing.assert_allclose(z["all_rotations"][50, :3], frames[50].rotations)
    np.testing.assert_allclose(z["all_trans"][100, :2], frames[100].trans)
    assert np.isnan(z["all_trans"][100, 2]).all() and np.isnan(z["all_trans"][0, 1:]).all()
    np.testing.assert_allclose(z["trans"], np.stack([f.trans[0] for f in frames]))
    np.testing.assert_allclose(z["tempo"], [f.tempo for f in frames])
    np.testing.assert_allclose(z["beats"], [i / 60.0 for i in range(0, len(frames), 30)])


def test_one_dancer_to_bvh(tmp_path: Path):
    rng = np.random.default_rng(1)
    frames = [frame(i, 1, rng) for i in range(20)]
    rec = Recorder(tmp_path / "show.bvh", 60.0)
    for f in frames:
        rec.send(f)
    rec.close()
    rec.close()  # every exit path calls it; the second call does nothing
    motion = load_motion(tmp_path / "show.bvh")
    np.testing.assert_allclose(motion.trans, np.stack([f.trans[0] for f in frames]), atol=1e-4)


def _close_peak(tmp_path: Path, name: str, n: int) -> tuple[float, float]:
    """Peak traced memory (MB) while closing a recording of ``n`` frames, and the scratch size (MB)."""
    import tracemalloc

    rng = np.random.default_rng(2)
    f = frame(1, 1, rng)
    rec = Recorder(tmp_path / name, 60.0)
    for _ in range(n):
        rec.send(f)
    size = rec.scratch.stat().st_size / 1e6
    tracemalloc.start()
    try:
        rec.close()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return peak, size


@pytest.mark.slow
def test_closing_a_long_recording_takes_bounded_memory(tmp_path: Path):
    """Finalising streams the scratch: memory while writing does not grow with
    the recording's length (it loaded the whole scratch: +200 MB after 10 min live)."""
    for ext in (".npz", ".pkl"):  # .bvh shares the chunked reader (and is slow to format)
        short, _ = _close_peak(tmp_path, "short" + ext, 5_000)
        long_, size = _close_peak(tmp_path, "long" + ext, 25_000)  # 7 min at 60 fps
        assert long_ < 1.3 * short + 5.0 and long_ < 0.5 * size, (ext, short, long_, size)
    z = np.load(tmp_path / "long.npz")
    assert z["poses"].shape == (25_000, 24, 3) and len(z["tempo"]) == 25_000
    assert load_motion(tmp_path / "long.pkl").trans.shape == (25_000, 3)


def test_streamed_formats_match_the_in_memory_writers(tmp_path: Path):
    from livedance.motion.io import save_motion

    rng = np.random.default_rng(3)
    frames = [frame(i, 1, rng) for i in range(5000)]  # over two chunks of 2048
    rot = np.stack([f.rotations[0] for f in frames])
    trans = np.stack([f.trans[0] for f in frames])
    for ext in (".npz", ".bvh", ".pkl"):
        rec = Recorder(tmp_path / f"streamed{ext}", 60.0)
        for f in frames:
            rec.send(f)
        rec.close()
        save_motion(tmp_path / f"direct{ext}", rot, trans, 60.0)
        a, b = load_motion(tmp_path / f"streamed{ext}"), load_motion(tmp_path / f"direct{ext}")
        np.testing.assert_array_equal(a.trans, b.trans)
        np.testing.assert_array_equal(a.rotations, b.rotations)
    assert (tmp_path / "streamed.bvh").read_bytes() == (tmp_path / "direct.bvh").read_bytes()


@pytest.mark.slow
def test_a_killed_performs_scratch_is_recovered(tmp_path: Path):
    """SIGKILL (what a power cut is to the process) mid-recording: the scratch
    stays, `livedance recover` writes every frame it holds (all but the last
    second at most), and a torn last record is dropped, not fatal."""
    import signal
    import subprocess
    import sys
    import time

    import soundfile as sf

    from livedance.music.synth import drum_track
    from loopback import perform_to

    audio, _ = drum_track(120, 30.0, 44100, seed=9)
    song = tmp_path / "song.wav"
    sf.write(song, audio, 44100)
    out = tmp_path / "show.npz"
    proc, rx = perform_to(song, out, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while rx.frames() < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        rx.close()
    sent = rx.frames()
    (scratch,) = tmp_path.glob(".show.npz.*.frames")
    assert not out.exists()
    recovered = tmp_path / "recovered.npz"
    r = subprocess.run([sys.executable, "-m", "livedance.cli", "recover", str(scratch), "-o", str(recovered)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    n = load_motion(recovered).joints().shape[0]
    assert sent - 90 <= n <= sent, (n, sent)  # flushed every second: at most ~1 s (+ in-flight frames) lost
    with np.load(recovered) as z:
        assert len(z["tempo"]) == n and np.isfinite(z["joints"]).all()
    # A power cut can leave half a record at the end: it is dropped.
    torn = tmp_path / ".torn.frames"
    torn.write_bytes(scratch.read_bytes()[:-1000])
    r = subprocess.run([sys.executable, "-m", "livedance.cli", "recover", str(torn), "-o", str(tmp_path / "t.bvh")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and load_motion(tmp_path / "t.bvh").trans.shape[0] == n - 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "livedance.cli", "recover", str(song), "-o", str(tmp_path / "x.npz")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "scratch" in r.stderr, r.stderr
