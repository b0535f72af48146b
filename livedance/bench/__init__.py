"""Benchmarks: ``livedance bench NAME [--json]``; each prints one JSON object.

Speed and latency targets are checked here, not in timed tests (machines
are noisy). Each module ``livedance.bench.NAME`` has ``run(args, settings)``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("beats", "engine", "osc", "render", "soak", "motion", "sync")


def run(args: argparse.Namespace, settings: object) -> int:
    module = importlib.import_module(f"livedance.bench.{args.name}")
    return int(module.run(args, settings) or 0)
