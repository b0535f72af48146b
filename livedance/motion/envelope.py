"""The realism envelope: how fast, how smooth and how staccato real dance is.

One function, :func:`motion_stats`, measures a motion from its world joint
positions. The same function measures the training takes (stored per style
in the checkpoint as a :class:`MotionEnvelope`), the engine's output in
``livedance bench motion`` and every system in ``livedance eval``, so the
generated dance is judged against the data with one ruler.

Every measure is taken at 60 fps (:data:`METRIC_FPS`): a motion at another
rate is first resampled linearly in time. Per-frame displacement and jerk
depend on the frame rate, so this is what makes them comparable between
120 fps mocap, 30 fps renders and the engine's frames.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from livedance.motion.kinematic_beats import METRIC_FPS, mean_joint_speed, smoothed_speed
from livedance.skeleton import JOINT_INDEX as J

log = logging.getLogger(__name__)

#: A foot within this height of its floor counts as in contact (m).
CONTACT_HEIGHT = 0.05
#: Percentile of the per-frame largest joint displacement that is reported.
DISPLACEMENT_PERCENTILE = 99.9
#: Percentile of the jerk magnitude (over frames and joints) that is reported.
JERK_PERCENTILE = 95.0
#: Measures of :class:`MotionStats` that the envelope summarises, in report order.
MEASURES = ("speed", "skate", "displacement", "jerk", "beat_speed_ratio", "peak_ratio")
#: Their units, for reports.
UNITS = {"speed": "m/s", "skate": "m/s", "displacement": "m/frame at 60 fps", "jerk": "m/s^3",
         "beat_speed_ratio": "", "peak_ratio": ""}


def resample_joints(joints: np.ndarray, fps: float, target: float) -> np.ndarray:
    """(N, J, 3) joint positions at ``fps`` -> the same motion at ``target`` fps (linear in time)."""
    if abs(fps - target) < 1e-9 or len(joints) < 2:
        return joints
    n = int(np.floor((len(joints) - 1) * target / fps)) + 1
    t = np.arange(n) * fps / target
    i = np.clip(np.floor(t).astype(int), 0, len(joints) - 2)
    f = (t - i)[:, None, None]
    return joints[i] * (1 - f) + joints[i + 1] * f


def foot_skating(joints: np.ndarray, fps: float, floor: float | None = None) -> float:
    """Mean horizontal speed (m/s) of the feet (SMPL toe joints) while in contact with the floor.

    Contact: the foot joint within CONTACT_HEIGHT of the floor; the floor is
    ``floor`` (m, y up) if given, else the 5th percentile of foot heights over
    the motion (robust to a body not placed at y = 0). No contact: 0.
    """
    feet = joints[:, [J["left_foot"], J["right_foot"]]]  # (N, 2, 3)
    ground = float(np.percentile(feet[..., 1], 5)) if floor is None else float(floor)
    v = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps  # (N-1, 2)
    contact = feet[:-1, :, 1] < ground + CONTACT_HEIGHT
    return float(v[contact].mean()) if contact.any() else 0.0


def frame_jumps(joints: np.ndarray) -> np.ndarray:
    """(N-1,) largest single-joint displacement between consecutive frames, metres."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(-1)


def jerk_magnitudes(joints: np.ndarray, fps: float) -> np.ndarray:
    """(N-3, J) jerk magnitude of every joint, m/s^3 (third difference of positions)."""
    if len(joints) < 4:
        return np.zeros((0, joints.shape[1]))
    return np.linalg.norm(np.diff(joints, n=3, axis=0), axis=-1) * fps**3


def beat_speed_ratio(speed: np.ndarray, beats: np.ndarray, fps: float) -> float | None:
    """Mean of a speed curve (N,) at ``beats`` (s) over its mean half-way between consecutive beats.

    Below 1: the body slows on the beat. Only beats inside the curve count;
    None when fewer than two do.
    """
    frames = np.asarray(beats, dtype=np.float64) * fps
    frames = frames[(frames >= 0) & (frames <= len(speed) - 1)]
    if frames.size < 2:
        return None
    axis = np.arange(len(speed))
    mid = 0.5 * (frames[1:] + frames[:-1])
    at_mid = float(np.interp(mid, axis, speed).mean())
    return float(np.interp(frames, axis, speed).mean()) / max(at_mid, 1e-9)


@dataclass(frozen=True)
class MotionStats:
    """What :func:`motion_stats` measures (all at 60 fps).

    Attributes:
        speed: mean joint speed over joints and frames, m/s.
        skate: horizontal foot speed while the foot is within 5 cm of the floor, m/s.
        displacement: 99.9th percentile of the per-frame largest joint displacement, m.
        jerk: 95th percentile of the joint jerk magnitude over frames and joints, m/s^3.
        beat_speed_ratio: smoothed mean joint speed at the beats over that half-way
            between them (None without beats).
        peak_ratio: 95th percentile of the smoothed mean joint speed over its median
            (how much the speed pumps: steady motion is near 1).
        seconds: length of the motion measured.
    """

    speed: float
    skate: float
    displacement: float
    jerk: float
    beat_speed_ratio: float | None
    peak_ratio: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def motion_stats(
    joints: np.ndarray, fps: float, beats: np.ndarray | None = None, floor: float | None = None
) -> MotionStats:
    """Measure a motion.

    Args:
        joints: (N, 24, 3) world joint positions, metres, y up (N >= 4).
        fps: their frame rate; everything is measured after resampling to 60 fps.
        beats: beat times (s, from the first frame) to measure the speed at, or None.
        floor: floor height (m) for foot contact; None = from the motion (see :func:`foot_skating`).

    Raises:
        ValueError: fewer than 4 frames, or not (N, 24, 3).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3) or len(joints) < 4:
        raise ValueError(f"motion_stats needs (N >= 4, 24, 3) joints, got {joints.shape}")
    p = resample_joints(joints, fps, METRIC_FPS)
    smooth = smoothed_speed(p, METRIC_FPS)
    return MotionStats(
        speed=float(mean_joint_speed(p, METRIC_FPS)[:-1].mean()),
        skate=foot_skating(p, METRIC_FPS, floor),
        displacement=float(np.percentile(frame_jumps(p), DISPLACEMENT_PERCENTILE)),
        jerk=float(np.percentile(jerk_magnitudes(p, METRIC_FPS), JERK_PERCENTILE)),
        beat_speed_ratio=None if beats is None else beat_speed_ratio(smooth, beats, METRIC_FPS),
        peak_ratio=float(np.percentile(smooth, 95) / max(np.median(smooth), 1e-9)),
        seconds=(len(joints) - 1) / fps,
    )


# ---------------------------------------------------------------------------
# The envelope: the measures over real takes, per style.


@dataclass(frozen=True)
class Spread:
    """Percentiles of one measure over takes (or of a tempo over beats)."""

    p5: float
    p50: float
    p95: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        v = np.asarray([x for x in values if x is not None], dtype=np.float64)
        if v.size == 0:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls(*(float(x) for x in np.percentile(v, [5, 50, 95])))


@dataclass(frozen=True)
class StyleEnvelope:
    """One style's real dance: each measure of :data:`MEASURES` over its takes, and its tempo.

    Attributes:
        takes: recordings measured (one performer's continuous take each).
        seconds: their total length.
        tempo: BPM over the beats of those takes (p5 / p50 / p95): the tempi the
            style's units were danced at.
        measures: measure name -> :class:`Spread` over takes.
    """

    takes: int
    seconds: float
    tempo: Spread
    measures: dict[str, Spread]

    def median(self, measure: str) -> float:
        return self.measures[measure].p50


@dataclass
class MotionEnvelope:
    """Per style name, a :class:`StyleEnvelope`, and the same over every take
    (``overall``); what a checkpoint stores as ``envelope``."""

    styles: dict[str, StyleEnvelope]
    overall: StyleEnvelope
    source: str = ""  # what it was measured on (data folders), for reports
    fps: float = METRIC_FPS
    version: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, floats and strings (loadable with torch ``weights_only``)."""

        def one(s: StyleEnvelope) -> dict[str, Any]:
            return {"takes": s.takes, "seconds": s.seconds, "tempo": asdict(s.tempo),
                    "measures": {m: asdict(v) for m, v in s.measures.items()}}

        return {
            "version": self.version,
            "fps": float(self.fps),
            "source": self.source,
            "measures": list(MEASURES),
            "styles": {name: one(s) for name, s in self.styles.items()},
            "overall": one(self.overall),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MotionEnvelope":
        def one(s: dict[str, Any]) -> StyleEnvelope:
            return StyleEnvelope(int(s["takes"]), float(s["seconds"]), Spread(**s["tempo"]),
                                 {m: Spread(**v) for m, v in s["measures"].items()})

        return cls({name: one(s) for name, s in d["styles"].items()}, one(d["overall"]), str(d.get("source", "")),
                   float(d.get("fps", METRIC_FPS)), int(d.get("version", 1)))

    def medians(self, measure: str) -> dict[str, float]:
        """Style -> its median of ``measure``."""
        return {name: s.median(measure) for name, s in self.styles.items()}

    def reference(self, measure: str, style: str | None = None) -> float:
        """The median of ``measure`` over the takes of ``style``. For no style (the
        composer free to dance any) the median of the style medians: the typical
        style, each counted once however many takes it has, so one style's
        capture glitches (CMU modern's retargeted hands jump up to 1.4 m in a
        frame) or a style of two takes cannot move it far."""
        if style is not None:
            return self.styles[style].median(measure)
        return float(np.nanmedian(list(self.medians(measure).values())))


def summarise(stats_by_style: dict[str, list[MotionStats]], tempo_by_style: dict[str, list[float]],
              source: str = "") -> MotionEnvelope:
    """Per-take :class:`MotionStats` and per-beat tempi (BPM), per style -> envelope."""

    def one(stats: list[MotionStats], tempi: list[float]) -> StyleEnvelope:
        return StyleEnvelope(
            takes=len(stats),
            seconds=float(sum(s.seconds for s in stats)),
            tempo=Spread.of(tempi),
            measures={m: Spread.of([getattr(s, m) for s in stats]) for m in MEASURES},
        )

    styles = {name: one(stats, tempo_by_style.get(name, [])) for name, stats in sorted(stats_by_style.items())}
    every = [s for stats in stats_by_style.values() for s in stats]
    return MotionEnvelope(styles, one(every, [t for ts in tempo_by_style.values() for t in ts]), source)


def measure_envelope(roots: Iterable[str | Path], progress: bool = False) -> MotionEnvelope:
    """Measure every motion file under ``roots`` (BVH, AIST++ pkl) as the unit
    dataset loads it (retargeted to SMPL, feet on the floor, 60 fps) and with
    the beat grid it cuts units on: per take its :class:`MotionStats` (beats =
    that grid), per style the spread over takes and the tempo of every beat.

    Raises:
        UserError: a root is missing.
    """
    from livedance.motion.dataset import find_sources, take_files
    from livedance.motion.kinematic_beats import beat_grid, estimate_tempo

    roots = [Path(r) for r in roots]
    stats: dict[str, list[MotionStats]] = {}
    tempi: dict[str, list[float]] = {}
    for src, _, j, bpm in take_files(find_sources(roots), "envelope", progress):
        try:
            beats = beat_grid(j, METRIC_FPS, estimate_tempo(j, METRIC_FPS, bpm=bpm)) / METRIC_FPS
        except ValueError as exc:  # too short for tempo estimation, as the dataset skips it
            log.warning("%s: skipped (%s)", src.path, exc)
            continue
        stats.setdefault(src.style, []).append(motion_stats(j, METRIC_FPS, beats))
        tempi.setdefault(src.style, []).extend((60.0 / np.diff(beats)).tolist())
    return summarise(stats, tempi, " ".join(r.name for r in roots))
