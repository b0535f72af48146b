"""Kiosk hardening, end to end: `livedance perform --kiosk` on an X server
started here (Xvfb, Mesa GLX), listening to a virtual audio device on a
private PulseAudio server. The test kills and restores the audio device,
freezes the whole process past the render watchdog's timeout (SIGSTOP /
SIGCONT: the GL loop stalls, as with a hung driver) and finally kills the X
server, and reads the heartbeat file the kiosk rewrites every second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livedance.bench.xvfb import start_xvfb
from livedance.motion.io import load_motion
from test_faults import OscFrames, _fault_summary, _play, _private_pulse, fault  # noqa: F401 - fixture

SCREEN = (480, 270)


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    started = start_xvfb(*SCREEN)
    if started is None:
        pytest.skip("Xvfb is missing or did not start (apt-get install xvfb)")
    return started


def _beat(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_kiosk_survives_audio_loss_and_a_stalled_render_loop(tmp_path: Path):
    for tool in ("Xvfb", "pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    from test_faults import music, write

    song = write(tmp_path / "song.wav", music(90.0, 44100, seed=9), 44100, "PCM_16")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    server = _private_pulse(runtime)
    player = _play(runtime, song)
    xvfb, display = _xvfb()
    heartbeat = tmp_path / "heartbeat.json"
    rec = tmp_path / "kiosk.npz"
    rx = OscFrames()
    env = {**os.environ, "DISPLAY": display, "PULSE_SERVER": f"unix:{runtime}/native", "PULSE_SOURCE": "vanishing.monitor"}
    err = open(tmp_path / "kiosk.err", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli",
         "--set", f"viewer.heartbeat={json.dumps(str(heartbeat))}", "--set", "viewer.watchdog_seconds=1.0",
         "--set", "viewer.msaa=0", "--set", "audio.retry_seconds=0.5", "--set", "audio.stall_seconds=0.5",
         "perform", "--kiosk", "--device", "pulse", "--osc", f"127.0.0.1:{rx.port}", "--seconds", "120",
         "--record", str(rec)],
        env=env, stdout=subprocess.DEVNULL, stderr=err, text=True,
    )
    seen: dict[str, dict] = {}
    try:
        t_end = time.monotonic() + 90
        while _beat(heartbeat).get("frames_received", 0) < 120:
            assert proc.poll() is None, f"kiosk exited {proc.returncode}"
            assert time.monotonic() < t_end, "no heartbeat with frames"
            time.sleep(0.2)
        seen["dancing"] = _beat(heartbeat)

        # 1. The audio device vanishes for 4 s, then comes back.
        server.kill()
        server.wait()
        player.kill()
        n0 = rx.count
        time.sleep(4.0)
        lost_fps = (rx.count - n0) / 4.0
        seen["audio lost"] = _beat(heartbeat)
        server = _private_pulse(runtime)
        player = _play(runtime, song)
        time.sleep(4.0)
        seen["audio back"] = _beat(heartbeat)

        # 2. The whole process hangs for 2.5 s (past the 1 s watchdog, short
        #    of the 6 s after which it would exit for its supervisor).
        proc.send_signal(signal.SIGSTOP)
        time.sleep(2.5)
        proc.send_signal(signal.SIGCONT)
        t_end = time.monotonic() + 20
        while _beat(heartbeat).get("recoveries", 0) < 1 and time.monotonic() < t_end:
            time.sleep(0.2)
        time.sleep(2.0)
        seen["after the stall"] = _beat(heartbeat)
        assert proc.poll() is None, f"kiosk exited {proc.returncode} after the stall"

        # 3. The X server dies: no GL context can be rebuilt in this process.
        xvfb.kill()
        xvfb.wait()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        for p in (proc, player, server, xvfb):
            if p.poll() is None:
                p.kill()
                p.wait()
        rx.close()
        err.seek(0)
        stderr = err.read()
        err.close()
    print(json.dumps(seen, indent=1), "\nexit after X server loss:", code, "\n", stderr[-1500:])
    d, lost, back, stall = seen["dancing"], seen["audio lost"], seen["audio back"], seen["after the stall"]
    with fault("kiosk: audio device killed and restored"):
        _check_audio(d, lost, back, lost_fps, stderr)
    with fault("kiosk: render loop stalled past the watchdog (SIGSTOP 2.5 s)"):
        _check_stall(back, stall, stderr)
    with fault("kiosk: X server killed"):
        _check_x_loss(code, stderr, rec)


def _check_audio(d: dict, lost: dict, back: dict, lost_fps: float, stderr: str) -> None:
    # Alive throughout the audio loss: heartbeat fresh, window drawing, engine frames arriving at ~60 fps.
    assert lost["time"] > d["time"] and lost["frames_drawn"] > d["frames_drawn"]
    assert lost["frames_received"] > d["frames_received"] and lost_fps >= 50, lost_fps
    assert "lost" in stderr and "is back" in stderr
    assert back["frames_received"] > lost["frames_received"]


def _check_stall(back: dict, stall: dict, stderr: str) -> None:
    # The watchdog noticed the stalled loop and rebuilt the window + GL context.
    assert stall["recoveries"] >= 1 and stall["frames_drawn"] > back["frames_drawn"], stall
    assert "recreating window and GL context" in stderr


def _check_x_loss(code: int | None, stderr: str, rec: Path) -> None:
    # Losing the X server ends the process (no GL context can be rebuilt
    # without it) in order: exit 75 (EX_TEMPFAIL) for the supervisor (systemd
    # Restart=always) to restart it, one log line, no abort, no C++ trace;
    # the recording is written.
    assert code == 75, code
    assert "lost the X server" in stderr and "c10::Error" not in stderr and "Traceback" not in stderr
    assert load_motion(rec).joints().shape[0] > 600
