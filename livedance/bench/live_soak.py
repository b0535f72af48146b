"""``livedance bench soak --live --seconds N --json``: ``perform`` as a user runs
it, for N seconds of real time, judged from outside.

Everything is real: a private PulseAudio server with a null sink; music
played into it by this process (a 188 s programme looped: 120 BPM, a
silence, 120 -> 96 BPM, a silence, 128 BPM), whose every beat's play time is
known from PortAudio's DAC timestamps; ``livedance perform --device pulse``
capturing the sink's monitor on its own threads, streaming OSC to a loopback
receiver here that checks every frame index, recording to ``.npz``, and
drawing its viewer window on an Xvfb display (or, without Xvfb, rendering
``--video`` offscreen). It reports:

* ``frames``: performed (its closing line), OSC received, missing indices;
* ``dropped``: perform's own count, and music-time gaps seen after start-up;
* ``frame_interval_ms``: p50 / p99 / max of OSC arrival intervals after start-up;
* ``rss_mb``: the perform process's VmRSS every minute, and its growth after warm-up;
* ``cpu``: perform's CPU seconds per wall second (1.0 = one core);
* ``drift``: the danced beats (kinematic beats of the recorded joints, at the
  OSC arrival time of their frame; the dancer stops on every beat,
  ``engine.beat_hit`` 1, so they are sharp) minus the played music's nearest known
  beat: the median over each whole pass of the programme after warm-up and
  how far those stray over the run (``drift_ms``), the least-squares trend
  (ms per hour), and the per-minute medians and their spread (``minute_wander_ms``:
  load bends the music clock for a minute at a time).

A machine shared with other work shows up in ``load_average``.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from livedance.bench.loopback import LoopbackReceiver
from livedance.bench.xvfb import start_xvfb
from livedance.errors import UserError
from livedance.outputs.osc_packing import BUNDLE_HEADER, NTP_UNIX_OFFSET

log = logging.getLogger(__name__)

RATE = 44100
FPS = 60.0
PART_SECONDS = 20.0  # the programme's stretches over which the offset is reported
_FRAME = b"/livedance/frame\x00\x00\x00\x00,if\x00"


def programme(sr: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """The looped music (mono float32) and its beat times, seconds."""
    from livedance.music.synth import drum_track

    parts = [
        drum_track(120, 60.0, sr, seed=1, pattern="rock"),
        (np.zeros(int(8 * sr), np.float32), np.zeros(0)),
        drum_track(120, 60.0, sr, seed=2, pattern="four", tempo=[(30.0, 96.0)]),
        (np.zeros(int(8 * sr), np.float32), np.zeros(0)),
        drum_track(128, 52.0, sr, seed=3, pattern="rock"),
    ]
    audio, beats, at = [], [], 0.0
    for a, b in parts:
        audio.append(np.asarray(a, np.float32))
        beats.append(np.asarray(b, np.float64) + at)
        at += len(a) / sr
    return np.concatenate(audio) * 0.8, np.concatenate(beats)


class Player:
    """Loops ``audio`` into the default output; notes when each block is played
    (PortAudio's DAC time, converted to ``time.monotonic()``)."""

    def __init__(self, audio: np.ndarray) -> None:
        import sounddevice as sd

        self.audio = np.concatenate([audio, audio[:RATE]])  # a second of wrap-around: blocks never split
        self.length = len(audio)
        self.pos = 0  # samples played since start
        self.blocks: list[tuple[int, float]] = []  # (first sample, its monotonic play time)
        self.stream = sd.OutputStream(device="pulse", samplerate=RATE, channels=1, dtype="float32", callback=self._callback)

    def _callback(self, out: np.ndarray, frames: int, info: Any, status: Any) -> None:
        start = self.pos % self.length
        out[:, 0] = self.audio[start : start + frames]
        dac = info.outputBufferDacTime - info.currentTime + time.monotonic()
        self.blocks.append((self.pos, dac))
        self.pos += frames

    def played_at(self, samples: np.ndarray) -> np.ndarray:
        """Monotonic play times of absolute sample indices (interpolated between blocks)."""
        b = np.array(self.blocks)
        return np.interp(samples, b[:, 0], b[:, 1], left=np.nan, right=np.nan)


class FrameReceiver(LoopbackReceiver):
    """The OSC receiver: (index, arrival, music time, lateness) of every frame;
    lateness is how long after the presentation time its bundle's timetag
    names the frame arrived."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, float, float, float]] = []
        super().__init__()

    def handle(self, packet: memoryview) -> None:
        p = bytes(packet)
        at = p.find(_FRAME)
        if at >= 0:
            index, t = struct.unpack_from(">if", p, at + len(_FRAME))
            late = math.nan  # arrival wall time - the bundle's timetag
            if p.startswith(BUNDLE_HEADER):
                tag = struct.unpack_from(">Q", p, len(BUNDLE_HEADER))[0]
                late = time.time() - (tag / 2**32 - NTP_UNIX_OFFSET)
            self.frames.append((index, time.monotonic(), t, late))


def offsets_to_nearest(times: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each of ``times`` less the nearest of the sorted ``reference`` (signed, seconds)."""
    if len(reference) == 1:
        return times - reference[0]
    near = np.clip(np.searchsorted(reference, times), 1, len(reference) - 1)
    cand = np.stack([reference[near - 1], reference[near]])
    return times - cand[np.argmin(np.abs(cand - times), axis=0), np.arange(len(times))]


def _proc_stat(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU seconds) of a process."""
    rss = float("nan")
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def _machine_steal() -> float:
    """Seconds of CPU time the hypervisor took from this (virtual) machine so
    far, over all its CPUs (/proc/stat's steal column); nan where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _start_pulse(runtime: Path) -> subprocess.Popen[bytes]:
    if not shutil.which("pulseaudio"):
        raise UserError("bench soak --live needs PulseAudio (scripts/setup.sh installs pulseaudio pulseaudio-utils)")
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         f"--load=module-native-protocol-unix socket={runtime}/native auth-anonymous=1",
         "--load=module-null-sink sink_name=soak rate=44100 channels=2"],
        env={**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "PULSE_STATE_PATH": str(runtime)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        if subprocess.run(["pactl", "-s", f"unix:{runtime}/native", "info"], capture_output=True, timeout=5).returncode == 0:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise UserError("bench soak --live: could not start a private PulseAudio server")


def _percentiles(x: np.ndarray) -> dict[str, float]:
    if not x.size:
        return {}
    return {k: round(float(np.percentile(x, q)), 2) for k, q in (("p50", 50), ("p99", 99), ("max", 100))}


def live_soak(seconds: float, warmup: float | None = None) -> dict[str, Any]:
    """Run ``perform`` for ``seconds`` of dancing and judge it (see the module)."""
    from livedance.motion.kinematic_beats import kinematic_beats

    warmup = min(300.0, seconds / 5.0) if warmup is None else warmup
    audio, loop_beats = programme()
    loop_seconds = len(audio) / RATE
    with tempfile.TemporaryDirectory(prefix="livedance-soak-") as tmp_name:
        tmp = Path(tmp_name)
        runtime = tmp / "pulse"
        runtime.mkdir()
        pulse = _start_pulse(runtime)
        xvfb, display = start_xvfb() or (None, None)
        # This process's player and perform both talk to the private server, and
        # to its sink by name: an inherited PULSE_SINK names a sink it lacks.
        os.environ.update(PULSE_SERVER=f"unix:{runtime}/native", PULSE_SINK="soak", PULSE_SOURCE="soak.monitor")
        rx = FrameReceiver()
        rec = tmp / "soak.npz"
        env = {**os.environ, "PULSE_SOURCE": "soak.monitor", "PULSE_SINK": "soak"}
        view = ["--window"] if display else ["--no-window", "--video", str(tmp / "soak.mp4")]
        if display:
            env["DISPLAY"] = display
        # Drift is read off the danced beats, so the dancer stops on every beat
        # (engine.beat_hit 1): the default groove puts its kinematic beats a
        # median 50 ms off the beat, noise that would hide a drift of a few ms.
        cmd = [sys.executable, "-m", "livedance.cli", "--set", "viewer.width=320", "--set", "viewer.height=180",
               "--set", "viewer.msaa=0", "--set", "engine.beat_hit=1", "perform", "--device", "pulse", "--osc", f"127.0.0.1:{rx.port}",
               "--record", str(rec), *view]
        # The player's callback and the receiver run here: a full collection of
        # this process would stall them (and read as the show's stall).
        gc.collect()
        gc.freeze()
        player = Player(audio)
        player.stream.start()
        t_launch = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        out_lines: list[str] = []
        err_lines: list[str] = []
        listening = threading.Event()

        def read_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out_lines.append(line.rstrip())
                if "listening to" in line:
                    listening.set()

        def read_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if len(err_lines) < 200:
                    err_lines.append(line.rstrip())

        for target in (read_out, read_err):
            threading.Thread(target=target, daemon=True).start()
        samples: list[dict[str, float]] = []
        try:
            if not listening.wait(300) or proc.poll() is not None:
                raise UserError(f"perform did not start listening: {' | '.join(err_lines[-5:])}")
            t0 = time.monotonic()
            _, cpu0 = _proc_stat(proc.pid)
            next_sample = t0
            steal: list[tuple[float, float]] = []  # (s after t0, machine steal s), every half second
            while time.monotonic() - t0 < seconds and proc.poll() is None:
                now = time.monotonic()
                steal.append((now - t0, _machine_steal()))
                if now >= next_sample:
                    rss, cpu = _proc_stat(proc.pid)
                    samples.append({"t": round(now - t0, 1), "rss_mb": round(rss, 1), "cpu_s": round(cpu - cpu0, 1)})
                    print(f"soak: {now - t0:6.0f} s  rss {rss:6.1f} MB  frames {len(rx.frames)}", file=sys.stderr, flush=True)
                    next_sample += 60.0
                time.sleep(0.5)
            wall = time.monotonic() - t0
            _, cpu1 = _proc_stat(proc.pid) if proc.poll() is None else (0.0, cpu0)
            proc.send_signal(signal.SIGTERM)  # as a user's Ctrl-C: recordings get written
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
            player.stream.stop()
            player.stream.close()
            rx.close()
            gc.unfreeze()
            for p in (pulse, xvfb):
                if p is not None:
                    p.terminate()
                    p.wait(timeout=10)
        performed = next((x for x in out_lines if x.startswith("performed")), "")
        words = performed.replace(",", "").split()
        sent, dropped_own = (int(words[1]), int(words[4])) if len(words) > 4 else (None, None)
        frames = np.array(rx.frames, dtype=np.float64).reshape(-1, 4)
        order = np.argsort(frames[:, 0], kind="stable")
        index, arrival, music, late = frames[order].T
        distinct = np.unique(index)
        st, sv = np.array(steal, dtype=np.float64).reshape(-1, 2).T
        stolen = sv.size > 6 and bool(np.all(np.isfinite(sv)))  # /proc/stat read throughout

        def stolen_ms(start: float, end: float) -> int | None:
            return round(float(np.interp(end, st, sv) - np.interp(start, st, sv)) * 1000.0) if stolen else None

        after = arrival > t0 + 10.0  # start-up: the first 10 s of listening
        gaps = np.diff(music)[after[1:]]
        skipped = gaps > 1.5 / FPS  # a step of more than one frame slot in music time
        intervals = np.diff(arrival)[after[1:]] * 1000.0
        result: dict[str, Any] = {
            "benchmark": "soak --live",
            "seconds": round(wall, 1),
            "viewer": "window on Xvfb" if display else "offscreen --video",
            "startup_to_listening_s": round(t0 - t_launch, 2),
            "exit_code": proc.returncode,
            "frames": {
                "performed": sent,
                "osc_received": int(distinct.size),
                "osc_missing_indices": int(distinct[-1] + 1 - distinct.size) if distinct.size else None,
            },
            "dropped": {"perform_reported": dropped_own, "music_time_gaps_after_startup": int(np.sum(skipped))},
            # Each gap: when (s after listening), how much music it skipped
            # (ms), and the CPU time the hypervisor took from the machine (all
            # CPUs, ms) from 1 s before to 0.5 s after, against
            # steal_ms_per_1_5_s. A stall at a GC pass, a minute boundary or a
            # song change each leave their own pattern; pauses that the soak's
            # harness saw at the same instant (a probe in session 8) point
            # outside perform.
            "music_time_gaps_at": [[round(float(a - t0), 1), round(float(g) * 1000.0),
                                    stolen_ms(a - t0 - 1.0, a - t0 + 0.5)]
                                   for a, g in zip(arrival[1:][after[1:]][skipped][:100], gaps[skipped][:100])],
            "steal_ms_per_1_5_s": _percentiles(np.diff(np.interp(np.arange(st[0], st[-1], 1.5), st, sv)) * 1000.0)
            if stolen else None,
            "cpu_steal_s": round(float(sv[-1] - sv[0]), 2) if stolen else None,
            "frame_interval_ms": _percentiles(intervals),
            # perform runs at --latency 0: a frame's timetag is the instant of
            # its slot, so this is how long after its slot each frame arrived.
            "arrival_after_timetag_ms": _percentiles(late[after] * 1000.0),
            "cpu_per_wall_second": round((cpu1 - cpu0) / wall, 3) if cpu1 else None,
            "rss_mb_every_minute": [s["rss_mb"] for s in samples],
            "load_average": list(os.getloadavg()),
            "stderr_lines": len(err_lines),
        }
        warm = [s["rss_mb"] for s in samples if s["t"] >= warmup]
        if warm:
            result["rss_growth_mb_after_warmup"] = round(max(warm) - warm[0], 1)
        # Drift: the danced beats against the played beats.
        try:
            with np.load(rec) as z:
                joints = z["joints"]
        except (OSError, KeyError, ValueError) as exc:
            result["recording"] = f"unreadable: {exc}"
            return result
        result["recording_frames"] = int(len(joints))
        danced_frames = kinematic_beats(joints, FPS)  # frame numbers (fractional) of the motion's beats
        frame_at = np.interp(danced_frames, index, arrival)  # when that frame arrived
        loops = np.arange(int((player.pos / RATE) // loop_seconds) + 2)
        played = (loops[:, None] * loop_seconds + loop_beats[None, :]).ravel()
        played_at = player.played_at(played * RATE)
        played_at = played_at[np.isfinite(played_at)]
        err = offsets_to_nearest(frame_at, played_at)
        ok = (np.abs(err) < 0.2) & (frame_at > t0 + warmup)  # on a beat (not the idle groove in a silence)
        at, off = frame_at[ok] - t0, err[ok] * 1000.0
        minutes = (at // 60).astype(int)
        # Whole minutes only: the run's last half second made a "minute" of one beat.
        medians = [round(float(np.median(off[minutes == m])), 1) for m in np.unique(minutes) if (m + 1) * 60.0 <= wall]
        # Drift is judged per pass of the programme: every pass plays the same
        # music, so what one section does to the offset (a tempo, a silence's
        # re-lock) is the same in each, and a pass holds ~400 beats. Minute
        # medians also carry the section and ~70 beats' sampling noise.
        starts = player.played_at(loops * loop_seconds * RATE) - t0
        pass_of = np.searchsorted(starts[np.isfinite(starts)], at, side="right") - 1
        whole = [k for k in range(len(loops) - 1) if starts[k] >= warmup and starts[k + 1] <= wall]
        passes = [round(float(np.median(off[pass_of == k])), 1) for k in whole]
        # Where in the programme the offset moves (tempo, change, re-lock), over every pass.
        part = ((at - starts[np.maximum(pass_of, 0)]) // PART_SECONDS).astype(int)
        parts = [round(float(np.median(off[part == j])), 1) if np.any(part == j) else None
                 for j in range(int(np.ceil(loop_seconds / PART_SECONDS)))]
        result["drift"] = {
            "danced_beats_matched": int(ok.sum()),
            "median_offset_ms": round(float(np.median(off)), 1) if ok.any() else None,
            "programme_seconds": round(loop_seconds, 1),
            "pass_median_offsets_ms": passes,
            "drift_ms": round(max(passes) - min(passes), 1) if len(passes) > 1 else None,
            "trend_ms_per_hour": round(float(np.polyfit(at, off, 1)[0]) * 3600.0, 1) if ok.sum() > 2 else None,
            "programme_part_offsets_ms": {"part_seconds": PART_SECONDS, "medians": parts},
            "minute_median_offsets_ms": medians,
            "minute_wander_ms": round(max(medians) - min(medians), 1) if medians else None,
            "hop_ms": round(512 / 22050 * 1000, 1),
        }
        return result


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(seconds: float, as_json: bool) -> int:
    # Python's default SIGTERM ends the process without unwinding, which
    # left the private PulseAudio, Xvfb and perform running: unwind instead.
    previous = signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        result = live_soak(seconds)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(result, indent=None if as_json else 2))
    return 0
