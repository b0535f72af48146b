"""`livedance eval`: command-line front end (imports torch only when run)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, metavar="CKPT", help="checkpoint to score (default: the shipped one)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="motion folders (their test split is the reference), or 'synthetic[:SEED]'")
    p.add_argument("--report", type=Path, required=True, metavar="DIR", help="folder for report.md, metrics.json, plots")
    p.add_argument("--units", type=int, default=32, help="units per generated dance (default 32)")
    p.add_argument("--dances", type=int, default=16, help="generated dances per system (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="composer sampling temperature (default 1.0)")
    p.add_argument("--cache", type=Path, metavar="DIR", help="dataset cache folder")
    p.add_argument("--music", metavar="DIR",
                   help="for a checkpoint trained with --music: the music of --data (a folder, or 'synthetic[:SEED]', "
                        "as in training), which its held-out dances are composed to")
    p.add_argument("--music-bpm", type=float, nargs="*", default=[90.0, 120.0, 150.0], metavar="BPM",
                   help="tempi of the synthetic tracks the engine dances to, scored against their true beats "
                        "(default 90 120 150; none to skip)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="bootstrap rounds for the FID confidence intervals (default 200; 0 to skip)")
    p.add_argument("--compute", metavar="auto|cpu|cuda[:N]",
                   help="where the model runs (default: engine.compute = auto, a CUDA GPU when torch sees one)")


def run(args: argparse.Namespace, settings: object) -> int:
    from livedance.eval.report import run_eval

    if args.compute is None:
        args.compute = settings.engine.compute  # type: ignore[attr-defined]
    return run_eval(args, settings)
