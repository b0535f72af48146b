"""Record the frames the engine produced to a motion file (.npz, .bvh, .pkl).

Frames are appended, as they come, to a scratch file beside the output
(``.NAME.*.frames``, see :mod:`livedance.outputs.scratch`), so memory stays
flat however long the show runs; the motion file is written from it, a
chunk of frames at a time, at :meth:`Recorder.close`, which the engine
runner calls on every exit path (end of input, ``--seconds``, Ctrl-C,
SIGTERM). Dancer 0 goes to every format, all dancers to ``.npz``. After a
crash or a power cut the scratch file is left behind, and
``livedance recover SCRATCH -o OUT`` writes it out.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from livedance.errors import UserError
from livedance.frames import Frame
from livedance.outputs.scratch import Index, file_header, record, write_motion

log = logging.getLogger(__name__)

SUPPORTED = (".npz", ".bvh", ".pkl")
#: Seconds between hand-overs of the scratch file's buffer to the kernel: a
#: crash loses at most this much of the recording (a power cut also what the
#: kernel had not yet written to disk, ~30 s on Linux by default).
FLUSH_SECONDS = 1.0


class Recorder:
    """A frame sink that writes a motion file when closed."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in SUPPORTED:
            raise UserError(f"cannot record to {self.path}: unknown extension (use {', '.join(SUPPORTED)})")
        if not self.path.parent.exists():
            raise UserError(f"cannot record to {self.path}: folder {self.path.parent} does not exist (create it first)")
        self.fps = float(fps)
        try:
            self._scratch = tempfile.NamedTemporaryFile(
                prefix=f".{self.path.name}.", suffix=".frames", dir=self.path.parent, delete=False
            )
        except OSError as e:
            raise UserError(f"cannot record to {self.path}: {e.strerror or e} (pick a writable folder)") from None
        self._scratch.write(file_header(self.fps))
        self._index = Index(self.fps)  # per-frame scalars in compact arrays (~20 bytes a frame)
        self._flushed = time.monotonic()
        self._closed = False

    def send(self, frame: Frame) -> None:
        beats = [b.time for b in frame.beats]
        level = int(getattr(frame, "level", 0))  # metrical level danced: -1 half-time, 0 normal, 1 double-time
        self._index.add(frame.rotations.shape[0], frame.tempo, level, beats)
        for part in record(frame.rotations, frame.trans, frame.tempo, level, beats):
            self._scratch.write(part)
        now = time.monotonic()
        if now - self._flushed >= FLUSH_SECONDS:
            self._scratch.flush()
            self._flushed = now

    @property
    def frames(self) -> int:
        return len(self._index)

    @property
    def scratch(self) -> Path:
        """The scratch file (``livedance recover`` reads it if the process dies)."""
        return Path(self._scratch.name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        scratch = self.scratch
        try:
            self._scratch.close()
            if not len(self._index):
                log.warning("no frames to record; %s not written", self.path)
                return
            write_motion(scratch, self._index, self.path)
            log.info("recorded %d frames to %s", len(self._index), self.path)
        finally:
            scratch.unlink(missing_ok=True)
