"""Record the frames the engine produced to a motion file (.npz, .bvh, .pkl).

Frames are appended, as they come, to a scratch file beside the output
(``.NAME.*.frames``), so memory stays flat however long the show runs; the
motion file is written from it at :meth:`Recorder.close`, which the engine
runner calls on every exit path (end of input, ``--seconds``, Ctrl-C,
SIGTERM). Dancer 0 goes to every format, all dancers to ``.npz``.
"""

from __future__ import annotations

import logging
import tempfile
from array import array
from pathlib import Path

import numpy as np

from livedance.errors import UserError
from livedance.frames import Frame
from livedance.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)

SUPPORTED = (".npz", ".bvh", ".pkl")
#: float64 values one dancer adds to a frame's record: 24 rotations, then (after all dancers' rotations) 3 of trans.
_ROT = NUM_JOINTS * 9
_PER_DANCER = _ROT + 3


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
        # Per-frame scalars in compact arrays (4-8 bytes a frame, not a Python object each).
        self._dancers = array("i")
        self._tempo = array("f")
        self._level = array("b")
        self._beats = array("d")
        self._closed = False

    def send(self, frame: Frame) -> None:
        self._scratch.write(np.ascontiguousarray(frame.rotations, dtype=np.float64).data)
        self._scratch.write(np.ascontiguousarray(frame.trans, dtype=np.float64).data)
        self._dancers.append(frame.rotations.shape[0])
        self._tempo.append(frame.tempo)
        self._level.append(frame.level)
        self._beats.extend(b.time for b in frame.beats)

    @property
    def frames(self) -> int:
        return len(self._dancers)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        scratch = Path(self._scratch.name)
        try:
            self._scratch.close()
            if not self._dancers:
                log.warning("no frames to record; %s not written", self.path)
                return
            self._write(np.fromfile(scratch, dtype=np.float64))
        finally:
            scratch.unlink(missing_ok=True)

    def _write(self, flat: np.ndarray) -> None:
        from livedance.motion.io import save_motion

        counts = np.frombuffer(self._dancers, dtype=np.int32)
        extra: dict[str, np.ndarray] = {
            "tempo": np.frombuffer(self._tempo, dtype=np.float32).copy(),
            # Metrical level danced per frame: -1 half-time, 0 normal, 1 double-time.
            "level": np.frombuffer(self._level, dtype=np.int8).copy(),
        }
        if np.all(counts == counts[0]):
            rows = flat.reshape(len(counts), counts[0] * _PER_DANCER)
            rotations = rows[:, : counts[0] * _ROT].reshape(len(counts), counts[0], NUM_JOINTS, 3, 3)
            trans = rows[:, counts[0] * _ROT :].reshape(len(counts), counts[0], 3)
        else:
            # The number of dancers changed mid-performance (OSC control, the
            # viewer's +/- keys). Dancer 0 is in every frame; dancers absent
            # from a frame get identity rotations at NaN positions, and
            # "dancers" says how many were live in each frame.
            most = int(counts.max())
            rotations = np.tile(np.eye(3), (len(counts), most, NUM_JOINTS, 1, 1))
            trans = np.full((len(counts), most, 3), np.nan)
            starts = np.concatenate([[0], np.cumsum(counts * _PER_DANCER)])
            for i, n in enumerate(counts):
                rec = flat[starts[i] : starts[i + 1]]
                rotations[i, :n] = rec[: n * _ROT].reshape(n, NUM_JOINTS, 3, 3)
                trans[i, :n] = rec[n * _ROT :].reshape(n, 3)
            extra["dancers"] = counts.copy()
        if rotations.shape[1] > 1 and self.path.suffix.lower() == ".npz":
            extra["all_rotations"] = rotations
            extra["all_trans"] = trans
        save_motion(self.path, rotations[:, 0], trans[:, 0], self.fps, beats=np.frombuffer(self._beats, dtype=np.float64).copy(), **extra)
        log.info("recorded %d frames to %s", len(counts), self.path)
