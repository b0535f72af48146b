"""One-file checkpoints: weights, configs, contract, statistics, metadata, digest.

A checkpoint is a plain nested dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)`` (no pickled code can run)::

    format          "livedance-checkpoint"
    format_version  FORMAT_VERSION
    kind            "units" (VAE only, after `train units`) or "full"
    contract        feature_dim, unit_frames, model_fps, beats_per_unit, joint_names
    vae_config      UnitVAEConfig as a dict
    composer_config ComposerConfig as a dict, or None
    norm            {"mean": (D,), "std": (D,)} of the training features
    descriptors     {"mean", "std", "quantiles"} (see DescriptorStats), or None
    start_poses     (S, 2, D) normalised pairs of real frames to start from
    start_styles    (S,) style id of each start pose
    style_names     list of str (style id -> name)
    meta            training metadata (command, data, steps, seconds, metrics, ...)
    envelope        the realism envelope of the training takes (MotionEnvelope.to_dict()),
                    optional: older files have none and load with ``model.envelope = None``
    audio           what a paired-data composer hears (AudioInput.to_dict(): feature settings,
                    window, statistics), optional: None (or absent) = descriptor-only, the
                    composer hears no audio (the shipped checkpoint)
    weights         {"vae.<param>": tensor, "composer.<param>": tensor}
    sha256          SHA-256 of everything above, canonically serialised

Every problem on loading is a one-line :class:`UserError` naming the file,
what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livedance.errors import UserError
from livedance.model.composer import Composer, ComposerConfig
from livedance.model.context import DescriptorStats
from livedance.model.dance import DanceModel, NormStats
from livedance.model.music_encoder import AudioInput
from livedance.model.vae import UnitVAE, UnitVAEConfig
from livedance.motion.envelope import MotionEnvelope

log = logging.getLogger(__name__)

FORMAT = "livedance-checkpoint"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default.pt"

Payload = dict[str, Any]


def expected_contract() -> dict[str, Any]:
    """The representation this installation speaks (owned by livedance.motion and livedance.skeleton)."""
    from livedance.motion.representation import FEATURE_DIM
    from livedance.motion.units import BEATS_PER_UNIT, MODEL_FPS, UNIT_FRAMES
    from livedance.skeleton import JOINT_NAMES

    return {
        "feature_dim": int(FEATURE_DIM),
        "unit_frames": int(UNIT_FRAMES),
        "model_fps": float(MODEL_FPS),
        "beats_per_unit": int(BEATS_PER_UNIT),
        "joint_names": list(JOINT_NAMES),
    }


def digest(obj: Any) -> str:
    """SHA-256 of a nested dict/list of tensors and plain values, independent of dict order."""
    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(repr(k).encode())
                feed(o[k])
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for v in o:
                feed(v)
            h.update(b"]")
        else:
            h.update(f"{type(o).__name__}:{o!r}".encode())

    feed(obj)
    return h.hexdigest()


def make_payload(
    *,
    vae: UnitVAE,
    norm: NormStats,
    start_poses: np.ndarray,
    style_names: list[str],
    meta: dict[str, Any],
    start_styles: np.ndarray | None = None,
    composer: Composer | None = None,
    descriptors: DescriptorStats | None = None,
    envelope: MotionEnvelope | None = None,
    audio: AudioInput | None = None,
) -> Payload:
    """Assemble a checkpoint dict (not yet hashed) from trained parts."""
    weights = {f"vae.{k}": v.detach().cpu().clone() for k, v in vae.state_dict().items()}
    if composer is not None:
        weights.update({f"composer.{k}": v.detach().cpu().clone() for k, v in composer.state_dict().items()})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "full" if composer is not None else "units",
        "contract": expected_contract(),
        "vae_config": vae.cfg.to_dict(),
        "composer_config": composer.cfg.to_dict() if composer is not None else None,
        "norm": {"mean": torch.as_tensor(norm.mean), "std": torch.as_tensor(norm.std)},
        "descriptors": descriptors.to_dict() if descriptors is not None else None,
        "start_poses": torch.as_tensor(np.asarray(start_poses, dtype=np.float32)),
        "start_styles": torch.as_tensor(
            np.full(len(start_poses), -1) if start_styles is None else np.asarray(start_styles), dtype=torch.long
        ),
        "style_names": list(style_names),
        "meta": meta,
        "envelope": envelope.to_dict() if envelope is not None else None,
        "audio": audio.to_dict() if audio is not None else None,
        "weights": weights,
    }


def save_checkpoint(path: str | os.PathLike[str], payload: Payload) -> Path:
    """Hash and write ``payload`` atomically (a crash never leaves half a checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in payload.items() if k != "sha256"}
    body["sha256"] = digest({k: v for k, v in body.items()})
    tmp = path.with_name(path.name + ".tmp")
    torch.save(body, tmp)
    os.replace(tmp, path)
    log.info("wrote checkpoint %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def read_checkpoint(path: str | os.PathLike[str] | None = None) -> Payload:
    """Load and verify a checkpoint file; returns the payload dict."""
    shipped = path is None
    p = DEFAULT_CHECKPOINT if shipped else Path(path).expanduser()
    if not p.is_file():
        if shipped:
            raise UserError(f"the shipped checkpoint {p} is missing (reinstall livedance, or pass --checkpoint PATH)")
        raise UserError(f"checkpoint {p} not found (check the path, or omit --checkpoint to use the shipped one)")
    try:
        with warnings.catch_warnings():
            # torch warns (two lines on stderr) about pickle protocols of a
            # non-torch file before refusing it; the refusal is our one line.
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"checkpoint {p} is corrupt or holds more than tensors and plain data ({first[:120]}); "
            "re-download it or retrain it with `livedance train`"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, io.UnsupportedOperation) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"checkpoint {p} is truncated or corrupt ({first[:120]}); re-download it or retrain it with `livedance train`"
        ) from None
    return verify_payload(data, p)


def verify_payload(data: Any, p: Path) -> Payload:
    """Check format, version, digest and contract of a loaded payload."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{p} is not a livedance checkpoint (train one with `livedance train units|composer`)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise UserError(
            f"checkpoint {p} has format version {version!r}, this livedance reads version {FORMAT_VERSION} "
            + ("(upgrade livedance)" if newer else "(retrain it with `livedance train`)")
        )
    stored = data.get("sha256")
    actual = digest({k: v for k, v in data.items() if k != "sha256"})
    if stored != actual:
        raise UserError(
            f"checkpoint {p} failed its integrity check (SHA-256 mismatch: the file was modified or damaged); "
            "re-download it or retrain it with `livedance train`"
        )
    want = expected_contract()
    have = data.get("contract") or {}
    for key, value in want.items():
        if have.get(key) != value:
            shown = "a different joint list" if key == "joint_names" else f"{key}={have.get(key)!r}"
            mine = "this skeleton's" if key == "joint_names" else f"{key}={value!r}"
            raise UserError(
                f"checkpoint {p} was trained with {shown} but this livedance uses {mine} "
                "(retrain it with `livedance train` for this version)"
            )
    return data


def _load_state(module: torch.nn.Module, weights: dict[str, torch.Tensor], prefix: str, p: Path) -> None:
    sub = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"checkpoint {p} does not match its own model config ({first[:120]}); retrain it") from None


def build_vae(data: Payload, p: Path) -> UnitVAE:
    """The unit VAE of a verified payload, weights loaded, in eval mode."""
    try:
        vae = UnitVAE(UnitVAEConfig.from_dict(data["vae_config"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {p} has an unreadable vae_config ({exc}); retrain it") from None
    _load_state(vae, data["weights"], "vae.", p)
    return vae.eval()


def envelope_of(data: Payload, p: Path) -> MotionEnvelope | None:
    """The checkpoint's realism envelope; None for files made before it was stored."""
    env = data.get("envelope")
    if env is None:
        return None
    try:
        return MotionEnvelope.from_dict(env)
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {p} has an unreadable envelope ({exc}); rerun scripts/add_envelope.py or retrain it") from None


def audio_of(data: Payload, p: Path) -> AudioInput | None:
    """What the checkpoint's composer hears; None for descriptor-only checkpoints."""
    want = int((data.get("composer_config") or {}).get("audio_dim", 0) or 0)
    spec = data.get("audio")
    if spec is None:
        if want:
            raise UserError(f"checkpoint {p} has a music encoder but no 'audio' field; retrain it with `livedance train composer --music`")
        return None
    try:
        audio = AudioInput.from_dict(spec)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise UserError(f"checkpoint {p} has an unreadable audio field ({exc}); retrain it") from None
    if audio.channels != want:
        raise UserError(f"checkpoint {p}: its audio field gives {audio.channels} channels, its composer reads {want}; retrain it")
    return audio


def model_from_payload(data: Payload, p: Path) -> DanceModel:
    """A :class:`DanceModel` from a verified full payload."""
    if data.get("kind") != "full" or data.get("composer_config") is None or data.get("descriptors") is None:
        raise UserError(
            f"checkpoint {p} holds only the unit VAE; train the composer on it first: "
            f"livedance train composer --units {p} --data DIR --out OUT.pt"
        )
    vae = build_vae(data, p)
    try:
        composer = Composer(ComposerConfig.from_dict(data["composer_config"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {p} has an unreadable composer_config ({exc}); retrain it") from None
    _load_state(composer, data["weights"], "composer.", p)
    norm = NormStats(data["norm"]["mean"].numpy(), data["norm"]["std"].numpy())
    model = DanceModel(
        vae,
        composer,
        norm,
        DescriptorStats.from_dict(data["descriptors"]),
        data["start_poses"].numpy(),
        list(data["style_names"]),
        data["start_styles"].numpy(),
    )
    model.meta = dict(data.get("meta") or {})
    model.envelope = envelope_of(data, p)
    model.audio = audio_of(data, p)
    return model.eval()


def load_checkpoint(path: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu") -> DanceModel:
    """Load a full checkpoint as a ready-to-run :class:`DanceModel` (``None``: the shipped default) on ``device``.

    The file is read onto the CPU whatever device it was saved from
    (``map_location="cpu"``): its SHA-256 is taken over host bytes anyway,
    so reading it straight onto a GPU would only copy it back. The built
    model is then moved to ``device`` once.

    Raises:
        UserError: missing, truncated, corrupt, tampered, VAE-only, or made
            for another feature/skeleton contract or format version.
    """
    p = DEFAULT_CHECKPOINT if path is None else Path(path).expanduser()
    model = model_from_payload(read_checkpoint(path), p)
    model.source = str(p)
    return model.to(torch.device(device))
