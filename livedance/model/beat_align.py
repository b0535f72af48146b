"""Put a decoded unit's kinematic beats on the music beats (the paper's final beat warping).

A unit spans two beats: the first at frame 0, the second at frame T/2, and
the next unit's first at frame T. Real units have their speed minima
(kinematic beats) there because they were cut on them; a decoded unit,
being an average of similar movements, has them blurred a few frames off.
:func:`align_beats` re-times the unit piecewise-linearly to put them back.
"""

from __future__ import annotations

import math

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
    # slowest pose on the beat).
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

    Within each beat the playback rate dips around the beat (a Gaussian of
    ACCENT_WIDTH beats) and is a little above one elsewhere (see
    :func:`_accent_warp`): it averages to one, so beat instants, unit
    boundaries and the overall duration stay put, while the motion's speed
    at each beat drops to about ``1 - 0.75 * strength`` of its own (strength
    below 1.33). Dancers hit the beat by slowing on it (that is what a
    kinematic beat is); a decoded unit, averaging similar movements, has that
    blurred, and this restores it whatever the movement.
    """
    s = torch.as_tensor(strength, dtype=feats.dtype, device=feats.device).reshape(-1, 1)  # (1 or B, 1): one per unit
    if bool((s <= 0.0).all()):
        return feats
    tau, rate = _accent_warp(feats.shape[1], s, feats)
    return _retime(feats, tau, rate)


#: Width (sigma, in beats) of the slow-down around each beat. The accent
#: used to be a cosine over the whole beat, which rushed every mid-beat by as
#: much as it slowed the beat; a narrow dip pays for itself a little over the
#: rest of the beat instead.
ACCENT_WIDTH = 0.1


def _accent_warp(t: int, s: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Old time ``tau`` and rate (old frames per new frame) of each of ``t`` new
    frames of a unit accented with strengths ``s`` (K, 1): (K, T) each.

    Within each beat (u in [0, 1)) the rate is ``1 - s * (bump(u) - m)``: a
    Gaussian bump of width ACCENT_WIDTH on the beat, less its mean m, so the
    rate averages to one and beats stay put; the speed at the beat drops to
    about ``1 - s`` of the motion's own.
    """
    beat = t // 2
    f = torch.arange(t, dtype=like.dtype, device=like.device)[None]
    u = (f % beat) / beat
    w = ACCENT_WIDTH
    root = w * math.sqrt(2.0)
    bump = torch.exp(-0.5 * (u / w) ** 2) + torch.exp(-0.5 * ((1 - u) / w) ** 2)
    # Integral of the bump from 0 to u, and its mean over the beat.
    half = w * math.sqrt(math.pi / 2.0)
    integral = half * (torch.erf(u / root) - torch.erf((1 - u) / root) + math.erf(1 / root))
    mean = 2 * half * math.erf(1 / root)
    tau = f - f % beat + beat * (u - s * (integral - mean * u))
    rate = 1.0 - s * (bump - mean)
    return tau, rate


#: Accent strengths :func:`accent_strength` tries, weakest first.
ACCENT_STEPS = 15
#: Smoothing of the kinematic-beat metric: sigma 5 frames at 60 fps (see motion.kinematic_beats).
_METRIC_SIGMA_S = 5.0 / 60.0


def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (..., N) along the last axis, edges held (as the metric's "nearest")."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    w = (w / w.sum()).reshape(1, 1, -1)
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    flat = torch.nn.functional.pad(flat, (radius, radius), mode="replicate")
    return torch.nn.functional.conv1d(flat, w).reshape(shape)


def accent_strength(
    feats: torch.Tensor, unit_seconds: float | None = None, most: float = 0.7, window: int = 4, depth: float = 0.25,
    tolerance: float = 0.02, floor: float = 0.0,
) -> torch.Tensor:
    """(B,) the beat accent each unit (B, T, D) gets: :func:`accent_fit`'s strength."""
    return accent_fit(feats, unit_seconds, most, window, depth, tolerance, floor)[0]


def accent_fit(
    feats: torch.Tensor, unit_seconds: float | None = None, most: float = 0.7, window: int = 4, depth: float = 0.25,
    tolerance: float = 0.02, floor: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) the weakest beat accent (see :func:`accent_beats`) at which each unit
    (B, T, D) hits its beats, or the strongest allowed where none does, and
    (B,) whether it hits them.

    A unit hits its beats when its mean joint speed, smoothed as the
    kinematic-beat metric smooths it at the playback rate (``unit_seconds``
    per unit; None: 1.2 s, two beats at 100 BPM), has its minimum within
    ``tolerance`` seconds of the mid beat (within ``window`` steps), and
    slows into its end and speeds up out of its start (the unit boundary is
    the other beat), each time by at least ``depth`` of the speed ``window``
    steps away (a shallower dip is lost to the seams and foot planting). A unit whose own timing already does that is played
    as it was decoded: a uniform accent made every beat a stop and every
    mid-beat a rush (speed at the beat a third of mid-beat), where real
    dancers barely slow on the beat.

    ``floor`` bounds how staccato the accent may make a unit: no strength
    is used at which the unit's predicted smoothed speed at its beats falls
    below ``floor`` times its speed half-way between them (the envelope's
    "at beat / mid-beat"). A unit that cannot hit its beats above the floor
    gets the strongest accent that stays on it. Real units barely slow on
    their beats (0.95 of mid-beat on the training units) and 1% of them pass
    the hit test unaccented, so without a floor nearly every unit was
    accented into a pump on every beat.

    The accented speed is predicted from the unaccented one (re-timing
    scales it by the local rate), so no strength costs a forward kinematics.
    """
    b, t, _ = feats.shape
    beat = t // 2
    speed = unit_speed(feats)  # (B, T-1); step i spans poses i..i+1
    strengths = torch.linspace(0.0, float(most), ACCENT_STEPS, dtype=feats.dtype, device=feats.device)[:, None]  # (K, 1)
    tau, _ = _accent_warp(t, strengths, feats)  # (K, T)
    # New step j covers old poses tau_j..tau_{j+1}: the old speed at its middle, times the rate.
    where = ((tau[:, :-1] + tau[:, 1:]) / 2 - 0.5).clamp(0, t - 2)  # (K, T-1) in old step units
    i0 = where.floor().clamp(0, t - 3).long()
    frac = where - i0.to(feats.dtype)
    s0 = speed[:, None, :].expand(b, strengths.shape[0], t - 1)
    a = torch.gather(s0, 2, i0[None].expand(b, -1, -1))
    c = torch.gather(s0, 2, (i0 + 1)[None].expand(b, -1, -1))
    accented = (a + (c - a) * frac) * (tau[:, 1:] - tau[:, :-1])  # (B, K, T-1)
    seconds = 1.2 if unit_seconds is None else float(unit_seconds)
    smooth = _smooth(accented, _METRIC_SIGMA_S * t / max(seconds, 1e-3))
    around = smooth[..., beat - window : beat + window]
    mid = around.argmin(-1)
    keep = 1.0 - depth
    # The minimum's sub-step place (vertex of the parabola through its steps)
    # within ``tolerance`` seconds of the beat pose (a step is 0.1 s at 75 BPM).
    k = mid.clamp(1, 2 * window - 2)
    a, b_, c = (torch.gather(around, -1, (k + d)[..., None])[..., 0] for d in (-1, 0, 1))
    curve = a - 2 * b_ + c
    vertex = torch.where(curve > 1e-12, 0.5 * (a - c) / curve.clamp_min(1e-12), torch.zeros_like(curve)).clamp(-0.5, 0.5)
    frame_s = seconds / t
    off = (k.to(feats.dtype) + 0.5 + vertex - window).abs() * frame_s  # seconds from the beat pose
    hits = (mid == k) & (off <= max(tolerance, 0.5 * frame_s))
    hits &= around.min(-1).values <= keep * torch.minimum(around[..., 0], around[..., -1])
    end, begin = smooth[..., -window:], smooth[..., :window]
    hits &= (end.argmin(-1) == window - 1) & (end[..., -1] <= keep * end[..., 0])  # slows into the end
    hits &= (begin.argmin(-1) == 0) & (begin[..., 0] <= keep * begin[..., -1])  # speeds up out of the start
    quarter = beat // 2
    at_beat = (smooth[..., 0] + smooth[..., beat - 1] + smooth[..., beat] + smooth[..., -1]) / 4
    mid_beat = (smooth[..., quarter - 1] + smooth[..., quarter] + smooth[..., beat + quarter - 1] + smooth[..., beat + quarter]) / 4
    # Strengths in order up to the first that drops under the floor (strength 0 always stays).
    allowed = (at_beat >= floor * mid_beat).to(torch.int8).cumprod(-1).bool()
    allowed[:, 0] = True
    hits &= allowed
    strongest = allowed.to(torch.int64).sum(-1) - 1
    hit = hits.any(-1)
    first = torch.where(hit, hits.to(torch.int8).argmax(-1), strongest)
    return strengths[first, 0], hit
