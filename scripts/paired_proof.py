"""Does an audio-conditioned composer learn the music-dance link? (docs/training.md, 'Paired music')

Without real paired data: every motion sequence of ``--data`` gets drum music
rendered on its own dance beats, as loud as the dance is energetic and as
busy as it is busy (``--music synthetic``, the same music the composers were
trained with). On the *held-out* (test split) sequences' music, each
checkpoint dances through the real engine, causally, as ``livedance dance``
does, and per span of two music beats we compare

* music loudness: RMS (dB) of the song over the span, against
* generated energy: mean joint speed (m/s) of the dance over the span,

as a Pearson correlation over all spans of all held-out songs; and the
beat-alignment score of the generated dance against the song's beats (the
rendered beat times, which the engine never sees). The real held-out dance is
scored the same way as a reference. Held out are the test and validation
takes (``--splits``): training only logs the validation loss, it never
selects or steps on it, and the test takes alone are 53 units (7 takes of
3-17 s).

The composer alone is also scored with the same mid energy asked of every
unit (``composer_link``): what is left of the loudness-energy link there
comes from the music it hears (and from tempo, which both composers read).

With several ``--seed`` values every figure is given per seed, then as mean
[min, max], and each checkpoint after the first is compared with the first
(the baseline) seed by seed: the mean difference, on how many seeds it is
ahead, and the one-sided sign-test p (all of 5 seeds ahead: p = 0.031).

    python scripts/paired_proof.py --data DIR... --checkpoints desc.pt audio.pt [--splits test val] [--seconds 40] [--seed 0 1 2 3 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def spans(beats: np.ndarray, start: float, stop: float) -> list[tuple[float, float]]:
    """Consecutive two-beat spans inside [start, stop)."""
    return [(float(a), float(b)) for a, b in zip(beats[:-2:2], beats[2::2]) if a >= start and b <= stop]


def loudness(y: np.ndarray, sr: int, span: list[tuple[float, float]]) -> np.ndarray:
    return np.array([10 * np.log10(np.mean(y[int(a * sr) : int(b * sr)].astype(np.float64) ** 2) + 1e-12) for a, b in span])


def energy(joints: np.ndarray, fps: float, span: list[tuple[float, float]]) -> np.ndarray:
    from livedance.motion.kinematic_beats import mean_joint_speed

    speed = mean_joint_speed(joints, fps)
    return np.array([speed[int(a * fps) : max(int(b * fps), int(a * fps) + 1)].mean() for a, b in span])


def _r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN for fewer than 3 spans or a constant side (a song too short to score)."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _spread(v: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def _paired(a: list[float], base: list[float]) -> dict[str, float]:
    """Seed-by-seed comparison of ``a`` with ``base``: mean difference, seeds where
    ``a`` is ahead, and the one-sided sign-test p of that many or more (ties count against)."""
    d = np.asarray(a) - np.asarray(base)
    n, k = len(d), int(np.sum(d > 0))
    p = sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    return {"mean_diff": float(d.mean()), "ahead": k, "sign_p": float(p)}


def pin(model: object) -> None:
    """Make the descriptor levels the engine measures (loudness, onset density) reach the composer as 0.5."""
    stats = model.descriptors  # type: ignore[attr-defined]
    measured = stats.context_from_levels

    def pinned(tempo_bpm: float, energy_level: float, busyness_level: float, style: int = -1) -> object:
        return measured(tempo_bpm, 0.5, 0.5, style)

    stats.context_from_levels = pinned


def composer_link(checkpoint: Path, data: object, paired: object, held: list[int], seed: int) -> float:
    """The composer alone, on the held-out sequences' units in order: asked for the
    *same* mid energy and busyness every unit (at the unit's own tempo), hearing
    the training-identical music window when it has an encoder. r between each
    unit's music loudness (RMS dB) and the energy of the unit it makes: ~0 (or
    whatever tempo alone explains) unless the music encoder learnt the link."""
    from livedance.config import Settings
    from livedance.eval.dances import render
    from livedance.model.checkpoint import load_checkpoint
    from livedance.model.context import MusicContext
    from livedance.motion.kinematic_beats import mean_joint_speed
    from livedance.train.composer import audio_windows

    model = load_checkpoint(checkpoint)
    settings = Settings()
    rms = paired.pooled[:, :, settings.features.n_mels + 1].mean(1)  # RMS dB channel
    prev = np.full(len(data.units), -1)
    for seq in data.order:
        prev[np.asarray(seq)[1:]] = np.asarray(seq)[:-1]
    win = enc = None
    if model.audio is not None:
        enc = np.concatenate([model.audio.standardise(paired.pooled), np.zeros((1,) + paired.pooled.shape[1:2] + (model.audio.channels,), np.float32)])
        win = audio_windows(prev, model.audio.units, model.audio.lag)
    mid_e, mid_b = float(np.median(data.energy)), float(np.median(data.busyness))
    loud, moved = [], []
    for k in held:
        seq = np.asarray(data.order[k])
        state = model.new_state(1, seed)
        units = []
        for u in seq:
            ctx = MusicContext(tempo_bpm=float(data.tempo[u]), energy=mid_e, busyness=mid_b,
                               audio=None if enc is None else enc[win[u]])
            feats, state = model.next_unit(state, ctx)
            units.append(feats[0])
        dance = render(np.stack(units), data.tempo[seq])
        speed = mean_joint_speed(dance.joints, dance.fps)
        b = dance.bounds.astype(int)
        moved += [speed[b[i] : max(b[i + 1], b[i] + 1)].mean() for i in range(len(seq))]
        loud += list(rms[seq])
    return float(np.corrcoef(loud, moved)[0, 1])


def held_music(checkpoint: Path, data: object, paired: object, seed: int, share: float = 0.1, n: int = 12) -> dict[str, float]:
    """The composer alone, hearing one window the whole time: the window before
    each of ``n`` units among the ``share`` loudest (newest heard unit's RMS) and
    as many among the quietest; 4 dancers make 6 units at 100 BPM, mid energy
    asked, and units 3-6 are scored (mean joint speed, m/s). Also the real
    energy of the units after those windows, for scale."""
    from livedance.eval.dances import render
    from livedance.model.checkpoint import load_checkpoint
    from livedance.model.context import MusicContext
    from livedance.motion.kinematic_beats import mean_joint_speed
    from livedance.train.paired import unit_windows

    model = load_checkpoint(checkpoint)
    if model.audio is None:
        return {}
    win = unit_windows(model.audio, data, paired)
    rms = model.audio.settings.n_mels + 1  # RMS dB channel
    newest = win[:, -1, :, rms].mean(1)
    full = win[:, 0, 0, -1] > 0  # all four heard units are music, not padding
    cut = np.quantile(newest[full], [share, 1 - share])
    out: dict[str, float] = {}
    for name, pick in (("quiet", full & (newest <= cut[0])), ("loud", full & (newest >= cut[1]))):
        idx = np.flatnonzero(pick)[:n]
        moved = []
        for i in idx:
            state = model.new_state(4, seed)
            ctx = MusicContext(tempo_bpm=100.0, energy=float(np.median(data.energy)), busyness=float(np.median(data.busyness)),
                               audio=win[i])
            units = []
            for _ in range(6):
                feats, state = model.next_unit(state, ctx)
                units.append(feats)
            for b in range(4):
                dance = render(np.stack([u[b] for u in units[2:]]), np.full(4, 100.0))
                moved.append(float(mean_joint_speed(dance.joints, dance.fps).mean()))
        out[f"{name}_generated"] = float(np.mean(moved))
        out[f"{name}_real"] = float(np.mean(np.asarray(data.energy)[idx]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True, help="the motion folders the checkpoints were trained on")
    p.add_argument("--checkpoints", nargs="+", required=True, type=Path)
    p.add_argument("--music-seed", type=int, default=0, help="the N of --music synthetic:N used in training (default 0)")
    p.add_argument("--splits", nargs="+", default=["test", "val"], choices=["test", "val"],
                   help="held-out takes to dance to (default both: training never steps on val, it only logs its loss)")
    p.add_argument("--seconds", type=float, default=40.0, help="dance at most this much of each held-out song")
    p.add_argument("--skip", type=float, default=4.0, help="seconds at each song's start not scored (the dancer walks in)")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="engine seed(s); several: per-seed figures, summary and paired comparison")
    p.add_argument("--pin-levels", action="store_true",
                   help="ablation: the composer is told a fixed mid energy and busyness whatever it hears, so any "
                        "link left between loudness and energy comes through its music encoder")
    p.add_argument("--held-music", action="store_true",
                   help="only the held-music check: each checkpoint that hears, given the window of loud and of quiet "
                        "training music the whole time (held_music); no engine runs")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)

    import torch

    from livedance.config import Settings
    from livedance.live.commands import build_engine
    from livedance.live.run import frames_offline
    from livedance.motion import dataset as ds
    from livedance.motion.kinematic_beats import beat_alignment_score, kinematic_beats
    from livedance.train.paired import pair, stem_of, synthetic_music

    torch.set_num_threads(1)
    data = ds.load_unit_dataset([Path(d) for d in args.data])
    settings = Settings()
    sr, fps = settings.audio.sample_rate, 60.0
    music = synthetic_music(data, args.music_seed, sr)
    sources = {s.path.stem: s.path for s in ds.find_sources([Path(d) for d in args.data])}
    held = [k for k, n in enumerate(data.sequence_names) if n == stem_of(n) and len(data.order[k])
            and str(data.split[data.order[k][0]]) in args.splits]
    songs = []
    for k in held:
        name = data.sequence_names[k]
        idx = data.order[k]
        beats = np.append(np.stack([data.start_time[idx], 0.5 * (data.start_time[idx] + data.end_time[idx])], 1).reshape(-1),
                          data.end_time[idx][-1])
        y = music[name][: int(args.seconds * sr)]
        span = spans(beats, args.skip, len(y) / sr)
        real = ds.load_clip(sources[name]).joints()
        songs.append((name, y, beats[beats < len(y) / sr], span, real))
    print(f"{len(songs)} held-out songs: {', '.join(s[0] for s in songs)}", file=sys.stderr)

    def score(dances: list[np.ndarray]) -> dict[str, float]:
        loud = np.concatenate([loudness(y, sr, span) for (_, y, _, span, _) in songs])
        moved = np.concatenate([energy(j, fps, span) for j, (_, _, _, span, _) in zip(dances, songs)])
        per_song = [_r(loudness(y, sr, span), energy(j, fps, span)) for j, (_, y, _, span, _) in zip(dances, songs)]
        bas = [beat_alignment_score(kinematic_beats(j, fps), beats * fps, fps) for j, (_, _, beats, _, _) in zip(dances, songs)]
        return {"loudness_energy_r": float(np.corrcoef(loud, moved)[0, 1]), "per_song_r_mean": float(np.nanmean(per_song)),
                "beat_alignment": float(np.mean(bas)), "spans": int(len(loud))}

    # The units' music as training pooled it (all units of these folders are paired with synthetic music).
    _, paired_units = pair(data, [Path(d) for d in args.data], f"synthetic:{args.music_seed}", settings)
    if args.held_music:
        for ckpt in args.checkpoints:
            for seed in args.seed:
                print(f"{ckpt} seed {seed}: " + "  ".join(f"{k} {v:.2f} m/s" for k, v in held_music(ckpt, data, paired_units, seed).items()))
        return 0
    reference = score([s[4][: int(len(s[1]) / sr * fps)] for s in songs])
    runs: list[dict[str, dict[str, float]]] = []  # per seed: checkpoint -> figures
    for seed in args.seed:
        results: dict[str, dict[str, float]] = {}
        for ckpt in args.checkpoints:
            settings.engine.checkpoint = str(ckpt)
            settings.engine.seed = seed
            dances = []
            for _, y, _, _, _ in songs:
                engine = build_engine(settings)
                if args.pin_levels:
                    pin(engine.model)
                dances.append(np.stack([f.joints[0] for f in frames_offline(engine, y, sr, fps)]))
            results[str(ckpt)] = score(dances)
            results[str(ckpt)]["composer_alone_r"] = composer_link(ckpt, data, paired_units, held, seed)
        runs.append(results)
        print(f"seed {seed}: {'r(loudness, energy)':>20s} {'per-song r':>11s} {'BAS':>6s} {'composer alone r':>17s}")
        print(f"{'real dance':40s} {reference['loudness_energy_r']:20.3f} {reference['per_song_r_mean']:11.3f} "
              f"{reference['beat_alignment']:6.3f}")
        for name, r in results.items():
            print(f"{name:40s} {r['loudness_energy_r']:20.3f} {r['per_song_r_mean']:11.3f} {r['beat_alignment']:6.3f} "
                  f"{r['composer_alone_r']:17.3f}")
    keys = ["loudness_energy_r", "per_song_r_mean", "beat_alignment", "composer_alone_r"]
    names = [str(c) for c in args.checkpoints]
    summary = {n: {k: _spread([run[n][k] for run in runs]) for k in keys} for n in names}
    paired = {n: {k: _paired([run[n][k] for run in runs], [run[names[0]][k] for run in runs]) for k in keys}
              for n in names[1:]}
    if len(args.seed) > 1:
        print(f"over seeds {' '.join(map(str, args.seed))}: mean [min, max]")
        for n in names:
            print(f"{n:40s} " + "  ".join(f"{k} {summary[n][k]['mean']:.3f} [{summary[n][k]['min']:.2f}, {summary[n][k]['max']:.2f}]"
                                         for k in keys))
        for n in names[1:]:
            print(f"{n} vs {names[0]}, seed by seed: " + "  ".join(
                f"{k} {paired[n][k]['mean_diff']:+.3f} ahead {paired[n][k]['ahead']}/{len(args.seed)} p={paired[n][k]['sign_p']:.3f}"
                for k in keys))
    if args.json:
        args.json.write_text(json.dumps({"songs": [s[0] for s in songs], "real dance": reference, "seeds": list(args.seed),
                                         "runs": runs, "summary": summary, "paired": paired,
                                         "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
