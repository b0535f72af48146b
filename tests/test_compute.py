"""The compute device (``--compute`` / ``engine.compute``): selection and its errors, a unit
step that keeps to the model's device, one host copy per unit, and the CPU fall-back when a
GPU fails mid-show, through the real engine and the shipped checkpoint.

This machine has no GPU, so a failing GPU is a :class:`DanceModel` that says it is on
``cuda:0`` and raises a CUDA error once (``FlakyGPU``); everything else is real.
``scripts/gpu_check.sh`` runs the CUDA side on a machine with an NVIDIA GPU.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from livedance.cli import main
from livedance.config import Settings
from livedance.live.commands import build_engine
from livedance.live.run import frames_offline
from livedance.model.checkpoint import load_checkpoint
from livedance.model.context import MusicContext
from livedance.model.dance import DanceModel
from livedance.model.device import CPU, is_device_error, resolve_compute, state_to
from livedance.music.synth import drum_track

SR = 22050
FPS = 60.0
CTX = MusicContext(tempo_bpm=124.0, energy=0.6, busyness=0.5)
#: The refusals below are what a machine without a GPU answers; with one they do not apply.
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


@pytest.fixture(scope="module")
def model() -> DanceModel:
    torch.set_num_threads(1)
    return load_checkpoint()


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return drum_track(120, 6.0, SR, seed=5, pattern="four")[0]


# ------------------------------------------------------------------ selection


def test_auto_picks_a_gpu_when_torch_sees_one_and_cpu_is_the_cpu() -> None:
    assert resolve_compute("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else CPU)
    assert resolve_compute(" CPU ") == CPU


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:1", "CUDA:0"])
def test_asking_for_cuda_without_one_names_the_fix(name: str) -> None:
    from livedance.errors import UserError

    with pytest.raises(UserError) as err:
        resolve_compute(name)
    msg = str(err.value)
    assert "\n" not in msg and "CPU-only build" in msg and "--compute cpu" in msg and "CUDA build of torch" in msg


def test_an_unknown_device_is_refused() -> None:
    from livedance.errors import UserError

    with pytest.raises(UserError, match="unknown .*auto, cpu, cuda or cuda:N"):
        resolve_compute("gpu0")


@no_gpu
@pytest.mark.parametrize(
    "argv",
    [
        ["dance", "SONG", "-o", "OUT.npz", "--compute", "cuda"],
        ["perform", "--input", "SONG", "--seconds", "1", "--no-window", "--compute", "cuda:0"],
        ["--set", "engine.compute=cuda", "dance", "SONG", "-o", "OUT.npz"],
        ["eval", "--data", "synthetic", "--report", "REPORT", "--compute", "cuda"],
        ["dance", "SONG", "-o", "OUT.npz", "--compute", "tpu"],
    ],
)
def test_cli_refuses_a_missing_gpu_in_one_line(argv: list[str], tmp_path: Path, music: np.ndarray, capsys: Any) -> None:
    import soundfile as sf

    song = tmp_path / "song.wav"
    sf.write(song, music[: SR * 2], SR)
    argv = [str(song) if a == "SONG" else str(tmp_path / a) if a in ("OUT.npz", "REPORT") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("livedance: error: compute device"), err
    assert not (tmp_path / "OUT.npz").exists() and not (tmp_path / "REPORT").exists()


def test_the_setting_is_shown_and_the_flag_reaches_the_engine(capsys: Any) -> None:
    assert main(["config"]) == 0
    assert 'compute = "auto"' in capsys.readouterr().out
    from livedance.cli import build_parser

    for argv in (["perform", "--compute", "cpu"], ["dance", "S", "-o", "O.npz", "--compute", "cpu"],
                 ["demo", "--compute", "cpu"], ["eval", "--data", "d", "--report", "r", "--compute", "cpu"]):
        assert build_parser().parse_args(argv).compute == "cpu"


def test_build_engine_puts_the_model_on_the_chosen_device() -> None:
    settings = Settings()
    settings.engine.compute = "cpu"
    engine = build_engine(settings)
    assert engine.model.device == CPU and engine.composer_state.prev_move.device == CPU


def test_device_errors_are_told_from_model_errors() -> None:
    assert is_device_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_device_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_device_error(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    assert not is_device_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))
    assert not is_device_error(ValueError("CUDA"))


# ------------------------------------------------------------- the unit step


class _FactoryAudit(TorchFunctionMode):
    """Records tensor factories called without ``device=`` (they would make CPU tensors
    next to GPU ones), by the file that called them."""

    FACTORIES = _device_constructors()

    def __init__(self) -> None:
        super().__init__()
        self.hostless: list[str] = []
        self.host_copies = 0  # .cpu() / .tolist() of more than a scalar
        self.to_numpy = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        import traceback

        kwargs = kwargs or {}
        if func in self.FACTORIES and kwargs.get("device") is None:
            from_tensor = func in (torch.as_tensor, torch.asarray, torch.tensor) and isinstance(args[0], torch.Tensor)
            if not from_tensor:
                here = Path(__file__).name
                caller = next(f for f in reversed(traceback.extract_stack()[:-1])
                              if "/torch/" not in f.filename and Path(f.filename).name != here)
                self.hostless.append(f"{Path(caller.filename).name}:{caller.lineno} {func.__name__}")
        if func in (torch.Tensor.cpu, torch.Tensor.tolist) and args[0].numel() > 1:
            self.host_copies += 1
        self.to_numpy += func is torch.Tensor.numpy  # raises on a GPU tensor: each needs a .cpu() first
        return func(*args, **kwargs)


def test_the_unit_step_makes_no_host_tensors_and_copies_to_the_host_once(model: DanceModel) -> None:
    """On CUDA a factory without ``device=`` is a CPU tensor mixed with GPU ones (an error
    or a hidden copy); none may run in a unit step, except where the host's music
    context enters it. The features cross to the host once, at the end."""
    import inspect

    # With the unit's playing time too, where next_unit takes it (the engine passes it).
    timed = {"unit_seconds": 1.0} if "unit_seconds" in inspect.signature(model.next_unit).parameters else {}
    state = model.new_state(3, seed=4)
    with _FactoryAudit() as audit:
        for kwargs in ({}, timed):
            feats, state = model.next_unit(state, CTX, **kwargs)
    inside = [h for h in audit.hostless if not h.startswith("context.py")]
    assert inside == [], inside
    assert audit.host_copies == 2 and audit.to_numpy == 2  # one per unit
    assert feats.shape == (3, 32, 148) and np.isfinite(feats).all()


def test_same_seed_same_dance_and_states_move_between_devices(model: DanceModel) -> None:
    def units(state: Any, n: int = 3) -> np.ndarray:
        out = []
        for _ in range(n):
            f, state = model.next_unit(state, CTX)
            out.append(f)
        return np.stack(out)

    a, b, c = units(model.new_state(2, 11)), units(model.new_state(2, 11)), units(model.new_state(2, 12))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    # A state already on the device passes through untouched; a state's random
    # stream continues unchanged between devices of one kind.
    st = model.new_state(2, 11)
    assert state_to(st, CPU) is st


def test_a_state_from_another_kind_of_device_gets_a_reproducible_stream(model: DanceModel) -> None:
    """What a CPU fall-back meets: a state whose generator state is CUDA's (16 bytes of
    Philox seed and offset). It gets a CPU generator seeded from those bytes."""
    from livedance.model.device import _generator_state

    st = model.new_state(2, 3)
    philox = torch.arange(16, dtype=torch.uint8)
    a, b = _generator_state(philox, CPU), _generator_state(philox, CPU)
    assert torch.equal(a, b) and a.numel() == torch.Generator().get_state().numel()
    assert not torch.equal(a, _generator_state(philox + 1, CPU))
    assert _generator_state(st.rng, CPU) is st.rng  # same kind: the stream just continues
    feats, _ = model.next_unit(type(st)(st.lstm, st.prev_move, st.last_frames, a, st.units), CTX)
    assert np.isfinite(feats).all()


# ------------------------------------------------------------- CPU fall-back


class FlakyGPU(DanceModel):
    """The shipped model claiming to be on ``cuda:0``; its ``fail_at``-th unit raises ``error``
    once (as a GPU out of memory or lost would), and with ``lost`` its weights cannot be
    read back (``.to()`` fails too), as after a device loss."""

    on_gpu = True
    fail_at = 3
    error: BaseException = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
    lost = False
    failed = False

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0) if self.on_gpu else super().device

    def next_unit(self, state: Any, *args: Any, **kwargs: Any) -> Any:
        if self.on_gpu and state.units == self.fail_at and not self.failed:
            self.failed = True
            raise self.error
        on, self.on_gpu = self.on_gpu, False  # the computing itself is on this machine's CPU
        try:
            return super().next_unit(state, *args, **kwargs)
        finally:
            self.on_gpu = on

    def new_state(self, batch: int, seed: int, style: int = -1) -> Any:
        on, self.on_gpu = self.on_gpu, False
        try:
            return super().new_state(batch, seed, style)
        finally:
            self.on_gpu = on

    def to(self, *args: Any, **kwargs: Any) -> Any:
        if self.on_gpu and self.lost:
            raise RuntimeError("CUDA error: unspecified launch failure")
        self.on_gpu = False
        return super().to(*args, **kwargs)


def _dance(audio: np.ndarray, flaky: dict[str, Any] | None = None) -> tuple[np.ndarray, Any]:
    settings = Settings()
    settings.engine.dancers = 2
    settings.engine.seed = 9
    settings.engine.compute = "cpu"  # the GPU is played by FlakyGPU
    engine = build_engine(settings)  # its first unit is made here, on the real model
    if flaky is not None:
        engine.model.__class__ = FlakyGPU
        for k, v in flaky.items():
            setattr(engine.model, k, v)
    joints = np.stack([f.joints for f in frames_offline(engine, audio, SR, FPS)])
    return joints, engine


def test_out_of_memory_mid_show_moves_to_the_cpu_and_the_dance_is_unchanged(music: np.ndarray, caplog: Any) -> None:
    """Out of memory leaves the GPU readable: model and state move, and the unit that
    failed is made again from the same state, so the dance is the one it would have been."""
    clean, _ = _dance(music)
    with caplog.at_level(logging.WARNING):
        joints, engine = _dance(music, {})
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "failed (CUDA out of memory" in warned[0].getMessage() and "on the CPU" in warned[0].getMessage()
    assert engine.stats.device_fallbacks == 1 and engine.stats.generation_failures == 0
    assert engine.model.device == CPU and engine.model.failed
    assert engine.stats.units > FlakyGPU.fail_at + 1  # it failed, and went on
    np.testing.assert_array_equal(joints, clean)


def test_a_lost_gpu_reloads_the_checkpoint_on_the_cpu_and_dances_on(music: np.ndarray, caplog: Any) -> None:
    """Device lost: nothing can be read back from it. The model is reloaded from its
    file on the CPU and the dancers carry on from the last unit's pose; twice the
    same failure gives twice the same dance."""
    lost = {"error": RuntimeError("CUDA error: device-side assert triggered"), "lost": True}
    with caplog.at_level(logging.WARNING):
        joints, engine = _dance(music, lost)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert type(engine.model) is DanceModel and engine.model.device == CPU
    assert engine.stats.device_fallbacks == 1 and engine.stats.generation_failures == 0
    assert engine.stats.units > FlakyGPU.fail_at + 1
    again, _ = _dance(music, lost)
    np.testing.assert_array_equal(joints, again)
    # No jump where the reloaded model takes over (the first frame that differs from
    # the dance without a failure): in the second after it no joint moves in one
    # frame by more than half as much again as the most the dance without a failure
    # ever does (it is another dance from there on, so not the same steps). That the
    # dancers resume from the last unit's pose is checked exactly below.
    clean, _ = _dance(music)
    steps = np.abs(np.diff(joints, axis=0)).max(axis=(1, 2, 3))
    takeover = int(np.argmax(np.abs(joints - clean).max(axis=(1, 2, 3)) > 1e-6))
    assert takeover > 0 and np.isfinite(joints).all()
    assert steps[takeover - 2 : takeover + int(FPS)].max() <= 1.5 * np.abs(np.diff(clean, axis=0)).max()


def test_the_reloaded_model_keeps_the_run_time_settings(model: DanceModel) -> None:
    from livedance.model.device import fall_back_to_cpu

    flaky = load_checkpoint()
    flaky.__class__ = FlakyGPU
    flaky.lost, flaky.beat_accent, flaky.foot_plant, flaky.beat_floor = True, 0.25, 0.5, 0.3
    state = flaky.new_state(2, 1)
    feats, state = flaky.next_unit(state, CTX)
    fresh, restarted = fall_back_to_cpu(flaky, state, RuntimeError("CUDA error: device lost"), feats)
    assert type(fresh) is DanceModel and (fresh.beat_accent, fresh.foot_plant, fresh.beat_floor) == (0.25, 0.5, 0.3)
    assert restarted.units == state.units == 1 and restarted.lstm is None
    # The restarted dancers continue from the last unit's last frames.
    assert torch.allclose(fresh.denormalise(restarted.last_frames), torch.from_numpy(feats[:, -2:]), atol=1e-5)


def test_model_errors_are_not_mistaken_for_a_gpu(music: np.ndarray) -> None:
    _, engine = _dance(music, {"error": ValueError("bad context")})
    assert engine.stats.device_fallbacks == 0 and engine.stats.generation_failures >= 1


def test_the_engine_bench_reports_unit_latency_per_device_and_crowd() -> None:
    from livedance.bench.compute import DANCERS, unit_latency

    threads = torch.get_num_threads()
    report = unit_latency(Settings(), units=2, warm=1)
    assert list(report) == ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else []) and report["cpu"]["device"] == "cpu" and report["cpu"]["torch_threads"] == 1
    for n in DANCERS:
        row = report["cpu"][f"dancers_{n}"]
        assert row["units"] == 2 and 0 < row["unit_ms_mean"] <= row["unit_ms_p99"]
    assert torch.get_num_threads() == threads  # the benchmark's one-thread setting does not leak


@no_gpu
def test_gpu_check_stops_clearly_without_a_gpu(tmp_path: Path) -> None:
    """scripts/gpu_check.sh needs an NVIDIA GPU and torch's CUDA build; here it has
    neither, and says so in one line with exit 2 before doing anything."""
    import os
    import subprocess

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2 and "no NVIDIA GPU here" in res.stderr, res.stderr
    # A GPU driver but this CPU-only torch wheel: the fix is the CUDA build.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: Test GPU (UUID: GPU-0)"\n')
    (fake / "nvidia-smi").chmod(0o755)
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={**env, "PATH": f"{fake}:/usr/bin:/bin", "PYTHON": sys.executable})
    assert res.returncode == 2 and "CPU-only build: install the CUDA build" in res.stderr, res.stderr
    assert not list((tmp_path / "out").glob("*.log"))  # nothing ran
