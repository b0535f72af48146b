"""AIST++ SMPL motion files (``motions/*.pkl``): read and write.

Published format (google/aistplusplus_api, ``AISTDataset.load_motion``): a
pickled dict with

* ``smpl_poses`` (N, 72) float32: 24 SMPL joints x axis-angle, radians;
* ``smpl_trans`` (N, 3) float32: root translation in a scaled frame;
* ``smpl_scaling`` (1,) float32: divide ``smpl_trans`` by it to get metres;
* ``smpl_loss`` float: fitting loss (informational);

at 60 fps, y up. The floor is wherever the capture studio's origin put it
(pelvis heights of 1.2-2.0 m in the sample), so datasets put clips on the
floor with :func:`livedance.motion.clip.place_on_floor`.

Sequence names encode genre, situation, camera, dancer, music and
choreography, e.g. ``gBR_sBM_cAll_d04_mBR2_ch08``; the music's tempo is fixed
by its ID (m??0..5 = 80..130 BPM, house mHO0..5 = 110..135 BPM).
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance import skeleton as sk
from livedance.errors import UserError
from livedance.motion.clip import MotionClip

AISTPP_FPS = 60.0
REQUIRED_KEYS = ("smpl_poses", "smpl_trans", "smpl_scaling")

#: AIST Dance DB genre codes.
GENRES = {
    "gBR": "break", "gPO": "pop", "gLO": "lock", "gMH": "middle-hiphop", "gLH": "la-hiphop",
    "gHO": "house", "gWA": "waack", "gKR": "krump", "gJS": "street-jazz", "gJB": "ballet-jazz",
}

_NAME = re.compile(r"^(g[A-Z]{2})_(s[A-Z]{2})_(c[A-Za-z0-9]+)_(d\d+)_(m[A-Z]{2})(\d)_(ch\d+)$")


@dataclass(frozen=True)
class AistName:
    """The parts of an AIST++ sequence name."""

    genre: str  # e.g. "gBR"
    situation: str  # "sBM" basic, "sFM" advanced/freestyle
    camera: str
    dancer: str
    music: str  # e.g. "mBR2"
    choreography: str

    @property
    def music_bpm(self) -> float:
        """Tempo of the music, fixed per music ID by the AIST Dance DB."""
        k = int(self.music[-1])
        return 110.0 + 5.0 * k if self.music[:3] == "mHO" else 80.0 + 10.0 * k

    @property
    def genre_name(self) -> str:
        return GENRES.get(self.genre, self.genre)


def parse_name(stem: str) -> AistName | None:
    """Split an AIST++ sequence name; None if it is not one."""
    m = _NAME.match(stem)
    if m is None:
        return None
    g, s, c, d, mus, num, ch = m.groups()
    return AistName(g, s, c, d, mus + num, ch)


def load_aistpp(path: str | Path) -> MotionClip:
    """Read an AIST++ motion pkl into a clip (metres, y up, 60 fps; floor not adjusted).

    Raises:
        UserError: unreadable file, or not an AIST++ motion (keys missing, wrong shapes).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; is it an AIST++ motion .pkl?") from exc
    if not isinstance(data, dict) or any(k not in data for k in REQUIRED_KEYS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(
            f"{path}: not an AIST++ motion (needs keys {', '.join(REQUIRED_KEYS)}; found {found}); "
            "use the files from AIST++ motions/, not keypoints2d/ or keypoints3d/"
        )
    poses = np.asarray(data["smpl_poses"], dtype=np.float64)
    trans = np.asarray(data["smpl_trans"], dtype=np.float64)
    scaling = float(np.asarray(data["smpl_scaling"]).reshape(-1)[0])
    n = poses.shape[0]
    if poses.ndim != 2 or poses.shape[1] != 72 or trans.shape != (n, 3) or n == 0:
        raise UserError(
            f"{path}: smpl_poses must be (N, 72) and smpl_trans (N, 3); got {poses.shape} and {trans.shape}"
        )
    if not scaling > 0 or not np.all(np.isfinite(poses)) or not np.all(np.isfinite(trans)):
        raise UserError(f"{path}: non-finite values or smpl_scaling {scaling} <= 0; the file is corrupt")
    rotations = sk.axis_angle_to_matrix(poses.reshape(n, sk.NUM_JOINTS, 3))
    return MotionClip(rotations, trans / scaling, AISTPP_FPS, name=path.stem)


def save_aistpp(path: str | Path, rotations: np.ndarray, trans: np.ndarray, scaling: float = 1.0) -> None:
    """Write motion as an AIST++ motion pkl.

    Args:
        rotations: (N, 24, 3, 3) local rotations, **at 60 fps** (the format has
            no frame-rate field; resample first).
        trans: (N, 3) pelvis position, metres, y up.
        scaling: ``smpl_scaling`` to store; ``smpl_trans`` is ``trans * scaling``.
    """
    n = rotations.shape[0]
    data = {
        "smpl_poses": sk.matrix_to_axis_angle(np.asarray(rotations, dtype=np.float64)).reshape(n, 72).astype(np.float32),
        "smpl_trans": (np.asarray(trans, dtype=np.float64) * scaling).astype(np.float32),
        "smpl_scaling": np.array([scaling], dtype=np.float32),
        "smpl_loss": 0.0,
    }
    with Path(path).open("wb") as f:
        pickle.dump(data, f, protocol=4)
