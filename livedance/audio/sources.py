"""Audio sources: a live input device and a (paced) file.

Both deliver mono float32 at ``AudioSettings.sample_rate`` through
``read(max_samples)``, conditioned (NaN/inf zeroed, resampled, DC removed) on
the reading thread. The device callback only mixes down into a preallocated
scratch buffer and copies into the ring.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator

import numpy as np

from livedance.audio.condition import MAX_RATE, MIN_RATE, Conditioner, mix_down
from livedance.audio.devices import find_device, load_sounddevice, pick_channels
from livedance.audio.ring import RingBuffer
from livedance.config import AudioSettings
from livedance.errors import UserError

log = logging.getLogger(__name__)

_MAX_BLOCK = 16384  # largest device block the callback's scratch buffer takes
_FIRST_BLOCK_GRACE = 2.0  # seconds a new stream may take to deliver its first block


@contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment.

    PortAudio's ALSA host API and libasound print ~6 lines straight to fd 2 on
    every failed open: with a device unplugged for a weekend, a retry a second
    wrote ~20,000 lines an hour to the journal. Python's own writes are not
    muted where ``sys.stderr`` has a descriptor of its own (the command line
    gives it one: ``livedance.cli.entry``). No lock is held meanwhile: against
    a killed sound server the call inside can block for good, and holding the
    log handlers' locks then silenced every thread's log for the rest of the
    run (the kiosk's stall and X-loss recoveries went unlogged, then
    unperformed)."""
    try:
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to protect
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class AudioSource:
    """What the engine reads from: a context manager with ``read``.

    ``read(max_samples, timeout)`` returns the next mono float32 samples at
    ``sample_rate`` (possibly none), waiting up to ``timeout`` seconds for some.
    """

    sample_rate: int

    def __enter__(self) -> "AudioSource":
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:  # pragma: no cover - overridden
        pass

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def read(self, max_samples: int, timeout: float = 0.0) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class DeviceSource(AudioSource):
    """Live capture from an input device, surviving the device going away.

    ``overruns`` counts blocks lost (ring full or PortAudio input overflow);
    ``device_lost`` is True while the device is gone; ``lost_count`` counts
    losses and ``read`` keeps retrying every ``settings.retry_seconds``.
    """

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        self.sample_rate = settings.sample_rate
        self.device = find_device(settings.device, "input")
        # The channels mixed down (0-based); the stream opens 1..the highest of them.
        self.picked = pick_channels(settings.channels, self.device)
        self.channels = max(self.picked) + 1
        self._all_picked = self.picked == list(range(self.channels))
        self.device_rate = self.device.default_rate
        if not MIN_RATE <= self.device_rate <= MAX_RATE:
            self.device_rate = float(settings.sample_rate)
        self._ring = RingBuffer(max(int(settings.ring_seconds * self.device_rate), 4 * _MAX_BLOCK))
        self._mix = np.zeros(_MAX_BLOCK, dtype=np.float32)
        self._inv_ch = np.float32(1.0 / len(self.picked))
        self._raw = np.zeros(self._ring.capacity, dtype=np.float32)
        self._stream: Any = None
        self._latency = 0.0  # PortAudio's input latency of the last stream opened, seconds
        self._conditioner = Conditioner(self.device_rate, self.sample_rate)
        self._xruns = 0
        self._callbacks = 0
        self._stream_ended = False
        self._last_progress = time.monotonic()
        self._last_read = time.monotonic()
        self._seen_callbacks = 0
        self._next_retry = 0.0
        self._retries = 0
        self._overruns_logged = 0
        self._overrun_log_at = 0.0
        self.device_lost = False
        self.lost_count = 0
        self._reopener: threading.Thread | None = None
        self._closers: list[threading.Thread] = []  # threads closing lost streams
        self._closed = False
        self.samples_read = 0  # analysis-rate samples delivered
        self._recording: Any = None  # soundfile.SoundFile the input is recorded to (live --video)

    @property
    def overruns(self) -> int:
        return self._ring.overruns + self._xruns

    @property
    def input_latency(self) -> float:
        """Seconds from the sound reaching the device to its samples reaching
        us, as PortAudio reported it for the last stream opened (0 before one):
        every beat the tracker hears is this late, so the runner adds it. It is
        held through a lost device: dropping it to 0 would step the music
        clock back by the latency."""
        return self._latency

    def describe(self) -> str:
        """One line for the user: which input, at what rate and channels, how late."""
        inputs = "+".join(str(c + 1) for c in self.picked)
        return (
            f"'{self.device.name}' ({self.device.hostapi}), {self.device_rate:.0f} Hz, "
            f"input{'s' if len(self.picked) > 1 else ''} {inputs} of {self.device.inputs}, "
            f"input latency {self.input_latency * 1000:.0f} ms"
        )

    @property
    def time(self) -> float:
        """Audio clock: seconds of analysis-rate audio delivered so far."""
        return self.samples_read / self.sample_rate

    # Runs on PortAudio's thread: copy only. No allocation (beyond views), no
    # locks, no logging.
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self._xruns += 1
        if frames > _MAX_BLOCK:
            self._xruns += 1
            return
        if len(self.picked) == 1:
            self._ring.write(indata[:, self.picked[0]])
        else:
            mix = self._mix[:frames]
            if self._all_picked:
                np.sum(indata, axis=1, out=mix)
            else:  # column views, added in place: no allocation
                np.copyto(mix, indata[:, self.picked[0]])
                for c in self.picked[1:]:
                    mix += indata[:, c]
            mix *= self._inv_ch
            self._ring.write(mix)
        self._callbacks += 1

    def _finished(self) -> None:
        self._stream_ended = True

    def start(self) -> None:
        self._open(first=True)
        # The first PortAudio->PulseAudio stream of a process takes ~1.5 s to
        # deliver its first block here; return only once audio flows, so the
        # caller's clock does not start on seconds of nothing.
        t_end = time.monotonic() + self.settings.stall_seconds + _FIRST_BLOCK_GRACE
        while self._callbacks == 0 and time.monotonic() < t_end:
            time.sleep(0.005)
        if self._callbacks == 0:
            log.warning("audio input '%s' opened but delivers no audio yet", self.device.name)
        self._last_progress = time.monotonic()

    def _open(self, first: bool = False) -> bool:
        sd = load_sounddevice()
        try:
            if not first:
                self._retries += 1
                if self._retries % 5 == 0 and not self._closing():
                    # A device that came back may have a new index; PortAudio
                    # only rescans on re-initialisation (which also stops any
                    # other stream in this process, hence not every time).
                    # Never while a lost stream is still closing: its ALSA
                    # thread can be stuck for good inside a killed sound
                    # server's plugin (snd_pcm_status -> pa_mutex_lock, seen
                    # with py-spy), and Pa_Terminate then waits on it forever
                    # (1 kiosk run in 3: the device never came back).
                    with _native_stderr_muted():
                        sd._terminate()
                        sd._initialize()
                    self.device = find_device(self.settings.device, "input")
            with _native_stderr_muted():
                stream = sd.InputStream(
                    device=self.device.index,
                    channels=self.channels,
                    samplerate=self.device_rate,
                    blocksize=self.settings.block,
                    dtype="float32",
                    callback=self._callback,
                    finished_callback=self._finished,
                )
                self._stream_ended = False
                stream.start()
        except (sd.PortAudioError, UserError, ValueError) as exc:
            if first:
                raise UserError(f"cannot open audio input '{self.device.name}': {exc} (see `livedance devices`)") from None
            log.debug("audio input still unavailable: %s", exc)
            return False
        if self._closed:  # closed while this reopen was under way
            stream.abort()
            stream.close()
            return False
        self._stream = stream
        try:
            self._latency = max(0.0, float(stream.latency))
        except Exception:  # noqa: BLE001 - no figure from this host API: keep the last one
            pass
        # Grace period: a fresh PulseAudio stream can take ~1.5 s to deliver
        # its first block, which is not a lost device.
        self._last_progress = time.monotonic() + _FIRST_BLOCK_GRACE
        self._seen_callbacks = self._callbacks
        if not first:
            log.warning("audio input '%s' is back", self.device.name)
        self.device_lost = False
        return True

    def _lose(self, why: str) -> None:
        self.device_lost = True
        self.lost_count += 1
        log.warning("audio input '%s' lost (%s); retrying every %.1f s", self.device.name, why, self.settings.retry_seconds)
        # Closed on a thread of its own, not the reader's (the frame clock's)
        # nor the reopening one: against a killed sound server abort() can
        # block for good (the kiosk's frames stopped at the loss in one run of
        # four; closed before reopening, the device never came back).
        stream, self._stream = self._stream, None
        if stream is not None:
            closer = threading.Thread(target=self._abort, args=(stream,), name="livedance-audio-close", daemon=True)
            closer.start()
            self._closers = [t for t in self._closers if t.is_alive()] + [closer]
        self._next_retry = time.monotonic() + self.settings.retry_seconds

    def _closing(self) -> bool:
        """Whether a lost stream is still being closed (perhaps never will be)."""
        return any(t.is_alive() for t in self._closers)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._abort(stream)

    @staticmethod
    def _abort(stream: Any) -> None:
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - a dead device may fail to close; we drop it anyway
                log.debug("closing lost stream: %s", exc)

    def _watchdog(self) -> None:
        now = time.monotonic()
        if self._callbacks != self._seen_callbacks:
            self._seen_callbacks = self._callbacks
            self._last_progress = now
            return
        if self._stream_ended or (self._stream is not None and not self._stream.active):
            self._lose("stream stopped")
        elif now - self._last_progress > self.settings.stall_seconds:
            self._lose(f"no audio for {self.settings.stall_seconds:.1f} s")

    def read(self, max_samples: int, timeout: float = 0.0) -> np.ndarray:
        """Up to about ``max_samples`` new analysis-rate samples (maybe none)."""
        now = time.monotonic()
        if now - self._last_read > self.settings.stall_seconds:
            # The reader itself was stalled (process frozen, machine suspended,
            # a long GC): the device had no chance to be heard, so don't call
            # it lost (it used to be closed and reopened after every such pause).
            self._last_progress = now
        self._last_read = now
        deadline = now + timeout
        while True:
            if self.device_lost:
                if time.monotonic() >= self._next_retry and not (self._reopener and self._reopener.is_alive()):
                    # Reopening can block (PortAudio's re-initialisation, a sound
                    # server coming back): never on the reader's thread, which is
                    # the frame clock's. Meanwhile the runner hears silence.
                    self._next_retry = time.monotonic() + self.settings.retry_seconds
                    self._reopener = threading.Thread(target=self._open, name="livedance-audio-reopen", daemon=True)
                    self._reopener.start()
            else:
                self._watchdog()
            if self._ring.available or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        self._report_overruns()
        want = int(np.ceil(max_samples * self.device_rate / self.sample_rate))
        n = self._ring.read_new(self._raw[: max(1, min(want, self._raw.shape[0]))])
        if self._recording is not None and n:
            # On the reading thread (never the callback); bad samples made safe for the encoder.
            self._recording.write(np.clip(np.nan_to_num(self._raw[:n], nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0))
        out = self._conditioner(self._raw[:n]) if n else np.zeros(0, np.float32)
        self.samples_read += out.shape[0]
        return out

    def _report_overruns(self) -> None:
        """Log new overruns, at most every few seconds (here, not in the callback)."""
        n = self.overruns
        if n != self._overruns_logged and time.monotonic() >= self._overrun_log_at:
            log.warning("audio input: %d overrun(s) so far (analysis fell behind; audio was dropped)", n)
            self._overruns_logged = n
            self._overrun_log_at = time.monotonic() + 5.0

    def discard_backlog(self, keep_seconds: float = 0.0) -> int:
        """Drop buffered audio older than ``keep_seconds`` (after a stall)."""
        return self._ring.discard_old(int(keep_seconds * self.device_rate))

    def record(self, path: str | Path) -> None:
        """Also write what is heard (mixed down, at the device rate) to the WAV
        file ``path`` until :meth:`close`: a live video's sound."""
        import soundfile as sf

        self._recording = sf.SoundFile(str(path), "w", samplerate=int(round(self.device_rate)), channels=1, subtype="FLOAT")

    def record_gap(self, seconds: float) -> None:
        """Silence in the recording where the device gave nothing (it was lost),
        so the recording keeps time with the dance."""
        if self._recording is not None and seconds > 0:
            self._recording.write(np.zeros(int(round(seconds * self.device_rate)), np.float32))

    def close(self) -> None:
        self._closed = True
        self._close_stream()
        if self._closing():
            # sounddevice's exit handler runs Pa_Terminate, which would wait on
            # the stuck stream and keep the process from ever exiting: the
            # operating system reclaims the device instead.
            sd = load_sounddevice()
            atexit.unregister(sd._exit_handler)
            log.debug("a lost audio stream never closed; skipping PortAudio's exit handler")
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.close()


def load_audio(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a file to (frames, channels) float32 and its rate; UserError if unusable."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UserError(f"audio file {p} not found (check the path)")
    if not p.is_file():
        raise UserError(f"{p} is not a file (give an audio file: wav, flac, ogg or mp3)")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        try:  # mp3/m4a on older libsndfile: audioread backends via librosa
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # librosa warns that it falls back; so do we, via the error
                y, rate = librosa.load(str(p), sr=None, mono=False)
            data = np.atleast_2d(y).T.astype(np.float32)
        except Exception:  # noqa: BLE001 - any decoder failure is the same user problem
            raise UserError(f"cannot read audio file {p}: {exc} (use wav, flac, ogg or mp3)") from None
    if data.shape[0] == 0:
        raise UserError(f"audio file {p} is empty (no samples)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(f"audio file {p} has sample rate {rate} Hz; use {MIN_RATE}-{MAX_RATE} Hz")
    return data, float(rate)


class FileSource(AudioSource):
    """A file read as fast as asked (``realtime=False``) or paced like a live input.

    With ``play=True`` the file also plays on the default output device, and
    that device's clock paces delivery, so the analysis stays in step with
    what is heard.
    """

    def __init__(self, path: str | Path, settings: AudioSettings, realtime: bool = True, play: bool = False) -> None:
        self.path = Path(path)
        self.settings = settings
        self.sample_rate = settings.sample_rate
        self.realtime = realtime or play
        self.play = play
        self.native, self.file_rate = load_audio(self.path)
        conditioner = Conditioner(self.file_rate, self.sample_rate)
        self.samples = conditioner(mix_down(self.native), last=True)
        self.bad_samples = conditioner.bad_samples
        if self.bad_samples:
            log.warning("%s: %d NaN/inf samples replaced by silence", self.path, self.bad_samples)
        if not np.any(self.samples):
            log.warning("%s is digital silence: nothing to dance to", self.path)
        self.duration = self.samples.shape[0] / self.sample_rate
        self._pos = 0  # analysis samples delivered
        self._played = 0  # native frames handed to the output device
        self._t0: float | None = None
        self._out: Any = None
        self.overruns = 0
        self.device_lost = False

    @property
    def finished(self) -> bool:
        return self._pos >= self.samples.shape[0]

    @property
    def time(self) -> float:
        return self._pos / self.sample_rate

    def _out_callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        start = self._played
        n = max(0, min(frames, self.native.shape[0] - start))
        ch = outdata.shape[1]
        outdata[:n] = self.native[start : start + n, :ch] if self.native.shape[1] >= ch else self.native[start : start + n, :1]
        outdata[n:] = 0.0
        self._played = start + frames
        if status.output_underflow:
            self.overruns += 1

    input_latency = 0.0  # a file is heard as it is read

    def describe(self) -> str:
        """One line for the user: which file, at what rate and channels."""
        return (
            f"{self.path.name} (paced in real time{', playing' if self.play else ''}), "
            f"{self.file_rate:.0f} Hz, {self.native.shape[1]} channel{'s' if self.native.shape[1] > 1 else ''}"
        )

    def start(self) -> None:
        self._t0 = time.monotonic()
        if self.play:
            sd = load_sounddevice()
            dev = find_device(None, "output")
            try:
                self._out = sd.OutputStream(
                    device=dev.index,
                    samplerate=self.file_rate,
                    channels=min(self.native.shape[1], dev.outputs),
                    dtype="float32",
                    callback=self._out_callback,
                )
                self._out.start()
            except sd.PortAudioError as exc:
                raise UserError(f"cannot play to '{dev.name}': {exc} (drop --play or pick another output)") from None

    def _available_end(self) -> int:
        total = self.samples.shape[0]
        if not self.realtime:
            return total
        if self._out is not None:
            return min(total, int(self._played * self.sample_rate / self.file_rate))
        if self._t0 is None:
            self._t0 = time.monotonic()
        return min(total, int((time.monotonic() - self._t0) * self.sample_rate))

    def read(self, max_samples: int, timeout: float = 0.0) -> np.ndarray:
        deadline = time.monotonic() + timeout
        end = self._available_end()
        while end <= self._pos and not self.finished and time.monotonic() < deadline:
            time.sleep(0.002)
            end = self._available_end()
        end = min(end, self._pos + max_samples)
        out = self.samples[self._pos : end]
        self._pos = max(self._pos, end)
        return out

    def close(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.abort()
            out.close()


def open_source(settings: AudioSettings, path: str | None = None, realtime: bool = True, play: bool = False) -> AudioSource:
    """The file source if ``path`` is given, else the live device."""
    return FileSource(path, settings, realtime=realtime, play=play) if path else DeviceSource(settings)


