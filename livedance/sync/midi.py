"""MIDI beat clock (24 pulses per quarter note) in and out, with mido + python-rtmidi.

* :class:`ClockFollower` turns clock messages and their arrival times into a
  tempo and song position (``--midi-clock-in``): fed live from a port's
  callback, or replayed from a list of (message, time), with the same output.
* :class:`ClockSender` sends clock pulses from a beat position that the
  frame clock updates 60 times a second (``--midi-clock-out``), on its own
  thread, with Start, Stop and Song Position Pointer.

Ports are chosen by a substring of their name (``livedance devices`` lists
them). rtmidi speaks ALSA's sequencer and JACK; we take the first API that
lists any port, or the one ``[midi] api`` names.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from livedance.errors import UserError
from livedance.frames import SyncState

log = logging.getLogger(__name__)

PPQN = 24  # MIDI clock pulses per quarter note
PULSES_PER_SIXTEENTH = 6  # Song Position Pointer counts sixteenths
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "macos": "MACOSX_CORE", "windows": "WINDOWS_MM"}


def load_mido() -> Any:
    try:
        import mido
    except ImportError:
        raise UserError("MIDI clock needs mido and python-rtmidi: pip install mido python-rtmidi") from None
    return mido


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C libraries while probing (libasound and libjack print to fd 2
    when their system is absent; our UserError says it in one line)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _candidates(api: str) -> list[str]:
    if api != "auto":
        if api not in APIS:
            raise UserError(f"unknown MIDI api '{api}' (use auto, {', '.join(APIS)}; set [midi] api)")
        return [api]
    if sys.platform.startswith("linux"):
        # No sequencer device (containers, this CI): ALSA cannot work, try JACK only.
        return (["alsa"] if os.path.exists("/dev/snd/seq") else []) + ["jack"]
    return ["macos"] if sys.platform == "darwin" else ["windows"]


def backend(api: str = "auto") -> Any:
    """A mido rtmidi backend on ``api`` ("auto", "alsa", "jack", ...): for
    "auto", the first API whose MIDI system answers."""
    mido = load_mido()
    tried = []
    for name in _candidates(api):
        be = mido.Backend(f"mido.backends.rtmidi/{APIS[name]}")
        try:
            with _quiet_stderr():
                be.get_output_names()
            return be
        except Exception as exc:  # noqa: BLE001 - rtmidi raises its own SystemError types
            tried.append(f"{name}: {exc}")
    raise UserError(
        f"no MIDI system answers ({'; '.join(tried)}); start one (ALSA sequencer: modprobe snd-seq; or jackd) or set [midi] api"
    )


def list_ports(api: str = "auto") -> tuple[list[str], list[str]]:
    """(input port names, output port names); empty when no MIDI system answers."""
    try:
        be = backend(api)
        with _quiet_stderr():
            return list(be.get_input_names()), list(be.get_output_names())
    except UserError as exc:
        log.info("%s", exc)
        return [], []


def find_port(spec: str, names: Iterable[str], kind: str) -> str:
    """The port whose name contains ``spec`` (case-insensitive)."""
    names = list(names)
    matches = [n for n in names if spec.lower() in n.lower()]
    if not matches:
        have = ", ".join(names) if names else "none (is a MIDI system running: ALSA sequencer or JACK?)"
        raise UserError(f"no MIDI {kind} port matches '{spec}' (available: {have}; see `livedance devices`)")
    return matches[0]


class ClockFollower:
    """Tempo and song position from incoming MIDI clock.

    The tempo is a least-squares line through the last ``window`` pulse
    arrival times (one pulse's arrival jitters by a USB frame or a JACK
    period; the line averages that out), so the beat position at any time is
    that line extrapolated. Song position: Start sets it to 0, Song Position
    Pointer to its sixteenth, each pulse adds 1/24 beat. Thread-safe:
    :meth:`feed` runs on rtmidi's thread, :meth:`state` on the frame clock.
    """

    def __init__(self, window: int = 48, timeout: float = 0.5, quantum: float = 4.0) -> None:
        self.window = window
        self.timeout = timeout  # no pulse for this long: the clock is gone
        self.quantum = quantum
        self._times: deque[float] = deque(maxlen=window)
        self._counts: deque[int] = deque(maxlen=window)
        self._next = 0  # song position (pulses) of the next clock pulse
        self._playing = True  # until a Stop is seen (some gear sends clock only)
        self._lock = threading.Lock()
        self._fit: tuple[float, float, float] | None = None  # (t0, pulse0, seconds per pulse)

    def feed(self, message: Any, t: float) -> None:
        """One MIDI message that arrived at monotonic time ``t``."""
        kind = message.type
        with self._lock:
            if kind == "clock":
                self._times.append(t)
                self._counts.append(self._next)
                self._next += 1
                self._fit = None
            elif kind == "start":
                self._next, self._playing = 0, True
                self._clear()
            elif kind == "continue":
                self._playing = True
            elif kind == "stop":
                self._playing = False
            elif kind == "songpos":
                self._next = int(message.pos) * PULSES_PER_SIXTEENTH
                self._clear()

    def _clear(self) -> None:
        self._times.clear()
        self._counts.clear()
        self._fit = None

    def _line(self) -> tuple[float, float, float] | None:
        if self._fit is None and len(self._times) >= PPQN // 2:
            t = np.fromiter(self._times, np.float64, len(self._times))
            k = np.fromiter(self._counts, np.float64, len(self._counts))
            k0, t0 = k[-1], t[-1]
            slope = np.polyfit(k - k0, t - t0, 1)  # seconds per pulse, intercept at the last pulse
            self._fit = (t0 + float(slope[1]), k0, float(slope[0]))
        return self._fit

    def state(self, t: float) -> SyncState | None:
        """The clock at monotonic time ``t``; None before a half beat of pulses."""
        with self._lock:
            fit = self._line()
            if fit is None or fit[2] <= 0:
                return None
            t0, k0, spp = fit
            alive = t - self._times[-1] < self.timeout
            playing = self._playing
        tempo = 60.0 / (spp * PPQN)
        beat = (k0 + (t - t0) / spp) / PPQN if alive else k0 / PPQN
        return SyncState("midi", "follow", tempo, beat, self.quantum, 1 if alive else 0, playing)


class ClockSender:
    """Sends MIDI clock from a beat position on its own thread.

    The frame clock calls :meth:`update` with (monotonic time, beat position,
    beats per second) each frame; the sender extrapolates that line to the
    next pulse's instant and sleeps until it (pulses are 10-40 ms apart, finer
    than frames). The first pulse waits for the next sixteenth, announced by
    Song Position Pointer and Start (at position 0) or Continue; a jump of
    the beat position (re-entry, dancers changed) is sent as Stop, Song
    Position Pointer, Continue, as the MIDI spec allows a position change
    only while stopped. :meth:`close` sends Stop.

    Args:
        send: called with each mido message (a port's ``send``).
        clock: monotonic clock (for tests: a fake one with ``sleep``).
    """

    def __init__(self, send: Callable[[Any], None], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._mido = load_mido()
        self._send = send
        self._clock, self._sleep = clock, sleep
        self._line: tuple[float, float, float] | None = None  # (t, position, rate)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pulse: int | None = None  # song position (pulses) of the next pulse; None = stopped
        self.sent: list[float] = []  # send times of the last pulses (jitter statistics)
        self._thread = threading.Thread(target=self._run, name="livedance-midi-clock", daemon=True)
        self._thread.start()

    def update(self, t: float, position: float, rate: float) -> None:
        with self._lock:
            self._line = (t, position, max(rate, 1e-6))

    def _position_at(self, t: float) -> tuple[float, float] | None:
        with self._lock:
            line = self._line
        if line is None:
            return None
        t0, p0, rate = line
        return p0 + (t - t0) * rate, rate

    def _start(self, position: float) -> None:
        sixteenth = max(0, math.ceil(position * 4 - 1e-9))
        self._send(self._mido.Message("songpos", pos=sixteenth % 16384))
        self._send(self._mido.Message("start" if sixteenth == 0 else "continue"))
        self._pulse = sixteenth * PULSES_PER_SIXTEENTH

    def _run(self) -> None:
        clock_msg = self._mido.Message("clock")
        while not self._stop.is_set():
            now = self._clock()
            at = self._position_at(now)
            if at is None:
                self._sleep(0.005)
                continue
            position, rate = at
            if self._pulse is not None and abs(position * PPQN - self._pulse) > PPQN:
                self._send(self._mido.Message("stop"))  # jumped: re-announce the position
                self._pulse = None
            if self._pulse is None:
                self._start(position)
            assert self._pulse is not None
            wait = (self._pulse / PPQN - position) / rate
            if wait > 0.05:
                self._sleep(0.05)  # wake up again for the latest line
                continue
            if wait > 0.0:
                self._sleep(wait)  # Linux overshoots by ~0.1 ms; spinning would cost a core
            self._send(clock_msg)
            self.sent.append(self._clock())
            if len(self.sent) > 4096:
                del self.sent[:2048]
            self._pulse += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self._pulse is not None:
            self._send(self._mido.Message("stop"))


class MidiClockIn:
    """``--midi-clock-in PORT``: a :class:`ClockFollower` fed by a real port."""

    def __init__(self, spec: str, api: str = "auto", quantum: float = 4.0) -> None:
        be = backend(api)
        with _quiet_stderr():
            name = find_port(spec, be.get_input_names(), "input")
        self.follower = ClockFollower(quantum=quantum)
        self.name = name
        self._port = be.open_input(name, callback=lambda m: self.follower.feed(m, time.monotonic()))

    def state(self, t: float) -> SyncState | None:
        return self.follower.state(t)

    def close(self) -> None:
        self._port.close()


class MidiClockOut:
    """``--midi-clock-out PORT``: a :class:`ClockSender` on a real port."""

    def __init__(self, spec: str, api: str = "auto") -> None:
        be = backend(api)
        with _quiet_stderr():
            name = find_port(spec, be.get_output_names(), "output")
        self.name = name
        self._port = be.open_output(name)
        self.sender = ClockSender(self._port.send)

    def update(self, t: float, position: float, rate: float) -> None:
        self.sender.update(t, position, rate)

    def close(self) -> None:
        try:
            self.sender.close()
            time.sleep(0.05)  # rtmidi queues: let the MIDI system deliver the Stop before the port goes
        finally:
            self._port.close()


def interval_jitter(times: Iterable[float]) -> dict[str, float]:
    """Pulse interval statistics (ms): median, mean, std, and the 90th, 99th
    percentile and max of |interval - median|."""
    t = np.asarray(list(times), dtype=np.float64)
    d = np.diff(t) * 1000.0
    if len(d) < 2:
        return {"intervals": float(len(d))}
    median = float(np.median(d))
    dev = np.abs(d - median)
    return {
        "intervals": float(len(d)),
        "median_ms": median,
        "mean_ms": float(d.mean()),
        "std_ms": float(d.std()),
        "p90_dev_ms": float(np.percentile(dev, 90)),
        "p99_dev_ms": float(np.percentile(dev, 99)),
        "max_dev_ms": float(dev.max()),
    }
