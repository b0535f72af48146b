"""The performer's first minute: how long ``livedance perform`` takes to listen,
to hear the first beat and to dance, warm and cold (part of ``bench engine``).

A real ``perform --input FILE --no-window --osc`` process, as a user starts
it, dancing to a 120 BPM drum track; the times are seconds from the
process's start (``Popen``) to:

* ``input_open_s``: its "listening" line (printed once the input delivers);
* ``first_frame_s``: the first OSC frame on a loopback receiver;
* ``first_beat_s``: the first ``/livedance/beat`` event (tracker locked);
* ``first_dance_s``: its "dance starts" log line (the body leaves the idle groove).

``cold``: the page cache of the virtual environment's and the package's
files is dropped first (``posix_fadvise(DONTNEED)``; pages other running
processes have mapped stay, so on a shared machine "cold" is partly warm).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_FRAME = b"/livedance/frame\x00"
_BEAT = b"/livedance/beat\x00"


def drop_page_cache(*roots: Path) -> int:
    """Ask the kernel to drop cached pages of every file under ``roots``; returns files touched."""
    n = 0
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                try:
                    fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                except OSError:
                    pass
                finally:
                    os.close(fd)
    return n


def first_minute(song: str, seconds: float = 14.0) -> dict[str, Any]:
    """One ``perform`` run: the start-up times (None where it never got there)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    port = sock.getsockname()[1]
    marks: dict[str, float] = {}
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                packet = sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            now = time.monotonic()
            if _FRAME in packet:
                marks.setdefault("frame", now)
            if _BEAT in packet:
                marks.setdefault("beat", now)

    def lines(stream: Any, key: str, needle: str) -> None:
        for line in stream:
            if needle in line:
                marks.setdefault(key, time.monotonic())

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "-v", "perform", "--input", song, "--no-window",
         "--seconds", str(seconds), "--osc", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    readers = [
        threading.Thread(target=lines, args=(proc.stdout, "open", "listening to"), daemon=True),
        threading.Thread(target=lines, args=(proc.stderr, "dance", "dance starts"), daemon=True),
    ]
    for r in readers:
        r.start()
    proc.wait(timeout=seconds + 180)
    for r in readers:
        r.join(5)
    stop.set()
    rx.join(2)
    sock.close()

    def at(key: str) -> float | None:
        return round(marks[key] - t0, 2) if key in marks else None

    return {
        "input_open_s": at("open"),
        "first_frame_s": at("frame"),
        "first_beat_s": at("beat"),
        "first_dance_s": at("dance"),
        "exit_code": proc.returncode,
    }


def measure(sample_rate: int = 44100) -> dict[str, Any]:
    """Cold, then warm: ``{"cold": {...}, "warm": {...}}``."""
    import soundfile as sf

    import livedance
    from livedance.music.synth import drum_track

    audio, _ = drum_track(120, 14.0, sample_rate, seed=1, pattern="four")
    with tempfile.TemporaryDirectory() as tmp:
        song = str(Path(tmp) / "drums.wav")
        sf.write(song, audio, sample_rate)
        files = drop_page_cache(Path(sys.prefix), Path(livedance.__file__).parent)
        cold = first_minute(song)
        cold["files_evicted"] = files
        warm = first_minute(song)
    return {"cold": cold, "warm": warm}
