"""Dances to score: real test takes, the model's, and two baselines, all rendered the same way.

Every system produces a sequence of canonical units plus the tempo each is
played at; :func:`render` turns that into real-time joint positions at
60 fps exactly as the engine would (unit k stretched over its two beats),
so differences between systems come from the units alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from livedance import skeleton as sk
from livedance.model.context import MusicContext
from livedance.model.dance import DanceModel
from livedance.motion.kinematic_beats import METRIC_FPS
from livedance.motion.representation import features_to_motion
from livedance.motion.units import BEATS_PER_UNIT
from livedance.train.data import UnitData, split_indices, takes_of


@dataclass
class Dance:
    """One rendered dance.

    Attributes:
        joints: (N, 24, 3) world joint positions at ``fps``, metres.
        beats: (B,) music beat positions, frames at ``fps``.
        seams: (K-1,) unit boundaries, frames at ``fps``.
        bounds: (K+1,) unit start frames plus the end, at ``fps``.
        codes: (K, Zm) movement codes when the system has them.
    """

    joints: np.ndarray
    beats: np.ndarray
    seams: np.ndarray
    bounds: np.ndarray
    fps: float = METRIC_FPS
    codes: np.ndarray | None = field(default=None, repr=False)


def render(units: np.ndarray, tempo: np.ndarray, fps: float = METRIC_FPS) -> Dance:
    """(K, T, D) denormalised canonical units played at ``tempo`` (K,) BPM -> :class:`Dance`."""
    k, t, d = units.shape
    rot, trans = features_to_motion(units.reshape(k * t, d), np.zeros(3), 0.0)
    canon = sk.forward_kinematics(rot, trans)[1]  # (K*T, 24, 3)
    dur = BEATS_PER_UNIT * 60.0 / np.asarray(tempo, dtype=np.float64)  # seconds per unit
    start = np.concatenate([[0.0], np.cumsum(dur)])  # (K+1,)
    times = np.arange(int(np.floor(start[-1] * fps))) / fps
    u = np.clip(np.searchsorted(start, times, side="right") - 1, 0, k - 1)
    c = np.clip(u * t + (times - start[u]) / dur[u] * t, 0, k * t - 1)
    i = np.minimum(np.floor(c).astype(int), k * t - 2)
    f = (c - i)[:, None, None]
    joints = canon[i] * (1 - f) + canon[i + 1] * f
    beat_times = (start[:-1, None] + dur[:, None] * np.arange(BEATS_PER_UNIT)[None] / BEATS_PER_UNIT).reshape(-1)
    return Dance(joints=joints, beats=beat_times * fps, seams=start[1:-1] * fps, bounds=start * fps, fps=fps)


@dataclass
class Script:
    """The "music" a system dances to: per unit, the descriptors of a real test take."""

    tempo: np.ndarray  # (K,)
    energy: np.ndarray
    busyness: np.ndarray
    style: np.ndarray  # (K,) int64
    take: int  # index into data.take_names
    units: np.ndarray  # (K,) the take's own unit indices, looped to K
    #: Paired music only: (K, units, steps, channels) the music a hearing composer
    #: hears before each unit (``livedance.train.paired.unit_windows``).
    audio: np.ndarray | None = None


#: The reference: test takes. Val takes guided the choice of training
#: settings, so they are only the fallback when a data set has no test split.
HELD_OUT = ("test", "val")


def held_out_takes(data: UnitData) -> list[np.ndarray]:
    for split in HELD_OUT:
        takes = takes_of(data, split)
        if takes:
            return takes
    return []


def allocate(weights: np.ndarray, count: int) -> np.ndarray:
    """Split ``count`` items among (N,) ``weights`` proportionally (largest remainder): (N,) ints summing to ``count``."""
    share = count * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    n = np.floor(share).astype(int)
    n[np.argsort(n - share, kind="stable")[: count - int(n.sum())]] += 1
    return n


def scripts(data: UnitData, count: int, length: int, heard: np.ndarray | None = None) -> list[Script]:
    """``count`` scripts of ``length`` units over the held-out takes.

    Each take gets a share of the scripts proportional to its length, so the
    generated dances cover the held-out music in the same proportions as
    the real takes they are compared with (cycling over takes instead gave
    a 3-unit take as many long dances as a 12-unit one).
    """
    takes = held_out_takes(data)
    if not takes:
        return []
    out = []
    for take, n in zip(takes, allocate(np.array([len(t) for t in takes]), count)):
        seq = np.resize(take, length)  # held-out takes are short: loop the "music"
        script = Script(data.tempo[seq], data.energy[seq], data.busyness[seq], np.asarray(data.style)[seq],
                        int(data.take[seq[0]]), seq, None if heard is None else heard[seq])
        out += [script] * int(n)
    return out


def real_dances(data: UnitData) -> list[Dance]:
    """Every held-out take as recorded (its own units at its own tempi)."""
    return [render(np.asarray(data.units)[seq], data.tempo[seq]) for seq in held_out_takes(data)]


def generated_dances(model: DanceModel, plan: list[Script], seed: int, temperature: float) -> list[Dance]:
    """The model dancing to each script, from a start pose of the script's first style."""
    out = []
    for i, s in enumerate(plan):
        state = model.new_state(1, seed + i, style=int(s.style[0]))
        units, codes = [], []
        for k in range(len(s.tempo)):
            ctx = MusicContext(tempo_bpm=s.tempo[k], energy=s.energy[k], busyness=s.busyness[k], style=int(s.style[k]),
                               audio=None if s.audio is None else s.audio[k])
            # Played over its beats at the script's tempo, as render() will: the
            # model judges its beat accent and the realism envelope at that rate.
            feats, state = model.next_unit(state, ctx, temperature, unit_seconds=BEATS_PER_UNIT * 60.0 / float(s.tempo[k]))
            units.append(feats[0])
            codes.append(state.prev_move[0].cpu().numpy())
        d = render(np.stack(units), s.tempo)
        d.codes = np.stack(codes)
        out.append(d)
    return out


def random_dances(data: UnitData, plan: list[Script], seed: int) -> list[Dance]:
    """Baseline: uniformly random training units, played at the script's tempi."""
    rng = np.random.default_rng(seed)
    pool = split_indices(data, "train")
    return [render(np.asarray(data.units)[rng.choice(pool, len(s.tempo))], s.tempo) for s in plan]


def retrieval_dances(data: UnitData, plan: list[Script], seed: int, top: int = 5) -> list[Dance]:
    """Baseline: for each unit, a training unit whose descriptors are nearest the script's
    (same style when possible; one of the ``top`` nearest at random, so it does not loop)."""
    rng = np.random.default_rng(seed)
    pool = split_indices(data, "train")
    desc = np.stack([np.log(data.tempo[pool]), data.energy[pool], data.busyness[pool]], -1).astype(np.float64)
    mu, sd = desc.mean(0), desc.std(0).clip(1e-6)
    desc = (desc - mu) / sd
    style = np.asarray(data.style)[pool]
    out = []
    for s in plan:
        picks = []
        for k in range(len(s.tempo)):
            q = (np.array([np.log(s.tempo[k]), s.energy[k], s.busyness[k]]) - mu) / sd
            dist = np.linalg.norm(desc - q, axis=-1) + 1e3 * (style != s.style[k])
            picks.append(pool[rng.choice(np.argsort(dist)[:top])])
        out.append(render(np.asarray(data.units)[picks], s.tempo))
    return out
