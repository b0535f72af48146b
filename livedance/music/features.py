"""Music features, hop by hop: log-mel, onset strength (spectral flux), RMS, chroma.

One :class:`FeatureExtractor` serves both paths: ``process(samples)`` takes
audio in chunks of any size as it arrives and returns the features of every
hop completed so far; ``extractor(y)`` runs the same code on a whole array
(training, offline analysis). Frames are *causal*: frame ``i`` ends at sample
``(i + 1) * hop``, left-padded with zeros before the start, so a frame's
features are final the moment its last hop has arrived and streaming equals
offline by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from livedance.config import FeatureSettings


@dataclass(frozen=True)
class FeatureBlock:
    """Features of ``n`` consecutive hops.

    ``times`` is when each hop's audio was complete (seconds since the start of
    the stream), i.e. the earliest instant its features exist.
    """

    log_mel: np.ndarray  # (n, n_mels) float32, dB (power)
    onset: np.ndarray  # (n,) float32, half-wave rectified log-mel flux, mean over bands
    rms: np.ndarray  # (n,) float32, RMS of the frame's samples
    times: np.ndarray  # (n,) float64 seconds
    chroma: np.ndarray | None = field(default=None)  # (n, 12) float32, max-normalised
    bass_onset: np.ndarray | None = field(default=None)  # (n,) float32, as ``onset`` over the mel bands below 200 Hz

    def __len__(self) -> int:
        return int(self.onset.shape[0])

    @staticmethod
    def concat(blocks: "list[FeatureBlock]") -> "FeatureBlock":
        """Join consecutive blocks (e.g. the outputs of ``process`` calls)."""
        blocks = [b for b in blocks if len(b)] or blocks[:1]
        chroma = None if blocks[0].chroma is None else np.concatenate([b.chroma for b in blocks])  # type: ignore[misc]
        bass = None if blocks[0].bass_onset is None else np.concatenate([b.bass_onset for b in blocks])  # type: ignore[misc]
        return FeatureBlock(
            log_mel=np.concatenate([b.log_mel for b in blocks]),
            onset=np.concatenate([b.onset for b in blocks]),
            rms=np.concatenate([b.rms for b in blocks]),
            times=np.concatenate([b.times for b in blocks]),
            chroma=chroma,
            bass_onset=bass,
        )


class FeatureExtractor:
    """Streaming == offline music features at one frame per ``hop`` samples."""

    def __init__(self, settings: FeatureSettings, sample_rate: int, hop: int) -> None:
        import librosa  # filter banks only; built once

        if settings.n_fft < hop:
            raise ValueError(f"features.n_fft ({settings.n_fft}) must be >= the hop ({hop})")
        self.settings = settings
        self.sample_rate = int(sample_rate)
        self.hop = int(hop)
        self.n_fft = int(settings.n_fft)
        self.frame_rate = self.sample_rate / self.hop
        fmax = min(settings.fmax, self.sample_rate / 2)
        self._window = np.hanning(self.n_fft + 1)[:-1].astype(np.float64)  # periodic Hann, as librosa
        self._mel = librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=settings.n_mels, fmin=settings.fmin, fmax=fmax
        ).astype(np.float64)
        # The bass bands (centres below 200 Hz: kick drum, bass line), whose
        # flux the beat tracker weighs extra (chords and hi-hats between the
        # beats are broadband and outnumber them in the plain mean).
        centres = librosa.mel_frequencies(n_mels=settings.n_mels + 2, fmin=settings.fmin, fmax=fmax)[1:-1]
        self._n_bass = max(1, int(np.sum(centres < 200.0)))
        self._chroma = (
            librosa.filters.chroma(sr=self.sample_rate, n_fft=self.n_fft).astype(np.float64) if settings.chroma else None
        )
        # The power floor: without it, the flux of near-silent noise (dB of
        # tiny numbers jumping around) would look like onsets.
        self._floor_db = float(settings.floor_db)
        # Peak spectral flux lags the attack by about a quarter window: the
        # Hann taper makes a new sound count most once it is inside the frame.
        # Frames also only exist at hop ends, half a hop late on average.
        self.onset_latency = (self.n_fft / 4 + self.hop / 2) / self.sample_rate
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample is time 0."""
        self._tail = np.zeros(self.n_fft - self.hop, dtype=np.float64)  # last frame's overlap
        self._pending = np.zeros(0, dtype=np.float64)  # samples of an incomplete hop
        self._prev_db = np.full(self.settings.n_mels, self._floor_db)  # frame -1 = silence
        self._frames = 0

    def process(self, samples: np.ndarray) -> FeatureBlock:
        """Feed the next ``samples`` (any length); features of the hops they complete."""
        x = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64).ravel()])
        n = x.shape[0] // self.hop
        if n == 0:  # live, every other frame brings less than a hop: keep it, no work
            self._pending = x
            return self._empty()
        used = n * self.hop
        self._pending = x[used:].copy()  # copies: do not keep a whole file alive
        buf = np.concatenate([self._tail, x[:used]])
        self._tail = buf[buf.shape[0] - (self.n_fft - self.hop) :].copy()
        return self._frames_of(buf, n)

    def __call__(self, y: np.ndarray) -> FeatureBlock:
        """Features of a whole signal, from a fresh state (state is restored after)."""
        saved = (self._tail, self._pending, self._prev_db, self._frames)
        self.reset()
        try:
            return self.process(y)
        finally:
            self._tail, self._pending, self._prev_db, self._frames = saved

    def _frames_of(self, buf: np.ndarray, n: int) -> FeatureBlock:
        if n == 0:
            return self._empty()
        # (n, n_fft) view; as_strided directly, as sliding_window_view's
        # checks cost more than a live hop's FFT.
        frames = as_strided(buf, (n, self.n_fft), (self.hop * buf.strides[0], buf.strides[0]), writeable=False)
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2  # (n, bins)
        mel_db = 10.0 * np.log10(np.maximum(power @ self._mel.T, 1e-10))
        np.maximum(mel_db, self._floor_db, out=mel_db)
        prev = np.vstack([self._prev_db[None, :], mel_db[:-1]])
        rise = np.maximum(mel_db - prev, 0.0)
        onset = rise.mean(axis=1)
        bass = rise[:, : self._n_bass].mean(axis=1)
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        chroma = None
        if self._chroma is not None:
            c = power @ self._chroma.T
            chroma = (c / np.maximum(c.max(axis=1, keepdims=True), 1e-10)).astype(np.float32)
        idx = np.arange(self._frames + 1, self._frames + n + 1)
        self._prev_db = mel_db[-1].copy()
        self._frames += n
        return FeatureBlock(
            log_mel=mel_db.astype(np.float32),
            onset=onset.astype(np.float32),
            rms=rms.astype(np.float32),
            times=idx * (self.hop / self.sample_rate),
            chroma=chroma,
            bass_onset=bass.astype(np.float32),
        )

    def _empty(self) -> FeatureBlock:
        m = self.settings.n_mels
        return FeatureBlock(
            log_mel=np.zeros((0, m), np.float32),
            onset=np.zeros(0, np.float32),
            rms=np.zeros(0, np.float32),
            times=np.zeros(0),
            chroma=np.zeros((0, 12), np.float32) if self._chroma is not None else None,
            bass_onset=np.zeros(0, np.float32),
        )


def warm_up(librosa_reference: bool = False) -> None:
    """Import and build the filter banks now, not on the first live hop (the
    first call costs seconds). ``librosa_reference`` also compiles librosa's
    numba onset and beat kernels, which only the offline comparisons use
    (``bench beats``): the live path never calls them, and compiling them cost
    every ``perform`` 2-9 s before it listened."""
    sr = 22050
    y = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    if librosa_reference:
        import librosa

        librosa.onset.onset_strength(y=y, sr=sr)
        librosa.beat.beat_track(y=y, sr=sr)
    FeatureExtractor(FeatureSettings(), sr, 512)(y)
