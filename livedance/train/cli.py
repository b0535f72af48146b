"""`livedance train units|composer`: command-line front end (imports torch only when run).

Multi-process data parallel: launch the same command under torchrun, e.g.
``torchrun --nproc_per_node 2 -m livedance.cli train units --data DIR --out units.pt``
(gloo on CPU, nccl with ``--device cuda``: one process per GPU, e.g.
``torchrun --nproc_per_node 4 -m livedance.cli train units ... --device cuda``).
``--batch`` is the global batch.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", choices=["units", "composer"], help="units: the unit VAE; composer: the LSTM on top of it")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="motion folders (BVH / AIST++ pkl), or 'synthetic[:SEED]' for a no-data smoke run")
    p.add_argument("--out", required=True, type=Path, metavar="CKPT", help="checkpoint to write")
    p.add_argument("--music", metavar="DIR",
                   help="paired music: the folder of the music (AIST++ mXX0.wav by the music ID in each name; other data "
                        "by a TAKE.music.toml sidecar), or 'synthetic[:SEED]'; both stages train on the paired units only, "
                        "and the composer learns a music encoder (docs/training.md)")
    p.add_argument("--audio-lag", type=int, default=2, metavar="UNITS",
                   help="with --music: units between the music the composer hears and the unit it composes "
                        "(default 2: what the live engine has heard; 0: the unit's own music, offline only)")
    p.add_argument("--keep-descriptors", action="store_true",
                   help="with --music: the composer also reads the energy and busyness measured on the dance "
                        "(default: only tempo and style, and the music)")
    p.add_argument("--units", type=Path, metavar="CKPT", help="composer stage: the checkpoint of `train units`")
    p.add_argument("--steps", type=int, default=4000, help="optimiser steps (default 4000)")
    p.add_argument("--batch", type=int, default=64, help="global batch size (units or windows; default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed; CPU runs are bit-reproducible (default 0)")
    p.add_argument("--hidden", type=int, help="hidden width of the recurrent layers (default: units 192, composer 128)")
    p.add_argument("--window", type=int, default=16, help="composer stage: units per training sequence (default 16)")
    p.add_argument("--val-every", type=int, default=250, help="validate and log every N steps (default 250)")
    p.add_argument("--save-every", type=int, default=500, help="write checkpoint + resumable state every N steps")
    p.add_argument("--max-minutes", type=float, help="stop (and save) after this much wall-clock time")
    p.add_argument("--stop-after", type=int, metavar="N", help="run at most N steps now, save, continue later with --resume")
    p.add_argument("--resume", action="store_true", help="continue from OUT.state, written by an earlier run")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N or auto (default cpu); under torchrun each process takes the GPU of its local rank")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    p.add_argument("--cache", type=Path, metavar="DIR", help="dataset cache folder (default: the motion pipeline's)")
    p.add_argument("--log-dir", type=Path, metavar="DIR", help="metrics.csv/.jsonl folder (default OUT-stem.metrics/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, settings: object) -> int:
    from livedance.errors import UserError
    from livedance.model.composer import ComposerConfig
    from livedance.model.vae import UnitVAEConfig
    from livedance.train.common import TrainConfig
    from livedance.train.data import load_data

    if args.stage == "composer" and args.units is None:
        raise UserError("train composer needs --units CKPT (the output of `livedance train units`)")
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    cfg = TrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, val_every=args.val_every,
        save_every=args.save_every, max_minutes=args.max_minutes, stop_after=args.stop_after, device=args.device, threads=args.threads,
    )
    if args.music is not None and args.music.split(":")[0] != "synthetic" and not Path(args.music).expanduser().is_dir():
        raise UserError(f"--music {args.music}: no such folder (give the folder of the music files, or 'synthetic')")
    data = load_data(args.data, args.cache)
    audio = None
    if args.music is not None:
        from livedance.train.paired import pair

        if args.audio_lag < 0:
            raise UserError("--audio-lag must be 0 or more units")
        data, audio = pair(data, [Path(d).expanduser() for d in args.data], args.music, settings, args.audio_lag)  # type: ignore[arg-type]
    meta = {"command": "livedance " + " ".join(shlex.quote(a) for a in sys.argv[1:]), "data": list(args.data),
            "style_names": list(data.style_names), "takes": len(data.take_names), "music": args.music}
    log.info("data: %d units, %d takes, styles %s", len(data.units), len(data.take_names), data.style_names)
    if args.stage == "units":
        from livedance.train.units import train_units

        model_cfg = UnitVAEConfig(feature_dim=data.units.shape[2], unit_frames=data.units.shape[1],
                                  hidden=args.hidden or UnitVAEConfig.hidden)
        result = train_units(data, args.out, cfg, model_cfg, resume=args.resume, log_dir=args.log_dir, meta=meta,
                             progress=not args.no_progress)
    else:
        from livedance.train.composer import train_composer

        model_cfg = None
        if args.hidden is not None:
            from livedance.model.checkpoint import read_checkpoint

            vae_cfg = read_checkpoint(args.units)["vae_config"]
            model_cfg = ComposerConfig(move_dim=vae_cfg["move_dim"], init_dim=vae_cfg["init_dim"],
                                       n_styles=len(data.style_names), hidden=args.hidden)
        envelope = None
        if not _synthetic(args.data):
            from livedance.motion.envelope import measure_envelope

            # The same takes the units came from, measured in real time (the
            # units themselves are tempo-free): what the engine must stay inside.
            envelope = measure_envelope(args.data, progress=not args.no_progress)
        result = train_composer(data, args.units, args.out, cfg, model_cfg, window=args.window, resume=args.resume,
                                log_dir=args.log_dir, meta=meta, progress=not args.no_progress, envelope=envelope,
                                audio=audio, descriptors=args.keep_descriptors)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items()))
        print(f"wrote {args.out}" + (f" ({summary})" if summary else ""))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Everything is written and the process group torn down: leave without
        # destructors, which can hang in gloo's (see train.common._WRAPPED).
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
    return 0


def _synthetic(specs: list[str]) -> bool:
    """``--data synthetic[:SEED]``: no real takes to measure an envelope on."""
    return len(specs) == 1 and specs[0].split(":")[0] == "synthetic"
