"""BVH (Biovision hierarchy) files: read any skeleton, write SMPL-skeleton motion.

Reading keeps the file's own skeleton (names, parents, offsets, channel
orders, units and axes untouched) and decodes its channels into local
rotations and translations; :mod:`livedance.motion.retarget` maps that onto
the SMPL skeleton. Semantics followed (as Blender, MotionBuilder and the CMU
conversions use them):

* a joint's local transform is ``translate(offset) * rotate(channels)``;
  a joint with position channels uses them *instead of* its OFFSET (CMU
  roots have a zero OFFSET; Bandai-Namco repeats the OFFSET in every joint's
  position channels, so adding the two would double it);
* rotation channels are intrinsic, applied in the order listed:
  ``CHANNELS 3 Zrotation Xrotation Yrotation`` means ``Rz @ Rx @ Ry``;
* an ``End Site`` becomes a channel-less joint named ``<parent>_end``, so its
  position (the tip of a toe, head or finger) is available to retargeting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance import skeleton as sk
from livedance.errors import UserError

log = logging.getLogger(__name__)

_AXIS_OF = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class BvhSkeleton:
    """A BVH hierarchy.

    Attributes:
        names: J joint names, parents before children (End Sites as ``<parent>_end``).
        parents: (J,) int64 parent index, -1 for the root.
        offsets: (J, 3) float64 rest offset from the parent, file units.
        channels: per joint, its channel names as written (``("Xposition", ..., "Zrotation")``);
            empty for End Sites.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions with every rotation at identity, file units."""
        pos = np.zeros_like(self.offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos


@dataclass(frozen=True)
class BvhMotion:
    """A BVH file decoded.

    Attributes:
        skeleton: the hierarchy.
        rotations: (N, J, 3, 3) float64 local rotations (identity for End Sites).
        translations: (N, J, 3) float64 local translations, file units
            (the OFFSET, or the position channels where a joint has them).
        fps: frames per second (1 / Frame Time).
        name: file stem.
    """

    skeleton: BvhSkeleton
    rotations: np.ndarray
    translations: np.ndarray
    fps: float
    name: str = ""

    def __len__(self) -> int:
        return int(self.rotations.shape[0])

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations (N, J, 3, 3) and positions (N, J, 3), file units and axes."""
        n, num = self.rotations.shape[:2]
        glob = np.empty_like(self.rotations)
        pos = np.empty((n, num, 3))
        for j, p in enumerate(self.skeleton.parents):
            if p < 0:
                glob[:, j] = self.rotations[:, j]
                pos[:, j] = self.translations[:, j]
            else:
                glob[:, j] = glob[:, p] @ self.rotations[:, j]
                pos[:, j] = pos[:, p] + (glob[:, p] @ self.translations[:, j, :, None])[..., 0]
        return glob, pos


# ---------------------------------------------------------------------------
# Reading.


def _parse_hierarchy(tokens: list[str], where: str) -> tuple[BvhSkeleton, int]:
    """Parse tokens from ``HIERARCHY`` to ``MOTION``; return the skeleton and the index after MOTION."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    pending: int | None = None  # joint whose "{" is expected next
    i = 1  # tokens[0] == "HIERARCHY"
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            name = tokens[i + 1]
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
            i += 2
        elif tok == "End":  # "End Site"
            parent = stack[-1]
            name = f"{names[parent]}_end"
            while name in names:
                name += "_"
            names.append(name)
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
            i += 2
        elif tok == "{":
            if pending is None:
                raise UserError(f"cannot read {where}: unexpected '{{' in HIERARCHY; is the file a complete BVH?")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise UserError(f"cannot read {where}: unbalanced '}}' in HIERARCHY; is the file a complete BVH?")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets[stack[-1]] = [float(t) for t in tokens[i + 1 : i + 4]]
            i += 4
        elif tok == "CHANNELS":
            count = int(tokens[i + 1])
            channels[stack[-1]] = tuple(tokens[i + 2 : i + 2 + count])
            i += 2 + count
        elif tok == "MOTION":
            if stack:
                raise UserError(f"cannot read {where}: HIERARCHY not closed before MOTION; the file is truncated")
            return (
                BvhSkeleton(
                    names=tuple(names),
                    parents=np.array(parents, dtype=np.int64),
                    offsets=np.array(offsets, dtype=np.float64),
                    channels=tuple(channels),
                ),
                i + 1,
            )
        else:
            raise UserError(f"cannot read {where}: unexpected {tok!r} in HIERARCHY; is it a BVH file?")
    raise UserError(f"cannot read {where}: no MOTION section; the file is truncated or not a BVH file")


def _decode_channels(skel: BvhSkeleton, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) channel values -> local rotations (N, J, 3, 3) and translations (N, J, 3)."""
    n, num = values.shape[0], len(skel.names)
    translations = np.broadcast_to(skel.offsets, (n, num, 3)).copy()
    rotations = np.broadcast_to(np.eye(3), (n, num, 3, 3)).copy()
    # Joints sharing a rotation order are converted in one vectorised call.
    by_order: dict[str, tuple[list[int], list[list[int]]]] = {}
    col = 0
    for j, chans in enumerate(skel.channels):
        rot_cols: list[int] = []
        order = ""
        for c in chans:
            kind = c[1:].lower()
            axis = c[0].lower()
            if kind == "position":
                translations[:, j, _AXIS_OF[axis]] = values[:, col]
            elif kind == "rotation":
                rot_cols.append(col)
                order += axis
            col += 1
        if rot_cols:
            joints, cols = by_order.setdefault(order, ([], []))
            joints.append(j)
            cols.append(rot_cols)
    for order, (joints, cols) in by_order.items():
        angles = np.radians(values[:, np.array(cols)])  # (N, Jg, k)
        if len(order) == 3:
            rotations[:, joints] = sk.euler_to_matrix(angles, order)
        else:  # fewer than 3 rotation channels: compose the ones present
            for k, axis in enumerate(order):
                aa = np.zeros(angles.shape[:-1] + (3,))
                aa[..., _AXIS_OF[axis]] = angles[..., k]
                rotations[:, joints] = rotations[:, joints] @ sk.axis_angle_to_matrix(aa)
    return rotations, translations


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file of any skeleton.

    Raises:
        UserError: the file is missing, unreadable or not a well-formed BVH.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
    tokens = text.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise UserError(f"cannot read {path}: not a BVH file (it must start with HIERARCHY)")
    try:
        skel, i = _parse_hierarchy(tokens, str(path))
        if tokens[i] != "Frames:" or tokens[i + 2 : i + 4] != ["Frame", "Time:"]:
            raise ValueError("MOTION must be followed by 'Frames: N' and 'Frame Time: T'")
        frames = int(tokens[i + 1])
        frame_time = float(tokens[i + 4])
        values = np.array(tokens[i + 5 :], dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise UserError(f"cannot read {path}: malformed BVH ({exc}); re-export it from your mocap tool") from exc
    width = skel.num_channels
    if frame_time <= 0 or width == 0 or values.size < frames * width:
        raise UserError(
            f"cannot read {path}: header promises {frames} frames x {width} channels but the file holds "
            f"{values.size} numbers; the file is truncated or its CHANNELS are wrong"
        )
    if values.size > frames * width:
        log.warning("%s: %d numbers after the last frame ignored", path, values.size - frames * width)
    values = values[: frames * width].reshape(frames, width)
    rotations, translations = _decode_channels(skel, values)
    return BvhMotion(skel, rotations, translations, fps=1.0 / frame_time, name=path.stem)


# ---------------------------------------------------------------------------
# Writing SMPL-skeleton motion.

#: Rest tips given to SMPL's leaf joints as End Sites, metres (viewers draw a bone to them).
_LEAF_TIPS = {
    "head": (0.0, 0.10, 0.0),
    "left_foot": (0.0, -0.02, 0.06),
    "right_foot": (0.0, -0.02, 0.06),
    "left_hand": (0.08, 0.0, 0.0),
    "right_hand": (-0.08, 0.0, 0.0),
}
_ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"
_JOINT_CHANNELS = "Zrotation Yrotation Xrotation"


def _smpl_bvh_hierarchy(units_per_metre: float) -> tuple[list[str], list[int]]:
    """The HIERARCHY lines of the SMPL skeleton and the SMPL index of each BVH joint, in file order."""
    children = {p: [j for j in range(sk.NUM_JOINTS) if sk.PARENTS[j] == p] for p in range(sk.NUM_JOINTS)}
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        off = sk.REST_OFFSETS[j] * units_per_metre
        head = "ROOT" if j == 0 else "JOINT"
        lines.append(f"{pad}{head} {sk.JOINT_NAMES[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = _ROOT_CHANNELS if j == 0 else _JOINT_CHANNELS
        lines.append(f"{pad}\tCHANNELS {len(chans.split())} {chans}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            tip = np.array(_LEAF_TIPS[sk.JOINT_NAMES[j]]) * units_per_metre
            lines.extend(
                [f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", pad + "\t}"]
            )
        lines.append(pad + "}")

    emit(0, 0)
    # BVH lists joints depth-first, which is not SMPL's index order.
    order = [sk.JOINT_NAMES.index(line.split()[-1]) for line in lines if line.strip().startswith(("ROOT", "JOINT"))]
    return lines, order


def smpl_bvh_header(frames: int, fps: float, units_per_metre: float = 100.0) -> str:
    """Everything of an SMPL BVH file before its frame lines (see :func:`write_smpl_bvh`)."""
    lines, _ = _smpl_bvh_hierarchy(units_per_metre)
    return "\n".join(lines + ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / fps:.8f}"]) + "\n"


def smpl_bvh_rows(rotations: np.ndarray, trans: np.ndarray, units_per_metre: float = 100.0) -> str:
    """The frame lines of (N, 24, 3, 3) rotations and (N, 3) roots, each ending in a newline
    (written a chunk at a time, a recording of any length stays in bounded memory)."""
    _, order = _smpl_bvh_hierarchy(units_per_metre)
    n = rotations.shape[0]
    euler = np.degrees(sk.matrix_to_euler(np.asarray(rotations, dtype=np.float64)[:, order], "zyx"))  # (N, 24, 3)
    values = np.concatenate([np.asarray(trans, dtype=np.float64) * units_per_metre, euler.reshape(n, -1)], axis=1)
    return "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in values)


def write_smpl_bvh(
    path: str | Path, rotations: np.ndarray, trans: np.ndarray, fps: float, units_per_metre: float = 100.0
) -> None:
    """Write SMPL-skeleton motion as a BVH file.

    Args:
        path: output file.
        rotations: (N, 24, 3, 3) local rotations.
        trans: (N, 3) pelvis position, metres, y up.
        fps: frame rate.
        units_per_metre: file length unit; 100 = centimetres, what Blender
            and most BVH tools expect.
    """
    header = smpl_bvh_header(rotations.shape[0], fps, units_per_metre)
    Path(path).write_text(header + smpl_bvh_rows(rotations, trans, units_per_metre))


def smpl_from_bvh(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray] | None:
    """Read SMPL-skeleton motion back directly, if the file's joints are SMPL's.

    Returns:
        ``(rotations (N, 24, 3, 3), trans (N, 3) metres)``, or None when the
        skeleton is not SMPL's (then retarget it instead).
    """
    skel = motion.skeleton
    if not set(sk.JOINT_NAMES) <= set(skel.names):
        return None
    idx = [skel.index(n) for n in sk.JOINT_NAMES]
    # Units from bone lengths, snapped to a common unit so round trips are exact.
    lengths = np.linalg.norm(skel.offsets[idx[1:]], axis=1)
    ratio = float(np.median(lengths / np.linalg.norm(sk.REST_OFFSETS[1:], axis=1)))
    for unit in (1.0, 100.0, 1000.0, 1 / 0.0254):
        if abs(ratio / unit - 1.0) < 0.05:
            ratio = unit
            break
    return motion.rotations[:, idx].copy(), motion.translations[:, idx[0]] / ratio
