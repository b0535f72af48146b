"""Re-make docs/screenshot.png: three dancers mid-move, rendered offscreen.

    python docs/screenshot.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from livedance.frames import Frame
from livedance.outputs.renderer import Camera, OffscreenRenderer
from livedance.skeleton import JOINT_INDEX, REST_PELVIS_HEIGHT, axis_angle_to_matrix

POSES: list[dict[str, tuple[float, float, float]]] = [
    {  # arms up, weight on the right leg
        "left_shoulder": (0.0, 0.0, 0.9), "right_shoulder": (0.0, 0.0, -0.7), "left_elbow": (0.0, -0.9, 0.0),
        "right_elbow": (0.0, 1.2, 0.0), "left_hip": (-0.3, 0.0, 0.25), "left_knee": (0.6, 0.0, 0.0),
        "spine2": (0.0, 0.2, 0.1), "neck": (0.0, 0.0, 0.15), "pelvis": (0.0, 0.3, -0.08),
    },
    {  # knee lift, arms swinging
        "left_shoulder": (0.0, 0.6, -0.9), "right_shoulder": (0.0, 0.5, 0.6), "right_elbow": (0.0, 1.6, 0.0),
        "left_elbow": (0.0, -1.0, 0.0), "right_hip": (-1.3, 0.0, -0.1), "right_knee": (1.6, 0.0, 0.0),
        "left_knee": (0.15, 0.0, 0.0), "spine1": (0.15, 0.0, 0.0), "neck": (0.1, -0.2, 0.0),
    },
    {  # wide stance, one arm pointing
        "left_shoulder": (0.0, -0.3, -1.2), "right_shoulder": (0.0, 0.0, -0.3), "left_elbow": (0.0, -1.2, 0.0),
        "left_hip": (0.0, 0.0, 0.35), "right_hip": (0.0, 0.0, -0.35), "left_knee": (0.5, 0.0, 0.0),
        "right_knee": (0.5, 0.0, 0.0), "spine3": (0.0, -0.3, 0.0), "neck": (0.0, 0.4, 0.0),
    },
]


def main() -> None:
    aa = np.zeros((len(POSES), 24, 3), dtype=np.float32)
    for d, pose in enumerate(POSES):
        for name, value in pose.items():
            aa[d, JOINT_INDEX[name]] = value
    trans = np.tile(np.float32([0.0, REST_PELVIS_HEIGHT, 0.0]), (len(POSES), 1))
    trans[2, 1] -= 0.12  # the wide stance sits lower
    trans[1, 2] = 0.3
    frame = Frame.from_pose(0, 0.0, 0.0, axis_angle_to_matrix(aa), trans, confidence=0.9, beat_phase=0.05)
    with OffscreenRenderer(1280, 720, camera=Camera(yaw=0.35, pitch=0.16), spacing=1.1, samples=4) as renderer:
        image = renderer.render(frame)
    out = Path(__file__).with_name("screenshot.png")
    mpimg.imsave(out, image)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
