"""Training on a chosen device: ``--device`` errors, the determinism flags each kind of
device gets, and DDP's all-reduces (metrics and the stop flag) over two gloo
processes for the composer stage, stopped early and resumed. The NCCL/CUDA side
runs in ``scripts/gpu_check.sh`` on a machine with an NVIDIA GPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from livedance.cli import main
from livedance.errors import UserError
from livedance.model.checkpoint import read_checkpoint
from livedance.train.common import Dist, deterministic, training_device


@pytest.fixture
def restore_flags() -> Iterator[None]:
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
    if before[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = before[4]


no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


@no_gpu
def test_cpu_and_auto_train_on_the_cpu_here() -> None:
    assert training_device("cpu", Dist()) == torch.device("cpu")
    assert training_device("auto", Dist(0, 2, 1)) == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_names_the_fix(name: str) -> None:
    with pytest.raises(UserError) as err:
        training_device(name, Dist())
    assert "--device cpu" in str(err.value) and "CUDA build of torch" in str(err.value)


@no_gpu
def test_an_unknown_training_device_is_refused(capsys: Any, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown device"):
        training_device("gpu", Dist())
    assert main(["train", "units", "--data", "synthetic", "--out", str(tmp_path / "u.pt"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch sees no CUDA GPU" in err
    assert not (tmp_path / "u.pt").exists()


def test_cpu_training_is_strictly_deterministic(restore_flags: None) -> None:
    deterministic(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()


def test_cuda_training_gets_the_flags_cuda_can_honour(restore_flags: None, monkeypatch: Any) -> None:
    """Strict mode would make CUDA nll_loss / cross_entropy raise: on CUDA those warn,
    cuBLAS gets its fixed workspace before it starts, and cuDNN its deterministic kernels."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    deterministic(torch.device("cuda", 0))  # flags only: nothing touches a GPU
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's own choice is kept
    deterministic(torch.device("cuda", 0))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "livedance.cli", *args, "--no-progress", "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_two_process_gloo_composer_stops_together_and_resumes(tmp_path: Path) -> None:
    """The composer stage under DDP: metrics are averaged over both ranks and the
    early stop (--stop-after) is agreed by all-reduce, so neither rank hangs; the
    resumed run finishes the steps."""
    units, out = tmp_path / "u.pt", tmp_path / "c.pt"
    assert main(["train", "units", "--data", "synthetic", "--out", str(units), "--steps", "2", "--batch", "8",
                 "--hidden", "24", "--no-progress", "--threads", "1"]) == 0
    common = ["train", "composer", "--units", str(units), "--data", "synthetic", "--out", str(out), "--steps", "4",
              "--batch", "8", "--hidden", "24", "--window", "4", "--val-every", "1"]
    first = _torchrun(*common, "--stop-after", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert read_checkpoint(out)["meta"]["step"] == 2
    second = _torchrun(*common, "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    meta = read_checkpoint(out)["meta"]
    assert meta["world"] == 2 and meta["step"] == 4 and meta["final"]
    rows = (tmp_path / "c.metrics" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
