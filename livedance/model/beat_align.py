"""Put a decoded unit's kinematic beats on the music beats (the paper's final beat warping).

A unit spans two beats: the first at frame 0, the second at frame T/2, and
the next unit's first at frame T. Real units have their speed minima
(kinematic beats) there because they were cut on them; a decoded unit,
being an average of similar movements, has them blurred a few frames off.
:func:`align_beats` re-times the unit piecewise-linearly to put them back.
"""

from __future__ import annotations

import torch

from livedance.motion.representation import ROOT_DXDZ, ROOT_DYAW, body_joints


def unit_speed(feats: torch.Tensor) -> torch.Tensor:
    """(B, T, D) denormalised features -> (B, T-1) mean joint speed, metres per frame.

    Step i is the motion from frame i to i+1. Joints are taken relative to
    the floor position under the root (turning in place is ignored: the
    metric's beats come from limb motion far more than from heading).
    """
    joints = body_joints(feats)  # (B, T, 24, 3)
    limb = torch.linalg.vector_norm(joints.diff(dim=1), dim=-1).mean(-1)  # (B, T-1)
    root = torch.linalg.vector_norm(feats[:, :-1, ROOT_DXDZ], dim=-1)
    return limb + root


def _minimum_near(speed: torch.Tensor, lo: int, hi: int, default: float) -> torch.Tensor:
    """(B,) pose time of the speed minimum among steps [lo, hi], or ``default`` where it is on the window's edge."""
    window = speed[:, lo : hi + 1]
    k = window.argmin(dim=1)
    # On either edge there is no minimum inside the window. align_beats keeps
    # the beat where it is then (slowing down into the end already puts the
    # slowest pose on the beat); unclear_beats counts it as unclear, since the
    # next unit may go on slowing past the beat.
    clear = (k > 0) & (k < window.shape[1] - 1)
    kc = k.clamp(1, window.shape[1] - 2)
    a, b, c = (torch.gather(window, 1, (kc + d)[:, None])[:, 0] for d in (-1, 0, 1))
    curve = a - 2 * b + c
    # Sub-frame position of the minimum: vertex of the parabola through the three steps.
    delta = torch.where(curve > 1e-12, 0.5 * (a - c) / curve.clamp_min(1e-12), torch.zeros_like(curve)).clamp(-0.5, 0.5)
    # A minimum on step i (frames i -> i+1) is the pose at frame i + 0.5.
    at = (lo + kc).to(speed.dtype) + 0.5 + delta
    return torch.where(clear, at, torch.full_like(at, default))


def _beat_minima(feats: torch.Tensor, snap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1) pose times of the speed minima near the unit's mid beat and near its end; NaN where none is clear."""
    t = feats.shape[1]
    mid = t // 2
    speed = unit_speed(feats)
    # Light smoothing, as the beat metric smooths, so one noisy frame does not decide.
    speed = torch.nn.functional.avg_pool1d(speed[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    m1 = _minimum_near(speed, mid - snap - 1, mid + snap - 1, float("nan"))[:, None]
    m2 = _minimum_near(speed, t - snap - 2, t - 2, float("nan"))[:, None]
    return m1, m2


def unclear_beats(feats: torch.Tensor, snap: int = 4) -> torch.Tensor:
    """(B,) True where a unit (B, T, D) has no speed minimum within ``snap`` frames of its mid beat or its end."""
    m1, m2 = _beat_minima(feats, snap)
    return (m1.isnan() | m2.isnan())[:, 0]


#: Per-frame velocity features, which scale with the playback rate.
_VELOCITY = [ROOT_DXDZ.start, ROOT_DXDZ.start + 1, ROOT_DYAW]


def _retime(feats: torch.Tensor, tau: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Units (B, T, D) played back at old times ``tau`` (B or 1, T), linearly between frames.

    ``rate`` (B or 1, T) is old frames per new frame: per-frame velocities
    are scaled by it, so the ground covered is kept.
    """
    b, t, d = feats.shape
    tau, rate = tau.expand(b, t), rate.expand(b, t)
    i0 = tau.floor().clamp(0, t - 2).long()
    frac = (tau - i0.to(feats.dtype))[..., None]  # may exceed 1 at the very end: linear extrapolation
    a = torch.gather(feats, 1, i0[..., None].expand(-1, -1, d))
    c = torch.gather(feats, 1, (i0 + 1)[..., None].expand(-1, -1, d))
    out = a + (c - a) * frac
    out[..., _VELOCITY] = out[..., _VELOCITY] * rate[..., None]
    return out


def align_beats(feats: torch.Tensor, snap: int = 4) -> torch.Tensor:
    """Re-time units (B, T, D) so their kinematic beats fall on the unit's two music beats.

    The speed minimum within ``snap`` frames of T/2 moves onto T/2; the one
    within ``snap`` frames before the end moves onto the end, i.e. onto the
    next unit's first beat (what follows it is dropped: the next unit starts
    from where this one now ends, so seams stay continuous). Units without
    a clear minimum in a window keep that point. Per-frame velocities are
    rescaled by the local change of rate, so the ground covered is kept.
    """
    b, t, _ = feats.shape
    mid = t // 2
    m1, m2 = _beat_minima(feats, snap)  # (B, 1) each
    m1 = torch.nan_to_num(m1, nan=float(mid))
    m2 = torch.nan_to_num(m2, nan=float(t))

    f = torch.arange(t, dtype=feats.dtype, device=feats.device)[None].expand(b, t)  # new frame index
    first = f <= mid
    rate = torch.where(first, m1 / mid, (m2 - m1) / (t - mid))  # old frames per new frame
    tau = torch.where(first, f * rate, m1 + (f - mid) * rate)  # old time of each new frame
    return _retime(feats, tau, rate)


def accent_beats(feats: torch.Tensor, strength: float | torch.Tensor = 0.5) -> torch.Tensor:
    """Re-time units (B, T, D) to slow down on every beat and speed up between beats.

    Within each beat the playback rate is ``1 - strength * cos(2 pi u)`` (u =
    position in the beat): it averages to one, so beat instants, unit
    boundaries and the overall duration stay put, while the motion's speed
    at each beat drops to ``1 - strength`` of its own. Dancers hit the beat
    by pausing on it (that is what a kinematic beat is); a decoded unit,
    averaging similar movements, has that pause blurred, and this restores
    it whatever the movement.
    """
    s = torch.as_tensor(strength, dtype=feats.dtype, device=feats.device).reshape(-1, 1)  # (1 or B, 1): one per unit
    if bool((s <= 0.0).all()):
        return feats
    t = feats.shape[1]
    beat = t // 2
    f = torch.arange(t, dtype=feats.dtype, device=feats.device)[None]
    u = (f % beat) / beat
    start = f - f % beat
    tau = start + beat * (u - s / (2 * torch.pi) * torch.sin(2 * torch.pi * u))  # old time of each new frame
    rate = 1.0 - s * torch.cos(2 * torch.pi * u)  # old frames per new frame
    return _retime(feats, tau, rate)
