"""How human a decoded unit will look at the rate it is played: the unit-level
side of the realism envelope (``livedance.motion.envelope``).

A unit's 32 canonical frames are stretched over its two dance beats, so the
same unit is slow at one tempo and frantic at another. Before a unit is
queued, :func:`unit_measures` predicts, at its playback duration, the three
measures the envelope bounds that one unit can push out of range: its mean
joint speed, its foot skate and its largest per-frame joint move (at 60
fps). :class:`UnitLimits` holds the bounds; :meth:`UnitLimits.excess` says by
how much a unit exceeds them, and the model draws another unit instead of
clamping frames (``DanceModel.next_unit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from livedance.motion.foot_plant import foot_heights
from livedance.motion.representation import body_kinematics, root_path

#: The metric's frame rate (``livedance.motion.envelope``).
METRIC_FPS = 60.0
#: A foot this close to the unit's lowest foot point is in contact (m), as the envelope's skate.
CONTACT_HEIGHT = 0.05


def world_joints(feats: torch.Tensor) -> torch.Tensor:
    """Units (B, T, D) -> (B, T, 24, 3) joints on the floor, travel and turns included, metres."""
    _, _, joints = body_kinematics(feats)
    heading, travel = root_path(feats)
    return travel[:, :, None] + (heading[:, :, None] @ joints[..., None])[..., 0]


def unit_measures(feats: torch.Tensor, seconds: float) -> dict[str, torch.Tensor]:
    """(B,) mean joint speed (m/s), foot skate (m/s) and largest joint move per
    60 fps frame (m) of units (B, T, D) played over ``seconds``."""
    joints = world_joints(feats.to(torch.float64))
    t = joints.shape[1]
    step_s = seconds / (t - 1)  # canonical frame to frame, seconds (the last frame meets the next unit)
    moves = torch.linalg.vector_norm(joints.diff(dim=1), dim=-1)  # (B, T-1, 24) metres per canonical step
    speed = moves.mean(dim=(1, 2)) / step_s
    feet = foot_heights(joints)  # (B, T, 2)
    low = feet[:, :-1] < feet.amin(dim=(1, 2), keepdim=True) + CONTACT_HEIGHT
    toes = joints[:, :, [10, 11]][..., [0, 2]]  # SMPL left_foot, right_foot
    slide = torch.linalg.vector_norm(toes.diff(dim=1), dim=-1) / step_s  # (B, T-1, 2) m/s
    skate = (slide * low).sum(dim=(1, 2)) / low.sum(dim=(1, 2)).clamp_min(1)
    # A canonical step spans step_s * 60 metric frames (moves are near-linear within it).
    jump = moves.amax(dim=(1, 2)) / max(step_s * METRIC_FPS, 1.0)
    return {"speed": speed, "skate": skate, "displacement": jump}


@dataclass(frozen=True)
class UnitLimits:
    """Upper bounds for one unit's measures (m/s, m/s, m per 60 fps frame)."""

    speed: float
    skate: float
    displacement: float

    @classmethod
    def from_envelope(cls, envelope: Any, style: str | None = None, slack: float = 1.5) -> "UnitLimits":
        """Bounds from a :class:`~livedance.motion.envelope.MotionEnvelope`: ``slack``
        times the style's median (for no style, the median of the style
        medians; for speed, the fastest style's) of each measure. One unit may
        be livelier than a whole take's median; ``slack`` is how much."""
        speed = max(s.median("speed") for s in envelope.styles.values()) if style is None else envelope.reference("speed", style)
        return cls(
            speed=slack * speed,
            skate=slack * envelope.reference("skate", style),
            displacement=slack * envelope.reference("displacement", style),
        )

    def excess(self, measures: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) the worst measure over its bound (> 1: out of the envelope)."""
        ratios = [measures[name] / bound for name, bound in self.__dict__.items() if math.isfinite(bound) and bound > 0]
        return torch.stack(ratios).amax(dim=0)
