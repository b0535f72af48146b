"""Bootstrap confidence intervals for FID against a small reference set.

The reference is the held-out real takes (7 with the shipped data), cut into
4-beat segments. Segments of one take are not independent samples, so the
resampling unit is the take (and, for a generated set, the dance): each
round draws takes and dances with replacement, pools their segments and
computes the Fréchet distance. The features come standardised once by the
whole reference set, as for the point estimate (re-standardising by each
drawn reference would divide by the near-zero spread of features that a
draw of few distinct takes happens not to vary). FID is biased upwards on
few samples, and a draw with repeated takes has fewer distinct samples
still, so the rounds' FIDs sit above the point estimate; the interval is
therefore the basic (reverse-percentile) bootstrap interval, 2 FID - q97.5
to 2 FID - q2.5 (floored at 0), which carries that bias over instead of
reporting an interval that misses the estimate. It shows how much the
figure would move with another draw of seven takes.
"""

from __future__ import annotations

import numpy as np

from livedance.eval import metrics as M


def fid_interval(ref: np.ndarray, ref_groups: np.ndarray, other: np.ndarray, other_groups: np.ndarray,
                 rounds: int = 200, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Basic bootstrap interval of FID(ref, other) over group-resampled rounds.

    Args:
        ref, other: (S, F) segment features, both standardised by the whole reference set.
        ref_groups, other_groups: (S,) take / dance id of each segment.
    """
    rng = np.random.default_rng(seed)
    rg, og = np.unique(ref_groups), np.unique(other_groups)
    ref_rows = [np.flatnonzero(ref_groups == g) for g in rg]
    other_rows = [np.flatnonzero(other_groups == g) for g in og]
    values = []
    for _ in range(rounds):
        r = ref[np.concatenate([ref_rows[i] for i in rng.integers(0, len(rg), len(rg))])]
        o = other[np.concatenate([other_rows[i] for i in rng.integers(0, len(og), len(og))])]
        if len(r) < 2 or len(o) < 2:
            continue
        values.append(M.frechet_distance(r, o))
    if not values:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    q_lo, q_hi = np.percentile(values, [tail, 100.0 - tail])
    point = M.frechet_distance(ref, other)
    return max(0.0, float(2 * point - q_hi)), max(0.0, float(2 * point - q_lo))
