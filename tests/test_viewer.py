"""The viewer window on a real X server (Xvfb, started here) with Mesa's GLX.

Screenshots are read back from the window's own framebuffer. The mailbox and
watchdog are tested with real threads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from livedance.bench.xvfb import start_xvfb
from livedance.config import ViewerSettings
from livedance.errors import UserError
from livedance.frames import Frame
from livedance.outputs.renderer import Camera, OffscreenRenderer, frame_view
from livedance.outputs.viewer import Mailbox, Viewer, Watchdog
from livedance.skeleton import JOINT_INDEX, REST_PELVIS_HEIGHT, axis_angle_to_matrix

W, H = 240, 180
SCREEN = (480, 360)


def pose(arms_down: bool) -> Frame:
    aa = np.zeros((1, 24, 3), dtype=np.float32)
    if arms_down:
        aa[:, JOINT_INDEX["left_shoulder"], 2] = -1.3
        aa[:, JOINT_INDEX["right_shoulder"], 2] = 1.3
    return Frame.from_pose(0, 0.0, 0.0, axis_angle_to_matrix(aa), [[0.0, REST_PELVIS_HEIGHT, 0.0]])


def body_mask(img: np.ndarray) -> np.ndarray:
    """The default clay body: bright and warm; backdrop and floor are darker."""
    r, b = img[..., 0].astype(int), img[..., 2].astype(int)
    return (r > 150) & (r > b + 15)


def settings(**kw: object) -> ViewerSettings:
    base = dict(width=W, height=H, msaa=0, hud=False)
    base.update(kw)
    return ViewerSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    started = start_xvfb(*SCREEN)
    if started is None:
        pytest.skip("Xvfb is missing or did not start (apt-get install xvfb)")
    proc, display = started
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old


def run_for(viewer: Viewer, until: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    viewer.run(until=lambda: until() or time.monotonic() > deadline)


def screenshots(viewer: Viewer, frames: list[Frame]) -> list[np.ndarray]:
    """Show each frame in turn and capture the window after it's drawn."""
    shots: list[np.ndarray] = []
    viewer.submit(frames[0])
    viewer.request_screenshot()

    def until() -> bool:
        if viewer.last_screenshot is not None:
            shots.append(viewer.last_screenshot)
            viewer.last_screenshot = None
            if len(shots) < len(frames):
                viewer.submit(frames[len(shots)])
                viewer.request_screenshot()
        return len(shots) == len(frames)

    run_for(viewer, until)
    assert len(shots) == len(frames), "viewer did not draw"
    return shots


def test_window_screenshot_shows_the_body(xvfb: str) -> None:
    frame = pose(arms_down=False)
    (shot,) = screenshots(Viewer(settings()), [frame])
    assert shot.shape == (H, W, 3)
    mask = body_mask(shot)
    assert mask.sum() > 300, "no body in the window"
    # The body is where the skeleton is: project the joints with the same framing.
    with OffscreenRenderer(W, H, samples=0, fxaa=False) as off:
        reference = off.render(frame)
        view = frame_view(Camera(), off.scene.framer.lo, off.scene.framer.hi, W / H)
    clip = np.c_[frame.joints[0], np.ones(24)] @ view.view_proj.T
    px = (clip[:, 0] / clip[:, 3] + 1) / 2 * W
    py = (1 - clip[:, 1] / clip[:, 3]) / 2 * H
    ys, xs = np.nonzero(mask)
    assert xs.min() <= px.min() + 3 and px.max() - 3 <= xs.max()
    assert ys.min() <= py.min() + 3 and py.max() - 3 <= ys.max()
    assert xs.max() - xs.min() < 1.4 * (px.max() - px.min())
    # Window (GLX) and offscreen (EGL) draw the same picture.
    assert np.abs(shot.astype(int) - reference.astype(int)).mean() < 3.0


def test_window_silhouette_changes_with_the_pose(xvfb: str) -> None:
    t_pose, down = screenshots(Viewer(settings()), [pose(False), pose(True)])
    a, b = body_mask(t_pose), body_mask(down)
    assert (a ^ b).sum() > 0.2 * a.sum()
    wa = np.ptp(np.nonzero(a)[1])
    wb = np.ptp(np.nonzero(b)[1])
    assert wb < 0.8 * wa  # arms down: narrower


def test_keys_drive_the_engine_controls_and_hud_toggles(xvfb: str) -> None:
    from pyglet.window import key

    from livedance.live.controls import Controls

    controls = Controls()
    viewer = Viewer(settings(hud=True), controls=controls)
    viewer.submit(pose(False))
    presses = [key.SPACE, key._3, key.UP, key.PLUS, key.B, key.H]

    def until() -> bool:
        if viewer.stats.frames_drawn >= 2 and presses:
            viewer._window.dispatch_event("on_key_press", presses.pop(0), 0)
        return not presses and viewer.stats.frames_drawn >= 8

    run_for(viewer, until)
    state = controls.snapshot()
    assert state.frozen is True
    assert state.style == 3
    assert state.energy_bias == pytest.approx(0.25)
    assert state.dancers == 2
    assert state.beat_hit == 1.0  # B: a stop on every beat (the default is 0, as real dancers)
    assert viewer.hud is False  # H toggled the HUD off (it was drawn until then)


def test_submit_never_blocks_and_drops_old_frames(xvfb: str) -> None:
    viewer = Viewer(settings())
    frames = [pose(i % 2 == 0) for i in range(2)]
    stop = threading.Event()
    worst = [0.0]

    def engine() -> None:
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            viewer.submit(frames[i % 2])
            worst[0] = max(worst[0], time.perf_counter() - t)
            i += 1
            time.sleep(0.0005)  # ~2 kHz, far above what llvmpipe draws

    thread = threading.Thread(target=engine)
    thread.start()
    try:
        run_for(viewer, lambda: viewer.stats.frames_drawn >= 10)
    finally:
        stop.set()
        thread.join()
    assert worst[0] < 0.01
    assert viewer.stats.frames_dropped > 0
    assert viewer.stats.frames_received > viewer.stats.frames_drawn


def test_kiosk_is_fullscreen_and_rebuilds_a_stalled_loop(xvfb: str, tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.json"
    viewer = Viewer(settings(watchdog_seconds=0.4, heartbeat=str(heartbeat), hud=True), kiosk=True)
    assert viewer.hud is False  # kiosk: no HUD whatever the settings say
    stalled = []

    def until() -> bool:
        if viewer.stats.frames_drawn == 3 and not stalled:
            stalled.append(True)
            time.sleep(1.0)  # wedge the loop past the watchdog timeout
        if viewer.stats.recoveries and viewer.stats.frames_drawn >= 8 and not viewer._screenshot_requested.is_set():
            viewer.request_screenshot()
        return viewer.last_screenshot is not None

    run_for(viewer, until)
    assert viewer.stats.recoveries == 1
    # Fullscreen on the (only) screen, still drawing after the rebuild: the idle dancer.
    shot = viewer.last_screenshot
    assert shot.shape == (SCREEN[1], SCREEN[0], 3)
    assert body_mask(shot).sum() > 300
    beat = json.loads(heartbeat.read_text())
    assert beat["frames_drawn"] > 0 and beat["idle"] is True


@pytest.mark.parametrize("breakage", ["context lost", "window closed"])
def test_kiosk_heals_a_lost_context_or_closed_window(xvfb: str, breakage: str) -> None:
    viewer = Viewer(settings(), kiosk=True)
    broken = []

    def until() -> bool:
        if viewer.stats.frames_drawn == 3 and not broken:
            broken.append(True)
            if breakage == "context lost":
                viewer._ctx.release()  # the next draw fails on a dead context
            else:
                viewer._window.dispatch_event("on_close")
        return viewer.stats.frames_drawn >= 8

    run_for(viewer, until)
    assert broken and viewer.stats.recoveries == 1 and viewer.stats.frames_drawn >= 8


def test_window_close_ends_a_normal_viewer(xvfb: str) -> None:
    viewer = Viewer(settings())

    def until() -> bool:
        if viewer.stats.frames_drawn == 2:
            viewer._window.dispatch_event("on_close")
        return False

    run_for(viewer, until, limit=20.0)
    assert 2 <= viewer.stats.frames_drawn < 5 and viewer.stats.recoveries == 0


def test_no_display_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="DISPLAY") as err:
        Viewer(settings()).run(until=lambda: True)
    assert "\n" not in str(err.value) and "--video" in str(err.value)


def test_mailbox_latest_wins_across_threads() -> None:
    box: Mailbox[int] = Mailbox()
    assert box.take() is None
    writers = [threading.Thread(target=lambda k=k: [box.put(k * 1000 + i) for i in range(1000)]) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    item = box.take()
    assert item is not None and item % 1000 == 999  # the last put of some writer
    assert box.take() is None  # taken once
    assert box.received == 4000 and box.dropped == 3999


def test_watchdog_fires_once_per_stall_and_not_while_beating() -> None:
    stalls: list[float] = []
    dead: list[float] = []
    dog = Watchdog(0.2, stalls.append, dead.append, dead_after=0.6).start()
    try:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            dog.beat()
            time.sleep(0.02)
        assert stalls == [] and dead == []
        time.sleep(0.4)  # stall
        assert len(stalls) == 1 and stalls[0] >= 0.2
        dog.beat()
        time.sleep(0.8)  # stall long enough to be declared dead
        assert len(stalls) == 2 and len(dead) == 1
    finally:
        dog.stop()


def test_watchdog_counts_a_stall_that_froze_its_own_thread_too() -> None:
    # SIGSTOP or a suspended machine freeze the watching thread with the loop;
    # on waking, the loop's next beat may come first. That beat reports it.
    stalls: list[float] = []
    dog = Watchdog(0.2, stalls.append)  # not started: its thread never looks
    dog.beat()
    time.sleep(0.1)
    dog.beat()
    assert stalls == []
    time.sleep(0.3)
    dog.beat()
    dog.beat()
    assert len(stalls) == 1 and stalls[0] >= 0.3


def test_view_command_plays_a_motion_file_and_ends(xvfb: str, tmp_path: Path) -> None:
    from livedance.cli import main

    n = 12
    poses = np.zeros((n, 24, 3))
    poses[:, JOINT_INDEX["left_shoulder"], 2] = np.linspace(0.0, -1.2, n)
    np.savez(tmp_path / "m.npz", poses=poses, trans=np.tile([0.0, REST_PELVIS_HEIGHT, 0.0], (n, 1)), fps=30.0)
    start = time.monotonic()
    assert main(["--set", "viewer.width=160", "--set", "viewer.height=120", "--set", "viewer.msaa=0",
                 "view", str(tmp_path / "m.npz")]) == 0
    assert time.monotonic() - start < 20.0  # n/fps of play + one second on the last pose


def test_hud_shows_the_link_state(xvfb: str) -> None:
    from dataclasses import replace

    from livedance.frames import SyncState

    viewer = Viewer(settings(hud=True))
    viewer.submit(replace(pose(False), sync=SyncState("link", "follow", 128.0, 6.5, 4.0, 2, True)))
    seen: list[str] = []

    def until() -> bool:
        if viewer.stats.frames_drawn >= 2 and viewer._hud is not None:
            seen.append(viewer._hud._text.text)
        return bool(seen)

    run_for(viewer, until)
    assert seen and "LINK follow 2 peers 128.0 BPM 3.50/4" in seen[0], seen
