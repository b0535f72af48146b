"""``livedance bench osc --json``: what OSC/VMC output costs the frame clock.

Figures, all on 127.0.0.1 to a receiver that drains its socket on a thread:

* ``scheme.dancers_1`` / ``scheme.dancers_8``: livedance-scheme encode time,
  and encode + send time per frame (median, p99, max), per dancer, datagrams
  and bytes per frame;
* ``vmc.avatars_1``: the same for one VMC avatar;
* ``python_osc_ms_per_frame``: the same 1-dancer frame built with python-osc's
  builders, the baseline the template packer replaces;
* ``sustained``: frames of 8 dancers sent back to back for a couple of
  seconds: datagrams/s the sender sustains, and how many arrived.

Target: encode + send under 1 ms per frame per dancer (``ok``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from livedance.bench.loopback import LoopbackReceiver
from livedance.frames import BeatEvent, Frame
from livedance.skeleton import axis_angle_to_matrix

TARGET_MS_PER_DANCER = 1.0


def _frames(dancers: int, count: int = 16, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    rotations = axis_angle_to_matrix(rng.normal(scale=0.5, size=(count, dancers, 24, 3)))
    trans = rng.uniform(-1.5, 1.5, size=(count, dancers, 3))
    now = time.time()
    return [
        Frame.from_pose(i, i / 60, now, rotations[i], trans[i], tempo=120.0, energy=0.5,
                        beats=(BeatEvent(i, i / 60, 120.0),) if i % 30 == 0 else ())
        for i in range(count)
    ]


def _timings(fn: Callable[[Frame], Any], frames: list[Frame], n: int) -> dict[str, float]:
    times = np.empty(n)
    for i in range(n):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        fn(frame)
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def _sink_figures(make: Callable[[int], Any], dancers: int, n: int) -> dict[str, Any]:
    drain = LoopbackReceiver()
    sink = make(drain.port)
    frames = _frames(dancers)
    encode = _timings(sink.encode, frames, n)
    total = _timings(sink.send, frames, n)  # only sends count in the sink's stats
    sink.close()
    drain.close()
    stats = sink.stats
    return {
        "dancers": dancers,
        "encode": encode,
        "encode_and_send": total,
        "ms_per_frame_per_dancer": total["median_ms"] / dancers,
        "datagrams_per_frame": (stats.packets + stats.dropped) / n,
        "bytes_per_frame": stats.bytes / n,
        "dropped": stats.dropped,
        "received": drain.datagrams,
    }


def _python_osc_ms(frame: Frame, n: int = 200) -> float:
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    from livedance.outputs.osc import OscSender, scheme_messages

    values, ints = OscSender("127.0.0.1", 9).frame_values(frame)
    specs = scheme_messages(frame.dancers)
    t0 = time.perf_counter()
    for _ in range(n):
        bundle = OscBundleBuilder(IMMEDIATELY)
        fi = ii = 0
        for spec in specs:
            msg = OscMessageBuilder(spec.address)
            for arg in spec.args:
                if arg.value == "i":
                    msg.add_arg(int(ints[ii]))
                    ii += 1
                else:
                    msg.add_arg(float(values[fi]))
                    fi += 1
            bundle.add_content(msg.build())
        bundle.build()
    return (time.perf_counter() - t0) / n * 1e3


def _sustained(seconds: float) -> dict[str, Any]:
    from livedance.outputs.osc import OscSender

    drain = LoopbackReceiver()
    sender = OscSender("127.0.0.1", drain.port)
    frames = _frames(8)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sender.send(replace(frames[n % len(frames)], index=n))
        n += 1
    elapsed = time.perf_counter() - t0
    sender.close()
    drain.close()
    sent = sender.stats.packets
    return {
        "seconds": elapsed,
        "frames_per_s": n / elapsed,
        "datagrams_per_s": sent / elapsed,
        "megabytes_per_s": sender.stats.bytes / elapsed / 1e6,
        "dropped_by_sender": sender.stats.dropped,
        "received_fraction": drain.datagrams / max(sent, 1),
    }


def run(args: argparse.Namespace, settings: object) -> int:
    from livedance.outputs.osc import OscSender
    from livedance.outputs.vmc import VmcSender

    n = 1000
    scheme = {
        f"dancers_{d}": _sink_figures(lambda port: OscSender("127.0.0.1", port), d, n) for d in (1, 8)
    }
    vmc = {"avatars_1": _sink_figures(lambda port: VmcSender("127.0.0.1", port), 1, n)}
    worst = max(s["ms_per_frame_per_dancer"] for s in list(scheme.values()) + list(vmc.values()))
    result = {
        "benchmark": "osc",
        "scheme": scheme,
        "vmc": vmc,
        "python_osc_ms_per_frame": {"dancers_1": _python_osc_ms(_frames(1)[0])},
        "sustained": _sustained(min(2.0, float(getattr(args, "live_seconds", 2.0)))),
        "target_ms_per_frame_per_dancer": TARGET_MS_PER_DANCER,
        "worst_ms_per_frame_per_dancer": worst,
        "ok": worst < TARGET_MS_PER_DANCER,
    }
    print(json.dumps(result, separators=(",", ":")) if getattr(args, "json", False) else json.dumps(result, indent=2))
    return 0
