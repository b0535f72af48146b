"""``bench soak --live`` runs the real perform (PulseAudio device, threads, OSC,
recording, viewer on Xvfb) and judges it from outside: a short run here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_live_soak_reports_what_a_show_needs():
    r = subprocess.run(
        [sys.executable, "-m", "livedance.cli", "bench", "soak", "--live", "--seconds", "25", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    frames = result["frames"]
    # Every frame perform sent over OSC reached the loopback receiver, in order of index.
    assert frames["performed"] > 25 * 40 and frames["osc_received"] == frames["performed"], frames
    assert frames["osc_missing_indices"] == 0
    assert result["recording_frames"] == frames["performed"]  # the recording holds them all
    assert result["exit_code"] == 0 and result["stderr_lines"] == 0
    assert {"p50", "p99", "max"} <= set(result["frame_interval_ms"])
    gaps = result["dropped"]["music_time_gaps_after_startup"]
    assert len(result["music_time_gaps_at"]) == min(gaps, 100), result["music_time_gaps_at"]
    assert all(len(g) == 3 for g in result["music_time_gaps_at"])
    assert result["cpu_steal_s"] is not None and result["cpu_steal_s"] >= 0.0  # Linux: /proc/stat
    assert len(result["rss_mb_every_minute"]) >= 1 and result["cpu_per_wall_second"] > 0.05
    # The danced beats were matched against the played ones (the judge saw the dance).
    assert result["drift"]["danced_beats_matched"] > 10, result["drift"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_terminated_live_soak_takes_its_sound_server_display_and_perform_down():
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "bench", "soak", "--live", "--seconds", "600", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    children: list[int] = []
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first progress line: perform listens
        assert line.startswith("soak:"), line + proc.stderr.read()[-2000:]
        children += [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                     text=True).stdout.split()]
        assert len(children) >= 2, children  # PulseAudio, perform (and Xvfb where present)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10.0
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in children if _alive(p)], "left running after SIGTERM"
    finally:
        for pid in [proc.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
