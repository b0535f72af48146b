"""Evaluation metrics on motions with known answers, rendering, and the report end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from livedance import skeleton as sk
from livedance.cli import main
from livedance.eval import metrics as M
from livedance.eval.dances import allocate, render
from livedance.eval.features import GEOMETRIC_DIM, KINETIC_DIM, geometric_features, kinetic_features
from livedance.motion.representation import motion_to_features

torch.set_num_threads(1)
FPS = 60.0


def test_scripts_cover_held_out_takes_in_proportion_to_their_length():
    """Generated dances must weight the held-out music as the real takes do."""
    n = allocate(np.array([3, 4, 3, 12, 12, 9, 10]), 16)
    assert n.sum() == 16 and list(n) == [1, 1, 1, 4, 3, 3, 3]
    assert list(allocate(np.array([1, 1, 1]), 2)) == [1, 1, 0]
    assert list(allocate(np.array([30, 10]), 4)) == [3, 1]


def _standing(n: int = 120) -> np.ndarray:
    """(n, 24, 3) rest pose with feet on the floor."""
    rot = np.broadcast_to(np.eye(3), (n, 24, 3, 3)).copy()
    trans = np.zeros((n, 3))
    trans[:, 1] = sk.REST_PELVIS_HEIGHT
    return sk.forward_kinematics(rot, trans)[1]


def test_still_and_sliding_bodies():
    still = _standing()
    assert M.foot_skating(still, FPS) == pytest.approx(0.0, abs=1e-9)
    assert M.jitter(still, FPS) == pytest.approx(0.0, abs=1e-9)
    assert M.foot_contact_score(still, FPS) == pytest.approx(0.0, abs=1e-9)
    slide = still + np.arange(len(still))[:, None, None] * np.array([1.0 / FPS, 0.0, 0.0])  # 1 m/s sideways
    assert M.foot_skating(slide, FPS) == pytest.approx(1.0, rel=1e-6)
    assert M.jitter(slide, FPS) == pytest.approx(0.0, abs=1e-6)  # constant velocity has no jerk
    noisy = still + np.random.default_rng(0).normal(0, 0.002, still.shape)
    assert M.jitter(noisy, FPS) > 100.0


def test_foot_contact_score_punishes_accelerating_while_airborne():
    n = 120
    t = np.arange(n) / FPS
    still = _standing(n)
    # The root swings to and fro (accelerating); feet either stay planted or travel with it.
    sway = 0.2 * np.sin(2 * np.pi * t)[:, None] * np.array([1.0, 0.0, 0.0])
    planted = still.copy()
    planted[:, :] += sway[:, None, :]
    feet = [sk.JOINT_INDEX[j] for j in ("left_ankle", "left_foot", "right_ankle", "right_foot")]
    planted[:, feet] = still[:, feet]
    floating = still + sway[:, None, :]
    assert M.foot_contact_score(planted, FPS) < 1e-6
    assert M.foot_contact_score(floating, FPS) > 1.0


def test_frechet_distance_and_diversity_on_known_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    assert M.frechet_distance(a, a + 2.0) == pytest.approx(12.0, rel=0.02)  # |mu1 - mu2|^2 = 3 * 2^2
    assert M.frechet_distance(a, 2.0 * a) == pytest.approx(3.0, rel=0.05)  # trace term: 3 * (1 + 4 - 2 * 2)
    square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert M.diversity(square) == pytest.approx((4 * 1.0 + 2 * np.sqrt(2)) / 6)


def test_kinetic_features_of_uniform_motion():
    v = 0.5
    moving = _standing() + np.arange(120)[:, None, None] * np.array([0.0, 0.0, v / FPS])
    f = kinetic_features(moving, FPS).reshape(24, 3)
    assert f.shape == (24, 3) and KINETIC_DIM == 72
    np.testing.assert_allclose(f[:, 0], 0.5 * v**2, rtol=1e-6)  # horizontal kinetic energy
    np.testing.assert_allclose(f[:, 1:], 0.0, atol=1e-9)  # no vertical motion, no power


def test_geometric_features_see_raised_hands():
    rest = _standing(30)
    n = 30
    rot = np.broadcast_to(np.eye(3), (n, 24, 3, 3)).copy()
    # Shoulders rotated so both arms point straight up.
    rot[:, sk.JOINT_INDEX["left_shoulder"]] = sk.axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    rot[:, sk.JOINT_INDEX["right_shoulder"]] = sk.axis_angle_to_matrix(np.array([0.0, 0.0, -np.pi / 2]))
    trans = np.zeros((n, 3))
    trans[:, 1] = sk.REST_PELVIS_HEIGHT
    up = sk.forward_kinematics(rot, trans)[1]
    g_rest, g_up = geometric_features(rest, FPS), geometric_features(up, FPS)
    assert g_rest.shape == (GEOMETRIC_DIM,)
    hand_above_head = [0, 14]  # first relation of each side
    assert g_rest[hand_above_head].tolist() == [0.0, 0.0]
    assert g_up[hand_above_head].tolist() == [1.0, 1.0]


def test_render_stretches_units_onto_their_beats():
    n = 33
    rot = np.broadcast_to(np.eye(3), (n, 24, 3, 3)).copy()
    trans = np.zeros((n, 3))
    trans[:, 1] = sk.REST_PELVIS_HEIGHT
    trans[:, 2] = np.arange(n) * 0.01  # 1 cm forward per canonical frame
    unit = motion_to_features(rot, trans)[:32]
    d = render(np.stack([unit, unit, unit]), np.array([120.0, 120.0, 60.0]))
    # 2 beats at 120 BPM = 1 s, at 60 BPM = 2 s: 4 s in all, beats every 30 / 30 / 60 frames.
    assert len(d.joints) == 4 * 60
    np.testing.assert_allclose(d.beats, [0, 30, 60, 90, 120, 180])
    np.testing.assert_allclose(d.seams, [60, 120])
    # The same ground is covered per unit whatever the tempo (tempo lives in the warp).
    pelvis_z = d.joints[:, 0, 2]
    assert pelvis_z[60] - pelvis_z[0] == pytest.approx(0.32, abs=0.01)
    assert pelvis_z[180] - pelvis_z[120] == pytest.approx(0.16, abs=0.01)


def test_eval_writes_a_report(tmp_path: Path):
    ckpt = tmp_path / "m.pt"
    common = ["--data", "synthetic", "--steps", "3", "--batch", "8", "--hidden", "24", "--no-progress"]
    assert main(["train", "units", "--out", str(tmp_path / "u.pt"), *common]) == 0
    assert main(["train", "composer", "--units", str(tmp_path / "u.pt"), "--out", str(ckpt), "--window", "4", *common]) == 0
    report = tmp_path / "report"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", "synthetic", "--report", str(report), "--dances", "4",
                 "--units", "8", "--music-bpm", "120", "--bootstrap", "30"]) == 0
    text = (report / "report.md").read_text()
    for name in ("real held-out takes", "random units", "nearest-neighbour retrieval", "## Targets", "speed_beats.png",
                 "## Beat alignment against true beats", "## Realism envelope", "envelope.png", "engine_speed_beats.png"):
        assert name in text
    for png in ("speed_beats.png", "latent_map.png", "metrics.png", "envelope.png", "engine_speed_beats.png"):
        assert (report / png).stat().st_size > 1000
    m = json.loads((report / "metrics.json").read_text())
    gen = m["systems"]["generated"]
    assert 0.0 <= gen["beat_alignment"] <= 1.0 and gen["fid_k"] >= 0.0 and len(m["targets"]) == 8
    assert gen["fid_k_lo"] <= gen["fid_k_hi"] and gen["fid_g_lo"] <= gen["fid_g_hi"]
    # The real takes are the reference: no FID against themselves.
    assert "fid_k" not in m["systems"]["real"]
    # The engine danced the synthetic track, scored against the beats the synthesiser rendered.
    (track,) = m["music"]
    assert track["bpm"] == 120 and 0.0 <= track["beat_alignment"] <= 1.0 and track["mean_abs_offset_ms"] is not None
    # No envelope in a checkpoint trained on synthetic data: judged against the real held-out dances.
    assert "stores no envelope" in m["envelope"]["reference"]
    assert m["envelope"]["ratios"]["real held-out takes"]["speed"] == pytest.approx(1.0)


def test_eval_without_checkpoint_file_is_one_line(tmp_path: Path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", "synthetic", "--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1


def test_fid_bootstrap_interval_covers_the_true_distance():
    """Two Gaussians 1 sd apart in each of 8 dimensions: true FID 8. Resampled by
    group (6 "takes" of 10 segments), the basic interval holds 8; fewer groups
    give a wider interval."""
    from livedance.eval.bootstrap import fid_interval

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 1.0
    groups = np.repeat(np.arange(6), 10)
    ra, rb = M.normalise_pair(a, b)
    lo, hi = fid_interval(ra, groups, rb, groups, rounds=200, seed=0)
    assert lo < 8.0 < hi
    lo3, hi3 = fid_interval(ra, groups // 2, rb, groups // 2, rounds=200, seed=0)
    assert hi3 - lo3 > hi - lo
