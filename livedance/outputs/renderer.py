"""The stage: a moderngl scene renderer shared by the window and offscreen video.

One :class:`SceneRenderer` draws a :class:`~livedance.frames.Frame` (any
number of dancers) into a framebuffer it is given, in four passes:

1. shadow map: every body's depth seen from the key light;
2. backdrop: a full-screen gradient with a glow and a vignette;
3. floor: a spotlight pool, soft shadows (8-tap PCF), faded into the backdrop;
4. bodies: skinned in the vertex shader from 24 joint matrices per dancer,
   lit by a warm key, a cool rim that flashes on the beat, and sky/floor ambient.

The camera auto-frames the dancers (smoothed, so it doesn't breathe with every
step) and can be orbited and zoomed on top of that. :class:`OffscreenRenderer`
wraps it all around a headless EGL context for video and tests.

GL objects are created in ``__init__`` and released in ``release()``;
nothing is created per frame.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from types import TracebackType
from typing import Any, Iterator, TypeVar

import moderngl
import numpy as np

from livedance.errors import UserError
from livedance.frames import Frame
from livedance.outputs.body import BodyMesh, decimate, load_body
from livedance.skeleton import NUM_JOINTS, forward_kinematics

log = logging.getLogger(__name__)

Color = tuple[float, float, float]
T = TypeVar("T")
GL_VERSION = 330

# ---------------------------------------------------------------------------
# Shaders.

_INCLUDE = re.compile(r'^[ \t]*#include[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)


def shader_source(name: str) -> str:
    """Text of ``livedance/shaders/<name>`` with ``#include "file"`` lines expanded.

    GLSL has no includes; this one-level textual include lets the body and
    shadow passes share the skinning code and the body and floor the lighting.
    """
    path = resources.files("livedance") / "shaders" / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise UserError(f"shader file {path} is missing; reinstall livedance to restore livedance/shaders/") from None
    return _INCLUDE.sub(lambda m: shader_source(m.group(1)), text)


#: Every shader pair the renderers build (SceneRenderer and the FXAA pass).
PROGRAMS = (
    ("body.vert", "body.frag"),
    ("shadow.vert", "shadow.frag"),
    ("floor.vert", "floor.frag"),
    ("background.vert", "background.frag"),
    ("background.vert", "fxaa.frag"),
)


def check_shaders() -> None:
    """Read (and expand) every shader now, so a missing file is a one-line
    :class:`UserError` when a window or video is set up, not an error in a
    render thread minutes into a performance (which used to end in a
    traceback and no video)."""
    for pair in PROGRAMS:
        for name in pair:
            shader_source(name)


def build_program(ctx: moderngl.Context, vertex: str, fragment: str) -> moderngl.Program:
    """Compile and link ``shaders/<vertex>`` + ``shaders/<fragment>``."""
    try:
        return ctx.program(vertex_shader=shader_source(vertex), fragment_shader=shader_source(fragment))
    except moderngl.Error as exc:
        # Our GLSL is a part of the program: a compile error is a bug, not user input.
        raise RuntimeError(f"shaders {vertex} + {fragment} failed to build: {exc}") from exc


# ---------------------------------------------------------------------------
# Matrices (column-vector convention: clip = P @ V @ world).


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / math.tan(fov_y / 2.0)
    m = np.zeros((4, 4))
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def orthographic(half: float, near: float, far: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 1.0 / half
    m[2, 2] = -2.0 / (far - near)
    m[2, 3] = -(far + near) / (far - near)
    return m


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    side = np.cross(fwd, up)
    if np.linalg.norm(side) < 1e-6:  # looking straight up or down
        side = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    side = side / np.linalg.norm(side)
    true_up = np.cross(side, fwd)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = side, true_up, -fwd
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _gl(m: np.ndarray) -> bytes:
    """A (..., 4, 4) matrix as GLSL mat4 bytes (column-major)."""
    return np.ascontiguousarray(np.swapaxes(m, -1, -2), dtype=np.float32).tobytes()


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# ---------------------------------------------------------------------------
# Look, camera, framing.


@dataclass
class StageLook:
    """Colours and lights of the stage (linear RGB, 0..1)."""

    top_color: Color = (0.015, 0.015, 0.035)
    bottom_color: Color = (0.075, 0.06, 0.11)
    glow_color: Color = (0.11, 0.07, 0.16)
    floor_color: Color = (0.11, 0.105, 0.13)
    spot_color: Color = (0.30, 0.25, 0.21)
    key_dir: Color = (0.55, 1.0, 0.75)  # towards the key light
    key_color: Color = (1.0, 0.92, 0.82)
    rim_dir: Color = (-0.5, 0.55, -1.0)  # towards the rim light (behind the dancers)
    rim_color: Color = (0.30, 0.50, 1.0)
    sky_color: Color = (0.30, 0.31, 0.42)
    ground_color: Color = (0.16, 0.12, 0.11)
    # One colour per dancer, cycled; the first is a warm clay.
    palette: tuple[Color, ...] = (
        (0.80, 0.74, 0.68),
        (0.50, 0.70, 0.95),
        (0.95, 0.58, 0.50),
        (0.60, 0.88, 0.66),
        (0.92, 0.80, 0.45),
        (0.76, 0.62, 0.95),
        (0.45, 0.86, 0.88),
        (0.95, 0.62, 0.82),
    )
    floor_y: float = 0.0  # world height of the floor, metres
    shadow_size: int = 1024  # shadow-map resolution, texels
    shadow_softness: float = 2.5  # penumbra radius, texels


@dataclass
class Camera:
    """Orbit camera around the auto-framed dancers; the viewer's mouse drives it."""

    yaw: float = 0.0  # radians about +y; 0 looks at the dancers' front (they face +z)
    pitch: float = 0.12  # radians above the horizon
    zoom: float = 1.0  # > 1 moves closer than the auto-framed distance
    fov_y: float = math.radians(30.0)

    def orbit(self, d_yaw: float, d_pitch: float) -> None:
        self.yaw = (self.yaw + d_yaw) % (2.0 * math.pi)
        self.pitch = float(np.clip(self.pitch + d_pitch, -0.2, 1.4))

    def zoom_by(self, factor: float) -> None:
        self.zoom = float(np.clip(self.zoom * factor, 0.25, 6.0))


@dataclass
class AutoFramer:
    """Keeps every dancer in shot: a smoothed bounding box of the bodies.

    Exponential smoothing with ``time_constant`` seconds, so a jump or a step
    doesn't make the camera pump; ``dt=None`` snaps (first frame, a cut).
    """

    time_constant: float = 0.8
    lo: np.ndarray | None = field(default=None, repr=False)
    hi: np.ndarray | None = field(default=None, repr=False)

    def update(self, joints: np.ndarray, floor_y: float, dt: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``joints``: (N, 3) world positions of all dancers' joints."""
        # Pad joint centres out to the skin: limbs' thickness, the head above its joint.
        lo = joints.min(axis=0) - np.array([0.25, 0.0, 0.25])
        hi = joints.max(axis=0) + np.array([0.25, 0.3, 0.25])
        lo[1] = min(lo[1], floor_y)
        if self.lo is None or self.hi is None or dt is None:
            self.lo, self.hi = lo, hi
        else:
            a = 1.0 - math.exp(-max(dt, 0.0) / self.time_constant)
            self.lo = self.lo + a * (lo - self.lo)
            self.hi = self.hi + a * (hi - self.hi)
        return self.lo, self.hi


@dataclass(frozen=True)
class View:
    """Everything the passes need from the camera for one frame."""

    view_proj: np.ndarray
    eye: np.ndarray
    center: np.ndarray
    radius: float


def frame_view(camera: Camera, lo: np.ndarray, hi: np.ndarray, aspect: float) -> View:
    """Camera matrices that fit the box ``lo..hi`` on screen, then orbit/zoom."""
    center = (lo + hi) / 2.0
    half = (hi - lo) / 2.0
    tan_y = math.tan(camera.fov_y / 2.0)
    # Fit height and the widest horizontal extent; depth adds to the distance
    # so the near side of the box fits too.
    horiz = float(max(half[0], half[2]))
    dist = max(half[1] / tan_y, horiz / (tan_y * aspect)) * 1.12 + horiz
    dist /= camera.zoom
    cp = math.cos(camera.pitch)
    offset = np.array([math.sin(camera.yaw) * cp, math.sin(camera.pitch), math.cos(camera.yaw) * cp])
    eye = center + dist * offset
    near = max(0.05, dist - 2.0 * float(np.linalg.norm(half)) - 1.0)
    proj = perspective(camera.fov_y, aspect, near, dist + 60.0)
    return View(proj @ look_at(eye, center), eye, center, float(np.linalg.norm(half)))


def lane_offsets(dancers: int, spacing: float) -> np.ndarray:
    """(D, 3) sideways offsets that put D dancers side by side, centred."""
    x = (np.arange(dancers) - (dancers - 1) / 2.0) * spacing
    return np.stack([x, np.zeros(dancers), np.zeros(dancers)], axis=1)


def skin_matrices(frame: Frame, body: BodyMesh, offsets: np.ndarray) -> np.ndarray:
    """(D, 24, 4, 4) matrices taking bind-pose points to world space per joint:
    the frame's joint transform times the inverse of the bind pose's.

    The frame carries local rotations and world joint positions; skinning
    needs global rotations, which the skeleton's FK provides (its positions
    are ignored: the frame's are authoritative).
    """
    glob, _ = forward_kinematics(np.asarray(frame.rotations, dtype=np.float32), np.asarray(frame.trans, dtype=np.float32))
    rot = glob @ np.swapaxes(body.bind_rotations, -1, -2)  # (D, 24, 3, 3)
    m = np.zeros((glob.shape[0], NUM_JOINTS, 4, 4), dtype=np.float32)
    m[:, :, :3, :3] = rot
    world = np.asarray(frame.joints, dtype=np.float32) + offsets[:, None, :]
    m[:, :, :3, 3] = world - np.einsum("djab,jb->dja", rot, body.bind_joints)
    m[:, :, 3, 3] = 1.0
    return m


def beat_pulse(frame: Frame) -> float:
    """0..1 flash that peaks on the beat and decays within it, scaled by confidence."""
    return float(math.exp(-5.0 * frame.beat_phase) * frame.confidence)


# ---------------------------------------------------------------------------
# The renderer.


#: Level of detail: vertex-cluster size of the coarse body (metres), and the
#: dancer count from which bodies are drawn with it.
LOD_CELL = 0.02
LOD_DANCERS = 4
#: Dancers skinned per draw call (instances), as ``SKIN_BATCH`` in skin.glsl.
SKIN_BATCH = 8
#: Bytes of one dancer's 24 joint matrices in the std140 ``Skins`` block.
SKIN_BYTES = NUM_JOINTS * 64
#: Uniform-buffer binding point of the ``Skins`` block.
SKIN_BINDING = 1
#: Dancer colours the body shader holds (``u_palette[8]``); a longer palette is cut.
PALETTE_SIZE = 8


class _SkinnedMesh:
    """One body mesh on the GPU, with a vertex array per pass."""

    def __init__(
        self, ctx: moderngl.Context, body: BodyMesh, body_prog: moderngl.Program, shadow_prog: moderngl.Program
    ) -> None:
        vertex = np.zeros(
            len(body.vertices),
            dtype=[("p", "f4", 3), ("n", "f4", 3), ("j", "u1", 4), ("w", "f4", 4)],
        )
        vertex["p"], vertex["n"], vertex["j"], vertex["w"] = body.vertices, body.normals, body.joints, body.weights
        self.vbo = ctx.buffer(vertex.tobytes())
        self.ibo = ctx.buffer(body.faces.astype(np.uint32).tobytes())
        layout = (self.vbo, "3f 3f 4u1 4f", "in_position", "in_normal", "in_joints", "in_weights")
        self.body_vao = ctx.vertex_array(body_prog, [layout], index_buffer=self.ibo, index_element_size=4)
        # The depth pass reads only positions and skinning; the normal is
        # skipped with "12x" padding so one buffer serves both passes.
        shadow_layout = (self.vbo, "3f 12x 4u1 4f", "in_position", "in_joints", "in_weights")
        self.shadow_vao = ctx.vertex_array(shadow_prog, [shadow_layout], index_buffer=self.ibo, index_element_size=4)

    def release(self) -> None:
        for obj in (self.body_vao, self.shadow_vao, self.vbo, self.ibo):
            obj.release()


class SceneRenderer:
    """Draws frames into any framebuffer of a moderngl context it doesn't own."""

    def __init__(
        self,
        ctx: moderngl.Context,
        body: BodyMesh,
        look: StageLook | None = None,
        spacing: float = 0.0,
    ) -> None:
        if ctx.version_code < GL_VERSION:
            raise UserError(
                f"OpenGL {ctx.version_code // 100}.{ctx.version_code % 100 // 10} is too old "
                f"(livedance needs 3.3); update the graphics driver or Mesa"
            )
        self.ctx = ctx
        self.body = body
        self.look = look or StageLook()
        self.spacing = spacing
        self.framer = AutoFramer()

        self.body_prog = build_program(ctx, "body.vert", "body.frag")
        self.shadow_prog = build_program(ctx, "shadow.vert", "shadow.frag")
        self.floor_prog = build_program(ctx, "floor.vert", "floor.frag")
        self.bg_prog = build_program(ctx, "background.vert", "background.frag")

        self.mesh = _SkinnedMesh(ctx, body, self.body_prog, self.shadow_prog)
        # A coarse copy casts the shadows (nobody sees a shadow's fingers) and
        # draws crowds, where each body is small on screen: on a CPU renderer
        # vertex work is most of a frame.
        self.lod = _SkinnedMesh(ctx, decimate(body, LOD_CELL), self.body_prog, self.shadow_prog)
        # Every dancer's joint matrices, uploaded once a frame; each draw call
        # binds SKIN_BATCH dancers' worth (offsets are multiples of 12 KB, so
        # aligned for any GL's uniform-buffer offset alignment) and draws them
        # as instances: 64 dancers are 8 draws per pass, not 64.
        self.skin_ubo = ctx.buffer(reserve=SKIN_BATCH * SKIN_BYTES)
        for prog in (self.body_prog, self.shadow_prog):
            prog["Skins"].binding = SKIN_BINDING

        corners = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype=np.float32)
        self.floor_vbo = ctx.buffer(corners.tobytes())
        self.floor_vao = ctx.vertex_array(self.floor_prog, [(self.floor_vbo, "2f", "in_corner")])
        self.bg_vao = ctx.vertex_array(self.bg_prog, [])

        size = self.look.shadow_size
        self.shadow_tex = ctx.depth_texture((size, size))
        # Hardware depth comparison + bilinear filter = 2x2 PCF per lookup.
        self.shadow_tex.compare_func = "<="
        self.shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.shadow_tex.repeat_x = self.shadow_tex.repeat_y = False
        self.shadow_fbo = ctx.framebuffer(depth_attachment=self.shadow_tex)
        self._set_static_uniforms()

    def _set_static_uniforms(self) -> None:
        look = self.look
        lights = {
            "u_key_dir": tuple(_unit(look.key_dir)),
            "u_key_color": look.key_color,
            "u_rim_dir": tuple(_unit(look.rim_dir)),
            "u_rim_color": look.rim_color,
            "u_sky_color": look.sky_color,
            "u_ground_color": look.ground_color,
            "u_shadow_softness": look.shadow_softness,
            "u_shadow_map": 0,
        }
        for prog in (self.body_prog, self.floor_prog):
            for name, value in lights.items():
                if name in prog:
                    prog[name].value = value
        self.floor_prog["u_floor_color"].value = look.floor_color
        self.floor_prog["u_spot_color"].value = look.spot_color
        self.bg_prog["u_top_color"].value = look.top_color
        self.bg_prog["u_bottom_color"].value = look.bottom_color
        self.bg_prog["u_glow_color"].value = look.glow_color
        palette = list(look.palette[:PALETTE_SIZE])
        self.body_prog["u_palette"].write(np.asarray(palette + palette[:1] * (PALETTE_SIZE - len(palette)), dtype="f4").tobytes())
        self.body_prog["u_palette_size"].value = len(palette)

    def draw(
        self,
        frame: Frame,
        target: moderngl.Framebuffer,
        camera: Camera,
        dt: float | None = None,
        viewport: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Render ``frame`` into ``target``; ``dt`` seconds since the last draw (None: snap the framing)."""
        ctx = self.ctx
        look = self.look
        offsets = lane_offsets(frame.dancers, self.spacing)
        self._upload_skins(skin_matrices(frame, self.body, offsets.astype(np.float32)))
        all_joints = (np.asarray(frame.joints) + offsets[:, None, :]).reshape(-1, 3)
        if not len(all_joints):  # no dancers: frame an empty stage around the origin
            all_joints = np.array([[0.0, look.floor_y, 0.0], [0.0, look.floor_y + 1.7, 0.0]])
        lo, hi = self.framer.update(all_joints, look.floor_y, dt)
        vp = viewport or (0, 0, *target.size)
        view = frame_view(camera, lo, hi, vp[2] / max(vp[3], 1))
        light_vp = self._light_view_proj(view.center, view.radius)
        pulse = beat_pulse(frame)

        # 1. Shadow map.
        self.shadow_fbo.use()
        self.shadow_fbo.clear(depth=1.0)
        # Back faces only: half the rasterising, and the depth then lies on the
        # far side of thin limbs, which keeps acne off lit surfaces.
        ctx.enable_only(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        ctx.cull_face = "front"
        self.shadow_prog["u_light_view_proj"].write(_gl(light_vp))
        for first, count in self._skin_batches(frame.dancers):
            self.lod.shadow_vao.render(moderngl.TRIANGLES, instances=count)

        # 2. Backdrop (no depth: it's behind everything).
        target.use()
        target.viewport = vp
        target.clear(*look.bottom_color, 1.0, depth=1.0, viewport=vp)
        ctx.enable_only(moderngl.NOTHING)
        self.bg_prog["u_aspect"].value = vp[2] / max(vp[3], 1)
        self.bg_vao.render(moderngl.TRIANGLES, vertices=3)

        # 3. Floor, alpha-faded into the backdrop.
        self.shadow_tex.use(location=0)
        ctx.enable_only(moderngl.DEPTH_TEST | moderngl.BLEND)
        ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        spread = max(float(np.max(hi[[0, 2]] - lo[[0, 2]])) / 2.0, 1.0)
        center = np.array([view.center[0], look.floor_y, view.center[2]])
        fp = self.floor_prog
        fp["u_view_proj"].write(_gl(view.view_proj))
        fp["u_light_view_proj"].write(_gl(light_vp))
        fp["u_floor_center"].value = tuple(center)
        fp["u_floor_half_size"].value = spread * 8.0
        fp["u_fog_radius"].value = spread * 6.0
        fp["u_spot_radius"].value = spread * 1.6
        fp["u_camera_pos"].value = tuple(view.eye)
        fp["u_pulse"].value = pulse
        self.floor_vao.render(moderngl.TRIANGLE_STRIP)

        # 4. Bodies.
        ctx.enable_only(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        ctx.cull_face = "back"
        bp = self.body_prog
        bp["u_view_proj"].write(_gl(view.view_proj))
        bp["u_light_view_proj"].write(_gl(light_vp))
        bp["u_camera_pos"].value = tuple(view.eye)
        bp["u_pulse"].value = pulse
        mesh = self.mesh if frame.dancers < LOD_DANCERS else self.lod
        for first, count in self._skin_batches(frame.dancers):
            bp["u_first"].value = first
            mesh.body_vao.render(moderngl.TRIANGLES, instances=count)

    def _upload_skins(self, skins: np.ndarray) -> None:
        """(D, 24, 4, 4) skin matrices into the uniform buffer (grown, in whole batches, when D outgrows it)."""
        need = -(-len(skins) // SKIN_BATCH) * SKIN_BATCH * SKIN_BYTES
        if need > self.skin_ubo.size:
            self.skin_ubo.release()
            self.skin_ubo = self.ctx.buffer(reserve=need)
        if len(skins):
            self.skin_ubo.write(_gl(skins))

    def _skin_batches(self, dancers: int) -> Iterator[tuple[int, int]]:
        """Bind each batch of dancers' matrices in turn; yields (first dancer, count) to draw with it bound."""
        for first in range(0, dancers, SKIN_BATCH):
            self.skin_ubo.bind_to_uniform_block(SKIN_BINDING, offset=first * SKIN_BYTES, size=SKIN_BATCH * SKIN_BYTES)
            yield first, min(SKIN_BATCH, dancers - first)

    def _light_view_proj(self, center: np.ndarray, radius: float) -> np.ndarray:
        """Orthographic key-light camera that just contains the dancers' bounding sphere."""
        key = _unit(self.look.key_dir)
        half = radius + 0.1
        eye = center + key * (half + 5.0)
        return orthographic(half, 0.1, 2.0 * half + 10.0) @ look_at(eye, center)

    def release(self) -> None:
        self.mesh.release()
        self.lod.release()
        for obj in (
            self.floor_vao, self.bg_vao, self.floor_vbo, self.skin_ubo,
            self.shadow_fbo, self.shadow_tex,
            self.body_prog, self.shadow_prog, self.floor_prog, self.bg_prog,
        ):
            obj.release()


# ---------------------------------------------------------------------------
# Headless.


def create_headless_context() -> moderngl.Context:
    """An offscreen OpenGL 3.3+ context through EGL (no display needed)."""
    try:
        return moderngl.create_context(standalone=True, backend="egl", require=GL_VERSION)
    except Exception as exc:  # noqa: BLE001 - glcontext raises plain Exceptions
        raise UserError(
            f"cannot create an offscreen OpenGL context through EGL ({exc}); install Mesa's EGL "
            "(sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or run with a display"
        ) from None


SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "lavapipe")


def auto_samples(ctx: moderngl.Context) -> int:
    """4x MSAA on a GPU; none on a CPU rasteriser, where it costs 2-3x the frame time."""
    name = str(ctx.info.get("GL_RENDERER", "")).lower()
    return 0 if any(s in name for s in SOFTWARE_RENDERERS) else 4


class OffscreenRenderer:
    """Renders frames to RGB images without a window (EGL; Mesa llvmpipe on CPU).

    Anti-aliasing: ``samples`` MSAA samples (None: 4 on a GPU, 0 on a CPU
    rasteriser, where multisampling costs 2-3x the frame); ``fxaa`` filters
    the image instead when there is no MSAA (None: on then), for a quarter
    of MSAA's cost there. Owns its GL context: use it as a context manager or
    call :meth:`release`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        body: BodyMesh | None = None,
        look: StageLook | None = None,
        camera: Camera | None = None,
        samples: int | None = None,
        spacing: float = 0.0,
        fxaa: bool | None = None,
    ) -> None:
        if width < 16 or height < 16:
            raise UserError(f"render size {width}x{height} is too small (use at least 16x16, e.g. 1280x720)")
        self.size = (width, height)
        self.camera = camera or Camera()
        self.ctx = ctx = create_headless_context()
        self.scene = SceneRenderer(ctx, body or load_body(), look, spacing)
        samples = min(auto_samples(ctx) if samples is None else samples, ctx.max_samples)
        fxaa = samples <= 1 if fxaa is None else fxaa and samples <= 1
        self._owned: list[Any] = []  # GL objects, released in reverse order

        def own(obj: T) -> T:
            self._owned.append(obj)
            return obj

        # The read-back framebuffer; the scene is drawn into it directly, or
        # into a multisampled one resolved into it, or into a texture that
        # FXAA filters into it.
        self._fbo = own(ctx.framebuffer([own(ctx.renderbuffer(self.size))], own(ctx.depth_renderbuffer(self.size))))
        self._target = self._fbo
        self._msaa: moderngl.Framebuffer | None = None
        self._image: moderngl.Texture | None = None
        self._fxaa_vao: moderngl.VertexArray | None = None
        if samples > 1:
            self._msaa = own(ctx.framebuffer(
                [own(ctx.renderbuffer(self.size, samples=samples))],
                own(ctx.depth_renderbuffer(self.size, samples=samples)),
            ))
            self._target = self._msaa
        elif fxaa:
            self._image = own(ctx.texture(self.size, 4))
            self._image.filter = (moderngl.LINEAR, moderngl.LINEAR)
            self._image.repeat_x = self._image.repeat_y = False
            self._target = own(ctx.framebuffer([self._image], own(ctx.depth_renderbuffer(self.size))))
            prog = own(build_program(ctx, "background.vert", "fxaa.frag"))
            prog["u_image"].value = 0
            self._fxaa_vao = own(ctx.vertex_array(prog, []))
        self._last_time: float | None = None
        log.info(
            "offscreen renderer %dx%d, %s, %s", width, height,
            f"{samples}x MSAA" if samples > 1 else "FXAA" if fxaa else "no anti-aliasing", ctx.info["GL_RENDERER"],
        )

    def render(self, frame: Frame) -> np.ndarray:
        """The frame as an (H, W, 3) uint8 RGB image, top row first."""
        # Framing follows music time, so offline renders frame like live ones.
        dt = None if self._last_time is None else frame.time - self._last_time
        if dt is not None and not 0.0 <= dt < 1.0:
            dt = None
        self._last_time = frame.time
        # Make our context current: another renderer in this thread may have
        # been created (or released) since, which changes the current context.
        with self.ctx:
            self.scene.draw(frame, self._target, self.camera, dt)
            if self._msaa is not None:
                self.ctx.copy_framebuffer(self._fbo, self._msaa)
            elif self._fxaa_vao is not None and self._image is not None:
                self._fbo.use()
                self.ctx.enable_only(moderngl.NOTHING)
                self._image.use(location=0)
                self._fxaa_vao.render(moderngl.TRIANGLES, vertices=3)
            data = self._fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.size[1], self.size[0], 3)[::-1]

    def release(self) -> None:
        with self.ctx:
            self.scene.release()
            for obj in reversed(self._owned):
                obj.release()
        self._owned.clear()
        self.ctx.release()

    def __enter__(self) -> "OffscreenRenderer":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
