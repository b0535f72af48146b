"""One Ableton Link peer plus ``livedance perform``, run INSIDE a private network
namespace that holds only loopback (tests/test_sync_link.py starts it with
``unshare --net``; Link discovery is multicast and must never touch the
machine's real interfaces). Prints one JSON object of what was seen.

    python tests/link_scenario.py follow --audio SILENCE.wav --seconds 12 [--leave 6 --rejoin 8 --stop 10.5]
    python tests/link_scenario.py lead --audio SONG.wav --seconds 16
    python tests/link_scenario.py devices

The peer is independent of livedance: aalink directly, its beat read against
``time.time()``; perform's beats and frames come over OSC (UDP 127.0.0.1),
placed on the same wall clock by their bundle timetags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import warnings

import aalink
from pythonosc.osc_bundle import OscBundle

warnings.simplefilter("ignore", DeprecationWarning)  # aalink's loop argument


class Peer:
    """A Link app (the DJ's software) at ``tempo``."""

    def __init__(self, tempo: float, quantum: float = 4.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.link = aalink.Link(tempo, self.loop)
        self.link.quantum = quantum
        self.link.start_stop_sync_enabled = True
        self.link.enabled = True

    def read(self) -> tuple[float, float, float]:
        """(wall time, session beat, tempo), the beat read between two wall
        readings (the tightest of a few: a preempted read is uncertain)."""
        reads = []
        for _ in range(3):
            t0 = time.time()
            beat, tempo = self.link.beat, self.link.tempo
            t1 = time.time()
            reads.append((t1 - t0, 0.5 * (t0 + t1), float(beat), float(tempo)))
        _, t, beat, tempo = min(reads)
        return t, beat, tempo

    def beat_at(self, wall: float) -> float:
        t, beat, tempo = self.read()
        return beat + (wall - t) * tempo / 60.0


def perform(audio: str, mode: str, seconds: float, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "livedance.cli", "perform", "--input", audio, "--no-window",
        "--seconds", str(seconds), "--osc", f"127.0.0.1:{port}", "--link", mode,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.02)
    return sock


def receive(sock: socket.socket, frames: dict, beats: list, links: list) -> None:
    """Read for up to 10 ms: frames[timetag] = (music time, joints...), beats, link states."""
    end = time.monotonic() + 0.01
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return
        if not OscBundle.dgram_is_bundle(data):
            continue
        bundle = OscBundle(data)
        tag = bundle.timestamp
        for msg in bundle:
            if msg.address == "/livedance/frame":
                frames.setdefault(tag, {})["time"] = float(msg.params[1])
            elif msg.address.endswith("/pos") and msg.address.startswith("/livedance/d0/"):
                frames.setdefault(tag, {}).setdefault("joints", []).extend(float(x) for x in msg.params)
            elif msg.address == "/livedance/beat":
                beats.append({"wall_frame": tag, "index": int(msg.params[0]), "bpm": float(msg.params[1]),
                              "time": float(msg.params[2])})
            elif msg.address == "/livedance/link":
                links.append({"wall": tag, "peers": int(msg.params[0]), "bpm": float(msg.params[1]),
                              "beat": float(msg.params[2]), "playing": int(msg.params[4])})


def run_follow(args: argparse.Namespace) -> dict:
    peer = Peer(args.bpm)
    time.sleep(1.0)  # the DJ's session exists before livedance joins
    sock = listen()
    proc = perform(args.audio, "follow", args.seconds, sock.getsockname()[1])
    frames: dict = {}
    beats: list = []
    links: list = []
    start = None  # leave/rejoin count from perform's first frame (its start-up takes seconds)
    events = []
    left = rejoined = stopped = together_since = None
    dj = []  # (wall, peers, playing) as the DJ's own Link sees them, every 0.1 s
    while proc.poll() is None:
        receive(sock, frames, beats, links)
        if not dj or time.time() - dj[-1][0] >= 0.1:
            dj.append((time.time(), int(peer.link.num_peers), int(peer.link.playing)))
        for b in beats[len(events):]:
            frame = frames.get(b["wall_frame"], {})
            if "time" not in frame:
                receive(sock, frames, [], links)  # the pose bundles follow the beat bundle
                frame = frames.get(b["wall_frame"], {})
            wall = b["wall_frame"] - (frame.get("time", float("nan")) - b["time"])
            events.append(dict(b, wall=wall, peer_beat=peer.beat_at(wall) if peer.link.enabled else None))
        if start is None and frames:
            start = time.monotonic()
            # The DJ presses play once livedance is up (Link shares start/stop
            # changes, not the state a peer finds when it joins).
            peer.link.playing = True
        now = time.monotonic() - start if start is not None else -1.0
        if args.leave and left is None and now >= args.leave:
            peer.link.enabled = False
            left = time.time()
        if args.rejoin and rejoined is None and now >= args.rejoin:
            peer.link.enabled = True
            rejoined = time.time()
        # The DJ presses stop once the session has re-formed: for 1 s both
        # the DJ and perform (every /livedance/link since) have seen the
        # other. Link shares a stop once, as a change: a peer that is in
        # another session when it arrives ignores it for good (fresh-clone
        # CI runs twice saw perform playing on after a stop sent 2.5 s
        # after the rejoin). 2 s late at most.
        if rejoined is not None and stopped is None:
            together = (peer.link.num_peers >= 1 and bool(links) and links[-1]["peers"] >= 1
                        and links[-1]["wall"] > rejoined)
            together_since = (together_since or time.time()) if together else None
        settled = rejoined is None or (together_since is not None and time.time() - together_since >= 1.0)
        if args.stop and stopped is None and now >= args.stop and (settled or now >= args.stop + 2.0):
            peer.link.playing = False  # the DJ presses stop
            stopped = time.time()
    receive(sock, frames, beats, links)
    out, err = proc.communicate()
    ordered = sorted((tag, f) for tag, f in frames.items() if "joints" in f)
    return {
        "rc": proc.returncode, "stderr": err.decode()[-2000:], "stdout": out.decode()[-500:],
        "events": events, "links": links[:: 6], "dj": dj, "together_since": together_since,
        "left": left, "rejoined": rejoined, "stopped": stopped,
        "joints": [[tag, f["joints"]] for tag, f in ordered],
    }


def run_lead(args: argparse.Namespace) -> dict:
    peer = Peer(args.bpm)  # a VJ app at some other tempo, waiting to be led
    sock = listen()
    proc = perform(args.audio, "lead", args.seconds, sock.getsockname()[1])
    frames: dict = {}
    samples = []
    while proc.poll() is None:
        receive(sock, frames, [], [])
        samples.append(peer.read())
        time.sleep(0.05)
    receive(sock, frames, [], [])
    out, err = proc.communicate()
    # wall - music time of each frame: maps the song's beats onto the wall clock
    offsets = sorted((tag, tag - f["time"]) for tag, f in frames.items() if "time" in f)
    return {"rc": proc.returncode, "stderr": err.decode()[-2000:], "samples": samples, "offsets": offsets[::10]}


def run_devices(args: argparse.Namespace) -> dict:
    peer = Peer(args.bpm)
    time.sleep(0.5)
    proc = subprocess.run([sys.executable, "-m", "livedance.cli", "devices"], capture_output=True, text=True, timeout=60)
    peer.link.enabled = False
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-2000:]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=("follow", "lead", "devices"))
    p.add_argument("--audio")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--bpm", type=float, default=128.0)
    p.add_argument("--leave", type=float, help="the peer leaves this many seconds after perform's first frame")
    p.add_argument("--rejoin", type=float, help="... and comes back at this time")
    p.add_argument("--stop", type=float, help="the peer stops its transport at this time")
    args = p.parse_args()
    assert os.environ.get("LIVEDANCE_NETNS") == "1", "run me through tests/test_sync_link.py (private network namespace)"
    result = {"follow": run_follow, "lead": run_lead, "devices": run_devices}[args.scenario](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
