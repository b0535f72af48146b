"""Training: determinism, resume, metrics log, CLI errors, 2-process gloo DDP, and the composer's response to music."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from livedance.cli import main
from livedance.model.checkpoint import load_checkpoint, read_checkpoint
from livedance.model.composer import ComposerConfig
from livedance.model.context import MusicContext
from livedance.model.vae import UnitVAEConfig
from livedance.train.common import TrainConfig
from livedance.train.composer import train_composer
from livedance.train.data import synthetic_units
from livedance.train.units import train_units

torch.set_num_threads(1)

TINY = UnitVAEConfig(hidden=24, init_dim=8, move_dim=8)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["weights"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data():
    return synthetic_units(takes=8, units_per_take=6)


def test_units_training_is_deterministic_with_a_seed(tmp_path: Path, data):
    cfg = TrainConfig(steps=6, batch=8, val_every=3, seed=3)
    train_units(data, tmp_path / "a.pt", cfg, TINY, progress=False)
    train_units(data, tmp_path / "b.pt", cfg, TINY, progress=False)
    train_units(data, tmp_path / "c.pt", TrainConfig(steps=6, batch=8, val_every=3, seed=4), TINY, progress=False)
    assert _same(_weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt"))
    assert not _same(_weights(tmp_path / "a.pt"), _weights(tmp_path / "c.pt"))


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path, data):
    full = TrainConfig(steps=8, batch=8, val_every=4, seed=1)
    train_units(data, tmp_path / "full.pt", full, TINY, progress=False)
    part = TrainConfig(steps=8, batch=8, val_every=4, seed=1, stop_after=3)
    train_units(data, tmp_path / "part.pt", part, TINY, progress=False)
    assert read_checkpoint(tmp_path / "part.pt")["meta"]["step"] == 3
    train_units(data, tmp_path / "part.pt", full, TINY, resume=True, progress=False)
    assert _same(_weights(tmp_path / "full.pt"), _weights(tmp_path / "part.pt"))
    rows = list(csv.DictReader((tmp_path / "part.metrics" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 4, 8]  # the interrupted run's rows are kept
    assert all(np.isfinite(float(r["val_recon"])) for r in rows)


def test_composer_training_is_deterministic_and_writes_a_full_checkpoint(tmp_path: Path, data):
    train_units(data, tmp_path / "u.pt", TrainConfig(steps=4, batch=8, val_every=4), TINY, progress=False)
    ccfg = ComposerConfig(hidden=24, move_dim=8, init_dim=8, n_styles=2)
    cfg = TrainConfig(steps=5, batch=8, val_every=5, seed=2)
    val = train_composer(data, tmp_path / "u.pt", tmp_path / "a.pt", cfg, ccfg, window=4, progress=False)
    train_composer(data, tmp_path / "u.pt", tmp_path / "b.pt", cfg, ccfg, window=4, progress=False)
    assert _same(_weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt"))
    assert {"val_nll", "val_regression", "val_style", "val_adversarial"} <= set(val)
    lines = (tmp_path / "a.metrics" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 5
    model = load_checkpoint(tmp_path / "a.pt")
    feats, _ = model.next_unit(model.new_state(2, 0), MusicContext())
    assert feats.shape == (2, 32, 148) and np.isfinite(feats).all()


def test_resumed_composer_equals_an_uninterrupted_one(tmp_path: Path, data):
    """The composer uses dropout: torch's global RNG must be part of the resumable state."""
    train_units(data, tmp_path / "u.pt", TrainConfig(steps=2, batch=8, val_every=2), TINY, progress=False)
    ccfg = ComposerConfig(hidden=24, move_dim=8, init_dim=8, n_styles=2)
    full = TrainConfig(steps=6, batch=8, val_every=3, seed=5)
    train_composer(data, tmp_path / "u.pt", tmp_path / "full.pt", full, ccfg, window=4, progress=False)
    part = TrainConfig(steps=6, batch=8, val_every=3, seed=5, stop_after=2)
    train_composer(data, tmp_path / "u.pt", tmp_path / "part.pt", part, ccfg, window=4, progress=False)
    torch.manual_seed(123)  # whatever happens in between must not matter
    train_composer(data, tmp_path / "u.pt", tmp_path / "part.pt", full, ccfg, window=4, resume=True, progress=False)
    assert _same(_weights(tmp_path / "full.pt"), _weights(tmp_path / "part.pt"))


def test_cli_errors_are_one_line(tmp_path: Path, capsys):
    assert main(["train", "composer", "--data", "synthetic", "--out", str(tmp_path / "x.pt")]) == 2
    assert "needs --units" in capsys.readouterr().err
    assert main(["train", "units", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["train", "units", "--data", "synthetic", "--out", str(tmp_path / "x.pt"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no training state" in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_gloo_ddp(tmp_path: Path):
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "livedance.cli", "train", "units", "--data", "synthetic",
        "--out", str(out), "--steps", "4", "--batch", "8", "--hidden", "24", "--val-every", "2", "--no-progress",
        "--threads", "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("wrote") == 1  # only rank 0 reports
    meta = read_checkpoint(out)["meta"]
    assert meta["world"] == 2 and meta["step"] == 4
    rows = list(csv.DictReader((tmp_path / "ddp.metrics" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]


#: Style 0 of the synthetic data swings the arms: elbows, wrists, hands.
ARMS = [18, 19, 20, 21, 22, 23]


def _canonical_speed(model, tempo: float, energy: float, n: int = 64) -> float:
    """Mean arm-joint speed (m per canonical frame) of n first units decoded for one context, style 0.

    Only the joints the style moves are measured: elsewhere a briefly
    trained decoder adds a little frame-to-frame noise, which is not what
    the context controls.
    """
    from livedance import skeleton as sk
    from livedance.motion.representation import features_to_motion

    # busyness 0.25 = one swing per beat; energies chosen inside that family's training range.
    feats, _ = model.next_unit(model.new_state(n, 0, style=0), MusicContext(tempo, energy, 0.25, 0), 0.5)
    k, t, d = feats.shape
    rot, trans = features_to_motion(feats.reshape(-1, d), np.zeros(3), 0.0)
    joints = sk.forward_kinematics(rot, trans)[1].reshape(k, t, 24, 3)[:, :, ARMS]
    return float(np.linalg.norm(np.diff(joints, axis=1), axis=-1).mean())


@pytest.mark.slow
def test_composer_follows_energy_and_tempo(tmp_path: Path):
    """Synthetic dances whose real-time energy = canonical swing speed x tempo: asked for more
    energy, the composer must swing faster; asked for the same energy at a faster tempo, slower
    per canonical frame (the warp supplies the rest)."""
    data = synthetic_units()
    vcfg = UnitVAEConfig(hidden=64)
    train_units(data, tmp_path / "u.pt", TrainConfig(steps=400, batch=32, val_every=400, lr=2e-3), vcfg, progress=False)
    ccfg = ComposerConfig(hidden=64, n_styles=2)
    train_composer(data, tmp_path / "u.pt", tmp_path / "f.pt", TrainConfig(steps=800, batch=32, val_every=800, lr=2e-3),
                   ccfg, window=8, progress=False)
    model = load_checkpoint(tmp_path / "f.pt")
    low, mid, high = (_canonical_speed(model, 110.0, e) for e in (0.3, 0.8, 1.4))
    assert low < mid < high, (low, mid, high)
    slow, fast = _canonical_speed(model, 85.0, 1.0), _canonical_speed(model, 135.0, 1.0)
    assert fast < slow, (slow, fast)
