"""Shared training machinery: config, seeding, torchrun/DDP, metrics log, resumable state."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import pickle
import re
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import distributed as dist
from torch import nn
from tqdm import tqdm

from livedance.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings common to both stages (CLI flags of `livedance train`)."""

    steps: int = 4000
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    val_every: int = 250
    save_every: int = 500
    max_minutes: float | None = None  # wall-clock bound; stops early and saves
    stop_after: int | None = None  # run at most this many steps now, save, continue later with --resume
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads; None = torch's default
    grad_clip: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original (not the bounds of one sitting)."""
        transient = ("steps", "max_minutes", "stop_after", "threads", "val_every", "save_every")
        return {k: v for k, v in self.to_dict().items() if k not in transient}


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def training_device(name: str, info: Dist) -> torch.device:
    """``--device`` (cpu, cuda, cuda:N or auto) -> this process's device; under torchrun
    each process takes the GPU of its local rank."""
    text = name.strip().lower()
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None and text != "auto":
        raise UserError(f"--device {name}: unknown device (use cpu, cuda, cuda:N or auto)")
    if not torch.cuda.is_available():
        from livedance.model.device import no_cuda_reason

        raise UserError(
            f"--device {name}: torch sees no CUDA GPU here ({no_cuda_reason()}); use --device cpu, "
            "or install the CUDA build of torch (docs/training.md, 'Training on GPUs')"
        )
    count = torch.cuda.device_count()
    index = info.local_rank if info.enabled else int(m.group(1) or 0) if m else 0
    if index >= count:
        what = f"local rank {index}" if info.enabled else f"cuda:{index}"
        raise UserError(f"--device {name}: {what} needs {index + 1} GPUs, torch sees {count} (fewer --nproc_per_node, or cuda:0..{count - 1})")
    return torch.device("cuda", index)


def deterministic(device: torch.device) -> None:
    """Switch on the deterministic algorithms ``device`` has.

    On CPU every op used has one: two runs with the same seed give
    bit-identical weights (the tests check this). On CUDA, cuBLAS needs a
    fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts,
    so it is set here, before any GPU work) and cuDNN its deterministic
    kernels; some ops have no deterministic CUDA kernel at all (nll_loss /
    cross_entropy, used by the composer's style head), and torch would
    refuse to run them, so on CUDA those warn instead (``warn_only``): runs
    on one GPU are reproducible up to those ops.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


def setup(cfg: TrainConfig) -> tuple[Dist, torch.device]:
    """Seed, pick the device, switch on its deterministic algorithms and, under
    torchrun, join the process group (gloo on CPU, NCCL on GPUs)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = training_device(cfg.device, info)
    deterministic(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    if info.enabled and not dist.is_initialized():
        # gloo on CPU, nccl on GPUs; torchrun provides MASTER_ADDR/PORT, RANK, WORLD_SIZE.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        log.info("joined process group: rank %d of %d", info.rank, info.world)
    return info, device


def teardown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


#: The DDP wrappers :func:`wrap` made, held until the process ends, which under
#: torchrun it does without running destructors (``train.cli.run``): freeing
#: one frees the gloo process group after :func:`teardown`, and that
#: destructor can hang for good joining a worker thread once the other rank
#: has exited (a fresh-clone CI run: a rank stuck in ~ProcessGroupGloo from
#: the DDP Reducer's dealloc, its checkpoint already written).
_WRAPPED: list[nn.Module] = []


def wrap(module: nn.Module, info: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun, the module itself otherwise."""
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    _WRAPPED.append(ddp)
    return ddp


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def batches(n: int, batch: int, seed: int, info: Dist) -> Iterator[np.ndarray]:
    """Endless shuffled batches of indices in [0, n), disjoint across ranks.

    Every rank draws the same permutation (same seed) and takes its own
    slice, so together the ranks see each epoch exactly once.
    """
    if n == 0:
        raise UserError("no training units (check --data: the train split is empty)")
    rng = np.random.default_rng(seed)
    per_rank = max(1, batch // info.world)
    while True:
        perm = rng.permutation(n)
        if len(perm) < batch:  # tiny sets: repeat so a batch is always full
            perm = np.resize(perm, batch)
        for i in range(0, len(perm) - batch + 1, batch):
            chunk = perm[i : i + batch]
            yield chunk[info.rank * per_rank : (info.rank + 1) * per_rank]


def cosine_lr(step: int, total: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to a tenth of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def collective_device() -> torch.device:
    """Where tensors to all-reduce must live: NCCL reduces GPU tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_across(values: dict[str, float], info: Dist) -> dict[str, float]:
    """Average scalar metrics over ranks (each rank saw a different shard)."""
    if not info.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t)}


class MetricsLog:
    """Append-only ``metrics.csv`` (one row per logged step) and ``metrics.jsonl``.

    The CSV's columns are fixed by the first row; later keys go to the JSON
    lines only, so the CSV stays loadable by any spreadsheet.
    """

    def __init__(self, directory: Path, enabled: bool = True, resume: bool = False) -> None:
        self.dir = directory
        self.enabled = enabled
        self.csv_path = directory / "metrics.csv"
        self.json_path = directory / "metrics.jsonl"
        self.columns: list[str] | None = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        if resume and self.csv_path.exists():
            with self.csv_path.open() as f:
                header = f.readline().strip()
            self.columns = header.split(",") if header else None
        else:
            for p in (self.csv_path, self.json_path):
                p.unlink(missing_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.json_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        new = self.columns is None
        if new:
            self.columns = list(row)
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


def state_path(out: Path) -> Path:
    """Where the resumable training state of checkpoint ``out`` lives."""
    return out.with_name(out.name + ".state")


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a resumable state (tensors and plain data only)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; refuse one from a different run set-up."""
    if not path.is_file():
        raise UserError(f"--resume: no training state at {path} (start without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"--resume: training state {path} is corrupt ({type(exc).__name__}); delete it and start again") from None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise UserError(
            f"--resume: {path} was saved by a run with other settings or data; "
            "resume with the same flags, or delete it to start again"
        )
    return state


class Stopwatch:
    """Bounds of one invocation: wall clock (``--max-minutes``) and steps (``--stop-after``)."""

    def __init__(self, minutes: float | None, first_step: int = 0, stop_after: int | None = None) -> None:
        self.start = time.monotonic()
        self.limit = None if minutes is None else 60.0 * minutes
        self.last_step = None if stop_after is None else first_step + stop_after

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start

    def expired(self, step: int) -> bool:
        if self.last_step is not None and step >= self.last_step:
            return True
        return self.limit is not None and self.seconds >= self.limit


class Session:
    """One sitting of a training stage: resumable state, batches, bounds, metrics and progress.

    ``parts`` are everything with a ``state_dict`` that must survive a
    restart (models, critics, optimisers); together with both random
    generators (ours and torch's global one, which dropout uses) they make
    a resumed run bit-identical to an uninterrupted one.
    """

    def __init__(
        self,
        stage: str,
        cfg: TrainConfig,
        info: Dist,
        out: Path,
        parts: dict[str, Any],
        gen: torch.Generator,
        fingerprint: dict[str, Any],
        resume: bool = False,
        log_dir: Path | None = None,
        progress: bool = True,
    ) -> None:
        self.stage, self.cfg, self.info, self.parts, self.gen = stage, cfg, info, parts, gen
        self.fingerprint = {"stage": stage, "train": cfg.identity(), "world": info.world, **fingerprint}
        self.path = state_path(out)
        self.step = 0
        self.stopped = False
        if resume:
            st = load_state(self.path, self.fingerprint)
            for name, part in parts.items():
                part.load_state_dict(st[name])
            gen_state, global_state, *gpu_state = st["rng"][info.rank]
            gen.set_state(gen_state)
            torch.set_rng_state(global_state)
            if gpu_state and gen.device.type == "cuda":
                torch.cuda.set_rng_state(gpu_state[0])
            self.step = int(st["step"])
            log.info("resumed %s from %s at step %d", stage, self.path, self.step)
        self.metrics = MetricsLog(log_dir or out.with_name(out.stem + ".metrics"), enabled=info.main, resume=resume)
        self.stopwatch = Stopwatch(cfg.max_minutes, self.step, cfg.stop_after)
        self.bar = tqdm(total=cfg.steps, initial=self.step, desc=stage, disable=not (progress and info.main), dynamic_ncols=True)

    @property
    def running(self) -> bool:
        return self.step < self.cfg.steps and not self.stopped

    @property
    def final(self) -> bool:
        return self.step == self.cfg.steps

    def batches(self, n: int) -> Iterator[np.ndarray]:
        """:func:`batches` over ``n`` items, fast-forwarded past the steps already done."""
        stream = batches(n, self.cfg.batch, self.cfg.seed, self.info)
        for _ in range(self.step):
            next(stream)
        return stream

    def advance(self) -> tuple[bool, bool]:
        """Count a finished step; returns (validate and log now?, save now?)."""
        self.step += 1
        self.bar.update(1)
        stop = self.stopwatch.expired(self.step) and self.step < self.cfg.steps
        if self.info.enabled:  # every rank must agree to stop, or the others hang in all-reduce
            flag = torch.tensor([float(stop)], device=collective_device())
            dist.all_reduce(flag)
            stop = bool(flag.item())
        self.stopped = stop
        end = self.final or stop
        return self.step % self.cfg.val_every == 0 or end, self.step % self.cfg.save_every == 0 or end

    def row(self, opt: torch.optim.Optimizer, train: dict[str, float]) -> dict[str, Any]:
        """A metrics row: step, time, learning rate and the train terms averaged over ranks."""
        row: dict[str, Any] = {"step": self.step, "seconds": round(self.stopwatch.seconds, 2), "lr": opt.param_groups[0]["lr"]}
        row.update(mean_across({f"train_{k}": v for k, v in train.items()}, self.info))
        return row

    def log(self, row: dict[str, Any], **postfix: float) -> None:
        self.metrics.write(row)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()})
        log.info("%s step %d: %s", self.stage, self.step, row)

    def save_state(self) -> bool:
        """Write the resumable state. Every rank must call it (it gathers their RNG states);
        returns True on the rank that also writes the checkpoint."""
        # torch's global generators: the CPU one, and on a GPU that GPU's (dropout draws there).
        on_gpu = self.gen.device.type == "cuda"
        rng: list[Any] = [(self.gen.get_state(), torch.get_rng_state(), *([torch.cuda.get_rng_state()] if on_gpu else []))]
        if self.info.enabled:
            gathered: list[Any] = [None] * self.info.world
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        if not self.info.main:
            return False
        state = {"fingerprint": self.fingerprint, "step": self.step, "rng": rng}
        state.update({name: part.state_dict() for name, part in self.parts.items()})
        save_state(self.path, state)
        return True

    def close(self) -> None:
        self.bar.close()
        if self.stopped:
            log.warning("%s stopped at step %d of %d (time or --stop-after bound); continue with --resume",
                        self.stage, self.step, self.cfg.steps)
        teardown(self.info)

