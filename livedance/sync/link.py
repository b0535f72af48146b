"""Ableton Link: follow a Link session's beat, or lead it with the tracked one.

Link support is an optional extra (``pip install 'livedance[link]'``): the
binding, ``aalink``, embeds Ableton's Link library, which is licensed
GPL-2.0-or-later (or commercially by Ableton). Nothing else in livedance
needs it.

aalink reads the session synchronously (``beat``, ``tempo``, ``num_peers``
capture the session state at the call), so no asyncio loop has to run: we
read it once per frame, bracketing each read with ``time.monotonic()``, and
extrapolate the beat to the instant asked for. (Link's own clock is
CLOCK_MONOTONIC_RAW, which drifts from ours by NTP's slew; the bracket needs
no mapping between the two.)
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

from livedance.errors import UserError
from livedance.frames import SyncState
from livedance.sync.lead import LeadPolicy

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'livedance[link]'"
MODES = ("off", "follow", "lead")


def load_aalink() -> Any:
    """The aalink module; a UserError naming the extra when it is missing."""
    try:
        import aalink
    except ImportError:
        raise UserError(
            f"Ableton Link support is not installed: {INSTALL_HINT} (GPL-2.0-or-later; see docs/sync.md)"
        ) from None
    return aalink


@dataclass(frozen=True, slots=True)
class LinkReading:
    """The session as read at monotonic time ``t``."""

    t: float
    tempo: float
    beat: float
    peers: int
    playing: bool

    def beat_at(self, t: float) -> float:
        return self.beat + (t - self.t) * self.tempo / 60.0


class LinkSession:
    """One Link peer (joins the session on construction, leaves on :meth:`close`).

    Args:
        tempo: our tempo while alone (BPM).
        quantum: beats per bar; peers align bars on it.
        start_stop: take part in Link's start/stop sync.
    """

    def __init__(self, tempo: float = 120.0, quantum: float = 4.0, start_stop: bool = True) -> None:
        aalink = load_aalink()
        # aalink wants an event loop for its callbacks and its sync() futures;
        # we use neither, so a loop that never runs is enough.
        self._loop = asyncio.new_event_loop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the loop argument, see above
            self._link = aalink.Link(float(tempo), self._loop)
        self._link.quantum = float(quantum)
        self._link.start_stop_sync_enabled = bool(start_stop)
        self._link.enabled = True
        self.quantum = float(quantum)

    def read(self) -> LinkReading:
        """The session now. The beat is read between two clock readings (a few
        microseconds apart); when the thread was preempted in between, the
        instant is uncertain by the pause, so it reads again (the tightest of
        three reads is kept)."""
        link = self._link
        best = None
        for _ in range(3):
            t0 = time.monotonic()
            beat, tempo = link.beat, link.tempo
            t1 = time.monotonic()
            if best is None or t1 - t0 < best[1] - best[0]:
                best = (t0, t1, beat, tempo)
            if t1 - t0 < 0.0002:
                break
        t0, t1, beat, tempo = best
        return LinkReading(0.5 * (t0 + t1), float(tempo), float(beat), int(link.num_peers), bool(link.playing))

    @property
    def peers(self) -> int:
        return int(self._link.num_peers)

    def publish(self, tempo: float | None, beat: float | None, at: float) -> None:
        """Set the session's tempo and/or its beat (the value ``beat`` at
        monotonic time ``at``) for every peer."""
        link = self._link
        if tempo is not None:
            link.tempo = float(tempo)  # Link keeps the beat at "now" continuous
        if beat is not None:
            now = time.monotonic()
            rate = float(link.tempo) / 60.0
            link.force_beat(beat + (now - at) * rate)

    def close(self) -> None:
        self._link.enabled = False  # says goodbye: peers drop us at once
        self._loop.close()


class LinkFollower:
    """``--link follow``: the session's tempo and beat, whenever it has peers.

    Start/stop: Link apps that do not take part in start/stop sync leave the
    transport "stopped" forever, so the transport counts as stopped only after
    it has been seen playing (then a DJ's stop really stops the dance).
    """

    def __init__(self, session: LinkSession) -> None:
        self.session = session
        self._seen_playing = False

    def state(self, t: float, reading: LinkReading | None = None) -> SyncState:
        """The session at monotonic time ``t`` (a presentation instant)."""
        r = reading or self.session.read()
        self._seen_playing = self._seen_playing or r.playing
        return SyncState(
            "link", "follow", r.tempo, r.beat_at(t), self.session.quantum, r.peers,
            playing=r.playing or not self._seen_playing,
        )


class LinkLeader:
    """``--link lead``: publishes the tracker's tempo and beat while it is confident.

    :meth:`update` takes the tracker's view at monotonic time ``t``:
    its tempo, the running beat index plus phase at ``t``, and confidence.
    """

    def __init__(self, session: LinkSession, policy: LeadPolicy | None = None) -> None:
        self.session = session
        self.policy = policy or LeadPolicy()
        self.published = 0  # changes committed (tests and the bench read it)

    def update(self, t: float, tempo: float, beat: float, confidence: float) -> SyncState:
        r = self.session.read()
        session_beat = r.beat_at(t)
        change = self.policy.decide(t, confidence, tempo, beat, r.tempo, session_beat, self.session.quantum)
        if change is not None:
            self.session.publish(change.tempo, change.beat, t)
            self.published += 1
            log.debug("link lead: tempo %s beat %s at %.3f", change.tempo, change.beat, t)
            r = self.session.read()
        return SyncState("link", "lead", r.tempo, r.beat_at(t), self.session.quantum, r.peers, True)


def discover_peers(seconds: float = 2.0) -> tuple[int, float | None]:
    """Join the Link session for ``seconds``: (peers seen, their tempo or None)."""
    session = LinkSession()
    try:
        deadline = time.monotonic() + seconds
        peers = 0
        while time.monotonic() < deadline:
            peers = max(peers, session.peers)
            time.sleep(0.05)
        r = session.read()
        return peers, (r.tempo if peers else None)
    finally:
        session.close()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"link mode '{mode}' is not one of {', '.join(MODES)} (set [link] mode or --link)")
    return mode
