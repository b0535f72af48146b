"""The eval report's honest part: beat alignment against true beats, and every
system measured against the realism envelope of real dance (issue 17).

Two things the rest of the report cannot show:

* Beat alignment of the held-out-take dances is scored against the grid the
  units were stretched onto, and the real takes' against a grid snapped to
  their own kinematic beats (``motion.kinematic_beats.beat_grid``): neither is
  an independent reference. :mod:`livedance.eval.music` adds the engine on
  synthetic music, scored against the beat times the synthesiser rendered.
* Whether the motion stays human: each system's medians of the envelope's
  measures (``motion.envelope.motion_stats``) as ratios to the checkpoint's
  envelope of real takes, with issue 17's limits (``bench.motion.limits``).
  A checkpoint without an envelope is compared with the real held-out dances
  measured here instead (said so in the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from livedance.bench.motion import OFFSET_MAX_MS, judge, limits
from livedance.eval.music import MusicDance
from livedance.motion.envelope import MotionEnvelope, MotionStats, summarise
from livedance.motion.kinematic_beats import kinematic_beats, smoothed_speed

#: The envelope's measures, their report names and units.
SHOWN = (("speed", "speed m/s"), ("skate", "skate m/s"), ("displacement", "p99.9 disp. m"), ("jerk", "jerk p95 m/s³"),
         ("beat_speed_ratio", "at beat / mid-beat"), ("peak_ratio", "p95 / median"))


def reference(model_envelope: MotionEnvelope | None, real: list[MotionStats]) -> tuple[MotionEnvelope, str]:
    """The envelope to judge against, and a line saying what it is."""
    if model_envelope is not None:
        return model_envelope, (f"the checkpoint's envelope ({model_envelope.overall.takes} real takes of "
                                f"{', '.join(model_envelope.styles)}; per measure the median of the style medians)")
    return summarise({"held-out": real}, {}), "the real held-out dances above (this checkpoint stores no envelope)"


def music_rows(music: list[MusicDance]) -> list[dict[str, Any]]:
    return [{"bpm": m.bpm, "level": m.level, "beat_alignment": round(m.alignment, 4),
             "mean_abs_offset_ms": None if m.offset_ms is None else round(m.offset_ms, 1),
             **{k: (None if getattr(m.stats, k) is None else round(float(getattr(m.stats, k)), 4)) for k, _ in SHOWN}}
            for m in music]


def systems_stats(medians: dict[str, MotionStats], music: list[MusicDance]) -> dict[str, MotionStats]:
    """Every row of the envelope table: the four systems' medians, then the engine per tempo."""
    return {**medians, **{f"engine, synthetic {m.bpm:g} BPM": m.stats for m in music}}


def targets(generated: MotionStats, music: list[MusicDance], env: MotionEnvelope) -> list[tuple[str, bool, str]]:
    out = []
    if music:
        offs = [m.offset_ms for m in music]
        out.append(("engine on synthetic music: mean kinematic-beat offset to the true beats < 40 ms at every tempo",
                    all(o is not None and o < OFFSET_MAX_MS for o in offs),
                    ", ".join(f"{m.bpm:g} BPM: {'n/a' if m.offset_ms is None else f'{m.offset_ms:.0f} ms'}" for m in music)))
    rows = {"generated (held-out scripts)": generated, **{f"engine {m.bpm:g} BPM": m.stats for m in music}}
    verdicts = {name: judge(st, None, env)["ok"] for name, st in rows.items()}
    body = ("speed", "skate", "displacement", "jerk")
    out.append(("motion inside the envelope (speed, skate, p99.9 displacement, jerk p95; issue 17 limits)",
                all(all(v[k] for k in body) for v in verdicts.values()),
                "; ".join(f"{n}: " + (", ".join(k for k in body if not v[k]) or "all in") for n, v in verdicts.items())))
    stacc = ("beat_speed_ratio", "peak_ratio")
    out.append(("not staccato: speed at beat / mid-beat and p95 / median inside the real takes' range",
                all(all(v.get(k, True) for k in stacc) for v in verdicts.values()),
                "; ".join(f"{n}: {st.beat_speed_ratio if st.beat_speed_ratio is None else round(st.beat_speed_ratio, 2)}"
                          f" / {st.peak_ratio:.2f}" for n, st in rows.items())))
    return out


def sections(rows: dict[str, MotionStats], music: list[MusicDance], env: MotionEnvelope, env_label: str) -> list[str]:
    """Markdown: the true-beat table and the envelope table."""
    lines = []
    if music:
        lines += [
            "## Beat alignment against true beats", "",
            "The table above scores beat alignment against the grid each dance was stretched onto (and the real takes "
            "against a grid snapped to their own kinematic beats), so it cannot fail for the model. Here the real "
            "offline engine (as `livedance dance`) hears synthetic four-on-the-floor drums; its kinematic beats are "
            "scored against the beat times the synthesiser rendered (in half-time: every other beat, either parity), "
            "from 6 s on.", "",
            "| tempo | level | beat alignment | mean abs offset ms | speed m/s | at beat / mid-beat | p95 / median |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in music_rows(music):
            lines.append(f"| {r['bpm']:g} BPM | {r['level'] if r['level'] is not None else 'n/a'} | {r['beat_alignment']:.3f} | "
                         f"{r['mean_abs_offset_ms'] if r['mean_abs_offset_ms'] is not None else 'n/a'} | {r['speed']:.2f} | "
                         f"{r['beat_speed_ratio'] if r['beat_speed_ratio'] is not None else 'n/a'} | {r['peak_ratio']:.2f} |")
        lines.append("")
    lim = limits(env)
    lines += [
        "## Realism envelope", "",
        f"Each system's medians over its dances of the envelope's measures (`livedance.motion.envelope`, at 60 fps), "
        f"and in brackets the ratio to {env_label}. Limits (issue 17): speed {lim['speed'][0]:.2f}-{lim['speed'][1]:.2f} m/s, "
        f"skate <= {lim['skate']:.2f} m/s, p99.9 displacement <= {lim['displacement']:.3f} m, jerk p95 <= {lim['jerk']:.0f} m/s³, "
        f"at beat / mid-beat {lim['beat_speed_ratio'][0]:.2f}-{lim['beat_speed_ratio'][1]:.2f}, "
        f"p95 / median {lim['peak_ratio'][0]:.2f}-{lim['peak_ratio'][1]:.2f} (the real takes' p5-p95).", "",
        "| dances | " + " | ".join(label for _, label in SHOWN) + " |",
        "|---|" + "---|" * len(SHOWN),
    ]
    for name, st in rows.items():
        cells = []
        for key, _ in SHOWN:
            v = getattr(st, key)
            cells.append("n/a" if v is None or not np.isfinite(v) else f"{v:.3g} ({v / env.reference(key):.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def plots(out: Path, rows: dict[str, MotionStats], music: list[MusicDance], env: MotionEnvelope) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    # Ratios to the envelope, with the limits.
    lim = limits(env)
    bounds = {"speed": [b / env.reference("speed") for b in lim["speed"]],
              **{k: [None, lim[k] / env.reference(k)] for k in ("skate", "displacement", "jerk")},
              **{k: [b / env.reference(k) for b in lim[k]] for k in ("beat_speed_ratio", "peak_ratio")}}
    fig, axes = plt.subplots(1, len(SHOWN), figsize=(3 * len(SHOWN), 3.4))
    for ax, (key, label) in zip(axes, SHOWN):
        vals = [getattr(st, key) for st in rows.values()]
        ratios = [np.nan if v is None else v / env.reference(key) for v in vals]
        ax.bar(range(len(ratios)), ratios, color="tab:blue")
        for b in bounds[key]:
            if b is not None:
                ax.axhline(b, color="tab:red", ls="--", lw=1)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xticks(range(len(ratios)), [n[:14] for n in rows], rotation=70, fontsize=6)
        ax.set_title(f"{label}\n(ratio to envelope)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "envelope.png", dpi=90)
    plt.close(fig)
    names.append("envelope.png")
    if music:
        # The engine's speed against the true beats: staccato shows as a dip at every red line.
        fig, axes = plt.subplots(len(music), 1, figsize=(10, 2.2 * len(music)), sharex=True, squeeze=False)
        for ax, m in zip(axes[:, 0], music):
            n = min(len(m.joints), int(8 * m.fps))
            sp = smoothed_speed(m.joints[:n], m.fps)
            ax.plot(np.arange(n) / m.fps, sp, lw=1.2)
            for b in m.beats[m.beats < n / m.fps]:
                ax.axvline(b, color="tab:red", alpha=0.35, lw=1)
            kb = kinematic_beats(m.joints[:n], m.fps)
            ax.plot(kb / m.fps, sp[kb], "kv", ms=4)
            ax.set_ylabel("m/s")
            ax.set_title(f"engine, synthetic {m.bpm:g} BPM: smoothed mean joint speed, true beats (red), "
                         "kinematic beats (triangles)", fontsize=8)
        axes[-1, 0].set_xlabel("seconds (from 6 s into the track)")
        fig.tight_layout()
        fig.savefig(out / "engine_speed_beats.png", dpi=90)
        plt.close(fig)
        names.append("engine_speed_beats.png")
    return names


def json_part(rows: dict[str, MotionStats], music: list[MusicDance], env: MotionEnvelope, env_label: str) -> dict[str, Any]:
    return {
        "music": music_rows(music),
        "envelope": {"reference": env_label, "limits": limits(env),
                     "medians": {n: {k: getattr(st, k) for k, _ in SHOWN} for n, st in rows.items()},
                     "ratios": {n: {k: (None if getattr(st, k) is None else getattr(st, k) / env.reference(k))
                                    for k, _ in SHOWN} for n, st in rows.items()}},
    }
