"""Streaming features equal offline features; the onset envelope is librosa's."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from livedance.config import FeatureSettings
from livedance.music.features import FeatureBlock, FeatureExtractor
from livedance.music.synth import drum_track

SR, HOP = 22050, 512


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    y, _ = drum_track(118, 12.0, sr=SR, seed=5, pattern="funk", timbre="electro", noise_db=30, reverb=0.3)
    return y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_random_chunks(music: np.ndarray, seed: int):
    fx = FeatureExtractor(FeatureSettings(chroma=True), SR, HOP)
    offline = fx(music)
    rng = np.random.default_rng(seed)
    blocks, i = [], 0
    while i < music.size:
        n = int(rng.choice([1, 7, 100, 511, 512, 513, 2048, 5000]))
        blocks.append(fx.process(music[i : i + n]))
        i += n
    online = FeatureBlock.concat(blocks)
    assert len(online) == len(offline) == music.size // HOP
    for name in ("log_mel", "onset", "bass_onset", "rms", "chroma", "times"):
        diff = np.max(np.abs(getattr(online, name) - getattr(offline, name)))
        assert diff < 1e-5, f"{name} differs by {diff}"


def test_onset_correlates_with_librosa(music: np.ndarray):
    s = FeatureSettings()
    ours = FeatureExtractor(s, SR, HOP)(music).onset
    ref = librosa.onset.onset_strength(
        y=music, sr=SR, n_fft=s.n_fft, hop_length=HOP, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax
    )
    # Our frame i ends at sample (i+1)*hop; librosa's frame j is centred on
    # j*hop and its envelope is shifted by n_fft/(2 hop) frames: ref[i+1] <-> ours[i].
    a, b = ours[:-2], ref[1 : ours.size - 1]
    assert np.corrcoef(a, b)[0, 1] >= 0.95


def test_shapes_times_and_silence():
    fx = FeatureExtractor(FeatureSettings(chroma=True), SR, HOP)
    block = fx(np.zeros(SR, dtype=np.float32))
    n = SR // HOP
    assert block.log_mel.shape == (n, 64) and block.chroma is not None and block.chroma.shape == (n, 12)
    np.testing.assert_allclose(block.times, np.arange(1, n + 1) * HOP / SR)
    # Digital silence: no onsets, no energy, the floor, nothing non-finite.
    assert not block.onset.any() and not block.rms.any()
    assert np.all(block.log_mel == FeatureSettings().floor_db)


def test_onset_peaks_on_drum_hits():
    y, beats = drum_track(100, 6.0, sr=SR, seed=1, pattern="four", bass=False)
    fx = FeatureExtractor(FeatureSettings(), SR, HOP)
    onset = fx(y).onset
    hit_frames = np.round((beats + fx.onset_latency) * SR / HOP - 1).astype(int)
    hit_frames = hit_frames[hit_frames < onset.size]
    near = np.array([onset[max(0, f - 1) : f + 2].max() for f in hit_frames])
    assert np.median(near) > 4 * np.median(onset)


def test_n_fft_below_hop_is_rejected():
    with pytest.raises(ValueError, match="n_fft"):
        FeatureExtractor(FeatureSettings(n_fft=256), SR, HOP)
