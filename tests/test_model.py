"""Unit VAE, composer state machine and one-file checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from livedance.errors import UserError
from livedance.model import checkpoint as ckpt
from livedance.model.composer import Composer, ComposerConfig
from livedance.model.context import ANY_STYLE, DescriptorStats, MusicContext
from livedance.model.dance import SEAM_FRAMES, DanceModel, NormStats
from livedance.model.vae import UnitVAE, UnitVAEConfig, VAELossWeights
from livedance.train.data import synthetic_units

torch.set_num_threads(1)


def _model(hidden: int = 32, seed: int = 0) -> DanceModel:
    torch.manual_seed(seed)
    data = synthetic_units(takes=4, units_per_take=4)
    norm = NormStats.fit(data.units)
    vae = UnitVAE(UnitVAEConfig(hidden=hidden))
    comp = Composer(ComposerConfig(hidden=hidden, n_styles=2))
    stats = DescriptorStats.fit(data.tempo, data.energy, data.busyness)
    starts = ((data.units[:, -2:] - norm.mean) / norm.std)[:8]
    return DanceModel(vae, comp, norm, stats, starts, list(data.style_names), data.style[:8])


def _save(model: DanceModel, path: Path, full: bool = True) -> Path:
    payload = ckpt.make_payload(
        vae=model.vae,
        norm=NormStats(model.feat_mean.numpy(), model.feat_std.numpy()),
        start_poses=model.start_poses.numpy(),
        start_styles=model.start_styles.numpy(),
        style_names=model.style_names,
        meta={"test": True},
        composer=model.composer if full else None,
        descriptors=model.descriptors if full else None,
    )
    return ckpt.save_checkpoint(path, payload)


def test_vae_overfits_a_tiny_set():
    torch.manual_seed(0)
    data = synthetic_units(takes=2, units_per_take=4)
    norm = NormStats.fit(data.units)
    x = torch.from_numpy((data.units - norm.mean) / norm.std)  # 8 units
    vae = UnitVAE(UnitVAEConfig(hidden=64))
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    w = VAELossWeights(kl=1e-4)
    gen = torch.Generator().manual_seed(0)

    def recon() -> float:
        with torch.no_grad():
            q_init, q_move = vae.encode(x)
            return float(torch.nn.functional.mse_loss(vae.decode(q_init.mu, q_move.mu), x))

    before = recon()
    for _ in range(250):
        loss = vae(x, w, gen).losses["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = recon()
    assert after < before / 10, (before, after)


def test_vae_loss_terms_and_shapes():
    vae = UnitVAE(UnitVAEConfig(hidden=32))
    x = torch.randn(3, 32, 148)
    out = vae(x)
    assert out.recon.shape == (3, 32, 148)
    assert out.q_init.mu.shape == (3, 16) and out.q_move.mu.shape == (3, 32)
    assert set(out.losses) == {"recon", "velocity", "kl", "cross", "latent", "total"}
    # The augmented copy changes the pose, never the velocities.
    aug = vae.augment(x, 1.0)
    assert torch.equal(aug[..., 1:4], x[..., 1:4])
    assert not torch.allclose(aug[..., 4:], x[..., 4:])
    assert torch.allclose((aug - x)[:, 0], (aug - x)[:, -1], atol=1e-5)  # constant over time


def test_next_unit_shapes_purity_and_seeds():
    model = _model()
    s0 = model.new_state(3, seed=5)
    ctx = MusicContext(tempo_bpm=np.array([90.0, 120.0, 140.0]), energy=1.0, busyness=0.5, style=ANY_STYLE)
    a, s1 = model.next_unit(s0, ctx, 1.0)
    b, _ = model.next_unit(s0, ctx, 1.0)  # same state in -> same unit out: the state is not mutated
    assert a.shape == (3, 32, 148) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert s1.units == 1 and s0.units == 0
    c, _ = model.next_unit(model.new_state(3, seed=6), ctx, 1.0)
    assert not np.allclose(a, c)
    # Temperature 0 is deterministic whatever the seed's noise.
    d0, _ = model.next_unit(s0, ctx, 0.0)
    d1, _ = model.next_unit(model.new_state(3, seed=5), ctx, 0.0)
    np.testing.assert_array_equal(d0, d1)


def test_units_continue_from_the_previous_end():
    model = _model()
    state = model.new_state(2, seed=1)
    ctx = MusicContext()
    prev, state = model.next_unit(state, ctx)
    nxt, _ = model.next_unit(state, ctx)
    pose = np.r_[0, 4:148]
    # The next unit starts one frame-step beyond where the previous ended (linear extrapolation).
    expected = prev[:, -1] + (prev[:, -1] - prev[:, -2])
    # (Up to 2e-4: foot planting re-solves a planted leg, and a 6D entry
    # extrapolated past 1 comes back as a rotation's.)
    np.testing.assert_allclose(nxt[:, 0, pose], expected[:, pose], atol=2e-4)
    # ... and the easing is gone after SEAM_FRAMES frames (the decoder's own motion resumes).
    assert SEAM_FRAMES < 32


def test_unknown_style_is_a_user_error():
    model = _model()
    with pytest.raises(UserError, match="style 9 is unknown"):
        model.next_unit(model.new_state(1, 0), MusicContext(style=9))


def test_descriptor_levels_map_to_training_quantiles():
    stats = DescriptorStats.fit(np.full(11, 120.0), np.linspace(0.0, 2.0, 11), np.linspace(0, 1, 11))
    ctx = stats.context_from_levels(tempo_bpm=128.0, energy_level=np.array([0.0, 0.5, 1.0]), busyness_level=0.25)
    np.testing.assert_allclose(ctx.energy, [0.0, 1.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(ctx.busyness, 0.25, atol=1e-6)
    values, style = ctx.batched(3)
    assert values.shape == (3, 3) and style.tolist() == [ANY_STYLE] * 3


def test_checkpoint_round_trip(tmp_path: Path):
    model = _model()
    path = _save(model, tmp_path / "m.pt")
    loaded = ckpt.load_checkpoint(path)
    a, _ = model.next_unit(model.new_state(2, 3), MusicContext())
    b, _ = loaded.next_unit(loaded.new_state(2, 3), MusicContext())
    np.testing.assert_array_equal(a, b)
    assert loaded.style_names == model.style_names and loaded.meta["test"] is True


def _one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_tampered_weights_are_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    key = next(iter(data["weights"]))
    data["weights"][key] = data["weights"][key] + 1e-3  # a subtle edit, digest left as it was
    torch.save(data, path)
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "integrity check" in _one_line(exc)


def test_flipped_bytes_are_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 16] = bytes(b ^ 0xFF for b in raw[mid : mid + 16])
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "integrity check" in _one_line(exc) or "corrupt" in str(exc.value)


def test_truncated_checkpoint_is_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "truncated or corrupt" in _one_line(exc)


def _rehash(path: Path, edit) -> None:
    data = torch.load(path, weights_only=True)
    edit(data)
    ckpt.save_checkpoint(path, data)  # a *consistent* file: only the contract/version check can object


def test_mismatched_contract_is_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    _rehash(path, lambda d: d["contract"].update(unit_frames=64))
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "unit_frames=64" in _one_line(exc) and "unit_frames=32" in str(exc.value)
    _rehash(path, lambda d: d["contract"].update(unit_frames=32, joint_names=["root"] * 24))
    with pytest.raises(UserError, match="different joint list"):
        ckpt.load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    _rehash(path, lambda d: d.update(format_version=ckpt.FORMAT_VERSION + 1))
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "upgrade livedance" in _one_line(exc)


def test_config_weight_mismatch_is_refused(tmp_path: Path):
    path = _save(_model(), tmp_path / "m.pt")
    _rehash(path, lambda d: d["vae_config"].update(hidden=48))
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "does not match its own model config" in _one_line(exc)


def test_foreign_files_are_refused(tmp_path: Path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(UserError, match="not a livedance checkpoint"):
        ckpt.load_checkpoint(other)
    evil = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "x": Path("/")}, evil)  # an arbitrary pickled object
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(evil)
    assert "corrupt or holds more than tensors" in _one_line(exc)
    with pytest.raises(UserError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_units_only_checkpoint_names_the_next_step(tmp_path: Path):
    path = _save(_model(), tmp_path / "units.pt", full=False)
    with pytest.raises(UserError) as exc:
        ckpt.load_checkpoint(path)
    assert "livedance train composer --units" in _one_line(exc)


def test_new_state_starts_in_the_requested_style():
    model = _model()
    state = model.new_state(16, seed=0, style=1)
    allowed = model.start_poses[model.start_styles == 1]
    assert all(any(torch.equal(f, p) for p in allowed) for f in state.last_frames)
    with pytest.raises(UserError, match="style 5 is unknown"):
        model.new_state(1, 0, style=5)


def _swing(minimum_at: float) -> torch.Tensor:
    """(1, 32, 148) features: the left arm swings with speed |f - minimum_at|, the root walks 1 cm/frame."""
    from livedance import skeleton as sk
    from livedance.motion.representation import motion_to_features

    f = np.arange(33, dtype=np.float64)
    angle = 0.02 * (f - minimum_at) * np.abs(f - minimum_at)  # d(angle)/df = 0.04 |f - minimum_at|
    aa = np.zeros((33, 24, 3))
    aa[:, sk.JOINT_INDEX["left_shoulder"], 2] = angle
    trans = np.zeros((33, 3))
    trans[:, 1] = sk.REST_PELVIS_HEIGHT
    trans[:, 2] = 0.01 * f
    return torch.from_numpy(motion_to_features(sk.axis_angle_to_matrix(aa), trans)[:32])[None]


def test_beat_alignment_moves_the_mid_unit_speed_minimum_onto_the_beat():
    from livedance.model.beat_align import align_beats, unit_speed

    x = _swing(13.0)
    assert int(unit_speed(x)[0, 10:20].argmin()) + 10 in (12, 13)  # steps 12->13 and 13->14 tie at the minimum
    y = align_beats(x)
    assert int(unit_speed(y)[0, 10:20].argmin()) + 10 in (15, 16)  # now around frame 16, the second beat
    pose = np.r_[0, 4:148]
    np.testing.assert_allclose(y[0, 0, pose], x[0, 0, pose], atol=1e-6)  # the unit still starts where it started
    # Velocities are rescaled with the re-timing: the ground covered before the beat is the same.
    assert float(y[0, :16, 2].sum()) == pytest.approx(float(x[0, :13, 2].sum()), abs=0.011)


def test_beat_alignment_leaves_aligned_units_alone():
    from livedance.model.beat_align import align_beats

    x = _swing(16.0)
    np.testing.assert_allclose(align_beats(x), x, atol=1e-5)


def test_beat_accent_slows_down_on_the_beats():
    from livedance.model.beat_align import accent_beats, unit_speed

    x = _swing(-100.0)  # nearly constant speed: no beat of its own
    assert torch.equal(accent_beats(x, 0.0), x)
    y = accent_beats(x, 1.0)
    speed = unit_speed(y)[0]
    # Slowest around the two beats (frames 0 and 16), faster elsewhere, but a
    # narrow dip, not a cosine rushing every mid-beat: the speed a quarter
    # beat off the beat is already most of the way back up.
    assert int(speed[8:24].argmin()) + 8 in (15, 16)
    assert float(speed[7:9].mean()) > 2.0 * float(speed[15:17].mean())
    assert float(speed[11:13].mean()) > 0.8 * float(speed[7:9].mean())
    # At the beat the rate is 1 - strength * (1 - mean of the dip), about 0.25 here.
    at_beat = float(y[0, 16, 2] / x[0, 16, 2])
    assert at_beat == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(y[0, [0, 16], 1:4], x[0, [0, 16], 1:4] * at_beat, atol=1e-5)
    # Same ground covered per beat: the rate averages to one.
    assert float(y[0, :16, 2].sum()) == pytest.approx(float(x[0, :16, 2].sum()), rel=0.02)


def _arm_swing(angle: torch.Tensor) -> torch.Tensor:
    """(B, T) right-shoulder angles (rad, about z) -> (B, T, 148) unit features, body standing."""
    from livedance import skeleton as sk
    from livedance.motion.representation import ROTATIONS

    b, t = angle.shape
    rot = torch.eye(3, dtype=torch.float64).expand(b, t, 24, 3, 3).clone()
    aa = torch.zeros(b, t, 3, dtype=torch.float64)
    aa[..., 2] = angle
    rot[:, :, sk.JOINT_INDEX["right_shoulder"]] = sk.axis_angle_to_matrix(aa)
    feats = torch.zeros(b, t, 148, dtype=torch.float64)
    feats[..., 0] = 0.9
    feats[..., ROTATIONS] = sk.matrix_to_rot6d(rot).reshape(b, t, -1)
    return feats


def test_each_unit_gets_the_weakest_accent_that_hits_its_beats():
    from livedance.model.beat_align import accent_beats, accent_strength, unit_speed

    t = torch.arange(32, dtype=torch.float64)
    # Speed dips deeply on each beat (frames 0 and 16 of 32): it hits them as decoded.
    hits = torch.cumsum(0.04 * (1.1 - torch.cos(2 * torch.pi * (t - 0.5) / 16)), 0)
    ramp = 0.002 * t**2  # speeding up through the unit: no minimum near its beats
    feats = _arm_swing(torch.stack([hits, ramp]))
    strength = accent_strength(feats, unit_seconds=1.2, most=1.2)
    assert strength[0] == 0.0, "a unit that hits its beats is played as decoded"
    assert 0.0 < strength[1] <= 1.2
    both = accent_beats(feats, strength)
    torch.testing.assert_close(both[:1], feats[:1])
    torch.testing.assert_close(both[1:], accent_beats(feats[1:], float(strength[1])))
    speed = unit_speed(both[1:])[0]
    assert speed[15] < speed[11] and speed[15] < speed[19], "the accent makes the mid beat a speed minimum"


def test_units_that_would_leave_the_envelope_are_drawn_again():
    """With the shipped checkpoint: a unit over the envelope's bounds at its
    playback duration is drawn again (never a clamped frame), the same seed
    draws the same units, and within the bounds nothing changes."""
    from dataclasses import replace as dc_replace

    from livedance.model.realism import UnitLimits, unit_measures

    model = ckpt.load_checkpoint()
    assert model.envelope is not None, "the shipped checkpoint carries its realism envelope"
    ctx = model.descriptors.context_from_levels(130.0, 1.0, 0.5)
    state = model.new_state(4, seed=3)
    model.redraws = 0
    plain, _ = model.next_unit(state, ctx, unit_seconds=0.92)  # two beats at 130 BPM: squeezed
    slow, _ = model.next_unit(state, ctx, unit_seconds=20.0)  # so slow nothing is out of bounds
    model.redraws = 3
    before = model.redrawn
    loose, _ = model.next_unit(state, ctx, unit_seconds=20.0)
    assert model.redrawn == before
    np.testing.assert_array_equal(loose, slow)
    # Bounds so tight every first draw is out: each dancer ends with its least
    # excessive of four draws, which is never worse than the first.
    envelope = model.envelope
    model.envelope = dc_replace(envelope, styles={
        name: dc_replace(s, measures={**s.measures, "speed": dc_replace(s.measures["speed"], p50=0.05)})
        for name, s in envelope.styles.items()
    })
    try:
        tight, _ = model.next_unit(state, ctx, unit_seconds=0.92)
        again, _ = model.next_unit(state, ctx, unit_seconds=0.92)
        limits = model._limits(np.full(4, ANY_STYLE))
    finally:
        model.envelope = envelope
    assert model.redrawn > before
    np.testing.assert_array_equal(tight, again)  # same state, same draws
    first = limits.excess(unit_measures(torch.from_numpy(plain), 0.92))
    chosen = limits.excess(unit_measures(torch.from_numpy(tight), 0.92))
    assert (chosen <= first + 1e-9).all() and (chosen < first).any()
    assert isinstance(limits, UnitLimits)


def test_the_staccato_floor_bounds_the_accent():
    """With a floor, no unit is accented past the point where its predicted
    smoothed speed at the beats falls under ``floor`` x mid-beat; a unit that
    cannot hit its beats above it gets the strongest accent that stays on it."""
    from livedance.model.beat_align import accent_fit

    model = _model()
    x = model.denormalise(model.vae.decode(torch.randn(6, 16), torch.randn(6, 32)))
    free, free_hit = accent_fit(x, 1.2, 1.2)
    bounded, hit = accent_fit(x, 1.2, 1.2, floor=0.85)
    assert bool((bounded <= free).all()) and bool((free_hit | ~hit).all())  # the floor only takes strength away
    assert bool((bounded < free).any()), (free, bounded)
    loose, _ = accent_fit(x, 1.2, 1.2, floor=0.5)
    assert bool((bounded <= loose).all()) and bool((loose <= free).all())  # a lower floor allows more
    assert float(accent_fit(x, 1.2, 1.2, floor=5.0)[0].max()) == 0.0  # nothing is allowed: as decoded
