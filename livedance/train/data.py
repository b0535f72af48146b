"""Unit data for training: the motion pipeline's dataset, or a synthetic one.

Training reads anything shaped like ``livedance.motion.dataset.UnitDataset``
(the :class:`UnitData` protocol). ``--data synthetic`` (or
``synthetic:SEED``) builds a small synthetic set instead: it needs no files,
so it smoke-tests a training set-up (e.g. a torchrun cluster) in seconds,
and the tests use it because its descriptors are *known* functions of the
motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from livedance.errors import UserError


class UnitData(Protocol):
    """The fields of ``livedance.motion.dataset.UnitDataset`` that training uses."""

    units: np.ndarray  # (U, T, D) float32
    tempo: np.ndarray  # (U,) BPM
    energy: np.ndarray  # (U,) mean joint speed, m/s
    busyness: np.ndarray  # (U,)
    style: np.ndarray  # (U,) int64
    take: np.ndarray  # (U,) int64
    split: np.ndarray  # (U,) "train" | "val" | "test"
    order: Sequence[np.ndarray]  # per take, unit indices in time order
    style_names: list[str]
    take_names: list[str]


@dataclass
class SyntheticUnits:
    """A :class:`UnitData` made of sinusoidal limb swings with known descriptors.

    Style 0 swings the arms, style 1 the legs. A unit's real-time energy is
    proportional to its canonical amplitude times its tempo, as for real
    dance (the same canonical unit played faster is more energetic).
    """

    units: np.ndarray
    tempo: np.ndarray
    energy: np.ndarray
    busyness: np.ndarray
    style: np.ndarray
    take: np.ndarray
    split: np.ndarray
    order: list[np.ndarray]
    style_names: list[str] = field(default_factory=lambda: ["arms", "legs"])
    take_names: list[str] = field(default_factory=list)


#: Joints swung by each synthetic style (SMPL indices: shoulders+elbows, hips+knees).
_STYLE_JOINTS = ((16, 17, 18, 19), (1, 2, 4, 5))


def synthetic_units(takes: int = 24, units_per_take: int = 12, seed: int = 0) -> SyntheticUnits:
    """Build a synthetic dataset of ``takes * units_per_take`` units (half the takes train, a quarter each val and test)."""
    from livedance import skeleton as sk
    from livedance.motion.representation import motion_to_features
    from livedance.motion.units import UNIT_FRAMES

    rng = np.random.default_rng(seed)
    t = np.arange(UNIT_FRAMES + 1) / UNIT_FRAMES  # one extra frame: the last frame's velocity
    feats, tempo, energy, busy, style, take, split, order = [], [], [], [], [], [], [], []
    for k in range(takes):
        s = k % 2
        part = ("train", "train", "val", "test")[(k // 2) % 4]  # pairs of takes: both styles in every split
        idx = []
        for _ in range(units_per_take):
            bpm = rng.uniform(80.0, 140.0)
            amp = rng.uniform(0.1, 0.9)  # canonical swing amplitude, rad
            harmonic = int(rng.integers(1, 3))  # 1 swing per beat, or 2: "busier"
            aa = np.zeros((UNIT_FRAMES + 1, 24, 3))
            for j, joint in enumerate(_STYLE_JOINTS[s]):
                sign = 1.0 if j % 2 == 0 else -1.0
                aa[:, joint, 0] = sign * amp * np.sin(2 * np.pi * 2 * harmonic * t)
            rot = sk.axis_angle_to_matrix(aa)
            trans = np.zeros((UNIT_FRAMES + 1, 3))
            trans[:, 1] = sk.REST_PELVIS_HEIGHT
            feats.append(motion_to_features(rot, trans)[:UNIT_FRAMES])
            tempo.append(bpm)
            # Real-time speed: canonical swing speed x canonical frames per second at this tempo.
            energy.append(amp * harmonic * bpm / 60.0)
            busy.append(0.25 * harmonic)
            style.append(s)
            take.append(k)
            split.append(part)
            idx.append(len(feats) - 1)
        order.append(np.asarray(idx, dtype=np.int64))
    return SyntheticUnits(
        units=np.stack(feats).astype(np.float32),
        tempo=np.asarray(tempo, np.float32),
        energy=np.asarray(energy, np.float32),
        busyness=np.asarray(busy, np.float32),
        style=np.asarray(style, np.int64),
        take=np.asarray(take, np.int64),
        split=np.asarray(split),
        order=order,
        take_names=[f"synthetic_{k:03d}" for k in range(takes)],
    )


def load_data(specs: Sequence[str], cache_dir: Path | None = None) -> UnitData:
    """``--data`` values -> a dataset. ``synthetic[:SEED]`` alone, or motion data directories."""
    if len(specs) == 1 and specs[0].split(":")[0] == "synthetic":
        seed = specs[0].split(":", 1)[1] if ":" in specs[0] else "0"
        if not seed.isdigit():
            raise UserError(f"--data {specs[0]}: the seed after 'synthetic:' must be a whole number")
        return synthetic_units(seed=int(seed))
    roots = [Path(s).expanduser() for s in specs]
    for r in roots:
        if not r.is_dir():
            raise UserError(f"--data {r}: no such directory (give folders of BVH / AIST++ pkl motion, or 'synthetic')")
    try:
        from livedance.motion.dataset import load_unit_dataset
    except ImportError as exc:  # pragma: no cover - only before the motion pipeline is installed
        raise UserError(f"the motion dataset pipeline is unavailable ({exc}); reinstall livedance") from None
    data = load_unit_dataset(roots, cache_dir=cache_dir)
    if len(data.units) == 0:
        raise UserError(f"--data {' '.join(specs)}: no dance units found (are there BVH or AIST++ .pkl files in it?)")
    return data


def takes_of(data: UnitData, split: str) -> list[np.ndarray]:
    """Unit index arrays (time order) of the takes in ``split``."""
    seqs = data.order.values() if isinstance(data.order, dict) else data.order
    out = []
    for seq in seqs:
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) and str(data.split[seq[0]]) == split:
            out.append(seq)
    return out


def split_indices(data: UnitData, split: str) -> np.ndarray:
    """Indices of the units in ``split``."""
    return np.flatnonzero(np.asarray(data.split).astype(str) == split)
