"""``livedance perform``, ``livedance dance`` and ``livedance demo``: command-line
glue that builds the engine, its audio source and its sinks from settings."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from livedance.config import Settings
from livedance.errors import UserError

log = logging.getLogger(__name__)

DEMO_CLIP = Path(__file__).resolve().parents[1] / "assets" / "demo.ogg"


def seconds_since_start() -> float:
    """Seconds since this process started (Linux /proc; else since this module loaded)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _LOADED


_LOADED = time.monotonic()


def apply_engine_args(args: argparse.Namespace, settings: Settings) -> None:
    """Fold the engine flags shared by perform and dance into the settings."""
    es = settings.engine
    for flag, field in (("seed", "seed"), ("dancers", "dancers"), ("checkpoint", "checkpoint"), ("compute", "compute")):
        value = getattr(args, flag, None)
        if value is not None:
            setattr(es, field, value)
    if getattr(args, "latency", None) is not None:
        es.latency_ms = float(args.latency)
    from livedance.live.controls import MAX_DANCERS

    if not 1 <= es.dancers <= MAX_DANCERS:
        raise UserError(f"--dancers {es.dancers} is out of range (use 1 to {MAX_DANCERS})")
    from livedance.model.device import resolve_compute

    resolve_compute(es.compute)  # a GPU asked for where there is none fails before anything opens


def build_engine(settings: Settings, controls: Any = None) -> Any:
    """Load the model and warm up everything slow, so the first beat is on time."""
    import torch

    from livedance.live.engine import Engine
    from livedance.model.checkpoint import load_checkpoint
    from livedance.model.device import resolve_compute
    from livedance.music.features import warm_up

    device = resolve_compute(settings.engine.compute)
    if device.type == "cpu":
        # One thread: the model is small, and a second core is better spent on
        # audio and rendering than on intra-op parallelism (it also keeps
        # results bit-identical run to run). On a GPU torch's CPU threads
        # only feed it; a fall-back to the CPU mid-show sets one then.
        torch.set_num_threads(1)
    model = load_checkpoint(settings.engine.checkpoint, device)  # first: a bad checkpoint fails before the slow warm-up
    log.info("dance model on %s", device)
    warm_up()
    engine = Engine(settings, model, controls)
    engine.plan()  # first unit now: torch's first call is slow
    return engine


def run_dance(args: argparse.Namespace, settings: Settings) -> int:
    """Offline: the causal engine over a whole song, faster than real time."""
    from tqdm import tqdm

    from livedance.audio.sources import FileSource
    from livedance.live.run import frames_offline
    from livedance.outputs.recorder import Recorder

    apply_engine_args(args, settings)
    recorder = Recorder(args.output, settings.engine.fps)
    if args.video and not str(args.video).lower().endswith((".mp4", ".mkv", ".mov")):
        raise UserError(f"--video {args.video}: use an .mp4 (or .mkv/.mov) file name")
    if args.video:
        from livedance.outputs.renderer import check_shaders

        check_shaders()  # before minutes of dancing, not after
    source = FileSource(args.song, settings.audio, realtime=False)
    engine = build_engine(settings)
    fps = settings.engine.fps
    total = int(source.duration * fps)
    with ExitStack() as stack:
        video = None
        if args.video:
            from livedance.outputs.video import VideoWriter

            # Rendered as the dance is made: memory stays flat for any song length.
            video = stack.enter_context(
                VideoWriter(args.video, settings.viewer.width, settings.viewer.height, fps, args.song)
            )
        for frame in tqdm(
            frames_offline(engine, source.samples, settings.audio.sample_rate, fps),
            total=total, unit="frame", desc="dancing" + (" + rendering" if video else ""), disable=None,
        ):
            recorder.send(frame)
            if video is not None:
                video.write(frame)
        recorder.close()
    print(f"wrote {recorder.frames} frames ({recorder.frames / fps:.1f} s, {engine.stats.beats} beats) to {args.output}")
    if args.video:
        print(f"wrote {args.video}")
    return 0


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _sinks(args: argparse.Namespace, settings: Settings, source: Any = None) -> list[Any]:
    """The frame sinks asked for by flags, or else by the [osc] settings (a
    kiosk's config file turns OSC/VMC on without flags)."""
    sinks: list[Any] = []
    if args.osc or settings.osc.out:
        from livedance.outputs.osc import OscSender

        sinks.append(OscSender.from_settings(settings.osc, args.osc))
    if args.vmc or settings.osc.vmc:
        from livedance.outputs.vmc import VmcSender

        sinks.append(VmcSender.from_settings(settings.osc, args.vmc))
    if args.record:
        from livedance.outputs.recorder import Recorder

        sinks.append(Recorder(args.record, settings.engine.fps))
    if args.video:
        from livedance.outputs.video import VideoWriter

        audio = args.input if args.input else None
        later = None
        if audio is None and hasattr(source, "record"):
            # A live input: record what it hears, and mux that in when the video is done.
            video = Path(args.video)
            later = video.with_name(f".{video.stem}.input.wav")
        writer = VideoWriter(
            args.video, settings.viewer.width, settings.viewer.height, settings.engine.fps, audio, audio_later=later
        )
        if later is not None:
            source.record(later)
        sinks.append(writer)
    return sinks


def run_perform(args: argparse.Namespace, settings: Settings) -> int:
    """Live: dance to a device or a file paced in real time, until stopped."""
    from livedance.audio.sources import open_source
    from livedance.live.controls import Controls
    from livedance.live.run import LiveRunner, wait_with_status

    apply_engine_args(args, settings)
    if args.device is not None:
        settings.audio.device = args.device
    if getattr(args, "channels", None) is not None:
        from livedance.audio.devices import parse_channels

        settings.audio.channels = parse_channels(args.channels)
    if args.play and not args.input:
        raise UserError(
            "--play plays an --input file; a live device is already heard in the room "
            "(to monitor it, route the input to an output in your mixer, or: pactl load-module module-loopback)"
        )
    if args.kiosk:
        args.window = True
    window = args.window if args.window is not None else _has_display()
    if window and not _has_display():
        raise UserError("--window needs a display (set DISPLAY, run under X/Wayland, or use --no-window / --video)")
    controls = Controls.from_settings(settings)
    with ExitStack() as stack:
        source = open_source(settings.audio, args.input, realtime=True, play=args.play)
        sinks = _sinks(args, settings, source)
        if args.control or settings.osc.control:
            from livedance.live.osc_control import ControlServer

            # Listens from construction on (its thread starts in __init__; there
            # is no start(): calling one made every `perform --control` exit 1).
            server = ControlServer.from_settings(settings.osc, controls, args.control)
            stack.callback(server.close)
        from livedance.live.syncing import SyncHub

        # Before the slow model load: a missing Link extra or MIDI port fails at once.
        sync = SyncHub.from_args(args, settings)
        if sync is not None:
            stack.callback(sync.close)
        engine = build_engine(settings, controls)
        viewer = None
        if window:
            from livedance.outputs.viewer import Viewer

            settings.viewer.fullscreen = settings.viewer.fullscreen or args.fullscreen
            viewer = Viewer(settings.viewer, controls=controls, kiosk=args.kiosk)
            sinks.append(viewer)
        runner = LiveRunner(engine, source, sinks, settings.engine.fps, settings.engine.latency_ms / 1000.0, sync=sync)
        if viewer is not None:
            viewer.on_display_lost.append(runner.stop)  # the X server died: still write the recordings
        start = time.monotonic()

        def done() -> bool:
            return args.seconds is not None and time.monotonic() - start >= args.seconds

        # SIGTERM (systemd, kill) stops like Ctrl-C: recordings get finalised.
        previous = signal.signal(signal.SIGTERM, lambda *_: runner.stopped.set())
        runner.start()
        # One line once it listens (the model load before it takes seconds).
        print(
            f"livedance: listening to {source.describe()}; output latency {settings.engine.latency_ms:.0f} ms; "
            f"{seconds_since_start():.1f} s after start",
            flush=True,
        )
        try:
            if viewer is not None:
                # The terminal keeps its status line while the window is open.
                threading.Thread(target=wait_with_status, args=(runner, done), name="livedance-status", daemon=True).start()
                viewer.run(until=lambda: done() or runner.stopped.is_set())
            else:
                wait_with_status(runner, done)
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            runner.stop()
            signal.signal(signal.SIGTERM, previous)
        st = runner.stats
        print(
            f"performed {st.frames} frames, dropped {st.dropped}, "
            f"{engine.stats.units} units, {engine.stats.beats} beats"
        )
    return 0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The bundled clip: in a window with sound when there is a display,
    else rendered to out/demo.mp4 (+ motion) while streaming OSC."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = str(DEMO_CLIP)
    if _has_display():
        ns = argparse.Namespace(
            input=clip, device=None, play=True, seconds=None, osc=args.osc, vmc=None, control=None,
            window=True, fullscreen=False, kiosk=False, record=None, video=None,
            checkpoint=None, seed=None, dancers=None, latency=None, compute=args.compute,
        )
        return run_perform(ns, settings)
    print(f"no display: dancing to {DEMO_CLIP.name} in real time, streaming OSC to {args.osc} ...")
    ns = argparse.Namespace(
        input=clip, device=None, play=False, seconds=None, osc=args.osc, vmc=None, control=None,
        window=False, fullscreen=False, kiosk=False, record=str(out / "demo.npz"), video=None,
        checkpoint=None, seed=None, dancers=None, latency=None, compute=args.compute,
    )
    run_perform(ns, settings)
    dance_ns = argparse.Namespace(
        song=clip, output=str(out / "demo.bvh"), video=str(out / "demo.mp4"),
        checkpoint=None, seed=None, dancers=None, latency=None, compute=args.compute,
    )
    run_dance(dance_ns, settings)
    print(f"demo done: watch {out / 'demo.mp4'}")
    return 0


def add_arguments(sub: Any, add_command: Any) -> None:
    """Register perform, dance and demo on the CLI's subparsers."""
    p = add_command(sub, "perform", "livedance.live.commands:run_perform", "dance live to a device or a file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE", help="audio file paced in real time (default: live input device)")
    src.add_argument("--device", metavar="NAME_OR_INDEX", help="input device (see `livedance devices`)")
    p.add_argument("--channels", metavar="3,4", help="input channels to mix, numbered from 1 (default 1,2; setting audio.channels)")
    p.add_argument("--play", action="store_true", help="play --input on the default output device")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.add_argument("--osc", metavar="HOST:PORT", nargs="?", const="127.0.0.1:9000", help="send the livedance OSC scheme")
    p.add_argument("--vmc", metavar="HOST:PORT", nargs="?", const="127.0.0.1:39539", help="send VMC protocol")
    p.add_argument("--control", metavar="HOST:PORT", nargs="?", const="127.0.0.1:9001", help="listen for OSC control")
    win = p.add_mutually_exclusive_group()
    win.add_argument("--window", dest="window", action="store_true", default=None, help="open the viewer window")
    win.add_argument("--no-window", dest="window", action="store_false", help="no window (default without a display)")
    p.add_argument("--fullscreen", action="store_true", help="start the window fullscreen")
    p.add_argument("--kiosk", action="store_true", help="unattended: fullscreen, no HUD, self-healing")
    p.add_argument("--record", metavar="OUT", help="record motion to .npz, .bvh or .pkl")
    p.add_argument("--video", metavar="OUT.mp4", help="render video while performing")
    p.add_argument(
        "--link", nargs="?", const="follow", choices=("off", "follow", "lead"),
        help="Ableton Link: follow the session's beat (default) or lead it with the tracked one (setting [link] mode)",
    )
    p.add_argument("--midi-clock-in", metavar="PORT", help="follow MIDI clock from the input port whose name contains PORT")
    p.add_argument("--midi-clock-out", metavar="PORT", help="send MIDI clock (24 PPQN, Start/Stop, SPP) to the output port whose name contains PORT")
    _engine_flags(p)

    d = add_command(sub, "dance", "livedance.live.commands:run_dance", "dance to a song file, faster than real time")
    d.add_argument("song", help="audio file (wav, flac, ogg, mp3)")
    d.add_argument("-o", "--output", required=True, metavar="OUT", help="motion file: .npz, .bvh or .pkl")
    d.add_argument("--video", metavar="OUT.mp4", help="also render a video with the music")
    _engine_flags(d)

    m = add_command(sub, "demo", "livedance.live.commands:run_demo", "dance to the bundled clip (window, or video without a display)")
    m.add_argument("--out", default="out", help="folder for the headless demo's files (default: out)")
    m.add_argument("--osc", default="127.0.0.1:9000", metavar="HOST:PORT", help="where the demo streams OSC")
    add_compute_flag(m)


def _engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="PATH", help="model checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same dance)")
    p.add_argument("--dancers", type=int, help="number of dancers")
    p.add_argument("--latency", type=float, metavar="MS", help="output latency to compensate, milliseconds")
    add_compute_flag(p)


def add_compute_flag(p: argparse.ArgumentParser) -> None:
    """``--compute``: where the dance model runs (``--device`` is the audio input)."""
    p.add_argument("--compute", metavar="auto|cpu|cuda[:N]",
                   help="where the dance model runs (default: engine.compute = auto, a CUDA GPU when torch sees one)")
