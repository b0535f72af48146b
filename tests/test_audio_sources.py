"""File source and input conditioning: formats, rates, channels, bad samples."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.audio.condition import Conditioner
from livedance.audio.devices import find_device
from livedance.audio.sources import FileSource, open_source
from livedance.config import AudioSettings
from livedance.errors import UserError

SR = 22050


def tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 192000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_any_rate_and_channel_count_becomes_mono_at_the_analysis_rate(tmp_path: Path, rate: int, channels: int):
    x = np.repeat(tone(rate, 1.0, 300.0)[:, None], channels, axis=1)
    path = tmp_path / f"t{rate}_{channels}.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    src = FileSource(path, AudioSettings(), realtime=False)
    y = src.samples
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - SR) <= 2
    # Still a 300 Hz tone at the same level.
    spec = np.abs(np.fft.rfft(y[2000:-2000]))
    assert abs(np.argmax(spec) * SR / (y.size - 4000) - 300.0) < 3
    assert abs(np.sqrt(np.mean(y[2000:-2000] ** 2)) - 0.3 / np.sqrt(2)) < 0.02


def test_ogg_flac_and_mp3_decode(tmp_path: Path):
    for ext in ("ogg", "flac", "mp3"):
        path = tmp_path / f"t.{ext}"
        sf.write(path, tone(44100, 0.5), 44100)
        assert abs(FileSource(path, AudioSettings(), realtime=False).duration - 0.5) < 0.06  # mp3 pads frames


def test_nan_inf_dc_and_clipping_are_sanitised(tmp_path: Path):
    x = tone(SR, 2.0) + 0.4  # DC offset
    x[1000:1100] = np.nan
    x[5000] = np.inf
    x[6000] = -np.inf
    x[9000:9100] = 50.0  # far beyond full scale
    path = tmp_path / "bad.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    src = FileSource(path, AudioSettings(), realtime=False)
    y = src.samples
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 8.0
    assert src.bad_samples == 102
    assert abs(float(np.mean(y[SR:]))) < 0.01  # DC gone after the filter settles


def test_streaming_conditioner_matches_whole_at_the_same_rate():
    x = tone(SR, 1.0) + 0.2
    whole = Conditioner(SR, SR)(x)
    c = Conditioner(SR, SR)
    parts = np.concatenate([c(x[i : i + 300]) for i in range(0, x.size, 300)])
    np.testing.assert_allclose(parts, whole, atol=1e-6)


def test_digital_silence_is_accepted(tmp_path: Path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    y = FileSource(path, AudioSettings(), realtime=False).samples
    assert y.size == SR and not y.any()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "cannot read audio file"),
        (lambda p: sf.write(p, np.zeros(100, np.float32), 4000), "sample rate 4000"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 22050), "empty|cannot read"),
    ],
)
def test_bad_files_are_one_line_user_errors(tmp_path: Path, make, match: str):
    path = tmp_path / "x.wav"
    make(path)
    with pytest.raises(UserError, match=match) as err:
        FileSource(path, AudioSettings(), realtime=False)
    assert "\n" not in str(err.value)


def test_directory_is_rejected(tmp_path: Path):
    with pytest.raises(UserError, match="not a file"):
        FileSource(tmp_path, AudioSettings())


def test_realtime_pacing_delivers_about_wall_clock(tmp_path: Path):
    path = tmp_path / "t.wav"
    sf.write(path, tone(SR, 3.0), SR)
    with open_source(AudioSettings(), str(path), realtime=True) as src:
        got = src.read(10 * SR)
        assert got.size < 0.1 * SR  # nothing in advance
        time.sleep(0.3)
        got = src.read(10 * SR)
        assert 0.2 * SR < got.size < 0.6 * SR
        assert not src.finished


def test_fast_read_until_finished(tmp_path: Path):
    path = tmp_path / "t.wav"
    sf.write(path, tone(SR, 1.0), SR)
    with FileSource(path, AudioSettings(), realtime=False) as src:
        chunks = []
        while not src.finished:
            chunks.append(src.read(1000))
    assert sum(c.size for c in chunks) == SR and src.read(1000).size == 0


def test_unknown_device_is_a_one_line_error(pulse_sink):
    assert find_device(None, "input").inputs > 0  # the virtual device is there...
    with pytest.raises(UserError, match="no audio input device matches") as err:
        find_device("no-such-device-xyz", "input")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="index 999"):
        find_device("999", "input")


def test_devices_command_lists_the_virtual_device(pulse_sink):
    import subprocess
    import sys

    # --no-link: Link discovery is multicast, which tests run only in a private
    # network namespace (tests/test_sync_link.py), never on the real interfaces.
    out = subprocess.run(
        [sys.executable, "-m", "livedance.cli", "devices", "--no-link"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert "pulse" in out.stdout and "<" in out.stdout  # listed, with the default input marked

