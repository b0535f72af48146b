"""MotionClip: one continuous recording of one performer on the SMPL skeleton.

Every loader (BVH retarget, AIST++ pkl, livedance files) returns this, and
every later stage (resampling, beats, units, export) takes it, so the stages
never need to know where a motion came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from livedance import skeleton as sk


@dataclass(frozen=True)
class MotionClip:
    """SMPL-skeleton motion.

    Attributes:
        rotations: (N, 24, 3, 3) float64 local joint rotations (root's is global).
        trans: (N, 3) float64 pelvis position, metres, y up.
        fps: frames per second.
        name: where it came from (file stem), for logs and take names.
    """

    rotations: np.ndarray
    trans: np.ndarray
    fps: float
    name: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.rotations.shape[0]
        if self.rotations.shape != (n, sk.NUM_JOINTS, 3, 3) or self.trans.shape != (n, 3):
            raise ValueError(
                f"MotionClip wants rotations (N,24,3,3) and trans (N,3); got {self.rotations.shape} and {self.trans.shape}"
            )

    def __len__(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self) / self.fps

    def joints(self) -> np.ndarray:
        """(N, 24, 3) world joint positions, metres, y up."""
        return sk.forward_kinematics(self.rotations, self.trans)[1]

    def mirrored(self) -> "MotionClip":
        """The same dance mirrored left/right across the world's x = 0 plane.

        A reflection of the world maps the SMPL body onto itself with left and
        right swapped, so it is a legal new dance: the cheapest augmentation.
        """
        trans = self.trans * np.array([-1.0, 1.0, 1.0])
        return replace(self, rotations=sk.mirror_rotations(self.rotations), trans=trans, name=self.name + "~mirror")

    def slice(self, start: int, stop: int) -> "MotionClip":
        return replace(self, rotations=self.rotations[start:stop], trans=self.trans[start:stop])


def place_on_floor(clip: MotionClip, percentile: float = 50.0) -> MotionClip:
    """Shift the clip vertically so its feet rest on y = 0.

    The sole height of a frame is its lowest foot point (ankles lie
    ``ANKLE_TO_SOLE`` above the sole; the toe joints about 2 cm). The floor is
    taken at a percentile of that per-frame minimum, not the minimum itself,
    because capture glitches and one-frame foot dips would otherwise lift the
    whole take; the median works for dances that spend most of the time on
    the ground, which every dance here does.
    """
    joints = clip.joints()
    rest = sk.REST_JOINTS
    toe_lift = rest[[10, 11], 1].min() - rest[[7, 8], 1].min() + sk.ANKLE_TO_SOLE
    sole = np.minimum(joints[:, [7, 8], 1].min(1) - sk.ANKLE_TO_SOLE, joints[:, [10, 11], 1].min(1) - toe_lift)
    floor = float(np.percentile(sole, percentile))
    return replace(clip, trans=clip.trans - np.array([0.0, floor, 0.0]))
