"""Record the frames the engine produced to a motion file (.npz, .bvh, .pkl).

Frames are buffered in memory (dancer 0, plus all dancers in .npz) and
written once, at :meth:`Recorder.close`, which the engine runner calls on
every exit path (end of input, ``--seconds``, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from livedance.errors import UserError
from livedance.frames import Frame

log = logging.getLogger(__name__)

SUPPORTED = (".npz", ".bvh", ".pkl")


class Recorder:
    """A frame sink that writes a motion file when closed."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in SUPPORTED:
            raise UserError(f"cannot record to {self.path}: unknown extension (use {', '.join(SUPPORTED)})")
        if not self.path.parent.exists():
            raise UserError(f"cannot record to {self.path}: folder {self.path.parent} does not exist (create it first)")
        self.fps = float(fps)
        self._rotations: list[np.ndarray] = []
        self._trans: list[np.ndarray] = []
        self._beats: list[float] = []
        self._tempo: list[float] = []
        self._closed = False

    def send(self, frame: Frame) -> None:
        self._rotations.append(frame.rotations)
        self._trans.append(frame.trans)
        self._tempo.append(frame.tempo)
        self._beats.extend(b.time for b in frame.beats)

    @property
    def frames(self) -> int:
        return len(self._rotations)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._rotations:
            log.warning("no frames to record; %s not written", self.path)
            return
        from livedance.motion.io import save_motion

        extra: dict[str, np.ndarray] = {"tempo": np.asarray(self._tempo, dtype=np.float32)}
        counts = np.array([r.shape[0] for r in self._rotations])
        if np.all(counts == counts[0]):
            rotations = np.stack(self._rotations)  # (N, B, 24, 3, 3)
            trans = np.stack(self._trans)  # (N, B, 3)
        else:
            # The number of dancers changed mid-performance (OSC control, the
            # viewer's +/- keys); np.stack used to fail here and the whole
            # recording was lost. Dancer 0 is in every frame; dancers absent
            # from a frame get identity rotations at NaN positions, and
            # "dancers" says how many were live in each frame.
            most = int(counts.max())
            rotations = np.tile(np.eye(3), (len(counts), most, self._rotations[0].shape[1], 1, 1))
            trans = np.full((len(counts), most, 3), np.nan)
            for i, (r, t) in enumerate(zip(self._rotations, self._trans)):
                rotations[i, : r.shape[0]] = r
                trans[i, : t.shape[0]] = t
            extra["dancers"] = counts.astype(np.int32)
        if rotations.shape[1] > 1 and self.path.suffix.lower() == ".npz":
            extra["all_rotations"] = rotations
            extra["all_trans"] = trans
        save_motion(
            self.path,
            rotations[:, 0],
            trans[:, 0],
            self.fps,
            beats=np.asarray(self._beats, dtype=np.float64),
            **extra,
        )
        log.info("recorded %d frames to %s", rotations.shape[0], self.path)
