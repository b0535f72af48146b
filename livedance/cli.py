"""The one entry point: ``livedance <command>``.

Every command is a function ``run(args, settings) -> int`` in the module that
owns the capability, named here as ``"module:function"`` and imported only
when that command runs, so ``livedance --help`` stays instant (no torch
import).

Error conventions, for every command:
* a :class:`~livedance.errors.UserError` prints one line on stderr and exits 2;
* any other exception is an internal error: one line and exit 1, with the
  traceback under ``-v``;
* Ctrl-C exits 130 after the command's own clean-up has run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

from livedance import __version__
from livedance.errors import UserError

log = logging.getLogger("livedance")

Runner = Callable[[argparse.Namespace, object], int]


def _add_command(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, target: str, help: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(target=target)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livedance",
        description="A 3D body that dances to live music, in real time.",
    )
    parser.add_argument("--version", action="version", version=f"livedance {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug); tracebacks on errors"
    )
    parser.add_argument("--config", metavar="PATH", help="settings file (TOML); see `livedance config`")
    parser.add_argument(
        "--set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override one setting, e.g. --set engine.fps=30 (repeatable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_command(sub, "config", "livedance.cli:run_config", "print the effective settings as TOML")
    from livedance.live import commands as live_commands  # light: argparse set-up only

    live_commands.add_arguments(sub, _add_command)
    from livedance.bench import BENCHMARKS

    b = _add_command(sub, "bench", "livedance.bench:run", "run a benchmark and print JSON")
    b.add_argument("name", choices=BENCHMARKS, help="what to measure")
    b.add_argument("--json", action="store_true", help="compact single-line JSON (default: indented)")
    b.add_argument("--live", action="store_true", help="soak: run `perform` on a virtual device for --seconds of real time")
    b.add_argument("--seconds", type=float, default=30.0, help="length of the test material, seconds")
    b.add_argument("--live-seconds", type=float, default=10.0, help="length of real-time runs, seconds")
    b.add_argument("--quick", action="store_true", help="motion: fewer cells (6 tempi x 2 loudness levels + the demo)")
    r = _add_command(sub, "render", "livedance.outputs.video:run_render", "render a motion file to video with its music (offscreen)")
    r.add_argument("motion", help="motion file (.npz with poses, trans, fps[, beats])")
    r.add_argument("-o", "--out", required=True, metavar="OUT.mp4", help="video file to write")
    r.add_argument("--audio", metavar="SONG", help="music to mux (the song the motion was made for)")
    r.add_argument("--size", metavar="WxH", help="frame size, e.g. 1920x1080 (default: viewer.width x viewer.height)")
    r.add_argument("--audio-offset", type=float, default=0.0, metavar="S", help="music time of the first frame")
    v = _add_command(sub, "view", "livedance.outputs.viewer:run_view", "play a motion file in the viewer window")
    v.add_argument("motion", help="motion file (.npz with poses, trans, fps[, beats])")
    v.add_argument("--loop", action="store_true", help="play it again and again (close the window to stop)")
    dev = _add_command(sub, "devices", "livedance.sync.devices:run", "list audio devices, MIDI ports and Ableton Link peers")
    rc = _add_command(
        sub, "recover", "livedance.outputs.scratch:run_recover", "write the recording a crash or power cut left as a scratch file"
    )
    rc.add_argument("scratch", help="the scratch file (.NAME.*.frames, beside where the recording was going)")
    rc.add_argument("-o", "--output", required=True, metavar="OUT", help="motion file to write: .npz, .bvh or .pkl")
    dev.add_argument("--no-link", action="store_true", help="skip the 2 s look for Link peers (it joins the network's Link session)")
    from livedance.live import osc_control  # light: sockets and argparse only

    osc_control.add_arguments(
        _add_command(sub, "control", "livedance.live.osc_control:run", "send one OSC control message to a running perform")
    )
    from livedance.eval import cli as eval_cli  # light: argparse set-up only
    from livedance.train import cli as train_cli

    train_cli.add_arguments(_add_command(sub, "train", "livedance.train.cli:run", "train the unit VAE or the composer"))
    eval_cli.add_arguments(
        _add_command(sub, "eval", "livedance.eval.cli:run", "score a checkpoint against held-out dance; write a report")
    )
    return parser


def run_config(args: argparse.Namespace, settings: object) -> int:
    from livedance.config import to_toml

    print(to_toml(settings), end="")  # type: ignore[arg-type]
    return 0


def _resolve(target: str) -> Runner:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if not getattr(args, "target", None):
        parser.print_help()
        return 2
    try:
        from livedance.config import load

        settings = load(args.config, args.set)
        return int(_resolve(args.target)(args, settings) or 0)
    except UserError as exc:
        print(f"livedance: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livedance: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if args.verbose:
            traceback.print_exc()
        print(
            f"livedance: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def _detach_python_stderr() -> None:
    """Give Python's ``sys.stderr`` (log lines, the status line, tracebacks) a
    descriptor of its own, a copy of fd 2. The audio layer points fd 2 at
    /dev/null around PortAudio calls to silence the native libraries' noise
    (audio/sources.py), and a call that never returns (a killed sound server)
    must not silence livedance's own lines with it."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no real stderr: leave it as it is
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(fd, "w", buffering=1, encoding=encoding, errors="backslashreplace")  # noqa: SIM115 - for the whole process


def entry() -> None:
    _detach_python_stderr()
    sys.exit(main())


if __name__ == "__main__":
    entry()
