"""Video out: frames rendered offscreen (EGL) and piped to ffmpeg, music muxed in sync.

:class:`VideoWriter` is a sink like the others (``send(frame)``/``close()``)
and a context manager; :func:`render_frames` renders a whole sequence with a
progress bar (``livedance dance SONG --video OUT.mp4``, ``livedance render``).

Sync: video frame ``k`` is shown at ``k / fps`` seconds; the music is cut to
start at ``audio_offset`` seconds (the music time of the first frame), padded
with silence if the motion outlasts it, and cut where the video ends, so the
two streams have the same length and line up from the first frame.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Iterable

import numpy as np

from livedance.errors import UserError
from livedance.frames import Frame
from livedance.outputs.body import BodyMesh
from livedance.outputs.renderer import OffscreenRenderer, check_shaders

log = logging.getLogger(__name__)

CONTAINERS = (".mp4", ".mov", ".mkv")


def find_ffmpeg() -> str:
    """The system ffmpeg, else the one bundled with imageio-ffmpeg."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        raise UserError("ffmpeg not found; install it (sudo apt-get install ffmpeg) or pip install imageio-ffmpeg") from None


def ffmpeg_command(
    ffmpeg: str,
    out: Path,
    width: int,
    height: int,
    fps: float,
    audio: Path | None,
    audio_offset: float,
    crf: int = 20,
    preset: str = "veryfast",
) -> list[str]:
    """The ffmpeg invocation: raw RGB frames on stdin (+ music) -> H.264 (+ AAC)."""
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{fps:.6g}", "-i", "pipe:0"]
    if audio is not None:
        filters = []
        if audio_offset > 0:
            cmd += ["-ss", f"{audio_offset:.6f}"]  # input seek: sample accurate for audio
        elif audio_offset < 0:
            filters.append(f"adelay={-audio_offset * 1000.0:.3f}:all=1")  # video starts before the music
        # apad + -shortest: silence past the song's end, cut at the video's end.
        filters.append("apad")
        cmd += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-af", ",".join(filters)]
        cmd += ["-c:a", "aac", "-b:a", "192k", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
    cmd += ["-movflags", "+faststart", str(out)]
    return cmd


def mux_command(ffmpeg: str, video: Path, audio: Path, audio_offset: float, out: Path) -> list[str]:
    """Add ``audio`` to a finished silent ``video`` (stream copy, no re-encode),
    aligned as in :func:`ffmpeg_command`: the music at ``audio_offset`` s under frame 0."""
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i", str(video)]
    filters = []
    if audio_offset > 0:
        cmd += ["-ss", f"{audio_offset:.6f}"]
    elif audio_offset < 0:
        filters.append(f"adelay={-audio_offset * 1000.0:.3f}:all=1")
    filters.append("apad")
    cmd += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-af", ",".join(filters)]
    cmd += ["-c:v", "copy", "-c:a", "aac", "-b:a", "192k", "-shortest", "-movflags", "+faststart", str(out)]
    return cmd


class VideoWriter:
    """Renders frames offscreen and encodes them to a video file, with music.

    Two ways to feed it, not to be mixed:

    * :meth:`write` renders in the calling thread (offline renders);
    * :meth:`send`, the live sink interface, never blocks: frames queue for a
      worker thread that renders and encodes them. Each frame goes to the
      video frame of its music time (``k = round((time - first) * fps)``):
      slots a stalled frame thread skipped hold the last picture, and a
      frame whose instant is already in the video (the music clock stepped
      back) is left out, so the sound muxed under it stays in sync however
      the live clock jumps. If the worker falls more than ``max_backlog``
      frames behind (llvmpipe at 720p is slower than real time), new frames
      become repeats of the last image, so the video keeps its length.
      :meth:`close` drains the queue.

    The GL context lives in whichever thread renders (contexts are per
    thread), and is created on the first frame.

    Args:
        path: output file (.mp4, .mov or .mkv).
        width, height: frame size in pixels (even numbers, for H.264).
        fps: frame rate of the frames written.
        audio_path: music to mux, or None for a silent video.
        audio_offset: music time (seconds) of the first frame written.
        body: the body to draw (default: the built-in one).
        audio_later: a recording still being made (a live input's sound, see
            ``DeviceSource.record``): the video is encoded silent to a scratch
            file, and :meth:`close` muxes this in, aligned on the first
            frame's music time, then deletes it.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        audio_path: str | Path | None = None,
        audio_offset: float = 0.0,
        body: BodyMesh | None = None,
        max_backlog: int = 600,
        audio_later: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self._audio_later = Path(audio_later) if audio_later is not None else None
        self._first_time: float | None = None  # music time of the first frame (aligns audio_later)
        if self.path.suffix.lower() not in CONTAINERS:
            raise UserError(f"cannot write video {self.path}: use a {', '.join(CONTAINERS)} file name")
        if not self.path.parent.is_dir():
            raise UserError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise UserError(f"video size {width}x{height} must be even and at least 16x16 (e.g. 1280x720)")
        if fps <= 0:
            raise UserError(f"video frame rate {fps} must be positive (e.g. 30 or 60)")
        audio = Path(audio_path) if audio_path is not None else None
        if audio is not None and not audio.is_file():
            raise UserError(f"cannot mux music {audio}: no such file")
        check_shaders()  # fail at start, not in the render thread
        self.size = (width, height)
        self.fps = fps
        self.frames_written = 0
        self.frames_repeated = 0  # live frames that became repeats (worker too far behind)
        self.slots_held = 0  # live video frames that held the picture (the frame thread skipped them)
        self.frames_left_out = 0  # live frames whose music time was already in the video
        self._slots = 0  # live video frames queued so far
        self._body = body
        self._max_backlog = max_backlog
        self._renderer: OffscreenRenderer | None = None
        self._last_image: np.ndarray | None = None
        self._queue: queue.SimpleQueue[Frame | None | object] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_error: BaseException | None = None
        self._stderr = tempfile.TemporaryFile()
        # With audio still to come, ffmpeg writes a silent scratch file first.
        self._encoded = self.path.with_name(f".{self.path.stem}.silent{self.path.suffix}") if self._audio_later else self.path
        cmd = ffmpeg_command(find_ffmpeg(), self._encoded, width, height, fps, audio, audio_offset)
        log.info("video: %s", " ".join(cmd))
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
        )

    # -- offline ---------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Render one frame (in this thread) and append it to the video."""
        if self._worker is not None:
            raise RuntimeError("VideoWriter: write() after send(); use one or the other")
        if self._first_time is None:
            self._first_time = frame.time
        self.write_image(self._render(frame))

    def write_image(self, rgb: np.ndarray) -> None:
        """Append an (H, W, 3) uint8 RGB image, top row first."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("video writer is closed")
        if rgb.shape != (self.size[1], self.size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"image is {rgb.shape} {rgb.dtype}, expected ({self.size[1]}, {self.size[0]}, 3) uint8")
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb).data)
        except BrokenPipeError:
            self._finish()  # raises with ffmpeg's own message
            raise
        self._last_image = rgb
        self.frames_written += 1

    def _render(self, frame: Frame) -> np.ndarray:
        if self._renderer is None:
            self._renderer = OffscreenRenderer(*self.size, body=self._body)
        return self._renderer.render(frame)

    # -- live sink -------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Queue a frame for the worker thread; returns at once."""
        if self._worker_error is not None:
            return  # already reported; close() raises it
        if self._first_time is None:
            self._first_time = frame.time
        if self._worker is None:
            if self.frames_written:
                raise RuntimeError("VideoWriter: send() after write(); use one or the other")
            self._worker = threading.Thread(target=self._work, name="video-writer", daemon=True)
            self._worker.start()
        slot = round((frame.time - self._first_time) * self.fps)
        if slot < self._slots:
            self.frames_left_out += 1
            return
        for _ in range(slot - self._slots):
            self._queue.put(_REPEAT)
            self.slots_held += 1
        self._slots = slot + 1
        if self._queue.qsize() >= self._max_backlog:
            self._queue.put(_REPEAT)
            self.frames_repeated += 1
        else:
            self._queue.put(frame)

    def _work(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                if item is _REPEAT and self._last_image is not None:
                    self.write_image(self._last_image)
                elif isinstance(item, Frame):
                    self.write_image(self._render(item))
        except BaseException as exc:  # noqa: BLE001 - handed to close()
            self._worker_error = exc
            log.error("video: rendering stopped: %s", exc)
        finally:
            self._release_renderer()  # in the thread that owns the context

    def _release_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None

    # -- end -------------------------------------------------------------------

    def close(self) -> None:
        """Drain queued frames, finish the file (encoder flush, index). Idempotent."""
        try:
            if self._worker is not None:
                if self._queue.qsize():
                    log.info("video: rendering %d queued frames", self._queue.qsize())
                self._queue.put(_STOP)
                self._worker.join()
                self._worker = None
            self._finish()
            if self._worker_error is not None:
                error, self._worker_error = self._worker_error, None
                raise error
            if self.frames_repeated:
                log.warning("video: %d frames were repeats (render slower than real time)", self.frames_repeated)
            if self.slots_held or self.frames_left_out:
                log.info("video: %d frames held the picture and %d were left out, following the music clock",
                         self.slots_held, self.frames_left_out)
        finally:
            self._release_renderer()

    def _finish(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        code = proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip()
        self._stderr.close()
        if self.frames_written == 0:
            # Nothing was danced (stopped before the first frame, or rendering
            # failed): leave no broken, empty video behind.
            self._encoded.unlink(missing_ok=True)
            if self._audio_later is not None:
                self._audio_later.unlink(missing_ok=True)
            log.warning("video: no frames were written; %s not created", self.path)
            return
        if code != 0:
            last = err.splitlines()[-1] if err else f"exit code {code}"
            raise UserError(f"ffmpeg could not write {self.path}: {last}")
        if self._audio_later is not None:
            self._mux_later()
        log.info("video: wrote %s (%d frames)", self.path, self.frames_written)

    def _mux_later(self) -> None:
        """Mux the live recording into the silent scratch video; a failure
        keeps the silent video (renamed to the asked-for name) and says so."""
        assert self._audio_later is not None
        audio, self._audio_later = self._audio_later, None
        cmd = mux_command(find_ffmpeg(), self._encoded, audio, self._first_time or 0.0, self.path)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0 and audio.exists():
            self._encoded.unlink(missing_ok=True)
            audio.unlink(missing_ok=True)
            return
        self._encoded.replace(self.path)
        why = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        log.warning("video: %s has no sound (muxing the captured audio failed: %s); the audio is kept in %s", self.path, why, audio)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Finish the file even on error or Ctrl-C: a partial dance is still a video.
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_exc:  # noqa: BLE001 - keep the original error in front
            log.warning("video: could not finish %s after an error: %s", self.path, close_exc)


_REPEAT = object()  # queue marker: repeat the last image
_STOP = object()  # queue marker: no more frames


def render_frames(
    frames: Iterable[Frame],
    out_path: str | Path,
    audio_path: str | Path | None,
    fps: float,
    size: tuple[int, int] = (1280, 720),
    progress: bool = True,
    audio_offset: float | None = None,
) -> int:
    """Render a sequence of frames to a video with the music; returns the frame count.

    ``audio_offset`` defaults to the first frame's music time, so a dance that
    starts mid-song stays in sync.
    """
    from tqdm import tqdm

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise UserError(f"nothing to render into {out_path}: the dance has no frames")
    total = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    offset = first.time if audio_offset is None else audio_offset
    with VideoWriter(out_path, size[0], size[1], fps, audio_path, offset) as writer, tqdm(
        total=total, unit="frame", desc=Path(out_path).name, disable=not progress, leave=False
    ) as bar:
        for frame in itertools.chain([first], it):
            writer.write(frame)
            bar.update(1)
    return writer.frames_written


# ---------------------------------------------------------------------------
# `livedance render MOTION.npz -o OUT.mp4`


def frames_from_motion(poses: np.ndarray, trans: np.ndarray, fps: float, beats: np.ndarray | None = None) -> list[Frame]:
    """Frames for a motion file: (N, 24, 3) axis-angle poses, (N, 3) root positions.

    Beat phase and beat events come from ``beats`` (music times, seconds) when
    given; forward kinematics runs once for the whole sequence.
    """
    from livedance.frames import BeatEvent
    from livedance.skeleton import axis_angle_to_matrix, forward_kinematics

    rot = axis_angle_to_matrix(np.asarray(poses, dtype=np.float32).reshape(-1, 24, 3))[:, None]  # (N, 1, 24, 3, 3)
    root = np.asarray(trans, dtype=np.float32).reshape(-1, 1, 3)
    _, joints = forward_kinematics(rot, root)
    beats = np.sort(np.asarray(beats, dtype=np.float64)) if beats is not None and len(beats) else np.zeros(0)
    tempo = 60.0 / float(np.median(np.diff(beats))) if len(beats) > 2 else 120.0
    t = np.arange(len(rot)) / fps
    k = np.searchsorted(beats, t, side="right")  # beats at or before each frame
    inside = (k > 0) & (k < len(beats))
    phase = (t * tempo / 60.0) % 1.0
    if inside.any():
        prev, nxt = beats[k[inside] - 1], beats[k[inside]]
        phase[inside] = (t[inside] - prev) / np.maximum(nxt - prev, 1e-6)
    # A beat belongs to the first frame at or after it.
    first = np.searchsorted(beats, t - 1.0 / fps, side="right")
    return [
        Frame(
            index=i, time=float(t[i]), wall_time=0.0, trans=root[i], rotations=rot[i], joints=joints[i],
            tempo=tempo, beat_phase=float(phase[i]) % 1.0,
            confidence=1.0 if len(beats) else 0.0,
            beats=tuple(BeatEvent(int(b), float(beats[b]), tempo) for b in range(first[i], k[i])),
        )
        for i in range(len(rot))
    ]


def load_motion(path: str | Path) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    """``poses, trans, fps, beats`` from a livedance motion ``.npz``."""
    path = Path(path)
    try:
        with np.load(path) as data:
            poses, trans = data["poses"], data["trans"]
            fps = float(data["fps"]) if "fps" in data else 60.0
            beats = data["beats"] if "beats" in data else None
    except FileNotFoundError:
        raise UserError(f"motion file {path} not found") from None
    except KeyError as exc:
        raise UserError(f"{path} is not a livedance motion file (missing {exc}; need poses and trans)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read motion file {path}: {exc} (expected a .npz from `livedance dance`)") from None
    poses = poses.reshape(len(poses), -1, 3)
    if poses.shape[1] != 24 or trans.shape != (len(poses), 3):
        raise UserError(f"{path}: poses must be (N, 24, 3) and trans (N, 3), got {poses.shape} and {trans.shape}")
    return poses, trans, fps, beats


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"bad size '{text}' (write WIDTHxHEIGHT, e.g. 1280x720)") from None
    return w, h


def run_render(args: argparse.Namespace, settings: object) -> int:
    """``livedance render``: a motion file to a video, offscreen."""
    viewer = settings.viewer  # type: ignore[attr-defined]
    size = parse_size(args.size) if args.size else (viewer.width, viewer.height)
    poses, trans, fps, beats = load_motion(args.motion)
    frames = frames_from_motion(poses, trans, fps, beats)
    n = render_frames(frames, args.out, args.audio, fps, size, progress=True, audio_offset=args.audio_offset)
    print(f"wrote {args.out}: {n} frames at {fps:g} fps ({n / fps:.2f} s)")
    return 0
