"""Drive an :class:`~livedance.live.engine.Engine` offline or in real time.

Offline (``livedance dance``): the file is fed one frame's worth of audio at
a time, each unit is generated the moment the timeline needs it, and frame
``i`` shows music time ``i / fps``. Nothing depends on the wall clock, so
the same seed gives the same output, bit for bit.

Live (``livedance perform``): three threads, as in DESIGN.md. The audio
source's own callback fills its ring buffer; a *generator* thread keeps the
timeline one unit ahead; the *frame* thread reads new audio, analyses it and
emits the frame of every 1/fps slot on a fixed grid: a frame late by a
little (the GIL, a busy core) is still made for its own slot and the next
ones follow at once, so recordings and OSC receivers get an even grid;
only a stall of more than ``_CATCH_UP`` slots drops frames (never the beat).
The caller's thread runs the window, if any, or just waits.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from livedance.frames import Frame
from livedance.live.engine import Engine

log = logging.getLogger(__name__)

#: A live input this far behind the music clock has stalled (device blocks are
#: ~10-50 ms; the music clock snaps to the audio clock beyond 0.25 s).
_STALLED = 0.2

#: Slots the frame thread may fall behind and still make every frame (made
#: back to back, each for its own instant); further behind, it skips ahead.
#: A frame is at most this late (50 ms at 60 fps), the same as a dropped one
#: would leave the picture standing.
_CATCH_UP = 3

#: The frame thread waits for the GIL after each sleep; with Python's 5 ms
#: switch interval, the window's and the generator's threads kept it waiting
#: past its slot (90 late frames a minute in `bench soak --live`, 21 at 1 ms).
_SWITCH_INTERVAL = 0.001


class Sink(Protocol):
    def send(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


def frames_offline(engine: Engine, samples: np.ndarray, sample_rate: int, fps: float) -> Iterator[Frame]:
    """Frames for a whole signal, causally: frame i hears only audio before i / fps."""
    n_frames = int(len(samples) / sample_rate * fps)
    pos = 0
    dt = 1.0 / fps
    for i in range(n_frames):
        t = i * dt
        end = min(len(samples), int(round(t * sample_rate)))
        if end > pos:
            engine.hear(samples[pos:end])
            pos = end
        engine.plan()
        yield engine.frame(t, t, dt)


@dataclass
class LiveStats:
    frames: int = 0
    dropped: int = 0
    errors: int = 0  # frames that raised (logged, skipped); the loop never dies
    fps: float = 0.0


class LiveRunner:
    """Runs the engine on its clocks until :meth:`stop` (or the source ends).

    Args:
        engine: the engine.
        source: an audio source from :mod:`livedance.audio.sources` (started here).
        sinks: frame sinks; each ``send`` must return quickly (they are all
            non-blocking by design: UDP, mailboxes, buffers).
        fps: frame rate.
        latency: seconds to show ahead of the audio clock, compensating the
            delay of projector, network or receiving software.
    """

    def __init__(
        self, engine: Engine, source: Any, sinks: Sequence[Sink], fps: float, latency: float, sync: Any = None
    ) -> None:
        self.engine = engine
        self.sync = sync  # live.syncing.SyncHub: Link / MIDI clock, or None (its owner closes it)
        self.source = source
        self.sinks = list(sinks)
        self.fps = fps
        self.latency = latency
        self.stats = LiveStats()
        self.stopped = threading.Event()
        self._wake = threading.Event()  # the frame thread asks the generator for units
        self.latest: Frame | None = None
        self._threads: list[threading.Thread] = []
        self._switch_interval = sys.getswitchinterval()  # restored by stop()
        self._offset: float | None = None  # smoothed (audio clock - monotonic clock)
        self._silence = 0  # samples of silence heard in place of a lost device's audio
        from livedance.audio.sources import DeviceSource

        self._live_input = isinstance(source, DeviceSource)

    def _audio_time(self) -> float:
        """Audio clock: what the source delivered plus the silence stood in for it."""
        return self.source.time + self._silence / self.source.sample_rate

    def _stand_in_silence(self) -> None:
        """A lost device (or one reopening, which takes ~1.5 s to deliver) gives
        nothing, which used to stop the audio clock: music time snapped back
        0.25 s every ~0.3 s (frame times went backwards, the idle dancer
        stuttered). Hear silence in real time instead: the clock runs on, the
        tracker coasts and loses confidence, the dance eases into the idle
        groove, and the device's audio continues the same clock when it is back."""
        assert self._offset is not None
        behind = time.monotonic() + self._offset - self._audio_time()
        if getattr(self.source, "device_lost", False) or behind > _STALLED:
            n = int(behind * self.source.sample_rate)
            if n > 0:
                self.engine.hear(np.zeros(n, dtype=np.float32))
                self._silence += n
                if hasattr(self.source, "record_gap"):
                    self.source.record_gap(n / self.source.sample_rate)

    # The audio clock advances in device-block steps; the frames need a smooth
    # one. Follow it slowly, snap when it jumps.
    def _music_time(self, now: float, at: float) -> float:
        """Music time at monotonic instant ``at``, the audio clock read ``now``."""
        target = self._audio_time() - now
        if self._offset is None or abs(target - self._offset) > 0.25:
            self._offset = target
        else:
            self._offset += 0.02 * (target - self._offset)
        # The input device delivers each sound this late (PortAudio's figure):
        # the music is that much further on than what has been heard.
        return at + self._offset + self.input_latency

    @property
    def input_latency(self) -> float:
        """The source's input latency, seconds (0 for a file)."""
        return float(getattr(self.source, "input_latency", 0.0))

    def _generate(self) -> None:
        while not self.stopped.is_set():
            # The frame thread wakes us whenever the timeline needs a unit; the
            # timeout is only a safety net (each idle wake-up costs CPU).
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.engine.plan()
            except Exception:  # noqa: BLE001 - keep dancing on the units we have
                # Engine.plan handles model failures itself; this is the last
                # net, logged once and counted (it used to log every frame).
                self.stats.errors += 1
                if self.stats.errors == 1:
                    log.exception("unit generation failed; retrying at the next wake-up")
                self.stopped.wait(0.1)

    def _frames(self) -> None:
        period = 1.0 / self.fps
        deadline = time.monotonic()  # the next frame's slot
        window_start, window_frames = deadline, 0
        while not self.stopped.is_set():
            try:
                samples = self.source.read(1 << 16)
                if len(samples):
                    self.engine.hear(samples)
                elif self._offset is not None and self._live_input:
                    self._stand_in_silence()
                if getattr(self.source, "finished", False):
                    log.info("input finished")
                    self.stopped.set()
                    break
                # Read both clocks at one instant: the frame's music time and its
                # timetag (wall time) must name the same moment; read apart, a busy
                # CPU can put tens of ms between them (and OSC beats off by that much).
                now, wall = time.monotonic(), time.time()
                late = now - deadline
                if late > _CATCH_UP * period:
                    skipped = int(late // period)
                    self.stats.dropped += skipped
                    deadline += skipped * period
                slot, wall = deadline, wall - (now - deadline)  # the frame shows its slot, made late or not
                controls = self.engine.controls
                if self._offset is not None:  # taps come on the monotonic clock, frames on the music clock
                    self.engine.tap_clock_offset = self._offset + self.input_latency
                if controls is not None:  # latency is a live control (OSC, keyboard)
                    self.latency = controls.snapshot().latency_ms / 1000.0
                present = slot + self.latency  # monotonic instant the frame shows
                state = self.sync.state(present) if self.sync is not None else None
                frame = self.engine.frame(self._music_time(now, slot) + self.latency, wall + self.latency, period, sync=state)
                if self.sync is not None:
                    self.sync.after_frame(frame, self.engine, slot, present)
                self.latest = frame
                if self.engine.needs_unit():
                    self._wake.set()
                for sink in list(self.sinks):
                    try:
                        sink.send(frame)
                    except Exception:  # noqa: BLE001 - one broken sink must not stop the show
                        log.exception("sink %s failed; removing it", type(sink).__name__)
                        self.sinks.remove(sink)
                self.stats.frames += 1
                window_frames += 1
                if now - window_start >= 1.0:
                    self.stats.fps = window_frames / (now - window_start)
                    window_start, window_frames = now, 0
                deadline += period
                # A plain sleep costs less CPU per frame than Event.wait (which
                # allocates and juggles a lock); stop() then waits at most one period.
                time.sleep(max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - the show goes on: log, count, next frame
                self.stats.errors += 1
                if self.stats.errors <= 3 or self.stats.errors % 1000 == 0:
                    log.exception("frame %d failed (%d errors so far)", self.stats.frames, self.stats.errors)
                deadline = time.monotonic() + period
                self.stopped.wait(period)

    def start(self) -> None:
        sys.setswitchinterval(_SWITCH_INTERVAL)
        # What is built by now (model, viewer, warm-up) lives for the whole
        # show. A full collection stops every thread while it scans the heap:
        # 68 ms for an offline engine's, up to 161 ms for perform's (measured
        # with gc.callbacks). Frozen, a full collection scans only what the
        # show allocates from here on.
        gc.collect()
        gc.freeze()
        self.source.start()
        for target, name in ((self._generate, "livedance-generator"), (self._frames, "livedance-frames")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=2.0)
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()
        try:
            self.source.close()
        finally:
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception:  # noqa: BLE001 - close the others regardless
                    log.exception("closing %s failed", type(sink).__name__)

    def status_line(self) -> str:
        f = self.latest
        if f is None:
            return "livedance: starting..."
        lost = " | AUDIO DEVICE LOST, retrying" if getattr(self.source, "device_lost", False) else ""
        if self.sync is not None:
            lost += " | " + self.sync.status(f.sync)
        return (
            f"{f.tempo:6.1f} BPM | conf {f.confidence:4.2f} | energy {f.energy:4.2f} | "
            f"{self.stats.fps:5.1f} fps | latency {self.latency * 1000:.0f} + input {self.input_latency * 1000:.0f} ms | "
            f"dropped {self.stats.dropped} | overruns {getattr(self.source, 'overruns', 0)}{lost}"
        )


def wait_with_status(runner: LiveRunner, until: Callable[[], bool], interval: float = 0.5) -> None:
    """Block until ``until()`` or the runner stops, showing the status line on a terminal."""
    tty = sys.stderr.isatty()
    last = 0.0
    try:
        while not runner.stopped.is_set() and not until():
            now = time.monotonic()
            if tty and now - last >= interval:
                sys.stderr.write("\r" + runner.status_line()[:150].ljust(150))
                sys.stderr.flush()
                last = now
            runner.stopped.wait(0.05)
    finally:
        if tty:
            sys.stderr.write("\n")
