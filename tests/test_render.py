"""The scene renderer against a real GL: Mesa llvmpipe through EGL, no display.

Bodies are drawn in pure green (a palette colour nothing else on the stage
has) so their silhouette can be cut out of the image exactly and compared
with where the skeleton says the body is.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from livedance.errors import UserError
from livedance.frames import Frame
from livedance.outputs.body import decimate, load_body, load_builtin_body
from livedance.outputs.renderer import (
    LOD_CELL,
    Camera,
    OffscreenRenderer,
    StageLook,
    build_program,
    create_headless_context,
    frame_view,
    lane_offsets,
    shader_source,
    skin_matrices,
)
from livedance.skeleton import JOINT_INDEX, PARENTS, REST_JOINTS, REST_PELVIS_HEIGHT, axis_angle_to_matrix

W, H = 160, 120
GREEN = StageLook(palette=((0.05, 1.0, 0.05), (1.0, 0.05, 1.0)))


def pose(arms_down: bool = False, dancers: int = 1) -> Frame:
    aa = np.zeros((dancers, 24, 3), dtype=np.float32)
    if arms_down:
        aa[:, JOINT_INDEX["left_shoulder"], 2] = -1.3
        aa[:, JOINT_INDEX["right_shoulder"], 2] = 1.3
    trans = np.tile(np.float32([0.0, REST_PELVIS_HEIGHT, 0.0]), (dancers, 1))
    return Frame.from_pose(0, 0.0, 0.0, axis_angle_to_matrix(aa), trans)


def green_mask(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., k].astype(int) for k in range(3))
    return (g > r + 40) & (g > b + 40)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def project(renderer: OffscreenRenderer, points: np.ndarray) -> np.ndarray:
    """World points -> pixel (x, y), top row 0, with the view the renderer just used."""
    lo, hi = renderer.scene.framer.lo, renderer.scene.framer.hi
    view = frame_view(renderer.camera, lo, hi, W / H)
    clip = np.c_[points, np.ones(len(points))] @ view.view_proj.T
    ndc = clip[:, :3] / clip[:, 3:]
    return np.c_[(ndc[:, 0] + 1) / 2 * W, (1 - ndc[:, 1]) / 2 * H]


@pytest.fixture(scope="module")
def renderer() -> OffscreenRenderer:
    with OffscreenRenderer(W, H, look=GREEN, samples=0) as r:
        yield r


def test_shaders_compile_and_link_on_egl() -> None:
    ctx = create_headless_context()
    try:
        assert "llvmpipe" in ctx.info["GL_RENDERER"] or ctx.info["GL_RENDERER"]
        for vert, frag, uniform in (
            ("body.vert", "body.frag", "Skins"),
            ("shadow.vert", "shadow.frag", "Skins"),
            ("floor.vert", "floor.frag", "u_shadow_map"),
            ("background.vert", "background.frag", "u_top_color"),
        ):
            prog = build_program(ctx, vert, frag)
            assert uniform in prog, f"{vert}+{frag} lost {uniform}"
            prog.release()
    finally:
        ctx.release()


def test_shader_includes_expand_and_missing_shader_is_a_user_error() -> None:
    text = shader_source("body.vert")
    assert "#include" not in text and "mat4 skin_matrix()" in text
    with pytest.raises(UserError, match="shader file .*nope.glsl.* missing"):
        shader_source("nope.glsl")


def test_builtin_body_skins_onto_the_smpl_rest_pose() -> None:
    body = load_builtin_body()
    assert 1000 < len(body.vertices) < 60000
    np.testing.assert_allclose(body.weights.sum(axis=1), 1.0, atol=1e-5)
    assert body.joints.max() < 24
    # Skin to the T-pose on the CPU with the renderer's own matrices (the same
    # blend the vertex shader does) and check the body against the skeleton.
    rest = pose()
    skins = skin_matrices(rest, body, np.zeros((1, 3), np.float32))[0]  # (24, 4, 4)
    blend = np.einsum("vk,vkab->vab", body.weights, skins[body.joints.astype(int)])
    verts = np.einsum("vab,vb->va", blend[:, :3, :3], body.vertices) + blend[:, :3, 3]
    verts -= rest.trans[0]
    # Feet on the floor, head above the head joint, T-pose arm span.
    assert abs(verts[:, 1].min() + REST_PELVIS_HEIGHT) < 0.03
    assert verts[:, 1].max() > REST_JOINTS[JOINT_INDEX["head"], 1] + 0.05
    hand = REST_JOINTS[JOINT_INDEX["left_hand"]]
    tip = verts[verts[:, 0].argmax()]
    assert hand[0] < tip[0] < hand[0] + 0.2 and abs(tip[1] - hand[1]) < 0.1
    # Each vertex mostly follows a bone it lies on (no arm vertex bound to a leg):
    # distance to the nearest bone segment leaving its main joint.
    main = body.joints[np.arange(len(body.joints)), body.weights.argmax(axis=1)]
    dist = np.full(len(main), np.inf)
    for j in range(24):
        children = [c for c in range(24) if PARENTS[c] == j] or [j]
        sel = main == j
        for c in children:
            a, b = REST_JOINTS[j], REST_JOINTS[c]
            seg = b - a
            t = np.clip((verts[sel] - a) @ seg / max(seg @ seg, 1e-9), 0.0, 1.0)
            d = np.linalg.norm(verts[sel] - (a + t[:, None] * seg), axis=1)
            dist[sel] = np.minimum(dist[sel], d)
    assert np.percentile(dist, 99) < 0.2, np.percentile(dist, 99)


def test_missing_smpl_model_falls_back_to_builtin_with_warning(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    with caplog.at_level(logging.WARNING, logger="livedance.outputs.body"):
        body = load_body(str(tmp_path / "no_such_SMPL_NEUTRAL.pkl"))
    assert body.name == "built-in"
    assert any("built-in body" in r.getMessage() for r in caplog.records)


def test_unreadable_smpl_model_falls_back_too(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    junk = tmp_path / "SMPL_NEUTRAL.pkl"
    junk.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="livedance.outputs.body"):
        assert load_body(str(junk)).name == "built-in"
    assert any("built-in body" in r.getMessage() for r in caplog.records)


def test_empty_stage_renders(renderer: OffscreenRenderer) -> None:
    empty = Frame.from_pose(0, 0.0, 0.0, np.zeros((0, 24, 3, 3), np.float32), np.zeros((0, 3), np.float32))
    img = renderer.render(empty)
    assert not green_mask(img).any() and img.mean() > 2  # stage drawn, nobody on it


def test_offscreen_render_shows_the_body_where_the_skeleton_is(renderer: OffscreenRenderer) -> None:
    frame = pose()
    img = renderer.render(frame)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    mask = green_mask(img)
    assert mask.sum() > 200, "no body pixels"
    x0, y0, x1, y1 = bbox(mask)
    px = project(renderer, frame.joints[0])
    # The joints sit inside the silhouette's box (with the skin around them) ...
    assert x0 - 2 <= px[:, 0].min() and px[:, 0].max() <= x1 + 2
    assert y0 - 2 <= px[:, 1].min() and px[:, 1].max() <= y1 + 2
    # ... and the silhouette doesn't reach far beyond them.
    span = px[:, 0].max() - px[:, 0].min()
    assert x1 - x0 < span * 1.4
    # The backdrop stays dark, the floor is lit where the body stands.
    assert img[:5].mean() < 40


def test_silhouette_changes_with_the_pose(renderer: OffscreenRenderer) -> None:
    t_pose = green_mask(renderer.render(pose(arms_down=False)))
    renderer.camera = Camera()
    renderer.scene.framer.lo = None  # snap framing, as a cut would
    down = green_mask(renderer.render(pose(arms_down=True)))
    assert (t_pose ^ down).sum() > 0.2 * t_pose.sum()
    # Arms down: the silhouette gets narrower relative to its height.
    tx0, ty0, tx1, ty1 = bbox(t_pose)
    dx0, dy0, dx1, dy1 = bbox(down)
    assert (dx1 - dx0) / (dy1 - dy0) < 0.7 * (tx1 - tx0) / (ty1 - ty0)


def test_several_dancers_side_by_side() -> None:
    with OffscreenRenderer(W, H, look=GREEN, samples=0, spacing=1.0) as r:
        img = r.render(pose(dancers=2))
    green = green_mask(img)
    magenta = (img[..., 0].astype(int) > img[..., 1] + 40) & (img[..., 2].astype(int) > img[..., 1] + 40)
    assert green.sum() > 100 and magenta.sum() > 100
    # Dancer 0 gets the negative-x lane, which the front camera shows on the left.
    assert lane_offsets(2, 1.0)[0, 0] < 0
    assert np.nonzero(green)[1].mean() < np.nonzero(magenta)[1].mean()


def test_coarse_body_keeps_the_silhouette(renderer: OffscreenRenderer) -> None:
    full = load_builtin_body()
    coarse = decimate(full, LOD_CELL)
    assert len(coarse.vertices) < 0.5 * len(full.vertices)
    renderer.scene.framer.lo = None
    a = green_mask(renderer.render(pose(arms_down=True)))
    with OffscreenRenderer(W, H, body=coarse, look=GREEN, samples=0) as r:
        b = green_mask(r.render(pose(arms_down=True)))
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_fxaa_softens_edges_and_keeps_the_picture() -> None:
    frame = pose(arms_down=True)
    images = []
    for fxaa in (False, True):
        with OffscreenRenderer(W, H, look=GREEN, samples=0, fxaa=fxaa) as r:
            images.append(r.render(frame).astype(float))
    sharp, smooth = images

    def edge_energy(img: np.ndarray) -> float:
        return float((np.diff(img, axis=0) ** 2).sum() + (np.diff(img, axis=1) ** 2).sum())

    assert np.abs(sharp - smooth).mean() < 3.0
    assert edge_energy(smooth) < 0.9 * edge_energy(sharp)


def test_render_is_deterministic(renderer: OffscreenRenderer) -> None:
    renderer.scene.framer.lo = None
    a = renderer.render(pose())
    renderer.scene.framer.lo = None
    b = renderer.render(pose())
    assert np.array_equal(a, b)


def test_tiny_render_size_is_a_user_error() -> None:
    with pytest.raises(UserError, match="too small"):
        OffscreenRenderer(8, 8)


def test_a_crowd_is_drawn_in_instanced_batches_each_dancer_in_its_colour() -> None:
    """20 dancers: three draw calls per pass (8 + 8 + 4 instances). Every dancer is
    drawn where it stands, in its palette colour (green for even, magenta for odd)."""
    from livedance.outputs.renderer import SKIN_BATCH

    dancers, w = 20, 640
    assert dancers > 2 * SKIN_BATCH
    with OffscreenRenderer(w, H, look=GREEN, samples=0, spacing=1.0) as r:
        frame = pose(arms_down=True, dancers=dancers)
        img = r.render(frame)
        lo, hi = r.scene.framer.lo, r.scene.framer.hi
        view = frame_view(r.camera, lo, hi, w / H)
    green = green_mask(img)
    magenta = (img[..., 0].astype(int) > img[..., 1] + 40) & (img[..., 2].astype(int) > img[..., 1] + 40)
    pelvis = np.c_[frame.joints[:, 0] + lane_offsets(dancers, 1.0), np.ones(dancers)] @ view.view_proj.T
    xs = ((pelvis[:, 0] / pelvis[:, 3] + 1) / 2 * w).round().astype(int)
    for d, x in enumerate(xs):
        mine, other = (green, magenta) if d % 2 == 0 else (magenta, green)
        strip = slice(max(x - 3, 0), x + 4)
        assert mine[:, strip].sum() > 10 and mine[:, strip].sum() > 5 * other[:, strip].sum(), d
