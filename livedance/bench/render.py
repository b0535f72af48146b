"""``livedance bench render --json``: offscreen render speed at 720p.

Frames per second of :class:`~livedance.outputs.renderer.OffscreenRenderer`
(all passes, MSAA resolve and read-back to numpy, i.e. what ``--video``
pays before encoding) for 1 and 8 dancers (8 use the coarse body), with 4x
MSAA, with FXAA, and with no anti-aliasing, and for 64 dancers without
anti-aliasing, on whatever EGL gives this
machine (Mesa llvmpipe on a CPU-only box, where the figure is a floor: any
real GPU is far faster). ``video_default`` is what video rendering picks here.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from livedance.config import Settings
from livedance.frames import Frame

WARMUP = 3  # first frames compile llvmpipe's shader variants
FRAMES = 30


def dance_frames(n: int, dancers: int, fps: float = 60.0) -> list[Frame]:
    """A deterministic swinging dance, different every frame (the skinning can't be cached)."""
    from livedance.skeleton import JOINT_INDEX, REST_PELVIS_HEIGHT, axis_angle_to_matrix

    t = np.arange(n)[:, None] / fps + np.arange(dancers)[None, :] * 0.3  # (n, D)
    aa = np.zeros((n, dancers, 24, 3), dtype=np.float32)
    s = np.sin(2 * np.pi * t)
    aa[..., JOINT_INDEX["left_shoulder"], 2] = -0.6 + 0.5 * s
    aa[..., JOINT_INDEX["right_shoulder"], 2] = 0.6 + 0.5 * s
    aa[..., JOINT_INDEX["left_elbow"], 1] = -0.8 - 0.4 * s
    aa[..., JOINT_INDEX["left_hip"], 0] = -0.4 * np.maximum(s, 0)
    aa[..., JOINT_INDEX["left_knee"], 0] = 0.8 * np.maximum(s, 0)
    aa[..., JOINT_INDEX["spine2"], 1] = 0.3 * s
    trans = np.zeros((n, dancers, 3), dtype=np.float32)
    trans[..., 0] = (np.arange(dancers) - (dancers - 1) / 2.0) * 1.6  # side by side, as the engine spaces them
    trans[..., 1] = REST_PELVIS_HEIGHT + 0.03 * s
    rot = axis_angle_to_matrix(aa)
    return [
        Frame.from_pose(i, i / fps, 0.0, rot[i], trans[i], beat_phase=float(t[i, 0] % 1.0), confidence=0.9)
        for i in range(n)
    ]


#: Anti-aliasing configurations measured: name -> (MSAA samples, FXAA).
CONFIGS: dict[str, tuple[int, bool]] = {"msaa4": (4, False), "fxaa": (0, True), "none": (0, False)}


def measure(width: int, height: int, dancers: int, samples: int, fxaa: bool) -> dict[str, Any]:
    from livedance.outputs.renderer import OffscreenRenderer, auto_samples

    frames = dance_frames(WARMUP + FRAMES, dancers)
    with OffscreenRenderer(width, height, samples=samples, fxaa=fxaa) as renderer:
        for f in frames[:WARMUP]:
            renderer.render(f)
        start = time.perf_counter()
        for f in frames[WARMUP:]:
            renderer.render(f)
        seconds = time.perf_counter() - start
        gl_renderer = renderer.ctx.info["GL_RENDERER"]
        default = auto_samples(renderer.ctx)
    return {
        "fps": round(FRAMES / seconds, 2),
        "ms_per_frame": round(1000 * seconds / FRAMES, 2),
        "renderer": gl_renderer,
        "default_msaa": default,
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    width, height = 1280, 720
    result: dict[str, Any] = {"benchmark": "render", "width": width, "height": height, "frames": FRAMES}
    for dancers in (1, 8):
        for name, (samples, fxaa) in CONFIGS.items():
            r = measure(width, height, dancers, samples, fxaa)
            result["gl_renderer"] = r.pop("renderer")
            default = r.pop("default_msaa")
            result["video_default"] = "msaa4" if default > 1 else "fxaa"  # what --video uses here
            result[f"dancers_{dancers}_{name}"] = r
    # A crowd (instanced: 8 dancers a draw call), without anti-aliasing only:
    # on llvmpipe each of its frames takes about a second.
    result["dancers_64_none"] = {k: v for k, v in measure(width, height, 64, 0, False).items() if k in ("fps", "ms_per_frame")}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
