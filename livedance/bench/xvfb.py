"""A private virtual X display, for the benchmarks and tests that open a real window."""

from __future__ import annotations

import os
import shutil
import subprocess


def start_xvfb(width: int = 640, height: int = 360) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start Xvfb on a free display; ``(process, ":N")``, or None without Xvfb.

    ``-displayfd`` makes Xvfb pick the display number and write it once it
    accepts clients, so nothing races a fixed number or polls for a socket.
    The caller terminates the process.
    """
    if shutil.which("Xvfb") is None:
        return None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        proc.wait()
        return None
    return proc, f":{number}"
