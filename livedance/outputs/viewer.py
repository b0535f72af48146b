"""The window: pyglet + moderngl, 60 fps, orbit camera, HUD, shortcuts, kiosk mode.

Threads: the engine calls :meth:`Viewer.submit` (or ``send``) from its frame
clock; the frame goes into a one-slot :class:`Mailbox` (latest wins) and the
call returns at once. :meth:`Viewer.run` runs the pyglet loop on the calling
thread (pyglet wants the main thread) and draws whatever frame is newest, so
a slow GPU drops frames instead of delaying the beat.

Kiosk mode (``kiosk=True``) is for unattended installations: fullscreen on
``viewer.screen``, hidden cursor, no HUD, Esc ignored (Ctrl+Q quits), an
idle dancer when no frames arrive, and self-healing: a GL error or a closed
window recreates the window and context, and a :class:`Watchdog` thread
notices a render loop that stopped turning. If the loop comes back, the
window and context are rebuilt; if it never does, the process exits with
:data:`EXIT_WEDGED` so its supervisor (systemd ``Restart=always``) starts a
fresh one. A heartbeat file and systemd's ``WATCHDOG=1`` notifications tell
the outside world the loop is alive.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Protocol, TypeVar

import numpy as np

from livedance.config import ViewerSettings
from livedance.errors import UserError
from livedance.frames import Frame

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Exit code when the watchdog gives up on a wedged render loop (EX_TEMPFAIL:
#: "try again", which is what the supervisor should do).
EXIT_WEDGED = 75
#: Seconds without a new frame after which the viewer shows its own idle dancer.
IDLE_AFTER = 2.0
#: Metres between idle dancers (the engine's home-spot spacing).
IDLE_SPACING = 1.6


class ControlsLike(Protocol):
    """What the viewer needs from the engine's controls (livedance.live.controls.Controls)."""

    def apply(self, name: str, value: Any = None) -> None: ...


# ---------------------------------------------------------------------------
# Thread plumbing.


class Mailbox(Generic[T]):
    """One slot, latest wins: writers never wait, the reader gets the newest item.

    ``dropped`` counts items overwritten before anyone took them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self._fresh = False
        self.dropped = 0
        self.received = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._fresh:
                self.dropped += 1
            self._item, self._fresh = item, True
            self.received += 1

    def take(self) -> T | None:
        """The newest item if it arrived since the last take, else None."""
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return self._item


class Watchdog:
    """Calls ``on_stall(age)`` once when :meth:`beat` hasn't been called for
    ``timeout`` seconds, and ``on_dead(age)`` once after ``dead_after`` seconds.

    Runs its own daemon thread; the watched loop only calls :meth:`beat`.
    """

    def __init__(
        self,
        timeout: float,
        on_stall: Callable[[float], None],
        on_dead: Callable[[float], None] | None = None,
        dead_after: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.dead_after = dead_after if dead_after is not None else 6.0 * timeout
        self._on_stall = on_stall
        self._on_dead = on_dead
        self._last = time.monotonic()
        self._stalled = False
        self._dead = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="render-watchdog", daemon=True)
        self.stalls = 0

    def start(self) -> "Watchdog":
        self._last = time.monotonic()
        self._thread.start()
        return self

    def beat(self) -> None:
        now = time.monotonic()
        # A stall that froze this thread too (the whole process stopped, the
        # machine suspended) is seen first here, when the loop comes back:
        # the watching thread may wake only after this beat.
        if now - self._last >= self.timeout:
            self._stall()
        self._last = now
        self._stalled = self._dead = False

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _stall(self) -> None:
        # The loop and the watching thread may both see one stall; the age is
        # read again under the lock, so a watcher that read it just before
        # the loop's beat ended the stall does not report it a second time.
        with self._lock:
            age = time.monotonic() - self._last
            if self._stalled or age < self.timeout:
                return
            self._stalled = True
            self.stalls += 1
        self._on_stall(age)

    def _watch(self) -> None:
        while not self._stop.wait(min(self.timeout / 4.0, 0.25)):
            age = time.monotonic() - self._last
            if age >= self.timeout:
                self._stall()
            if age >= self.dead_after and not self._dead and self._on_dead is not None:
                self._dead = True
                self._on_dead(age)


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd (``Type=notify`` units); False outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


@dataclass
class ViewerStats:
    """What the HUD and the heartbeat report."""

    fps: float = 0.0
    frames_drawn: int = 0
    frames_received: int = 0
    frames_dropped: int = 0
    recoveries: int = 0


# ---------------------------------------------------------------------------
# Idle dancer, for when nothing is sent (kiosk without music, before the engine starts).


def idle_frame(t: float, dancers: int = 1, index: int = 0) -> Frame:
    """A relaxed standing sway with breathing, ``dancers`` side by side."""
    from livedance.skeleton import JOINT_INDEX, REST_PELVIS_HEIGHT, axis_angle_to_matrix

    aa = np.zeros((dancers, 24, 3), dtype=np.float32)
    phase = np.arange(dancers) * 0.9 + t
    sway = np.sin(phase * 2.0 * math.pi / 4.0)
    breath = np.sin(phase * 2.0 * math.pi / 3.5)
    aa[:, JOINT_INDEX["left_shoulder"], 2] = -1.2 + 0.04 * breath
    aa[:, JOINT_INDEX["right_shoulder"], 2] = 1.2 - 0.04 * breath
    aa[:, JOINT_INDEX["left_collar"], 2] = -0.1  # dropping the collars too keeps the shoulders round
    aa[:, JOINT_INDEX["right_collar"], 2] = 0.1
    aa[:, JOINT_INDEX["left_elbow"], 1] = -0.35
    aa[:, JOINT_INDEX["right_elbow"], 1] = 0.35
    aa[:, [JOINT_INDEX["left_knee"], JOINT_INDEX["right_knee"]], 0] = 0.12 + 0.03 * breath[:, None]
    aa[:, JOINT_INDEX["pelvis"], 2] = 0.04 * sway
    aa[:, JOINT_INDEX["spine2"], 2] = -0.05 * sway
    aa[:, JOINT_INDEX["neck"], 0] = 0.05 + 0.02 * breath
    aa[:, JOINT_INDEX["left_hip"]] = np.stack([np.full(dancers, -0.06), np.zeros(dancers), -0.04 * sway - 0.02], axis=1)
    aa[:, JOINT_INDEX["right_hip"]] = np.stack([np.full(dancers, -0.06), np.zeros(dancers), -0.04 * sway + 0.02], axis=1)
    aa[:, [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]], 0] = -0.06
    trans = np.zeros((dancers, 3), dtype=np.float32)
    trans[:, 0] = (np.arange(dancers) - (dancers - 1) / 2.0) * IDLE_SPACING + 0.03 * sway
    trans[:, 1] = REST_PELVIS_HEIGHT - 0.015 - 0.005 * breath
    return Frame.from_pose(index, t, time.time(), axis_angle_to_matrix(aa), trans)


# ---------------------------------------------------------------------------
# Keyboard shortcuts.


@dataclass(frozen=True)
class Shortcut:
    key: str  # pyglet key symbol name
    help: str


#: Viewer keys (documented in docs/performing.md and the HUD help line).
SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("H", "HUD on/off"),
    Shortcut("F", "fullscreen on/off (also F11)"),
    Shortcut("R", "reset the camera"),
    Shortcut("SPACE", "freeze / resume the dance"),
    Shortcut("T", "tap tempo (tap on the beat)"),
    Shortcut("BACKSPACE", "back to the tracked tempo"),
    Shortcut("0..9", "dance style; A = automatic"),
    Shortcut("UP/DOWN", "wilder / calmer (energy bias)"),
    Shortcut("+/-", "one dancer more / fewer"),
    Shortcut("S", "new random seed"),
    Shortcut("L", "metrical level: auto, half-time, normal, double-time (cycles)"),
    Shortcut("B", "beat hit: a stop on every beat, or as real dancers do (toggles)"),
    Shortcut("ESC/Q", "quit (kiosk: Ctrl+Q only)"),
)


def next_level(level: int | None) -> int | None:
    """The L key's cycle: auto -> half-time -> normal -> double-time -> auto."""
    cycle: list[int | None] = [None, -1, 0, 1]
    return cycle[(cycle.index(level) + 1) % len(cycle)]


# ---------------------------------------------------------------------------
# The viewer.


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError(
            "no display for the viewer window (DISPLAY is not set); run it on a desktop session, "
            "under `xvfb-run`, or render offscreen with --no-window / --video OUT.mp4"
        )


_X_IO_HANDLER: Any = None  # the installed ctypes callback (kept alive here)


def _exit_when_the_display_dies(callbacks: list[Callable[[], None]]) -> None:
    """Xlib ends the process when the X server goes away (its default I/O
    error handler calls exit() under running threads: here torch aborted,
    signal 6, with pages of C++ trace). Replace that with an orderly end: run
    ``callbacks`` (the runner's stop: recordings are written), one log line,
    and exit :data:`EXIT_WEDGED` for the supervisor. No GL context can be
    rebuilt without an X server, so this is the only recovery there is."""
    global _X_IO_HANDLER
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY") or _X_IO_HANDLER is not None:
        return
    try:
        from pyglet.libs.x11 import xlib
    except Exception:  # noqa: BLE001 - not on X11: nothing to install
        return

    def on_io_error(display: Any) -> int:
        log.critical("viewer: lost the X server %s; exiting (%d) so the supervisor restarts livedance",
                     os.environ.get("DISPLAY", ""), EXIT_WEDGED)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - exiting anyway
                log.exception("clean-up after losing the display failed")
        logging.shutdown()
        os._exit(EXIT_WEDGED)

    _X_IO_HANDLER = xlib.XIOErrorHandler(on_io_error)
    xlib.XSetIOErrorHandler(_X_IO_HANDLER)


class Viewer:
    """The dancer window. A sink (``send``/``close``) that the engine feeds from any thread."""

    def __init__(self, settings: ViewerSettings, controls: ControlsLike | None = None, kiosk: bool = False) -> None:
        from livedance.outputs.renderer import check_shaders

        check_shaders()  # a missing shader is a one-line error before the show starts
        self.settings = settings
        self.controls = controls
        self.kiosk = kiosk
        self.hud = settings.hud and not kiosk
        self.stats = ViewerStats()
        self.last_screenshot: np.ndarray | None = None
        self._mailbox: Mailbox[Frame] = Mailbox()
        self._closed = threading.Event()
        self._recover = threading.Event()
        self._recover_reason = ""
        self._screenshot_requested = threading.Event()
        self._frame: Frame | None = None
        self._frame_at = 0.0
        self._energy_bias = 0.0
        self._dancers = 1
        if controls is not None and hasattr(controls, "snapshot"):
            state = controls.snapshot()
            self._energy_bias = float(getattr(state, "energy_bias", 0.0))
            self._dancers = int(getattr(state, "dancers", 1))
        # GL side, created by run() on the GL thread.
        self._window: Any = None
        self._ctx: Any = None
        self._scene: Any = None
        self._camera: Any = None
        self._hud: Any = None
        self._body: Any = None
        #: Run (on the GL thread) before exiting because the X server died.
        self.on_display_lost: list[Callable[[], None]] = []

    # -- sink interface (any thread) --------------------------------------------

    def submit(self, frame: Frame) -> None:
        """Offer the newest frame; never blocks. Older undrawn frames are dropped."""
        self._mailbox.put(frame)

    send = submit

    def close(self) -> None:
        """Ask the loop to end (thread-safe); run() returns after its current frame."""
        self._closed.set()

    def request_screenshot(self) -> None:
        """Capture the next drawn frame into :attr:`last_screenshot` (RGB, top row first)."""
        self._screenshot_requested.set()

    # -- the loop (GL thread) ------------------------------------------------------

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Run the window on this thread until ``until()`` is true, the window is
        closed (not in kiosk mode) or :meth:`close` is called."""
        _check_display()
        _exit_when_the_display_dies(self.on_display_lost)
        from livedance.outputs.body import load_body

        self._body = load_body(self.settings.smpl_model)
        watchdog: Watchdog | None = None
        if self.kiosk:
            timeout = self.settings.watchdog_seconds
            watchdog = Watchdog(timeout, self._on_stall, self._on_dead, dead_after=6.0 * timeout).start()
        interval = 1.0 / max(self.settings.fps, 1.0)
        heartbeat_at = 0.0
        try:
            self._open()
            sd_notify("READY=1")
            deadline = time.monotonic()
            last_draw = None
            while not (self._closed.is_set() or until()):
                if self._recover.is_set():
                    self._recover.clear()
                    self._reopen(self._recover_reason)
                try:
                    self._window.dispatch_events()
                    now = time.monotonic()
                    self._draw(now, None if last_draw is None else now - last_draw)
                    last_draw = now
                    self._window.flip()
                except Exception as exc:  # noqa: BLE001 - kiosk heals any GL/window failure
                    if not self.kiosk:
                        raise
                    self._reopen(f"rendering failed: {type(exc).__name__}: {exc}")
                    continue
                if watchdog is not None:
                    watchdog.beat()
                now = time.monotonic()
                if now >= heartbeat_at:
                    heartbeat_at = now + 1.0
                    self._heartbeat()
                # vsync normally paces flip(); this cap covers drivers and
                # virtual displays without it.
                deadline = max(deadline + interval, now - interval)
                if deadline > now:
                    time.sleep(deadline - now)
        finally:
            if watchdog is not None:
                watchdog.stop()
            self._teardown()
            sd_notify("STOPPING=1")

    def _open(self) -> None:
        import moderngl
        import pyglet

        from livedance.outputs.renderer import Camera, SceneRenderer

        s = self.settings
        fullscreen = s.fullscreen or self.kiosk
        screen = None
        try:
            screens = pyglet.display.get_display().get_screens()
        except Exception as exc:  # noqa: BLE001 - pyglet raises its own display errors
            raise UserError(
                f"cannot open the display {os.environ.get('DISPLAY', '')!r} ({exc}); "
                "check DISPLAY, or render offscreen with --no-window / --video OUT.mp4"
            ) from None
        if fullscreen or s.screen:
            if not 0 <= s.screen < len(screens):
                raise UserError(f"viewer.screen = {s.screen}, but there are {len(screens)} screens (use 0..{len(screens) - 1})")
            screen = screens[s.screen]
        width, height = s.width, s.height
        if fullscreen and screen is not None:
            # Size the window to the screen ourselves: a bare X server (a typical
            # kiosk, no window manager) ignores the fullscreen hint.
            width, height = screen.width, screen.height
        window = None
        # Prefer a multisampled, vsynced 3.3 core context; fall back to no MSAA.
        for samples in ((s.msaa, 0) if s.msaa > 1 else (0,)):
            config = pyglet.gl.Config(
                double_buffer=True, depth_size=24, major_version=3, minor_version=3, forward_compatible=True,
                sample_buffers=1 if samples else 0, samples=samples,
            )
            try:
                window = pyglet.window.Window(
                    width=width, height=height, caption="livedance", resizable=True, vsync=s.vsync,
                    fullscreen=fullscreen, screen=screen, config=config,
                )
                break
            except pyglet.window.NoSuchConfigException:
                continue
        if window is None:
            raise UserError("the display offers no OpenGL 3.3 context; update the graphics driver or Mesa")
        self._window = window
        if fullscreen and screen is not None:
            window.set_location(screen.x, screen.y)
        if self.kiosk:
            window.set_mouse_visible(False)
        window.push_handlers(
            on_key_press=self._on_key_press,
            on_mouse_drag=self._on_mouse_drag,
            on_mouse_scroll=self._on_mouse_scroll,
            on_close=self._on_close,
        )
        self._ctx = moderngl.create_context(require=330)
        if self._camera is None:
            self._camera = Camera()
        self._scene = SceneRenderer(self._ctx, self._body, spacing=s.spacing)
        self._hud = _Hud(pyglet)
        log.info("viewer: %s, %s", self._ctx.info["GL_RENDERER"], "kiosk" if self.kiosk else "window")

    def _teardown(self) -> None:
        # Release GL objects while their context is still current, then the window.
        for obj in (self._hud, self._scene):
            if obj is not None:
                try:
                    obj.release()
                except Exception as exc:  # noqa: BLE001 - a lost context can't release cleanly
                    log.debug("viewer: release failed: %s", exc)
        self._hud = self._scene = None
        if self._ctx is not None:
            try:
                self._ctx.release()
            except Exception as exc:  # noqa: BLE001
                log.debug("viewer: context release failed: %s", exc)
            self._ctx = None
        if self._window is not None:
            try:
                self._window.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("viewer: window close failed: %s", exc)
            self._window = None

    def _reopen(self, reason: str) -> None:
        """Kiosk self-healing: rebuild window and context, retrying with back-off.

        Retries until it works or the viewer is closed; if the display stays
        gone, the watchdog ends the process for the supervisor to restart.
        """
        log.warning("viewer: recreating window and GL context (%s)", reason)
        self.stats.recoveries += 1
        self._teardown()
        delay = 0.1
        while True:
            try:
                self._open()
                return
            except Exception as exc:  # noqa: BLE001 - any failure: wait and try again
                if self._closed.is_set():
                    raise
                log.error("viewer: cannot recreate the window (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2.0, 5.0)

    def _draw(self, now: float, dt: float | None) -> None:
        frame = self._mailbox.take()
        if frame is not None:
            self._frame, self._frame_at = frame, now
        if self._frame is None or now - self._frame_at > IDLE_AFTER:
            shown = idle_frame(now, self._frame.dancers if self._frame is not None else 1)
        else:
            shown = self._frame
        width, height = self._window.get_framebuffer_size()
        screen = self._ctx.screen
        self._scene.draw(shown, screen, self._camera, dt, viewport=(0, 0, width, height))
        self.stats.frames_drawn += 1
        if dt:
            # Smoothed, so the HUD is readable; seeded with the first interval.
            rate = 1.0 / dt
            self.stats.fps = rate if self.stats.fps == 0.0 else self.stats.fps + (rate - self.stats.fps) * 0.05
        self.stats.frames_received = self._mailbox.received
        self.stats.frames_dropped = self._mailbox.dropped
        if self.hud:
            import moderngl

            # pyglet draws its text with its own shaders and state; give it a clean slate.
            self._ctx.enable_only(moderngl.NOTHING)
            self._hud.draw(shown, self.stats, self._window.width, self._window.height)
        if self._screenshot_requested.is_set():
            self._screenshot_requested.clear()
            # Read the back buffer before flip(): the front buffer's content is undefined.
            data = screen.read(viewport=(0, 0, width, height), components=3, alignment=1)
            self.last_screenshot = np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1].copy()
            # moderngl selects a colour attachment to read from, which the default
            # framebuffer doesn't have: GL flags INVALID_OPERATION but reads the back
            # buffer. Consume the flag, or pyglet's error check trips over it later.
            _ = self._ctx.error

    # -- watchdog callbacks (watchdog thread) ------------------------------------

    def _on_stall(self, age: float) -> None:
        log.error("viewer: render loop stalled for %.1f s; will recreate the GL context when it returns", age)
        self._request_recovery(f"the render loop stalled for {age:.1f} s")

    def _on_dead(self, age: float) -> None:
        log.critical("viewer: render loop wedged for %.1f s; exiting (%d) so the supervisor restarts livedance", age, EXIT_WEDGED)
        logging.shutdown()
        os._exit(EXIT_WEDGED)  # the GL thread is stuck: only a fresh process can recover

    def _request_recovery(self, reason: str) -> None:
        self._recover_reason = reason
        self._recover.set()

    def _heartbeat(self) -> None:
        sd_notify("WATCHDOG=1")
        path = self.settings.heartbeat
        if not path:
            return
        target = Path(path).expanduser()
        beat = {
            "time": time.time(),
            "fps": round(self.stats.fps, 1),
            "frames_drawn": self.stats.frames_drawn,
            "frames_received": self.stats.frames_received,
            "frames_dropped": self.stats.frames_dropped,
            "recoveries": self.stats.recoveries,
            "idle": self._frame is None or time.monotonic() - self._frame_at > IDLE_AFTER,
        }
        try:
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_text(json.dumps(beat) + "\n", encoding="utf-8")
            os.replace(tmp, target)  # readers never see half a file
        except OSError as exc:
            log.warning("viewer: cannot write heartbeat %s: %s", target, exc)

    # -- input (GL thread, from dispatch_events) ---------------------------------

    def _on_close(self) -> bool:
        if self.kiosk:
            self._request_recovery("the window was closed")  # a kiosk window comes back
        else:
            self._closed.set()
        return True  # handled: don't let pyglet close the window under the loop

    def _on_mouse_drag(self, x: int, y: int, dx: int, dy: int, buttons: int, modifiers: int) -> None:
        self._camera.orbit(-dx * 0.008, -dy * 0.008)

    def _on_mouse_scroll(self, x: int, y: int, scroll_x: float, scroll_y: float) -> None:
        self._camera.zoom_by(1.1 ** scroll_y)

    def _on_key_press(self, symbol: int, modifiers: int) -> bool:
        from pyglet.window import key

        from livedance.outputs.renderer import Camera

        if symbol == key.Q and modifiers & key.MOD_CTRL:
            self._closed.set()
        elif symbol in (key.ESCAPE, key.Q):
            if not self.kiosk:
                self._closed.set()
        elif self.kiosk:
            pass  # no keyboard in a kiosk beyond Ctrl+Q
        elif symbol == key.H:
            self.hud = not self.hud
        elif symbol in (key.F, key.F11):
            self._window.set_fullscreen(not self._window.fullscreen)
        elif symbol == key.R:
            self._camera = Camera()
        else:
            self._control_key(symbol)
        return True  # handled; stops pyglet's default Esc-closes-window

    def _control_key(self, symbol: int) -> None:
        from pyglet.window import key

        action: tuple[str, Any] | None = None
        if symbol == key.SPACE:
            action = ("frozen", None)
        elif symbol == key.T:
            action = ("tap", None)
        elif symbol == key.BACKSPACE:
            action = ("tempo_override", None)
        elif key._0 <= symbol <= key._9:
            action = ("style", symbol - key._0)
        elif symbol == key.A:
            action = ("style", None)
        elif symbol in (key.UP, key.DOWN):
            self._energy_bias = float(np.clip(self._energy_bias + (0.25 if symbol == key.UP else -0.25), -1.0, 1.0))
            action = ("energy_bias", self._energy_bias)
        elif symbol in (key.PLUS, key.EQUAL, key.NUM_ADD, key.MINUS, key.NUM_SUBTRACT):
            step = 1 if symbol in (key.PLUS, key.EQUAL, key.NUM_ADD) else -1
            self._dancers = int(np.clip(self._dancers + step, 1, 16))
            action = ("dancers", self._dancers)
        elif symbol == key.S:
            action = ("seed", random.randrange(2**31))
        elif symbol == key.L and self.controls is not None:
            action = ("level", next_level(self.controls.snapshot().level))
        elif symbol == key.B and self.controls is not None:
            action = ("beat_hit", 0.0 if self.controls.snapshot().beat_hit > 0.5 else 1.0)
        if action is None:
            return
        if self.controls is None:
            log.info("viewer: no engine controls attached; ignoring %s", action[0])
            return
        try:
            self.controls.apply(*action)
        except (KeyError, ValueError) as exc:
            log.warning("viewer: control %s: %s", action[0], exc)


class _Hud:
    """Tempo, beat flash, confidence, fps and drops, drawn with pyglet's text."""

    def __init__(self, pyglet: Any) -> None:
        self._batch = pyglet.graphics.Batch()
        self._text = pyglet.text.Label(
            "", font_size=13, x=16, y=16, anchor_y="bottom", color=(235, 235, 245, 230), batch=self._batch
        )
        self._help = pyglet.text.Label(
            "H hud  F full  drag/wheel camera  SPACE freeze  T tap  0-9 style  \u2191\u2193 energy  +- dancers  L level",
            font_size=9, x=16, y=40, anchor_y="bottom", color=(180, 180, 200, 160), batch=self._batch,
        )
        self._flash = pyglet.shapes.Rectangle(16, 62, 18, 18, color=(255, 190, 90), batch=self._batch)
        self._conf_bg = pyglet.shapes.Rectangle(42, 68, 120, 6, color=(70, 70, 90), batch=self._batch)
        self._conf = pyglet.shapes.Rectangle(42, 68, 0, 6, color=(120, 200, 255), batch=self._batch)

    def draw(self, frame: Frame, stats: ViewerStats, width: int, height: int) -> None:
        from livedance.outputs.renderer import beat_pulse

        self._text.text = (
            f"{frame.tempo:6.1f} BPM   conf {frame.confidence:4.2f}   energy {frame.energy:4.2f}   "
            f"{stats.fps:5.1f} fps   dropped {stats.frames_dropped}"
            + (f"   {frame.sync.label()}" if frame.sync is not None else "")
        )
        self._flash.opacity = int(40 + 215 * min(1.0, beat_pulse(frame) / max(frame.confidence, 1e-3)) * (frame.confidence > 0))
        self._conf.width = 120 * float(np.clip(frame.confidence, 0.0, 1.0))
        self._batch.draw()

    def release(self) -> None:
        for obj in (self._text, self._help, self._flash, self._conf_bg, self._conf):
            obj.delete()


# ---------------------------------------------------------------------------
# `livedance view MOTION.npz`


def play(viewer: Viewer, frames: list[Frame], fps: float, loop: bool, stop: threading.Event) -> None:
    """Feed ``frames`` to ``viewer`` in real time (the engine's role), on the calling thread."""
    start = time.monotonic()
    i = 0
    while not stop.is_set():
        if i == len(frames):
            if not loop:
                return
            start, i = time.monotonic(), 0
        delay = start + i / fps - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        viewer.submit(frames[i])
        i += 1


def run_view(args: Any, settings: Any) -> int:
    """``livedance view``: play a motion file in the window (no music)."""
    from livedance.outputs.video import frames_from_motion, load_motion

    poses, trans, fps, beats = load_motion(args.motion)
    frames = frames_from_motion(poses, trans, fps, beats)
    viewer = Viewer(settings.viewer)
    stop = threading.Event()
    finished_at: list[float] = []

    def feed() -> None:
        play(viewer, frames, fps, args.loop, stop)
        finished_at.append(time.monotonic())

    feeder = threading.Thread(target=feed, name="motion-player", daemon=True)
    feeder.start()
    try:
        # After a single play-through, linger a second on the last pose.
        viewer.run(until=lambda: bool(finished_at) and time.monotonic() - finished_at[0] > 1.0)
    finally:
        stop.set()
        feeder.join(timeout=1.0)
    return 0
