"""``livedance bench sync --json``: how closely the external beat clocks hold.

* **link_follow**: a Link peer at 128 BPM and our follower (a second Link
  peer) in one process, read 60 times a second for ``--live-seconds``: the
  follower's beat against the peer's at the same instant (both read against
  ``time.monotonic()``), and the dance's beat clock (:class:`BeatClock`, fed
  the follower's tempo and phase as the engine does) against the peer's
  beat: mean and p99 of |error|, ms, after a 2 s lock-in.
* **link_lead**: a synthetic 130 BPM song analysed hop by hop in real time
  by the tracker; its beats go through the lead path (:class:`BeatLine`,
  :class:`LeadPolicy`, :class:`LinkLeader`) into the session, and a second
  peer reads tempo and beat: tempo error (BPM) and phase error (ms) against
  the song's known beats, after 10 s; seconds until the peer reads 130 +/- 1.
* **midi_clock_out**: :class:`ClockSender` at 120 BPM for ``--live-seconds``,
  fed a beat clock 60 times a second as the frame clock does: pulse interval
  jitter at the send call (ms), and at a real receiving port when a MIDI
  system answers (JACK or ALSA sequencer).

Link discovery is multicast: the Link parts run in a private network
namespace holding only loopback (``unshare --net``; as a user,
``unshare --net --map-root-user``), never on the machine's network; where no
namespace can be made they are skipped with the reason. Real time: run on a
quiet machine (the figures include the scheduler's delays).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

NETNS = 'ip link set lo up && ip route add 224.0.0.0/4 dev lo && [ "$(ip -o link show | wc -l)" = 1 ] && exec "$0" "$@"'


def _stats(errors_ms: np.ndarray) -> dict[str, float]:
    """|error| mean and p99, and the signed mean (bias: + = ours runs ahead of the reference)."""
    a = np.abs(errors_ms)
    return {"mean_ms": float(a.mean()), "p99_ms": float(np.percentile(a, 99)), "bias_ms": float(errors_ms.mean())}


def link_follow(seconds: float) -> dict[str, Any]:
    from livedance.live.phase import BeatClock
    from livedance.sync.link import LinkFollower, LinkSession

    peer = LinkSession(128.0)
    time.sleep(0.5)  # the DJ's session exists first
    follower = LinkFollower(LinkSession(120.0))
    clock = BeatClock()
    dt = 1.0 / 60.0
    state_err, clock_err = [], []
    t0 = time.monotonic()
    next_frame = t0
    while (now := time.monotonic()) - t0 < seconds:
        state = follower.state(now)
        ref = peer.read().beat_at(now)
        if state.leads:
            clock.advance(dt, state.tempo, state.beat % 1.0)
            if now - t0 > 2.0:
                state_err.append((state.beat - ref + 0.5) % 1.0 - 0.5)
                clock_err.append(((clock.position - ref + 0.5) % 1.0 - 0.5))
        next_frame += dt
        time.sleep(max(0.0, next_frame - time.monotonic()))
    follower.session.close()
    peer.close()
    if not state_err:
        return {"skipped": "the follower never saw the peer"}
    period = 60000.0 / 128.0
    return {
        "tempo": 128.0,
        "frames": len(state_err),
        "session": _stats(np.asarray(state_err) * period),
        "dance_clock": _stats(np.asarray(clock_err) * period),
    }


def link_lead(seconds: float) -> dict[str, Any]:
    from livedance.config import Settings
    from livedance.music.beats import BeatTracker
    from livedance.music.features import FeatureExtractor
    from livedance.music.synth import drum_track
    from livedance.sync.lead import BeatLine
    from livedance.sync.link import LinkLeader, LinkSession

    s = Settings()
    sr, hop = s.audio.sample_rate, s.audio.hop
    audio, beats = drum_track(130.0, seconds + 2.0, sr, seed=5, pattern="four")
    features = FeatureExtractor(s.features, sr, hop)
    tracker = BeatTracker(s.beats, sr / hop, onset_latency=features.onset_latency)
    peer = LinkSession(100.0)  # a VJ app at another tempo, waiting to be led
    time.sleep(0.5)
    leader = LinkLeader(LinkSession(s.beats.preferred_bpm, 4.0))
    line = BeatLine()
    count = 0
    tempo, confidence = s.beats.preferred_bpm, 0.0
    tempo_err, phase_err, reached = [], [], None
    t0 = time.monotonic()
    pos, dt = 0, 1.0 / 60.0
    next_frame = t0
    while (now := time.monotonic()) - t0 < seconds:
        t = now - t0  # music time: the song "plays" from t0
        end = min(len(audio), int(t * sr))
        if end > pos:
            block = features.process(audio[pos:end])
            pos = end
            for st in tracker.hear(block):
                if st.beat:
                    line.add(count, float(st.beat_time), float(st.tempo))
                    count += 1
                tempo, confidence = st.tempo, st.confidence
        fit = line.at(t)
        beat, lead_tempo = fit if fit is not None else (math.nan, tempo)
        leader.update(now, lead_tempo, beat, confidence)
        r = peer.read()
        if reached is None and abs(r.tempo - 130.0) <= 1.0:
            reached = t
        if t > 10.0:
            song = np.interp(t, beats, np.arange(len(beats)))
            tempo_err.append(r.tempo - 130.0)
            phase_err.append((r.beat_at(now) - song + 0.5) % 1.0 - 0.5)
        next_frame += dt
        time.sleep(max(0.0, next_frame - time.monotonic()))
    leader.session.close()
    peer.close()
    out: dict[str, Any] = {"song_bpm": 130.0, "seconds_to_130": reached, "publishes": leader.published}
    if tempo_err:
        te = np.abs(np.asarray(tempo_err))
        out["tempo_error_bpm"] = {"mean": float(te.mean()), "max": float(te.max())}
        out["phase"] = _stats(np.asarray(phase_err) * 60000.0 / 130.0)
    return out


def midi_clock_out(seconds: float, api: str) -> dict[str, Any]:
    from livedance.sync.midi import ClockSender, backend, find_port, interval_jitter

    received: list[float] = []
    port_in = out_port = None
    try:
        be = backend(api)
        port_in = be.open_input("livedance-bench-clock", virtual=True,
                                callback=lambda m: received.append(time.monotonic()) if m.type == "clock" else None)
        out_port = be.open_output(find_port("livedance-bench-clock", be.get_output_names(), "output"))
        send = out_port.send
        where = f"port ({api})"
    except Exception as exc:  # noqa: BLE001 - no MIDI system: measure at the send call only
        send, where = (lambda m: None), f"none ({str(exc).splitlines()[0][:120]})"
    sender = ClockSender(send)
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        sender.update(now, (now - t0) * 2.0, 2.0)  # 120 BPM, as the frame clock updates it
        time.sleep(1 / 60)
    sender.close()
    time.sleep(0.1)
    for port in (out_port, port_in):
        if port is not None:
            port.close()
    out: dict[str, Any] = {"bpm": 120.0, "ideal_ms": 1000 / 48, "sent": interval_jitter(sender.sent), "receiver": where}
    if received:
        out["received"] = interval_jitter(received)
    return out


def _inside(args: argparse.Namespace) -> int:
    print(json.dumps({"link_follow": link_follow(args.live_seconds), "link_lead": link_lead(max(args.live_seconds, 14.0))}))
    return 0


def _link_in_netns(seconds: float) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("aalink") is None:
        return {"skipped": "Link support not installed: pip install 'livedance[link]'"}
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return {"skipped": "needs unshare (util-linux) and ip (iproute2) for a private network namespace"}
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    cmd = [*unshare, "sh", "-c", NETNS, sys.executable, "-m", "livedance.bench.sync", "--live-seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 120)
    if out.returncode != 0:
        return {"skipped": f"no private network namespace for Link ({out.stderr.strip().splitlines()[-1:] or out.returncode})"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, settings: Any) -> int:
    seconds = float(args.live_seconds)
    result: dict[str, Any] = {"live_seconds": seconds}
    link = _link_in_netns(seconds)
    if "skipped" in link:
        result["link"] = link
    else:
        result.update(link)
    result["midi_clock_out"] = midi_clock_out(seconds, settings.midi.api)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":  # the Link part, inside the namespace (see _link_in_netns)
    p = argparse.ArgumentParser()
    p.add_argument("--live-seconds", type=float, default=10.0)
    sys.exit(_inside(p.parse_args()))
