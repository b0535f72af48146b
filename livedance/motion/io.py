"""Motion files in and out, by extension: ``.npz`` (livedance), ``.bvh``, ``.pkl`` (AIST++).

What ``livedance dance SONG -o OUT`` and ``perform --record OUT`` write.

``.npz`` keys: ``poses`` (N, 24, 3) axis-angle, ``trans`` (N, 3) metres,
``joints`` (N, 24, 3) world positions in metres (y up), ``fps`` scalar,
``beats`` (B,) times in seconds of the music beats (empty if none), plus any
extra arrays the caller passes. ``.bvh`` is the SMPL skeleton in
centimetres. ``.pkl`` is AIST++'s motion format, which is 60 fps by
definition, so other rates are resampled; its beats are not stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedance import skeleton as sk
from livedance.errors import UserError
from livedance.motion import aistpp
from livedance.motion.bvh import read_bvh, smpl_from_bvh, write_smpl_bvh
from livedance.motion.clip import MotionClip
from livedance.motion.resample import resample
from livedance.motion.retarget import retarget

SUPPORTED = (".npz", ".bvh", ".pkl")


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise UserError(f"{path}: unknown motion format {ext or '(none)'!r}; use one of {', '.join(SUPPORTED)}")
    return ext


def save_motion(
    path: str | Path,
    rotations: np.ndarray,
    trans: np.ndarray,
    fps: float,
    beats: np.ndarray | None = None,
    **extra: np.ndarray,
) -> None:
    """Write SMPL-skeleton motion, format chosen by the extension.

    Args:
        path: ``.npz``, ``.bvh`` or ``.pkl``.
        rotations: (N, 24, 3, 3) local rotations.
        trans: (N, 3) pelvis position, metres, y up.
        fps: frame rate.
        beats: (B,) music beat times, seconds (kept in ``.npz`` only).
        **extra: more arrays for the ``.npz`` (ignored by other formats).

    Raises:
        UserError: unknown extension, or the file cannot be written.
    """
    path = Path(path)
    ext = _extension(path)
    rotations = np.asarray(rotations, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    try:
        if ext == ".npz":
            clash = {"poses", "trans", "joints", "fps", "beats"} & set(extra)
            if clash:
                raise ValueError(f"extra arrays may not be named {sorted(clash)}")
            np.savez(
                path,
                poses=sk.matrix_to_axis_angle(rotations).astype(np.float32),
                trans=trans.astype(np.float32),
                joints=sk.forward_kinematics(rotations, trans)[1].astype(np.float32),
                fps=np.float64(fps),
                beats=np.asarray(beats if beats is not None else [], dtype=np.float64),
                **extra,
            )
        elif ext == ".bvh":
            write_smpl_bvh(path, rotations, trans, fps)
        else:
            clip = resample(MotionClip(rotations, trans, fps), aistpp.AISTPP_FPS)
            aistpp.save_aistpp(path, clip.rotations, clip.trans)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; check the folder exists and is writable") from exc


def load_motion(path: str | Path) -> MotionClip:
    """Read a motion file written by :func:`save_motion` (or any BVH / AIST++ pkl).

    BVH files of other skeletons are retargeted onto SMPL. The clip's
    ``meta`` holds ``beats`` (and any extra ``.npz`` arrays) when present.

    Raises:
        UserError: unknown extension, missing file, or wrong contents (names the problem).
    """
    path = Path(path)
    ext = _extension(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if ext == ".pkl":
        return aistpp.load_aistpp(path)
    if ext == ".bvh":
        motion = read_bvh(path)
        direct = smpl_from_bvh(motion)
        if direct is None:
            return retarget(motion).clip
        return MotionClip(direct[0], direct[1], motion.fps, name=path.stem)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; is it a livedance motion .npz?") from exc
    missing = [k for k in ("poses", "trans", "fps") if k not in data]
    if missing:
        raise UserError(f"{path}: not a livedance motion (missing {', '.join(missing)}; found {sorted(data)})")
    poses = data.pop("poses").astype(np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (sk.NUM_JOINTS, 3):
        raise UserError(f"{path}: poses must be (N, 24, 3) axis-angle; got {poses.shape}")
    trans = data.pop("trans").astype(np.float64)
    fps = float(data.pop("fps"))
    data.pop("joints", None)  # derived; recomputed on demand
    return MotionClip(sk.axis_angle_to_matrix(poses), trans, fps, name=path.stem, meta=data)
