"""Store the realism envelope in an existing checkpoint, weights untouched.

Checkpoints trained before the envelope was part of ``livedance train
composer`` load with ``model.envelope = None``. This measures the envelope
on the motion the checkpoint was trained on (its ``meta["data"]`` says which
folders; pass the same ones) and writes the checkpoint again with it, its
SHA-256 recomputed. Every other field, weights included, is copied as is
(the script checks that their digest is unchanged).

    .venv/bin/python scripts/add_envelope.py --data ../shared/data/cmu-mocap-salsa-bvh \\
        ../shared/data/cmu-mocap-modern-dance-05-bvh ../shared/data/aistpp-sample/motions
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from livedance.model.checkpoint import DEFAULT_CHECKPOINT, digest, load_checkpoint, read_checkpoint, save_checkpoint
from livedance.motion.envelope import measure_envelope


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint (default: the shipped one)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="the motion folders it was trained on")
    p.add_argument("--out", type=Path, help="where to write (default: in place)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    payload = read_checkpoint(args.checkpoint)
    before = digest({k: v for k, v in payload.items() if k not in ("sha256", "envelope")})
    envelope = measure_envelope(args.data, progress=True)
    payload["envelope"] = envelope.to_dict()
    out = save_checkpoint(args.out or args.checkpoint, payload)
    after = read_checkpoint(out)
    assert digest({k: v for k, v in after.items() if k not in ("sha256", "envelope")}) == before, "weights changed"
    model = load_checkpoint(out)
    assert model.envelope is not None
    for name, s in model.envelope.styles.items():
        m = {k: round(v.p50, 3) for k, v in s.measures.items()}
        print(f"{name}: {s.takes} takes, {s.seconds:.0f} s, {s.tempo.p5:.0f}-{s.tempo.p50:.0f}-{s.tempo.p95:.0f} BPM, medians {m}")
    print(f"wrote {out} (sha256 {after['sha256'][:12]}...)")


if __name__ == "__main__":
    main()
