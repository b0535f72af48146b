"""The recorder's scratch file: frames appended as they come, readable back
in bounded memory, and recoverable after a power cut.

Layout: a 16-byte header (``b"LDSCR001"``, then the frame rate as float64),
then one record per frame, all float64::

    [dancers n, tempo, level, beat count k, k beat times, n*24*9 rotations, n*3 root positions]

Every record says its own length, so :func:`scan` rebuilds the index from
the file alone (``livedance recover``) and stops at a torn or zeroed tail
(what a power cut leaves). :func:`write_motion` writes the motion file from
the scratch in chunks: memory stays flat however long the show ran (the
index costs ~20 bytes a frame).
"""

from __future__ import annotations

import argparse
import io
import logging
import pickle
import tempfile
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedance import skeleton as sk
from livedance.errors import UserError

log = logging.getLogger(__name__)

MAGIC = b"LDSCR001"
HEADER_BYTES = 16
HEAD = 4  # float64 words before a record's beats: n, tempo, level, k
ROT = sk.NUM_JOINTS * 9
MAX_DANCERS = 64  # a record claiming more is garbage (the tail of a torn file)
CHUNK = 2048  # frames per step of the writer (~4 MB of scratch)


def file_header(fps: float) -> bytes:
    return MAGIC + np.float64(fps).tobytes()


def record(rotations: np.ndarray, trans: np.ndarray, tempo: float, level: int, beats: list[float]) -> list[bytes]:
    """One frame's record, as the byte strings to write in turn."""
    n = rotations.shape[0]
    head = np.array([n, tempo, level, len(beats), *beats], dtype=np.float64)
    return [
        head.tobytes(),
        np.ascontiguousarray(rotations, dtype=np.float64).tobytes(),
        np.ascontiguousarray(trans, dtype=np.float64).tobytes(),
    ]


@dataclass
class Index:
    """Where each frame's record starts, and its per-frame scalars."""

    fps: float
    offsets: array = field(default_factory=lambda: array("q"))  # byte offset of each record
    dancers: array = field(default_factory=lambda: array("i"))
    tempo: array = field(default_factory=lambda: array("f"))
    level: array = field(default_factory=lambda: array("b"))
    beats: array = field(default_factory=lambda: array("d"))
    end: int = HEADER_BYTES  # byte just after the last whole record

    def add(self, n: int, tempo: float, level: int, beats: list[float]) -> None:
        """Note the record about to be written at :attr:`end`."""
        self.offsets.append(self.end)
        self.dancers.append(n)
        self.tempo.append(tempo)
        self.level.append(level)
        self.beats.extend(beats)
        self.end += 8 * (HEAD + len(beats) + n * (ROT + 3))

    def __len__(self) -> int:
        return len(self.dancers)


def scan(path: str | Path) -> Index:
    """Rebuild the index of a scratch file from its records (after a crash),
    up to the first torn, zeroed or impossible record."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        head = f.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES or head[:8] != MAGIC:
            raise UserError(f"{path} is not a livedance recording scratch file (they are named .NAME.*.frames)")
        fps = float(np.frombuffer(head[8:], np.float64)[0])
        if not 0 < fps <= 1000:
            raise UserError(f"{path}: damaged header (frame rate {fps})")
        index = Index(fps)
        size = path.stat().st_size
        pos = HEADER_BYTES
        while pos + 8 * HEAD <= size:
            f.seek(pos)
            n, tempo, level, k = np.frombuffer(f.read(8 * HEAD), np.float64)
            if not (1 <= n <= MAX_DANCERS and n == int(n) and 0 <= k <= 64 and k == int(k) and np.isfinite(tempo)):
                break
            n, k = int(n), int(k)
            length = 8 * (HEAD + k + n * (ROT + 3))
            if pos + length > size:
                break  # torn: the last record was half written
            beats = list(np.frombuffer(f.read(8 * k), np.float64)) if k else []
            index.add(n, float(tempo), int(level), beats)
            pos += length
    return index


def _frames(path: Path, index: Index, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotations (m, D, 24, 3, 3), roots (m, D, 3) (NaN/identity for absent dancers)
    and dancer counts of frames ``start:stop``, read in one piece."""
    offsets = np.frombuffer(index.offsets, np.int64)[start:stop]
    counts = np.frombuffer(index.dancers, np.int32)[start:stop]
    end = int(index.offsets[stop]) if stop < len(index) else index.end
    words = np.fromfile(path, np.float64, count=(end - int(offsets[0])) // 8, offset=int(offsets[0]))
    most = int(counts.max())
    m = stop - start
    rotations = np.tile(np.eye(3), (m, most, sk.NUM_JOINTS, 1, 1))
    trans = np.full((m, most, 3), np.nan)
    base = int(offsets[0])
    for i in range(m):
        at = (int(offsets[i]) - base) // 8
        n, k = int(words[at]), int(words[at + 3])
        body = at + HEAD + k
        rotations[i, :n] = words[body : body + n * ROT].reshape(n, sk.NUM_JOINTS, 3, 3)
        trans[i, :n] = words[body + n * ROT : body + n * (ROT + 3)].reshape(n, 3)
    return rotations, trans, counts


def _chunks(path: Path, index: Index):  # noqa: ANN202 - generator of _frames results
    for start in range(0, len(index), CHUNK):
        yield start, _frames(path, index, start, min(len(index), start + CHUNK))


def write_motion(scratch: str | Path, index: Index, out: str | Path) -> None:
    """Write the motion file ``out`` (.npz, .bvh, .pkl) from a scratch file, a
    chunk of frames at a time (all dancers to .npz, dancer 0 to the others)."""
    scratch, out = Path(scratch), Path(out)
    if not len(index):
        raise UserError(f"{scratch} holds no whole frame; nothing to write")
    ext = out.suffix.lower()
    try:
        if ext == ".npz":
            _write_npz(scratch, index, out)
        elif ext == ".bvh":
            _write_bvh(scratch, index, out)
        elif ext == ".pkl":
            _write_pkl(scratch, index, out)
        else:
            raise UserError(f"cannot write {out}: unknown extension (use .npz, .bvh or .pkl)")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; check the folder exists and is writable") from exc


def _write_npz(scratch: Path, index: Index, out: Path) -> None:
    n = len(index)
    counts = np.frombuffer(index.dancers, np.int32)
    most = int(counts.max())
    with tempfile.TemporaryDirectory(prefix=".livedance-", dir=out.parent) as tmp:
        big = {
            "poses": ((n, sk.NUM_JOINTS, 3), np.float32),
            "trans": ((n, 3), np.float32),
            "joints": ((n, sk.NUM_JOINTS, 3), np.float32),
        }
        if most > 1:
            big["all_rotations"] = ((n, most, sk.NUM_JOINTS, 3, 3), np.float64)
            big["all_trans"] = ((n, most, 3), np.float64)
        arrays = {k: np.lib.format.open_memmap(Path(tmp) / f"{k}.npy", "w+", dtype, shape) for k, (shape, dtype) in big.items()}
        for start, (rotations, trans, _) in _chunks(scratch, index):
            stop = start + len(rotations)
            r0, t0 = rotations[:, 0], trans[:, 0]
            arrays["poses"][start:stop] = sk.matrix_to_axis_angle(r0)
            arrays["trans"][start:stop] = t0
            arrays["joints"][start:stop] = sk.forward_kinematics(r0, t0)[1]
            if most > 1:
                arrays["all_rotations"][start:stop, : rotations.shape[1]] = rotations
                arrays["all_rotations"][start:stop, rotations.shape[1] :] = np.eye(3)
                arrays["all_trans"][start:stop, : trans.shape[1]] = trans
                arrays["all_trans"][start:stop, trans.shape[1] :] = np.nan
        for a in arrays.values():
            a.flush()
        del arrays
        small = {
            "fps": np.float64(index.fps),
            "beats": np.frombuffer(index.beats, np.float64).copy(),
            "tempo": np.frombuffer(index.tempo, np.float32).copy(),
            # Metrical level danced per frame: -1 half-time, 0 normal, 1 double-time.
            "level": np.frombuffer(index.level, np.int8).copy(),
        }
        if not np.all(counts == counts[0]):
            small["dancers"] = counts.copy()  # how many were live in each frame (the rest: NaN roots)
        partial = out.with_name(f".{out.name}.partial")
        # The layout np.savez writes (stored members), the big ones copied from disk in blocks.
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key in ("poses", "trans", "joints"):
                zf.write(Path(tmp) / f"{key}.npy", f"{key}.npy")
            for key, value in small.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
                zf.writestr(f"{key}.npy", buf.getvalue())
            for key in ("all_rotations", "all_trans"):
                if key in big:
                    zf.write(Path(tmp) / f"{key}.npy", f"{key}.npy")
        partial.replace(out)


def _write_bvh(scratch: Path, index: Index, out: Path) -> None:
    from livedance.motion.bvh import smpl_bvh_header, smpl_bvh_rows

    with out.open("w") as f:
        f.write(smpl_bvh_header(len(index), index.fps))
        for _, (rotations, trans, _) in _chunks(scratch, index):
            f.write(smpl_bvh_rows(rotations[:, 0], trans[:, 0]))


def _write_pkl(scratch: Path, index: Index, out: Path) -> None:
    from livedance.motion.aistpp import AISTPP_FPS

    if abs(index.fps - AISTPP_FPS) > 1e-9:
        # AIST++ is 60 fps by definition: resample in memory (dancer 0 only).
        from livedance.motion.io import save_motion

        parts = [(r[:, 0], t[:, 0]) for _, (r, t, _) in _chunks(scratch, index)]
        save_motion(out, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), index.fps)
        return
    n = len(index)
    with tempfile.TemporaryDirectory(prefix=".livedance-", dir=out.parent) as tmp:
        poses = np.lib.format.open_memmap(Path(tmp) / "poses.npy", "w+", np.float32, (n, 72))
        roots = np.lib.format.open_memmap(Path(tmp) / "trans.npy", "w+", np.float32, (n, 3))
        for start, (rotations, trans, _) in _chunks(scratch, index):
            poses[start : start + len(rotations)] = sk.matrix_to_axis_angle(rotations[:, 0]).reshape(-1, 72)
            roots[start : start + len(rotations)] = trans[:, 0]
        poses.flush()
        roots.flush()
        data = {
            "smpl_poses": np.load(Path(tmp) / "poses.npy", mmap_mode="r"),
            "smpl_trans": np.load(Path(tmp) / "trans.npy", mmap_mode="r"),
            "smpl_scaling": np.array([1.0], dtype=np.float32),
            "smpl_loss": 0.0,
        }
        with out.open("wb") as f:
            # Protocol 5 writes each array's buffer straight from the mapped file
            # (protocol 4 would copy it into memory first).
            pickle.dump(data, f, protocol=5)
        del data, poses, roots


def run_recover(args: argparse.Namespace, settings: object) -> int:
    """``livedance recover SCRATCH -o OUT``: a recording's scratch file left by a
    crash or power cut, written out as the motion file it would have become."""
    index = scan(args.scratch)
    if not len(index):
        raise UserError(f"{args.scratch} holds no whole frame (it was cut before the first one)")
    write_motion(args.scratch, index, args.output)
    print(f"recovered {len(index)} frames ({len(index) / index.fps:.1f} s) from {args.scratch} to {args.output}")
    return 0
