"""Paired music and dance for training (``livedance train ... --music DIR``).

Each motion sequence is paired with its music:

* AIST++ sequences by the music ID in their name:
  ``gBR_sBM_cAll_d04_mBR0_ch01`` dances to ``mBR0.*`` (wav, flac, ogg, mp3)
  in the music folder, starting together (offset 0);
* any other sequence by a sidecar next to its motion file,
  ``TAKE.music.toml`` (``TAKE`` = the motion file's name without suffix)::

      audio = "song.wav"   # in the --music folder, or next to the sidecar
      offset = 12.5        # seconds into the audio at the motion's first frame

A sidecar wins over the AIST++ name. ``--music synthetic[:SEED]`` instead
renders drum music on every sequence's own dance beats, each 8-unit section
as loud as the dance is energetic over it and each unit with as many hats per
beat as it is busy (the
proof of the paired path without paired data: docs/training.md).

Per unit, the music features are the live engine's own streaming features
(:class:`~livedance.music.features.FeatureExtractor` on the audio as
:class:`~livedance.audio.sources.FileSource` conditions it) pooled over
exactly the unit's beats (:func:`~livedance.music.unit_features.pool_units`).
A sequence whose music is missing, unreadable or shorter than the dance is
one logged line, and the rest trains.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from livedance.config import Settings
from livedance.errors import UserError
from livedance.model.music_encoder import AudioInput
from livedance.motion import aistpp

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".music.toml"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
#: Slices per unit (4 per beat) and units per window the encoder reads.
STEPS = 8
WINDOW_UNITS = 4
#: Units between the window's end and the unit composed: what the engine has heard (see music_encoder).
DEFAULT_LAG = 2
#: Units per section of ``--music synthetic`` (16 beats, 4 bars of 4/4), whose loudness holds over it.
SECTION_UNITS = 8
#: Audio may end this much before the dance's last beat (fade-outs, rounding).
LENGTH_TOLERANCE = 0.5


class PairingError(ValueError):
    """One sequence cannot be paired (the message names the file and the fix)."""


@dataclass(frozen=True)
class MusicRef:
    """A sequence's music: the audio file and the audio time at the motion's first frame."""

    audio: Path
    offset: float = 0.0


@dataclass
class PairedAudio:
    """Per-unit music of a dataset: ``pooled`` (U, STEPS, C) raw features, and the
    checkpoint's ``input`` (settings, window, train-split statistics)."""

    pooled: np.ndarray
    input: AudioInput

    def encoded(self) -> np.ndarray:
        """(U, STEPS, channels) standardised encoder input of every unit."""
        return self.input.standardise(self.pooled)


def stem_of(sequence_name: str) -> str:
    """``gBR_..._ch01~mirror@beat1`` -> ``gBR_..._ch01``: the motion file a sequence was cut from."""
    return sequence_name.split("@", 1)[0].split("~", 1)[0]


def find_music(motion: Path, music_dir: Path) -> MusicRef:
    """The music of the motion file ``motion``; raises :class:`PairingError`."""
    sidecar = motion.with_name(motion.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        try:
            spec = tomllib.loads(sidecar.read_text(encoding="utf-8"))
            name, offset = spec["audio"], float(spec.get("offset", 0.0))
            if not isinstance(name, str):
                raise TypeError("audio must be a string")
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PairingError(f"{sidecar}: unreadable ({exc}); write audio = \"FILE\" and offset = SECONDS") from None
        for path in (Path(name), music_dir / name, sidecar.parent / name):
            if path.is_file():
                return MusicRef(path, offset)
        raise PairingError(f"{sidecar}: its audio {name!r} is neither in {music_dir} nor next to it")
    parsed = aistpp.parse_name(motion.stem)
    if parsed is None:
        raise PairingError(
            f"{motion}: no music (not an AIST++ name with a music ID, and no {motion.stem}{SIDECAR_SUFFIX} next to it)"
        )
    found = sorted(p for p in music_dir.glob(parsed.music + ".*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not found:
        raise PairingError(f"{motion}: its music {parsed.music} ({parsed.music}.wav/.mp3/...) is not in {music_dir}")
    return MusicRef(found[0], 0.0)


def _load(ref: MusicRef, settings: Settings) -> np.ndarray:
    """The audio as the engine hears a file: mixed down, resampled to the analysis rate."""
    from livedance.audio.sources import FileSource

    try:
        return FileSource(ref.audio, settings.audio, realtime=False).samples
    except UserError as exc:
        raise PairingError(str(exc)) from None


def synthetic_music(
    data: Any, seed: int = 0, sample_rate: int = 22050, section: int = SECTION_UNITS
) -> dict[str, np.ndarray]:
    """Drum music for every motion file of ``data`` (stem -> mono audio at ``sample_rate``)
    on its own dance beats, each section of ``section`` units (from the take's
    start) as loud as the dance is energetic over it (mean energy quantile over
    the dataset -> -24..0 dB), and each unit with as many hats per beat as it
    is busy (1, 2, 3 or 4).

    Sections, not units, set the loudness because real music does: its level
    holds for bars (a verse, a chorus, a drop) and the dance follows it. With
    loudness following each unit's energy instead, the music the engine has
    heard when it composes a unit (``lag`` units earlier) says little about the
    unit, so there was little for a composer that hears music to learn. The descriptor
    composer gets the same music (its live loudness level is measured on it)."""
    from livedance.music.synth import render_on_beats

    def quantile(v: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.sort(v), v, side="right") / max(len(v), 1)

    q_energy, q_busy = quantile(np.asarray(data.energy)), quantile(np.asarray(data.busyness))
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(data.sequence_names):
        if name != stem_of(name):  # mirrors and late cuts share the original's music
            continue
        idx = np.asarray(data.order[k])
        if idx.size == 0:
            continue
        start, end = np.asarray(data.start_time)[idx], np.asarray(data.end_time)[idx]
        beats = np.stack([start, 0.5 * (start + end)], axis=1).reshape(-1)
        beats = np.append(beats, end[-1])
        part = np.arange(idx.size) // max(int(section), 1)
        level = (np.bincount(part, q_energy[idx]) / np.bincount(part))[part]  # (units,) the section's mean
        level = np.append(np.repeat(level, 2), level[-1])
        per_beat = np.append(np.repeat(idx, 2), idx[-1])
        loud = -24.0 + 24.0 * level
        subdiv = 1 + np.minimum((4 * q_busy[per_beat]).astype(int), 3)
        out[name] = render_on_beats(beats, loud, subdiv, sample_rate, seed=seed + k)
    return out


def _sources(roots: list[Path]) -> dict[str, Path]:
    from livedance.motion.dataset import find_sources

    return {s.path.stem: s.path for s in find_sources(roots)}


def pair(data: Any, roots: list[Path], music: str, settings: Settings, lag: int = DEFAULT_LAG) -> tuple[Any, PairedAudio]:
    """Pair ``data`` (a ``UnitDataset`` of ``roots``) with music; returns the units that have music and theirs.

    ``music``: a folder (AIST++ music IDs, sidecars), or ``synthetic[:SEED]``.

    Raises:
        UserError: not one sequence could be paired, or the data has no sequences (``--data synthetic``).
    """
    from livedance.music.features import FeatureExtractor
    from livedance.music.unit_features import pool_units

    if not hasattr(data, "sequence_names"):
        raise UserError("--music needs motion folders in --data (not 'synthetic'); for a no-data run use --music synthetic with real motion")
    sr, hop = settings.audio.sample_rate, settings.audio.hop
    extractor = FeatureExtractor(settings.features, sr, hop)
    kind, _, arg = music.partition(":")
    rendered = None
    if kind == "synthetic":
        if arg and not arg.isdigit():
            raise UserError(f"--music {music}: the seed after 'synthetic:' must be a whole number")
        rendered = synthetic_music(data, int(arg or 0), sr)
        files: dict[str, Path] = {}
    else:
        music_dir = Path(music).expanduser()
        if not music_dir.is_dir():
            raise UserError(f"--music {music}: no such folder (give the folder of the music files, or 'synthetic')")
        files = _sources(roots)
    by_stem: dict[str, list[int]] = {}
    for k, name in enumerate(data.sequence_names):
        by_stem.setdefault(stem_of(name), []).append(k)
    pooled = np.zeros((len(data.units), STEPS, 0), np.float32)
    keep = np.zeros(len(data.units), bool)
    failed = 0
    for stem, seqs in by_stem.items():
        idx = np.concatenate([np.asarray(data.order[k], np.int64) for k in seqs])
        try:
            if rendered is not None:
                if stem not in rendered:
                    raise PairingError(f"{stem}: no units to render music on")
                y, offset, what = rendered[stem], 0.0, "synthetic music"
            else:
                if stem not in files:
                    raise PairingError(f"{stem}: its motion file is no longer under --data")
                ref = find_music(files[stem], music_dir)
                y, offset, what = _load(ref, settings), ref.offset, str(ref.audio)
            start = np.asarray(data.start_time, np.float64)[idx] + offset
            end = np.asarray(data.end_time, np.float64)[idx] + offset
            seconds = len(y) / sr
            if start.min() < 0.0 or end.max() > seconds + LENGTH_TOLERANCE:
                raise PairingError(
                    f"{stem}: its dance spans {start.min():.1f}-{end.max():.1f} s of {what}, which is {seconds:.1f} s long "
                    "(wrong file, or wrong offset in its sidecar?)"
                )
        except PairingError as exc:
            log.error("%s; skipped", exc)
            failed += 1
            continue
        units = pool_units(extractor(y), start, end, STEPS)
        if pooled.shape[2] == 0:
            pooled = np.zeros((len(data.units), STEPS, units.shape[2]), np.float32)
        pooled[idx] = units
        keep[idx] = True
    if not keep.any():
        raise UserError(f"--music {music}: no sequence of --data could be paired with music ({failed} failed; see the lines above)")
    if failed:
        log.warning("paired %d motion files with music, %d skipped", len(by_stem) - failed, failed)
    sub = subset(data, keep)
    pooled = pooled[keep]
    train = np.asarray(sub.split).astype(str) == "train"
    flat = pooled[train if train.any() else slice(None)].reshape(-1, pooled.shape[2]).astype(np.float64)
    spec = AudioInput(
        sample_rate=sr, hop=hop, features=asdict(settings.features), steps=STEPS, units=WINDOW_UNITS, lag=int(lag),
        mean=flat.mean(0).astype(np.float32), std=np.maximum(flat.std(0), 1e-3).astype(np.float32),
    )
    return sub, PairedAudio(pooled, spec)


def subset(data: Any, keep: np.ndarray) -> Any:
    """The units of ``data`` where ``keep`` (U,) is true, sequences re-indexed; names unchanged."""
    keep = np.asarray(keep, bool)
    new_index = np.cumsum(keep) - 1
    n = len(keep)
    changes: dict[str, Any] = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n and not f.name.startswith("feature_"):
            changes[f.name] = value[keep]
    changes["order"] = [new_index[o[keep[o]]] for o in (np.asarray(o, np.int64) for o in data.order)]
    return replace(data, **changes)


def unit_windows(audio: AudioInput, data: Any, paired: PairedAudio) -> np.ndarray:
    """(U, units, steps, channels) what a composer with ``audio`` hears before each unit of
    ``data`` (paired as ``paired``): the training windows, standardised by the checkpoint."""
    from livedance.train.composer import audio_windows

    prev = np.full(len(data.units), -1, dtype=np.int64)
    for seq in data.order:
        seq = np.asarray(seq, dtype=np.int64)
        prev[seq[1:]] = seq[:-1]
    enc = audio.standardise(paired.pooled)
    enc = np.concatenate([enc, np.zeros((1,) + enc.shape[1:], np.float32)])
    return enc[audio_windows(prev, audio.units, audio.lag)]


def pair_for(audio: AudioInput, data: Any, roots: list[Path], music: str) -> tuple[Any, np.ndarray]:
    """Pair ``data`` with ``music`` at a checkpoint's own analysis settings; returns the
    paired units and their windows (:func:`unit_windows`)."""
    settings = Settings()
    settings.audio.sample_rate, settings.audio.hop = audio.sample_rate, audio.hop
    settings.features = audio.settings
    sub, paired = pair(data, roots, music, settings, audio.lag)
    return sub, unit_windows(audio, sub, paired)
