"""The dance-unit dataset: every motion file under some folders, cut into units, cached.

Pipeline per file: load (BVH -> retarget onto SMPL, or AIST++ pkl) -> feet on
the floor -> 60 fps (the kinematic-beat metric's rate) -> tempo and beat
grid from the kinematic beats (AIST++: tempo from the music ID in the name;
partners of one take: one tempo pooled over both; phase always per clip) -> units of 2 beats warped to 32 frames -> features
and descriptors. Train takes are augmented: mirrored left/right, and each
cut a second time starting one beat later.

Takes and splits: a *take* is one performance, which may have several
recorded *sequences*: CMU salsa subjects 60 (lead) and 61 (follow) dance the
same trials together, so ``60_05`` and ``61_05`` are one take. Splits are by
take (both partners, and any mirrored copy, always land in the same split),
chosen per style by a hash of the take name: stable as data is added, and
every style with at least 3 takes gets a val and a test take.

The result is cached as one ``.npz`` keyed by the file list, their sizes and
mtimes, and :data:`CODE_VERSION` (bump it when the pipeline's output changes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from livedance.errors import UserError
from livedance.motion import aistpp
from livedance.motion.bvh import read_bvh, smpl_from_bvh
from livedance.motion.clip import MotionClip, place_on_floor
from livedance.motion.descriptors import describe_units
from livedance.motion.kinematic_beats import METRIC_FPS, beat_grid, estimate_shared_tempo, estimate_tempo
from livedance.motion.representation import FEATURE_DIM
from livedance.motion.resample import resample
from livedance.motion.retarget import retarget
from livedance.motion.units import BEATS_PER_UNIT, UNIT_FRAMES, cut_units

log = logging.getLogger(__name__)

#: Bump when anything changes what the pipeline produces (invalidates caches).
CODE_VERSION = 4
SPLITS = ("train", "val", "test")
#: Fractions of each style's takes held out for validation and for test.
HELD_OUT_FRACTION = 0.15
#: CMU subjects who recorded their trials as the partner of another subject
#: (salsa: 61 follows 60's lead in the same trials).
CMU_PARTNERS = {61: 60}
#: Path keywords naming a style, checked in order; otherwise the folder name.
STYLE_KEYWORDS = ("salsa", "modern", "bandai")
#: AIST++ annotation folders that hold no SMPL motion.
_AIST_NON_MOTION = {"keypoints2d", "keypoints3d", "cameras", "splits"}
_CMU_NAME = re.compile(r"^(\d+)_(\d+)")


@dataclass
class UnitDataset:
    """Dance units with descriptors, ready for training.

    Attributes:
        units: (U, 32, 148) float32 canonical unit features (see ``representation``).
        tempo: (U,) float32 BPM.
        energy: (U,) float32 mean joint speed over the unit, m/s, real time.
        busyness: (U,) float32 fraction of motion energy above the beat frequency.
        style: (U,) int64 index into ``style_names``.
        take: (U,) int64 index into ``take_names``.
        sequence: (U,) int64 index into ``sequence_names`` (one performer's
            continuous recording, or its mirror).
        mirrored: (U,) bool, True for the mirrored augmentation copies.
        first_beat: (U,) int64, 0 for units cut from the sequence's first
            beat on; 1 for the train-only augmentation cut from its second
            beat on (overlapping the first by one beat; fresh seams).
        split: (U,) str "train" / "val" / "test", by take.
        start_time: (U,) float32 seconds into its sequence where the unit starts.
        end_time: (U,) float32 seconds where it ends (the next unit's start).
        order: per sequence, its unit indices in time order (consecutive
            units follow each other seamlessly), for learning sequences.
        style_names, take_names, sequence_names: names of the ids.
        feature_mean, feature_std: (148,) float32 over the train units'
            frames; std floored at 1e-3 so constant features stay finite.
    """

    units: np.ndarray
    tempo: np.ndarray
    energy: np.ndarray
    busyness: np.ndarray
    style: np.ndarray
    take: np.ndarray
    sequence: np.ndarray
    mirrored: np.ndarray
    first_beat: np.ndarray
    split: np.ndarray
    start_time: np.ndarray
    end_time: np.ndarray
    order: list[np.ndarray]
    style_names: list[str]
    take_names: list[str]
    sequence_names: list[str]
    feature_mean: np.ndarray
    feature_std: np.ndarray

    def __len__(self) -> int:
        return int(self.units.shape[0])

    def indices(self, split: str) -> np.ndarray:
        """Indices of the units in ``split``."""
        return np.flatnonzero(self.split == split)

    def summary(self) -> str:
        """One line per split: units, takes, minutes of source motion."""
        lines = []
        for s in SPLITS:
            idx = self.indices(s)
            secs = float((self.end_time[idx] - self.start_time[idx]).sum())
            lines.append(
                f"{s}: {idx.size} units ({int((~self.mirrored[idx] & (self.first_beat[idx] == 0)).sum())} "
                f"unaugmented) from "
                f"{np.unique(self.take[idx]).size} takes, {secs / 60:.1f} min"
            )
        return "; ".join(lines)


@dataclass(frozen=True)
class SourceFile:
    """A motion file and what it belongs to."""

    path: Path
    style: str
    take: str


# ---------------------------------------------------------------------------
# Finding files.


def _style_of(path: Path) -> str:
    if path.suffix == ".pkl":
        name = aistpp.parse_name(path.stem)
        if name is not None:
            return name.genre_name
    low = str(path).lower()
    for kw in STYLE_KEYWORDS:
        if kw in low:
            return kw
    return path.parent.name


def _take_of(path: Path) -> str:
    m = _CMU_NAME.match(path.stem)
    if path.suffix == ".bvh" and m:
        subject, trial = int(m.group(1)), int(m.group(2))
        return f"cmu{CMU_PARTNERS.get(subject, subject):02d}_{trial:02d}"
    return path.stem


def find_sources(roots: list[Path]) -> list[SourceFile]:
    """Motion files (``*.bvh``, AIST++ ``*.pkl``) under the roots, sorted.

    Raises:
        UserError: a root does not exist.
    """
    found: list[SourceFile] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise UserError(f"motion data folder {root} does not exist; check the path")
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".bvh", ".pkl"))
        for p in paths:
            if p.suffix == ".pkl" and _AIST_NON_MOTION & set(p.parts):
                continue
            found.append(SourceFile(p, _style_of(p), _take_of(p)))
    return sorted(found, key=lambda s: str(s.path))


def assign_splits(takes_by_style: dict[str, list[str]]) -> dict[str, str]:
    """Take name -> split, per style, by a stable hash of the name."""
    out: dict[str, str] = {}
    for _, takes in sorted(takes_by_style.items()):
        ranked = sorted(set(takes), key=lambda t: hashlib.sha1(t.encode()).hexdigest())
        n = len(ranked)
        held = max(1, round(HELD_OUT_FRACTION * n)) if n >= 3 else 0
        for i, t in enumerate(ranked):
            out[t] = "test" if i < held else "val" if i < 2 * held else "train"
    return out


# ---------------------------------------------------------------------------
# Loading one file.


def load_clip(path: Path) -> MotionClip:
    """Any supported motion file -> SMPL clip at 60 fps with feet on the floor."""
    if path.suffix == ".pkl":
        clip = aistpp.load_aistpp(path)
    else:
        motion = read_bvh(path)
        # Decimate integer multiples of 60 fps before the (costly) retarget:
        # identical to resampling afterwards, at a fraction of the work.
        step = int(round(motion.fps / METRIC_FPS))
        if step >= 2 and abs(motion.fps - step * METRIC_FPS) < 0.01 * METRIC_FPS:
            motion = type(motion)(
                motion.skeleton, motion.rotations[::step], motion.translations[::step], motion.fps / step, motion.name
            )
        direct = smpl_from_bvh(motion)
        if direct is None:  # retargeting already puts the feet on the floor
            return resample(retarget(motion).clip, METRIC_FPS)
        clip = MotionClip(direct[0], direct[1], motion.fps, name=motion.name)
    return place_on_floor(resample(clip, METRIC_FPS))


@dataclass
class _Part:
    """Units of one sequence, before concatenation."""

    features: np.ndarray
    tempo: np.ndarray
    energy: np.ndarray
    busyness: np.ndarray
    start: np.ndarray
    end: np.ndarray
    style: str
    take: str
    name: str
    mirrored: bool
    first_beat: int


def _units_of(clip: MotionClip, joints: np.ndarray, bpm: float | None, src: SourceFile, augment: bool) -> list[_Part]:
    """Units of one clip (``joints``: its FK, ``bpm``: the take's tempo if
    known); with ``augment`` (train takes) also its mirror, and both cut a
    second time starting one beat later, so every beat starts a unit once."""
    tempo = estimate_tempo(joints, clip.fps, bpm=bpm)
    beats = beat_grid(joints, clip.fps, tempo)
    log.debug("%s: %.1f BPM (strength %.2f), %d beats", src.path.name, tempo.bpm, tempo.strength, beats.size)
    parts = []
    for mirrored in (False, True) if augment else (False,):
        c = clip.mirrored() if mirrored else clip
        for first_beat in range(BEATS_PER_UNIT) if augment else (0,):
            cut = cut_units(c, beats[first_beat:])
            # Mirroring preserves speeds: the real clip's joints serve both.
            desc = describe_units(cut, joints, clip.fps)
            label = c.name + (f"@beat{first_beat}" if first_beat else "")
            parts.append(
                _Part(cut.features, desc.tempo, desc.energy, desc.busyness, cut.start / clip.fps,
                      cut.end / clip.fps, src.style, src.take, label, mirrored, first_beat)
            )
    return parts


def take_tempo(srcs: list[SourceFile], joints: list[np.ndarray]) -> float | None:
    """The take's tempo when it is known (AIST++ music ID) or can be pooled
    over several performers dancing to the same music; None = per clip."""
    name = aistpp.parse_name(srcs[0].path.stem) if srcs[0].path.suffix == ".pkl" else None
    if name is not None:
        return name.music_bpm
    if len(joints) > 1:
        return estimate_shared_tempo(joints, METRIC_FPS)
    return None


# ---------------------------------------------------------------------------
# The dataset.


def _cache_key(sources: list[SourceFile]) -> str:
    h = hashlib.sha1(f"livedance-units v{CODE_VERSION} D{FEATURE_DIM} T{UNIT_FRAMES}".encode())
    for s in sources:
        st = s.path.stat()
        h.update(f"{s.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{s.style}|{s.take}\n".encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livedance" / "units"


@contextlib.contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """The rotation maths runs as many small torch ops; on a busy machine
    torch's intra-op thread pool spends more time waking threads than
    working (measured 7x slower with 2 threads under load), so build with one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_unit_dataset(sources: list[SourceFile], progress: bool = True) -> UnitDataset:
    """Load, cut and describe every source (no caching)."""
    with _single_threaded_torch():
        return _build(sources, progress)


def take_files(
    sources: list[SourceFile], desc: str, progress: bool
) -> Iterator[tuple[SourceFile, MotionClip, np.ndarray, float | None]]:
    """Each file with its clip, world joints and its take's tempo, a take at a
    time (the files of one take share a tempo), behind a progress bar. A take
    whose tempo cannot be found is skipped with a warning."""
    by_take: dict[str, list[SourceFile]] = {}
    for src in sources:
        by_take.setdefault(src.take, []).append(src)
    with tqdm(total=len(sources), desc=desc, unit="file", disable=not progress, leave=False) as bar:
        for take, srcs in by_take.items():
            clips = [load_clip(src.path) for src in srcs]
            joints = [c.joints() for c in clips]
            try:
                bpm = take_tempo(srcs, joints)
            except ValueError as exc:
                log.warning("take %s: skipped (%s)", take, exc)
                bar.update(len(srcs))
                continue
            for src, clip, j in zip(srcs, clips, joints):
                yield src, clip, j, bpm
                bar.update(1)


def _build(sources: list[SourceFile], progress: bool) -> UnitDataset:
    splits = assign_splits(_group(sources))
    parts: list[_Part] = []
    for src, clip, j, bpm in take_files(sources, "dance units", progress):
        try:
            parts.extend(_units_of(clip, j, bpm, src, augment=splits[src.take] == "train"))
        except ValueError as exc:  # too short for tempo estimation
            log.warning("%s: skipped (%s)", src.path, exc)
    return _assemble(parts, splits)


def _group(sources: list[SourceFile]) -> dict[str, list[str]]:
    by_style: dict[str, list[str]] = {}
    for s in sources:
        by_style.setdefault(s.style, []).append(s.take)
    return by_style


def _assemble(parts: list[_Part], splits: dict[str, str]) -> UnitDataset:
    style_names = sorted({p.style for p in parts})
    take_names = sorted({p.take for p in parts})
    counts = [len(p.features) for p in parts]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def cat(attr: str, dtype: type) -> np.ndarray:
        arrays = [np.asarray(getattr(p, attr), dtype=dtype) for p in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

    def per_unit(values: list[object], dtype: type) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=dtype), counts) if parts else np.zeros(0, dtype)

    units = np.concatenate([p.features for p in parts]) if parts else np.zeros((0, UNIT_FRAMES, FEATURE_DIM), np.float32)
    split = per_unit([splits[p.take] for p in parts], "<U5")
    train_frames = units[split == "train"].reshape(-1, FEATURE_DIM).astype(np.float64)
    if train_frames.size:
        mean, std = train_frames.mean(0), np.maximum(train_frames.std(0), 1e-3)
    else:
        mean, std = np.zeros(FEATURE_DIM), np.ones(FEATURE_DIM)
    return UnitDataset(
        units=units.astype(np.float32),
        tempo=cat("tempo", np.float32),
        energy=cat("energy", np.float32),
        busyness=cat("busyness", np.float32),
        style=per_unit([style_names.index(p.style) for p in parts], np.int64),
        take=per_unit([take_names.index(p.take) for p in parts], np.int64),
        sequence=per_unit(list(range(len(parts))), np.int64),
        mirrored=per_unit([p.mirrored for p in parts], bool),
        first_beat=per_unit([p.first_beat for p in parts], np.int64),
        split=split,
        start_time=cat("start", np.float32),
        end_time=cat("end", np.float32),
        order=[np.arange(offsets[k], offsets[k + 1], dtype=np.int64) for k in range(len(parts))],
        style_names=style_names,
        take_names=take_names,
        sequence_names=[p.name for p in parts],
        feature_mean=mean.astype(np.float32),
        feature_std=std.astype(np.float32),
    )


_NAME_FIELDS = ("style_names", "take_names", "sequence_names")


def _save(path: Path, data: UnitDataset) -> None:
    arrays = {f.name: getattr(data, f.name) for f in fields(data) if f.name not in _NAME_FIELDS + ("order",)}
    arrays["order_lengths"] = np.array([len(o) for o in data.order], dtype=np.int64)
    arrays["order_flat"] = np.concatenate(data.order) if data.order else np.zeros(0, np.int64)
    arrays["names_json"] = np.array(json.dumps({k: getattr(data, k) for k in _NAME_FIELDS}))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a parallel reader never sees half a file


def _load(path: Path) -> UnitDataset:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    names = json.loads(str(arrays.pop("names_json")))
    flat, lengths = arrays.pop("order_flat"), arrays.pop("order_lengths")
    order = np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []
    return UnitDataset(order=list(order), **names, **arrays)


def load_unit_dataset(roots: list[Path], cache_dir: Path | None = None) -> UnitDataset:
    """Every BVH / AIST++ motion under ``roots`` as a dataset of dance units.

    Args:
        roots: folders (searched recursively) or single files.
        cache_dir: where to keep the cache; None = ``$XDG_CACHE_HOME/livedance/units``
            (``~/.cache/...``).

    Raises:
        UserError: a root is missing, or a file cannot be read (names the file).
    """
    sources = find_sources([Path(r) for r in roots])
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"units-{_cache_key(sources)}.npz"
    if path.exists():
        try:
            data = _load(path)
            log.info("dance units from cache %s: %d units", path, len(data))
            return data
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cache %s (%s); rebuilding", path, exc)
    data = build_unit_dataset(sources, progress=log.isEnabledFor(logging.INFO))
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _save(path, data)
    except OSError as exc:
        log.warning("could not write the unit cache %s (%s); continuing without", path, exc)
    log.info("dance units: %d from %d files; %s", len(data), len(sources), data.summary())
    return data
