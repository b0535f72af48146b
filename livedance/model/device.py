"""Where the dance model computes (setting ``engine.compute``), and leaving a failing GPU.

The model and every dancer's state live on one torch device. ``auto`` picks
the first CUDA GPU torch can see, else the CPU::

    device = resolve_compute("auto")           # cuda:0 on a gaming laptop, cpu elsewhere
    model = load_checkpoint(path, device=device)
    state = model.new_state(8, seed=7)         # on that device
    model, state = fall_back_to_cpu(model, state, error, last_unit)   # after a CUDA error mid-show

A random stream carries over between devices of one kind (a CUDA generator
state fits any CUDA device); between kinds (CPU <-> CUDA) the new device's
generator is seeded from the old state, so the same state always continues
the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from livedance.errors import UserError

if TYPE_CHECKING:
    from livedance.model.dance import ComposerState, DanceModel

log = logging.getLogger(__name__)

CPU = torch.device("cpu")
CHOICES = "auto, cpu, cuda or cuda:N"
#: Where a CUDA user reads how to install the CUDA build of torch.
CUDA_HELP = "docs/engine.md, 'Running on a GPU'"
#: Words in the message of a RuntimeError that come from the GPU stack, not from the model.
_DEVICE_WORDS = ("CUDA", "cuDNN", "CUDNN", "CUBLAS", "cuBLAS", "device-side", "out of memory")

S = TypeVar("S", bound="ComposerState")


def no_cuda_reason() -> str:
    """Why torch sees no CUDA GPU here, in words (for error messages)."""
    return "this torch is the CPU-only build" if torch.version.cuda is None else "no NVIDIA GPU or driver is visible"


def resolve_compute(name: str) -> torch.device:
    """``"auto" | "cpu" | "cuda" | "cuda:N"`` (``--compute`` / ``engine.compute``) -> a concrete device, CUDA ones indexed.

    Raises:
        UserError: an unknown name, or CUDA asked for where torch sees none.
    """
    text = str(name).strip().lower()
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return CPU
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None:
        raise UserError(f"compute device {name!r} is unknown (--compute / engine.compute: use {CHOICES})")
    if not torch.cuda.is_available():
        raise UserError(
            f"compute device {name!r}: torch sees no CUDA GPU here ({no_cuda_reason()}); use --compute cpu or auto, "
            f"or install the CUDA build of torch ({CUDA_HELP})"
        )
    index = int(m.group(1)) if m.group(1) else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"compute device {name!r}: torch sees {count} CUDA GPU(s) here (use cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)


def is_device_error(exc: BaseException) -> bool:
    """Did ``exc`` come from the GPU (out of memory, device lost, a failed kernel) rather than the model?"""
    if isinstance(exc, (torch.OutOfMemoryError, torch.AcceleratorError)):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc) for w in _DEVICE_WORDS)


def _generator_state(rng: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A random-generator state for ``device``: ``rng`` itself where it fits (same kind of
    device), else a fresh generator's seeded from ``rng``'s bytes."""
    fresh = torch.Generator(device=device)
    if rng.numel() == fresh.get_state().numel():
        return rng
    return fresh.manual_seed(_seed_from(rng)).get_state()


def _seed_from(rng: torch.Tensor) -> int:
    """A seed from a generator state's bytes (a host tensor: a GPU generator's state lives on the host too)."""
    return int.from_bytes(hashlib.sha256(rng.numpy().tobytes()).digest()[:8], "little") & (2**31 - 1)


def state_to(state: S, device: torch.device) -> S:
    """``state`` with its tensors on ``device`` (itself when they already are)."""
    if state.prev_move.device == device:
        return state
    lstm = None if state.lstm is None else (state.lstm[0].to(device), state.lstm[1].to(device))
    return dataclasses.replace(
        state,
        lstm=lstm,
        prev_move=state.prev_move.to(device),
        last_frames=state.last_frames.to(device),
        rng=_generator_state(state.rng, device),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _reload_on_cpu(model: "DanceModel") -> "DanceModel":
    """The model again from its checkpoint file, on the CPU, with the old one's run-time settings."""
    from livedance.model.checkpoint import load_checkpoint

    if getattr(model, "source", None) is None:
        raise RuntimeError("the model did not come from a checkpoint file; it cannot be reloaded")
    fresh = load_checkpoint(model.source, device=CPU)
    # Plain attributes only (beat accent, foot planting, ...): parameters,
    # buffers and submodules are nn.Module's underscore dicts and stay fresh.
    fresh.__dict__.update({k: v for k, v in vars(model).items() if not k.startswith("_") and k != "training"})
    return fresh


def fall_back_to_cpu(
    model: "DanceModel", state: S, error: BaseException, last_unit: np.ndarray | None = None
) -> tuple["DanceModel", S]:
    """Move a model whose GPU failed, and a dancer state, to the CPU; logs one warning.

    Out of memory and most kernel errors leave the GPU readable: model and
    state are copied over and the dance continues exactly. Where the device
    is lost (its memory cannot be read back), the model is reloaded from its
    checkpoint file and the dancers restart their memory from ``last_unit``
    (B, T, D), the last unit handed out (host features), so they continue
    from the pose they were in.
    """
    log.warning("compute device %s failed (%s); the dance goes on on the CPU", model.device, _first_line(error))
    # One thread, as build_engine runs a CPU engine: cores stay free for audio and drawing.
    torch.set_num_threads(1)
    try:
        moved = model.to(CPU)
        return moved, state_to(state, CPU)
    except Exception as exc:  # noqa: BLE001 - any failure to read the GPU back means: start over from host data
        log.info("the GPU cannot be read back (%s): reloading the checkpoint on the CPU", _first_line(exc))
    fresh = _reload_on_cpu(model)
    restart = fresh.new_state(state.batch, _seed_from(state.rng))
    if last_unit is not None and len(last_unit) == state.batch:
        frames = fresh.normalise(torch.as_tensor(np.ascontiguousarray(last_unit[:, -2:]), dtype=torch.float32))
        restart = dataclasses.replace(restart, last_frames=frames)
    return fresh, dataclasses.replace(restart, units=state.units)
