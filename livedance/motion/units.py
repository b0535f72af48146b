"""Dance units: the motion between kinematic beats, time-warped to a fixed length.

A unit spans ``BEATS_PER_UNIT`` beats of the dance's beat grid and is
resampled (slerp for rotations) to ``UNIT_FRAMES`` canonical frames, so tempo
lives in the warp, not in the unit: replayed onto faster beats, the same unit
simply plays faster.
"""

from __future__ import annotations

#: Frame rate of the model side (features, decoder output).
MODEL_FPS = 30
#: Beats covered by one dance unit.
BEATS_PER_UNIT = 2
#: Canonical length of a unit, frames.
UNIT_FRAMES = 32
