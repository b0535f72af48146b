"""Foot planting: two-bone leg IK and feet held on the floor while the body travels."""

from __future__ import annotations

import numpy as np
import torch

from livedance import skeleton as sk
from livedance.eval.metrics import foot_contact_score, foot_skating
from livedance.model.checkpoint import load_checkpoint
from livedance.model.context import MusicContext
from livedance.motion.foot_plant import GROUND_HEIGHT, LEGS, plant_feet, reach_with_legs
from livedance.motion.representation import ROTATIONS, features_to_motion, motion_to_features

torch.set_num_threads(1)
LEFT, RIGHT = LEGS


def _world_joints(feats: np.ndarray) -> np.ndarray:
    """(T, 148) -> (T, 24, 3) world joints, starting at the origin facing +z."""
    rot, trans = features_to_motion(feats, np.zeros(3), 0.0)
    return sk.forward_kinematics(rot, trans)[1]


def test_a_leg_reaches_its_target_with_bones_and_foot_orientation_kept():
    rng = np.random.default_rng(0)
    aa = torch.as_tensor(rng.normal(0.0, 0.3, (64, 24, 3)))
    aa[:, LEFT[1], 0] = torch.as_tensor(rng.uniform(0.2, 1.2, 64))  # a bent knee
    rot = sk.axis_angle_to_matrix(aa)
    glob, joints = sk.forward_kinematics(rot, torch.zeros(64, 3, dtype=torch.float64))
    hip, knee, ankle, toe = LEFT
    near = joints[:, ankle] + torch.as_tensor(rng.normal(0.0, 0.05, (64, 3)))  # within reach
    far = joints[:, hip] + 5.0 * (joints[:, ankle] - joints[:, hip])  # beyond any leg
    for target in (near, far):
        new = rot.clone()
        reach_with_legs(new, glob, joints, (LEFT,), target[:, None])
        g2, j2 = sk.forward_kinematics(new, torch.zeros(64, 3, dtype=torch.float64))
        for a, b in ((hip, knee), (knee, ankle), (ankle, toe)):
            assert torch.allclose((j2[:, a] - j2[:, b]).norm(dim=-1), (joints[:, a] - joints[:, b]).norm(dim=-1), atol=1e-9)
        assert torch.allclose(g2[:, ankle], glob[:, ankle], atol=1e-9)  # foot orientation kept
        assert torch.allclose(j2[:, RIGHT[2]], joints[:, RIGHT[2]])  # the other leg untouched
        if target is near:
            l1, l2 = (joints[:, knee] - joints[:, hip]).norm(dim=-1), (joints[:, ankle] - joints[:, knee]).norm(dim=-1)
            reachable = (target - joints[:, hip]).norm(dim=-1) < 0.999 * (l1 + l2)
            assert reachable.sum() > 48
            assert (j2[reachable, ankle] - target[reachable]).norm(dim=-1).max() < 1e-6
        else:  # straight leg pointing at the target
            direction = torch.nn.functional.normalize(target - j2[:, hip], dim=-1)
            reached = torch.nn.functional.normalize(j2[:, ankle] - j2[:, hip], dim=-1)
            assert ((direction * reached).sum(-1) > 1 - 1e-6).all()


def _gliding_step(frames: int = 32, glide: float = 0.005) -> np.ndarray:
    """A body that slides forward ``glide`` m/frame on its left foot (knee bent, so the foot is
    within reach all along), right foot lifted."""
    rot = np.tile(np.eye(3), (frames, 24, 1, 1))
    legs = sk.axis_angle_to_matrix(np.array([[-0.3, 0.0, 0.0], [0.6, 0.0, 0.0], [-0.6, 0.0, 0.0], [1.2, 0.0, 0.0]]))
    for joint, r in zip((LEFT[0], LEFT[1], RIGHT[0], RIGHT[1]), legs):  # hips forward, knees bent
        rot[:, joint] = r
    floor = -sk.forward_kinematics(rot[0], np.zeros(3))[1][LEFT[3], 1]  # left toe on y = 0
    trans = np.zeros((frames + 1, 3))
    trans[:, 1] = floor
    trans[:, 2] = glide * np.arange(frames + 1)
    return motion_to_features(np.concatenate([rot, rot[-1:]]), trans)[:frames]


def test_a_gliding_foot_on_the_floor_is_planted_and_a_lifted_one_left_alone():
    feats = _gliding_step()
    planted = plant_feet(torch.from_numpy(feats)[None])[0].numpy()
    before, after = _world_joints(feats), _world_joints(planted)
    lifted_height = before[:, RIGHT[2], 1].min() - before[:, LEFT[2], 1].min()
    assert lifted_height > GROUND_HEIGHT  # the setup really has one free foot

    step_before = np.linalg.norm(np.diff(before[:, LEFT[2]][:, [0, 2]], axis=0), axis=-1)
    step_after = np.linalg.norm(np.diff(after[:, LEFT[2]][:, [0, 2]], axis=0), axis=-1)
    assert step_before.min() > 0.004  # the decoded foot skates with the body
    assert step_after.max() < 1e-4  # planted: it stays where it landed
    assert np.allclose(after[:, RIGHT[2]], before[:, RIGHT[2]], atol=1e-5)  # the free foot is as decoded
    assert np.array_equal(planted[:, :ROTATIONS.start], feats[:, :ROTATIONS.start])  # travel, height, turning kept
    assert np.allclose(after[:, 0], before[:, 0])  # the pelvis goes where it went


def test_zero_strength_is_the_identity():
    feats = torch.from_numpy(_gliding_step())[None]
    assert plant_feet(feats, 0.0) is feats


def test_the_shipped_model_plants_its_feet():
    """Generated dance: less foot skating and a lower foot contact score with planting than without."""
    model = load_checkpoint(None)
    scores = {}
    for strength in (0.0, model.foot_plant):
        model.foot_plant = strength
        state = model.new_state(4, seed=1)
        units = []
        for _ in range(12):
            feats, state = model.next_unit(state, MusicContext(tempo_bpm=120.0, energy=1.0, busyness=0.5))
            units.append(feats)
        dances = np.concatenate(units, axis=1)  # (4, T, D): canonical frames, 16 per beat at 120 BPM = 32 fps
        joints = [_world_joints(d) for d in dances]
        scores[strength] = (
            np.mean([foot_contact_score(j, 32.0) for j in joints]),
            np.mean([foot_skating(j, 32.0) for j in joints]),
        )
    (pfc0, skate0), (pfc1, skate1) = scores.values()
    assert pfc1 < 0.8 * pfc0  # 0.64x at this seed
    assert skate1 < 0.85 * skate0  # 0.76x at this seed
