"""Coordinate conventions of the tools livedance talks to.

livedance's world is SMPL's: right-handed, metres, y up, the body facing +z
with its left side on +x. A receiver may want z up (Blender, many stage
tools), centimetres (Unreal, some TouchDesigner set-ups) or a left-handed
frame (Unity, hence VMC). Each of these is a fixed 3x3 change of basis ``M``
(a rotation, or a reflection for a change of handedness) plus a scale.

How each quantity transforms under ``M``:
* a position (a polar vector) becomes ``scale * M @ p``;
* a local joint rotation ``R`` (every SMPL joint frame is aligned with the
  world in the rest pose) becomes ``M @ R @ M.T``. For a quaternion
  ``(w, v)`` that is ``(w, det(M) * M @ v)``: the rotation axis is an axial
  vector, which a reflection flips once more; the angle is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from livedance.errors import UserError

# y up -> z up, keeping right-handedness: +90 deg about x. Up (+y) becomes +z
# and the body's forward (+z) becomes -y, so a dancer faces the camera of
# Blender's front view.
_Y_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)
# Right- to left-handed, y up: mirror x. Forward stays +z, where a Unity
# humanoid faces, so SMPL's rest pose lands on the avatar's rest pose (the
# other choice, mirroring z, would also turn the dancer around).
_MIRROR_X = np.diag([-1.0, 1.0, 1.0])

_UNITS = {"m": 1.0, "cm": 100.0}


@dataclass(frozen=True)
class Axes:
    """A target convention: ``matrix`` maps livedance world coordinates to the
    target's, ``scale`` converts metres to its unit."""

    matrix: np.ndarray
    scale: float = 1.0

    @classmethod
    def from_names(cls, up_axis: str = "y", units: str = "m", left_handed: bool = False) -> "Axes":
        if up_axis not in ("y", "z"):
            raise UserError(f"osc.up_axis must be \"y\" or \"z\", got {up_axis!r} (e.g. --set osc.up_axis=\"z\")")
        if units not in _UNITS:
            raise UserError(f"osc.units must be \"m\" or \"cm\", got {units!r} (e.g. --set osc.units=\"cm\")")
        if left_handed and up_axis != "y":
            raise ValueError("only y-up left-handed axes (Unity's) are supported")
        matrix = _MIRROR_X if left_handed else (_Y_TO_Z_UP if up_axis == "z" else np.eye(3))
        return cls(matrix=matrix.copy(), scale=_UNITS[units])

    @cached_property
    def _pos_matrix(self) -> np.ndarray:
        return (self.scale * self.matrix).T.astype(np.float32)

    @cached_property
    def _axis_matrix(self) -> np.ndarray:
        return (np.linalg.det(self.matrix) * self.matrix).T.astype(np.float32)

    def positions(self, p: np.ndarray) -> np.ndarray:
        """(..., 3) positions in metres, y up -> target coordinates."""
        return np.asarray(p, dtype=np.float32) @ self._pos_matrix

    def quaternions_xyzw(self, q_wxyz: np.ndarray) -> np.ndarray:
        """(..., 4) livedance quaternions (w, x, y, z) -> target (x, y, z, w), the
        component order of Unity, TouchDesigner and VMC."""
        q = np.asarray(q_wxyz, dtype=np.float32)
        out = np.empty(q.shape, dtype=np.float32)
        out[..., :3] = q[..., 1:] @ self._axis_matrix
        out[..., 3] = q[..., 0]
        return out

    def inverse_positions(self, p: np.ndarray) -> np.ndarray:
        """Target coordinates -> livedance metres, y up (for receivers and tests)."""
        return np.asarray(p, dtype=np.float64) @ self.matrix / self.scale

    def inverse_quaternions_xyzw(self, q_xyzw: np.ndarray) -> np.ndarray:
        """Target (x, y, z, w) -> livedance (w, x, y, z)."""
        q = np.asarray(q_xyzw, dtype=np.float64)
        out = np.empty(q.shape, dtype=np.float64)
        out[..., 1:] = np.linalg.det(self.matrix) * (q[..., :3] @ self.matrix)
        out[..., 0] = q[..., 3]
        return out
