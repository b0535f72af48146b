"""The paired-data path: music found per sequence, pooled as the engine hears it, a composer that hears it.

Real parts: the AIST++ sample motions (shared data), music rendered by
``livedance.music.synth`` and written as WAV files, the real feature
extractor, training loops, checkpoint files and the real engine.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livedance.cli import main
from livedance.config import FeatureSettings, Settings
from livedance.live.heard import HeardMusic
from livedance.live.run import frames_offline
from livedance.model.checkpoint import load_checkpoint, read_checkpoint
from livedance.model.composer import ComposerConfig
from livedance.model.context import MusicContext
from livedance.model.music_encoder import AudioInput
from livedance.model.vae import UnitVAEConfig
from livedance.motion.dataset import load_unit_dataset
from livedance.music.features import FeatureExtractor
from livedance.music.synth import drum_track
from livedance.music.unit_features import pool_units
from livedance.train.common import TrainConfig
from livedance.train.composer import audio_windows, train_composer
from livedance.train.paired import PairingError, find_music, pair, synthetic_music
from livedance.train.units import train_units
from tests.conftest import shared_data

torch.set_num_threads(1)

SR, HOP = 22050, 512
TINY = UnitVAEConfig(hidden=24, init_dim=8, move_dim=8)


@pytest.fixture(scope="module")
def aist(tmp_path_factory):
    root = shared_data("aistpp-sample", "motions")
    return root, load_unit_dataset([root], cache_dir=tmp_path_factory.mktemp("units"))


@pytest.fixture(scope="module")
def audio_checkpoint(aist, tmp_path_factory):
    """A tiny units + audio-composer pair trained on the AIST++ sample with synthetic music."""
    root, data = aist
    sub, audio = pair(data, [root], "synthetic", Settings())
    out = tmp_path_factory.mktemp("ckpt")
    train_units(sub, out / "u.pt", TrainConfig(steps=4, batch=8, val_every=4), TINY, progress=False)
    ccfg = ComposerConfig(hidden=24, move_dim=8, init_dim=8, n_styles=len(sub.style_names))
    train_composer(sub, out / "u.pt", out / "a.pt", TrainConfig(steps=5, batch=8, val_every=5), ccfg, window=4,
                   progress=False, audio=audio)
    return out / "a.pt"


def _stream(heard: HeardMusic, y: np.ndarray, beats: np.ndarray, until: float, chunk: int = 700) -> None:
    """Feed ``y`` up to ``until`` seconds in odd-sized chunks, each beat once its time has been heard."""
    extractor = FeatureExtractor(FeatureSettings(), SR, HOP)
    told = 0
    for start in range(0, int(until * SR), chunk):
        block = extractor.process(y[start : min(start + chunk, int(until * SR))])
        now = min(start + chunk, int(until * SR)) / SR
        new = [float(b) for b in beats[told:] if b <= now]
        told += len(new)
        heard.add(block, new)


def test_training_pools_exactly_what_the_engine_hears():
    y, beats = drum_track(118, 14.0, SR, seed=4, pattern="funk")
    block = FeatureExtractor(FeatureSettings(), SR, HOP)(y)
    pooled = pool_units(block, beats[:-2:2], beats[2::2], 8)  # every unit of two beats, as a take is cut
    flat = pooled.reshape(-1, pooled.shape[-1])
    spec = AudioInput(SR, HOP, {}, 8, 4, 2, flat.mean(0), flat.std(0) + 1e-3)
    heard = HeardMusic(spec, SR, HOP, FeatureSettings())
    assert np.array_equal(heard.window(), spec.silence())  # nothing heard yet: all padding, as before a take
    until = beats[16] + 0.05  # beat 16 heard: 8 whole units behind it
    _stream(heard, y, beats, until)
    live = heard.window()
    offline = spec.standardise(pooled[4:8])  # units of beats 8-16
    np.testing.assert_allclose(live, offline, atol=1e-4)
    assert live[..., -1].min() == 1.0  # all present
    # Early in the song: the missing older units are padding, the heard ones real.
    early = HeardMusic(spec, SR, HOP, FeatureSettings())
    _stream(early, y, beats, beats[4] + 0.05)
    w = early.window()
    assert np.array_equal(w[:2], np.zeros_like(w[:2])) and w[2:, :, -1].min() == 1.0
    np.testing.assert_allclose(w[2:], spec.standardise(pooled[0:2]), atol=1e-4)


def test_training_window_lags_the_composed_unit():
    prev = np.array([-1, 0, 1, 2, 3, -1, 5])  # two sequences: units 0-4 and 5-6
    win = audio_windows(prev, units=2, lag=2)
    pad = len(prev)
    assert win[4].tolist() == [1, 2]  # unit 4 hears units 1 and 2: the music up to unit 3's start
    assert win[2].tolist() == [pad, 0] and win[1].tolist() == [pad, pad] and win[6].tolist() == [pad, pad]
    assert audio_windows(prev, units=1, lag=0)[3].tolist() == [3]  # lag 0: the unit's own music (offline)


def test_music_is_found_by_aist_id_or_sidecar_and_each_failure_is_one_line(aist, tmp_path, caplog):
    root, data = aist
    music = tmp_path / "music"
    music.mkdir()
    y, _ = drum_track(100, 40.0, SR, seed=1)
    sf.write(music / "mBR2.wav", y, SR)  # both break sequences dance to mBR2
    sf.write(music / "mJS2.wav", y[: 2 * SR], SR)  # far shorter than its dance: mismatched
    # mJS4 is missing altogether
    with caplog.at_level(logging.ERROR, logger="livedance.train.paired"):
        sub, audio = pair(data, [root], str(music), Settings())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert any("mJS4" in e and "not in" in e for e in errors)
    assert any("gJS_sBM_cAll_d03_mJS2_ch07" in e and "2.0 s long" in e for e in errors)
    kept = {sub.sequence_names[s].split("~")[0].split("@")[0] for s in np.unique(sub.sequence)}
    assert kept == {"gBR_sBM_cAll_d04_mBR2_ch08", "gBR_sBM_cAll_d06_mBR2_ch06"}
    assert audio.pooled.shape == (len(sub.units), 8, 64 + 2) and audio.input.channels == 66 + 3
    assert all(np.array_equal(sub.units[o], data.units[np.flatnonzero(data.sequence == s)]) for s, o in
               ((int(sub.sequence[o[0]]), o) for o in sub.order if len(o)))
    # A sidecar names any audio and its offset, and wins over the AIST++ name.
    take = tmp_path / "take"
    take.mkdir()
    src = root / "gBR_sBM_cAll_d04_mBR2_ch08.pkl"
    shutil.copy(src, take / src.name)
    (take / "gBR_sBM_cAll_d04_mBR2_ch08.music.toml").write_text('audio = "song.wav"\noffset = 1.5\n')
    sf.write(take / "song.wav", y, SR)
    assert find_music(take / src.name, music) == find_music(take / src.name, tmp_path)
    ref = find_music(take / src.name, music)
    assert ref.audio == take / "song.wav" and ref.offset == 1.5
    (take / "gBR_sBM_cAll_d04_mBR2_ch08.music.toml").write_text('offset = 1.5\n')
    with pytest.raises(PairingError, match="unreadable"):
        find_music(take / src.name, music)
    with pytest.raises(PairingError, match="no music"):
        find_music(tmp_path / "05_01.bvh", music)


def test_synthetic_music_is_as_loud_as_the_dance_is_energetic(aist):
    root, data = aist
    sub, audio = pair(data, [root], "synthetic", Settings())
    assert len(sub.units) == len(data.units)  # every sequence gets music
    loud = audio.pooled[:, :, 65].mean(1)  # RMS dB channel (after 64 mel bands and the onset)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(loud), rank(sub.energy))[0, 1] > 0.8
    music = synthetic_music(data)
    assert set(music) == {n for n in data.sequence_names if "~" not in n and "@" not in n}


def test_checkpoint_says_it_hears_and_the_encoder_changes_the_dance(audio_checkpoint):
    payload = read_checkpoint(audio_checkpoint)
    assert payload["audio"] is not None and payload["composer_config"]["audio_dim"] == 69
    model = load_checkpoint(audio_checkpoint)
    assert model.audio is not None and model.audio.lag == 2
    rng = np.random.default_rng(0)
    quiet, loud = model.audio.silence(), rng.standard_normal(model.audio.silence().shape).astype(np.float32)
    a, _ = model.next_unit(model.new_state(1, 3), MusicContext(audio=quiet))
    b, _ = model.next_unit(model.new_state(1, 3), MusicContext(audio=loud))
    c, _ = model.next_unit(model.new_state(1, 3), MusicContext(audio=None))  # nothing heard = silence
    assert not np.allclose(a, b) and np.array_equal(a, c)
    # Paired-data composers learn from the music, not from the dance-measured energy and busyness (the paper's set-up).
    assert payload["composer_config"]["descriptors"] is False
    calm, _ = model.next_unit(model.new_state(1, 3), MusicContext(energy=0.1, busyness=0.1, audio=loud))
    wild, _ = model.next_unit(model.new_state(1, 3), MusicContext(energy=3.0, busyness=0.9, audio=loud))
    fast, _ = model.next_unit(model.new_state(1, 3), MusicContext(tempo_bpm=160.0, audio=loud))
    assert np.array_equal(calm, wild) and np.array_equal(calm, b) and not np.array_equal(calm, fast)


def test_the_training_loss_reaches_every_music_encoder_weight(aist, audio_checkpoint):
    """The encoder's code is in the composer's training loss: were it ignored or
    detached there, its weights would get no gradient and never learn the music."""
    from livedance.model.critics import DescriptorRegressor, TransitionCritic
    from livedance.model.context import CONTEXT_DIM, DescriptorStats
    from livedance.model.composer import ComposerLossWeights
    from livedance.model.dance import NormStats
    from livedance.train.composer import CodeSequences, composer_losses

    root, data = aist
    sub, audio = pair(data, [root], "synthetic", Settings())
    model = load_checkpoint(audio_checkpoint)
    payload = read_checkpoint(audio_checkpoint)
    norm = NormStats(payload["norm"]["mean"].numpy(), payload["norm"]["std"].numpy())
    x = torch.from_numpy((np.asarray(sub.units, np.float32) - norm.mean) / norm.std)
    stats = DescriptorStats.fit(sub.tempo, sub.energy, sub.busyness)
    seq = CodeSequences(model.vae, x, sub, stats, "train", 4, audio)
    n = len(sub.style_names)
    composer = model.composer.train()
    composer.zero_grad()
    losses, _ = composer_losses(composer, DescriptorRegressor(8, n), TransitionCritic(8, CONTEXT_DIM + n + 69),
                                seq.batch(torch.arange(min(8, len(seq.windows)))), ComposerLossWeights(), n,
                                torch.Generator().manual_seed(0))
    losses["total"].backward()
    music = {k: v for k, v in composer.named_parameters() if k.startswith("music.")}
    assert music
    for key, value in music.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, f"{key} gets no gradient from the loss"


def test_the_shipped_checkpoint_hears_no_audio():
    model = load_checkpoint()
    assert model.audio is None and read_checkpoint()["composer_config"].get("audio_dim", 0) == 0
    window = np.ones((4, 8, 69), np.float32)
    a, _ = model.next_unit(model.new_state(2, 5), MusicContext(tempo_bpm=120.0))
    b, _ = model.next_unit(model.new_state(2, 5), MusicContext(tempo_bpm=120.0, audio=window))
    assert np.array_equal(a, b)


def test_the_engine_feeds_the_encoder_only_music_already_heard(audio_checkpoint):
    from livedance.live.commands import build_engine

    settings = Settings()
    settings.engine.checkpoint = str(audio_checkpoint)
    a, beats = drum_track(120, 12.0, SR, seed=2)
    b = a.copy()
    b[int(8.0 * SR) :] = drum_track(120, 12.0, SR, seed=9, pattern="four", gain=0.9)[0][int(8.0 * SR) :]
    runs = []
    for song in (a, b):
        engine = build_engine(settings)
        assert engine.heard is not None
        frames = list(frames_offline(engine, song, SR, 60.0))
        runs.append(np.stack([f.joints for f in frames]))
        assert engine.heard.window()[..., -1].min() == 1.0  # by the end it hears whole units
    cut = int(8.0 * 60)
    assert np.array_equal(runs[0][:cut], runs[1][:cut])  # nothing from after 8 s reached a frame before it
    assert not np.array_equal(runs[0][cut:], runs[1][cut:])


def test_two_process_gloo_ddp_trains_the_music_encoder(aist, audio_checkpoint, tmp_path: Path):
    root, _ = aist
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(port), "-m", "livedance.cli", "train", "composer", "--data", str(root), "--music", "synthetic",
        "--units", str(audio_checkpoint.with_name("u.pt")), "--out", str(out), "--steps", "2", "--batch", "8",
        "--hidden", "24", "--window", "4", "--val-every", "2", "--cache", str(tmp_path / "units"), "--no-progress",
        "--threads", "1",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    payload = read_checkpoint(out)
    assert payload["meta"]["world"] == 2 and payload["meta"]["music"] == "synthetic"
    assert payload["audio"] is not None and payload["composer_config"]["audio_dim"] == 69
    assert any(k.startswith("composer.music.") for k in payload["weights"])


def test_cli_pairing_errors_are_one_line(tmp_path: Path, capsys):
    out = str(tmp_path / "x.pt")
    assert main(["train", "units", "--data", "synthetic", "--music", "synthetic", "--out", out]) == 2
    assert main(["train", "units", "--data", str(tmp_path), "--music", str(tmp_path / "nope"), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "'synthetic'" in err[0] and "nope: no such folder" in err[1]
    # eval --music is for checkpoints that hear: the shipped one does not.
    assert main(["eval", "--data", "synthetic", "--music", "synthetic", "--report", str(tmp_path / "r")]) == 2
    assert "hears no music" in capsys.readouterr().err


def test_a_paired_composer_dances_harder_to_louder_music(aist, tmp_path):
    """The music matters: a composer trained on the AIST++ sample with synthetic
    music (each section as loud as the dance is energetic) hears from the music
    how energetic to be, and dances harder to loud windows than to quiet ones
    with everything else the same, more so than with its heard levels knocked
    out. Fails if the music stops reaching the dance: the pairing misaligned
    (the heard energy no longer follows the dance's), or the heard levels
    untrained or unread (docs/training.md, 'Proof without paired data')."""
    from dataclasses import replace

    from livedance.eval.dances import render
    from livedance.motion.kinematic_beats import mean_joint_speed
    from livedance.train.paired import unit_windows

    root, data = aist
    sub, audio = pair(data, [root], "synthetic", Settings())
    shipped = read_checkpoint()
    names = list(shipped["style_names"])  # the shipped unit VAE's styles; the sample has two of them
    sub = replace(sub, style_names=names, style=np.array([names.index(sub.style_names[s]) for s in sub.style]))
    vae = shipped["vae_config"]
    ccfg = ComposerConfig(move_dim=vae["move_dim"], init_dim=vae["init_dim"], n_styles=len(names), hidden=48)
    out = tmp_path / "hears.pt"
    train_composer(sub, Path(__file__).parents[1] / "livedance" / "checkpoints" / "default.pt", out,
                   TrainConfig(steps=600, batch=32, val_every=600, save_every=600, threads=1), ccfg, window=4,
                   progress=False, audio=audio)
    model = load_checkpoint(out)
    win = unit_windows(model.audio, sub, audio)
    with torch.no_grad():
        heard = model.composer.music.heard_levels(torch.from_numpy(win)).numpy()
    full = win[:, 0, 0, -1] > 0  # all four heard units are music, not the silence before a take
    assert np.corrcoef(heard[full, 0], sub.energy[full])[0, 1] > 0.4  # it hears how energetic the dance is
    order = np.flatnonzero(full)[np.argsort(heard[full, 0])]

    def speeds() -> dict[str, float]:
        out = {}
        for name, pick in (("quiet", order[:6]), ("loud", order[-6:])):
            moved = []
            for i in pick:
                state, units = model.new_state(4, 0), []
                for _ in range(4):  # mid energy asked: the composer with heard levels does not read it
                    ctx = MusicContext(tempo_bpm=100.0, energy=1.0, busyness=0.5, audio=win[i])
                    feats, state = model.next_unit(state, ctx, temperature=0.5)
                    units.append(feats)
                for b in range(4):
                    dance = render(np.stack([u[b] for u in units[1:]]), np.full(3, 100.0))
                    moved.append(mean_joint_speed(dance.joints, dance.fps).mean())
            out[name] = float(np.mean(moved))
        return out

    hears = speeds()
    with torch.no_grad():  # the same composer deaf to how loud it is: its heard levels stay at the mean
        model.composer.music.levels.weight.zero_()
    deaf = speeds()
    # As trained (600 steps): loud 1.21x quiet; deaf 1.10x (what the music code alone carries).
    assert hears["loud"] > 1.1 * hears["quiet"], hears
    assert hears["loud"] / hears["quiet"] > deaf["loud"] / deaf["quiet"] + 0.05, (hears, deaf)
