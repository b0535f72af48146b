"""`livedance eval`: score a checkpoint and two baselines against held-out takes; write a report.

Output folder: ``report.md`` (tables, targets, plots), ``metrics.json``,
and the PNG plots it references.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livedance.eval import metrics as M
from livedance.eval.bootstrap import fid_interval
from livedance.eval.dances import HELD_OUT, Dance, generated_dances, random_dances, real_dances, retrieval_dances, scripts
from livedance.eval.features import geometric_features, kinetic_features
from livedance.motion.envelope import MotionStats, motion_stats
from livedance.motion.kinematic_beats import beat_alignment_score, kinematic_beats, smoothed_speed

log = logging.getLogger(__name__)

#: Units per FID segment (4 beats): held-out takes are short, and every
#: segment is one more sample for the 72-d and 32-d covariances.
SEGMENT_UNITS = 2

SYSTEMS = ("real", "generated", "random", "retrieval")
LABELS = {"real": "real held-out takes", "generated": "livedance (this checkpoint)", "random": "random units",
          "retrieval": "nearest-neighbour retrieval"}


@dataclass
class SystemScores:
    """Per-system metric values plus the per-segment features (for FID/diversity)."""

    kinetic: np.ndarray  # (S, 72)
    geometric: np.ndarray  # (S, 32)
    values: dict[str, float]
    groups: np.ndarray  # (S,) which dance (take) each segment is from: the bootstrap's unit
    stats: list[MotionStats]  # per dance, the envelope's measures


def segment_features(d: Dance) -> tuple[np.ndarray, np.ndarray]:
    """Kinetic and geometric features of every SEGMENT_UNITS-unit stretch of a dance: (S, 72), (S, 32)."""
    kin, geo = [], []
    for a in range(0, len(d.bounds) - SEGMENT_UNITS, SEGMENT_UNITS):
        lo, hi = int(d.bounds[a]), min(int(d.bounds[a + SEGMENT_UNITS]), len(d.joints))
        if hi - lo < 8:
            continue
        kin.append(kinetic_features(d.joints[lo:hi], d.fps))
        geo.append(geometric_features(d.joints[lo:hi], d.fps))
    return np.reshape(kin, (-1, 72)), np.reshape(geo, (-1, 32))


def score_system(dances: list[Dance]) -> SystemScores:
    """Everything but the FIDs (which need the reference set)."""
    kin, geo = zip(*(segment_features(d) for d in dances)) if dances else ((np.zeros((0, 72)),), (np.zeros((0, 32)),))
    groups = np.concatenate([np.full(len(k), i) for i, k in enumerate(kin)])
    # The envelope's ruler; the staccato ratio at the beats each dance was stretched onto.
    stats = [motion_stats(d.joints, d.fps, d.beats / d.fps) for d in dances]
    seams = np.concatenate([M.frame_jumps(d.joints)[np.clip(d.seams.astype(int), 0, len(d.joints) - 2)] for d in dances])
    values = {
        "beat_alignment": float(np.mean([beat_alignment_score(kinematic_beats(d.joints, d.fps), d.beats, d.fps) for d in dances])),
        "foot_contact": float(np.mean([M.foot_contact_score(d.joints, d.fps) for d in dances])),
        "foot_skating": float(np.mean([M.foot_skating(d.joints, d.fps) for d in dances])),
        "jitter": float(np.mean([M.jitter(d.joints, d.fps) for d in dances])),
        "seam_jump_max": float(seams.max()) if seams.size else 0.0,
        "seam_jump_p95": float(np.percentile(seams, 95)) if seams.size else 0.0,
        "frame_jump_p99": float(np.percentile(np.concatenate([M.frame_jumps(d.joints) for d in dances]), 99)),
        **median_stats(stats),
    }
    return SystemScores(np.concatenate(kin), np.concatenate(geo), values, groups, stats)


#: The envelope's measures as named in the report and metrics.json.
ENVELOPE_KEYS = {"speed": "speed", "skate": "skate", "displacement": "displacement_p999", "jerk": "jerk_p95",
                 "beat_speed_ratio": "beat_speed_ratio", "peak_ratio": "peak_ratio"}


def median_stats(stats: list[MotionStats]) -> dict[str, float]:
    """Median over dances of each envelope measure (the envelope holds medians over takes)."""
    return {key: float(np.median([getattr(s, m) for s in stats if getattr(s, m) is not None] or [np.nan]))
            for m, key in ENVELOPE_KEYS.items()}


def as_stats(values: dict[str, float]) -> MotionStats:
    return MotionStats(**{m: values[key] for m, key in ENVELOPE_KEYS.items()}, seconds=0.0)


def evaluate(model: Any, data: Any, dances: int, units: int, seed: int, temperature: float,
             bootstrap: int = 200, heard: Any = None) -> tuple[dict[str, SystemScores], dict[str, list[Dance]]]:
    """Render and score all four systems; FIDs with ``bootstrap``-round confidence intervals
    (``heard``: per-unit music windows, for a checkpoint that hears; see ``--music``)."""
    from livedance.errors import UserError

    plan = scripts(data, dances, units, heard)
    if not plan:
        raise UserError("--data has no held-out (test/val) takes to compare against; give the folders the model was trained on")
    sets = {
        "real": real_dances(data),
        "generated": generated_dances(model, plan, seed, temperature),
        "random": random_dances(data, plan, seed),
        "retrieval": retrieval_dances(data, plan, seed),
    }
    scores = {name: score_system(ds) for name, ds in sets.items()}
    for name, sc in scores.items():
        if len(sc.kinetic) < 2:
            raise UserError(
                f"too little motion to score the {LABELS[name]} ({len(sc.kinetic)} segments of {SEGMENT_UNITS} units); "
                "give --data with more held-out takes or raise --units"
            )
    ref = scores["real"]
    for name, sc in scores.items():
        rk, gk = M.normalise_pair(ref.kinetic, sc.kinetic)
        rg, gg = M.normalise_pair(ref.geometric, sc.geometric)
        sc.values["diversity_k"] = M.diversity(gk)
        sc.values["diversity_g"] = M.diversity(gg)
        if name != "real":
            sc.values["fid_k"] = M.frechet_distance(rk, gk)
            sc.values["fid_g"] = M.frechet_distance(rg, gg)
            if bootstrap > 0:
                for key, a, b in (("fid_k", rk, gk), ("fid_g", rg, gg)):
                    lo, hi = fid_interval(a, ref.groups, b, sc.groups, bootstrap, seed)
                    sc.values[f"{key}_lo"], sc.values[f"{key}_hi"] = lo, hi
    return scores, sets


def targets(scores: dict[str, SystemScores]) -> list[tuple[str, bool, str]]:
    """The issue's targets: (description, met?, numbers)."""
    r, g = scores["real"].values, scores["generated"].values
    rnd, ret = scores["random"].values, scores["retrieval"].values
    return [
        ("beat alignment >= real takes' (both to the grid the units were stretched onto: see the true-beat table)",
         g["beat_alignment"] >= r["beat_alignment"],
         f"{g['beat_alignment']:.3f} vs {r['beat_alignment']:.3f}"),
        ("FID_k below both baselines", g["fid_k"] < min(rnd["fid_k"], ret["fid_k"]),
         f"{g['fid_k']:.2f} vs random {rnd['fid_k']:.2f}, retrieval {ret['fid_k']:.2f}"),
        ("diversity_k within 20% of real takes'", abs(g["diversity_k"] - r["diversity_k"]) <= 0.2 * r["diversity_k"],
         f"{g['diversity_k']:.2f} vs {r['diversity_k']:.2f}"),
        ("foot contact score <= 1.5x real takes'", g["foot_contact"] <= 1.5 * r["foot_contact"],
         f"{g['foot_contact']:.3f} vs {r['foot_contact']:.3f}"),
        ("max joint jump at seams < data's 99th percentile frame jump", g["seam_jump_max"] < r["frame_jump_p99"],
         f"{g['seam_jump_max'] * 100:.1f} cm vs {r['frame_jump_p99'] * 100:.1f} cm"),
    ]


def _plots(out: Path, scores: dict[str, SystemScores], sets: dict[str, list[Dance]], model: Any, data: Any) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    names = []
    # 1. Speed curves with music and motion beats.
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, name in zip(axes, ("real", "generated")):
        d = sets[name][0]
        n = min(len(d.joints), int(8 * d.fps))
        sp = smoothed_speed(d.joints[:n], d.fps)
        t = np.arange(n) / d.fps
        ax.plot(t, sp, lw=1.2, label="mean joint speed (smoothed)")
        for b in d.beats[d.beats < n]:
            ax.axvline(b / d.fps, color="tab:red", alpha=0.35, lw=1)
        kb = kinematic_beats(d.joints[:n], d.fps)
        ax.plot(kb / d.fps, sp[kb], "kv", ms=5, label="motion beats")
        ax.set_title(f"{LABELS[name]} (red: music beats)", fontsize=9)
        ax.set_ylabel("m/s")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out / "speed_beats.png", dpi=90)
    plt.close(fig)
    names.append("speed_beats.png")

    # 2. Latent map: movement codes of real held-out units (by energy) and generated ones, first two principal axes.
    import torch

    from livedance.train.data import split_indices

    idx = np.concatenate([split_indices(data, s) for s in HELD_OUT])
    with torch.no_grad():
        x = model.normalise(torch.as_tensor(np.asarray(data.units)[idx], device=model.device))
        real = model.vae.move_encoder(x).mu.cpu().numpy()
    gen = np.concatenate([d.codes for d in sets["generated"] if d.codes is not None])
    mu = real.mean(0)
    _, _, vt = np.linalg.svd(real - mu, full_matrices=False)
    pr, pg = (real - mu) @ vt[:2].T, (gen - mu) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(pr[:, 0], pr[:, 1], c=data.energy[idx], s=12, cmap="viridis", label="real held-out units")
    ax.scatter(pg[:, 0], pg[:, 1], marker="x", s=14, c="tab:red", alpha=0.6, label="generated")
    fig.colorbar(sc, label="unit energy (m/s)")
    ax.set_title("movement codes, first two principal axes", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latent_map.png", dpi=90)
    plt.close(fig)
    names.append("latent_map.png")

    # 3. Metric bars.
    keys = ["beat_alignment", "fid_k", "fid_g", "diversity_k", "foot_contact", "foot_skating"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 3))
    for ax, key in zip(axes, keys):
        sys_ = [s for s in SYSTEMS if key in scores[s].values]
        ax.bar(range(len(sys_)), [scores[s].values[key] for s in sys_], color=["tab:gray", "tab:blue", "tab:orange", "tab:green"][-len(sys_):])
        ax.set_xticks(range(len(sys_)), [s[:6] for s in sys_], fontsize=7)
        ax.set_title(key, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=90)
    plt.close(fig)
    names.append("metrics.png")
    return names


def write_report(out: Path, scores: dict[str, SystemScores], sets: dict[str, list[Dance]], model: Any, data: Any,
                 command: str, checkpoint: str, music: list[Any] | None = None) -> Path:
    from livedance.eval import realism

    out.mkdir(parents=True, exist_ok=True)
    music = music or []
    env, env_label = realism.reference(getattr(model, "envelope", None), scores["real"].stats)
    rows = realism.systems_stats({LABELS[s]: as_stats(scores[s].values) for s in SYSTEMS}, music)
    all_targets = targets(scores) + realism.targets(as_stats(scores["generated"].values), music, env)
    plots = _plots(out, scores, sets, model, data) + realism.plots(out, rows, music, env)
    cols = ["beat_alignment", "fid_k", "fid_g", "diversity_k", "diversity_g", "foot_contact", "foot_skating", "jitter",
            "seam_jump_max"]
    lines = [
        "# livedance evaluation report", "",
        f"Checkpoint: `{checkpoint}`  ", f"Command: `{command}`", "",
        f"Dances: {len(sets['generated'])} generated, each to the descriptor sequence (tempo, energy, busyness, style) "
        f"of a held-out take; {len(sets['real'])} real held-out sequences (the test takes) as the reference. All systems rendered the same "
        "way (units stretched onto their beats, 60 fps). FID and diversity on features of 4-beat segments, "
        "standardised by the real set's statistics.", "",
        "| system | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for s in SYSTEMS:
        v = scores[s].values
        lines.append(f"| {LABELS[s]} | " + " | ".join(_cell(v, c) for c in cols) + " |")
    lines += ["", "Units: beat alignment in [0, 1] (higher is better); foot contact = EDGE PFC (lower is better); "
              "foot skating m/s; jitter m/s³; seam jump = largest single-joint move across a unit boundary, m. "
              "FID in brackets: 95% bootstrap interval, resampling whole takes and dances (the reference is "
              f"{len(sets['real'])} takes; see `livedance.eval.bootstrap`).", ""]
    lines += realism.sections(rows, music, env, env_label) + ["## Targets", ""]
    for desc, ok, nums in all_targets:
        lines.append(f"- [{'x' if ok else ' '}] {desc}: {nums}")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "metrics.json").write_text(json.dumps(
        {"checkpoint": checkpoint, "command": command, "systems": {s: scores[s].values for s in SYSTEMS},
         **realism.json_part(rows, music, env, env_label),
         "targets": [{"target": d, "met": bool(ok), "values": n} for d, ok, n in all_targets]}, indent=2, default=float))
    return path


def _cell(v: dict[str, float], c: str) -> str:
    if c not in v:
        return "—"
    if f"{c}_lo" in v:
        return f"{v[c]:.3f} [{v[c + '_lo']:.2f}, {v[c + '_hi']:.2f}]"
    return f"{v[c]:.3f}"


def run_eval(args: argparse.Namespace, settings: Any = None) -> int:
    import shlex
    import sys

    import torch

    from livedance.model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from livedance.model.device import resolve_compute
    from livedance.train.data import load_data

    model = load_checkpoint(args.checkpoint, resolve_compute(getattr(args, "compute", None) or "auto"))
    data = load_data(args.data, args.cache)
    heard = None
    if getattr(args, "music", None):
        from pathlib import Path

        from livedance.errors import UserError
        from livedance.train.paired import pair_for

        if model.audio is None:
            raise UserError(f"--music {args.music}: this checkpoint hears no music (it was trained without --music); drop --music")
        data, heard = pair_for(model.audio, data, [Path(d).expanduser() for d in args.data], args.music)
    elif getattr(model, "audio", None) is not None:
        log.warning("this checkpoint hears music but no --music was given: its held-out dances are composed to silence")
    torch.manual_seed(args.seed)
    scores, sets = evaluate(model, data, args.dances, args.units, args.seed, args.temperature,
                            getattr(args, "bootstrap", 200), heard)
    music = []
    bpms = list(getattr(args, "music_bpm", None) or [])
    if bpms:
        from livedance.config import Settings
        from livedance.eval.music import engine_dances

        settings = settings if settings is not None else Settings()
        settings.engine.checkpoint = args.checkpoint
        if getattr(args, "compute", None):
            settings.engine.compute = args.compute
        settings.engine.dancers = 1
        music = engine_dances(settings, bpms, args.seed)
    command = "livedance " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = write_report(args.report, scores, sets, model, data, command, str(args.checkpoint or DEFAULT_CHECKPOINT), music)
    for target in json.loads((args.report / "metrics.json").read_text())["targets"]:
        log.info("%s %s: %s", "met" if target["met"] else "MISSED", target["target"], target["values"])
    print(f"wrote {path}")
    return 0
