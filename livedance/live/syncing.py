"""Wires the external beat clocks of :mod:`livedance.sync` into ``perform``.

Per frame, the live runner asks :meth:`SyncHub.state` for the clock that may
lead the dance at the frame's presentation instant (Link follow, else MIDI
clock in), hands it to :meth:`Engine.frame`, and then calls
:meth:`SyncHub.after_frame`, which publishes the tracked beat to Link (lead)
and the dance's beat clock to MIDI clock out.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

from livedance.config import Settings
from livedance.errors import UserError
from livedance.frames import Frame, SyncState
from livedance.sync.lead import BeatLine

log = logging.getLogger(__name__)


class SyncHub:
    """Link (follow or lead), MIDI clock in and MIDI clock out for one perform run."""

    def __init__(self, link: Any = None, midi_in: Any = None, midi_out: Any = None) -> None:
        self.link = link  # LinkFollower or LinkLeader
        self.midi_in = midi_in
        self.midi_out = midi_out
        self._beats = BeatLine()  # the tracker's beats, for what Link lead publishes

    @classmethod
    def from_args(cls, args: argparse.Namespace, settings: Settings) -> "SyncHub | None":
        """Build from ``--link``, ``--midi-clock-in/out`` and ``[link]``/``[midi]``;
        None when nothing is asked for."""
        from livedance.sync.link import check_mode

        mode = check_mode(getattr(args, "link", None) or settings.link.mode)
        clock_in = getattr(args, "midi_clock_in", None) or settings.midi.clock_in
        clock_out = getattr(args, "midi_clock_out", None) or settings.midi.clock_out
        if mode == "off" and not clock_in and not clock_out:
            return None
        if settings.link.quantum <= 0:
            raise UserError(f"link.quantum = {settings.link.quantum} must be positive (beats per bar, e.g. 4)")
        link = midi_in = midi_out = None
        try:
            if mode != "off":
                from livedance.sync.link import LinkFollower, LinkLeader, LinkSession

                session = LinkSession(settings.beats.preferred_bpm, settings.link.quantum, settings.link.start_stop)
                link = LinkFollower(session) if mode == "follow" else LinkLeader(session)
            if clock_in:
                from livedance.sync.midi import MidiClockIn

                midi_in = MidiClockIn(clock_in, settings.midi.api, settings.link.quantum)
            if clock_out:
                from livedance.sync.midi import MidiClockOut

                midi_out = MidiClockOut(clock_out, settings.midi.api)
        except BaseException:
            cls(link, midi_in, midi_out).close()
            raise
        return cls(link, midi_in, midi_out)

    def state(self, present: float) -> SyncState | None:
        """The clock that may lead the frame shown at monotonic time ``present``."""
        from livedance.sync.link import LinkFollower

        state = None
        if isinstance(self.link, LinkFollower):
            state = self.link.state(present)
        elif self.link is not None:  # lead: shown (HUD, OSC), never followed
            r = self.link.session.read()
            state = SyncState("link", "lead", r.tempo, r.beat_at(present), self.link.session.quantum, r.peers)
        if self.midi_in is not None and (state is None or not state.leads):
            midi = self.midi_in.state(present)
            if midi is not None and (midi.leads or state is None or state.mode == "lead"):
                state = midi
        return state

    def after_frame(self, frame: Frame, engine: Any, now: float, present: float) -> None:
        """Publish after the frame shown at ``present`` was made at ``now`` (both
        monotonic): the tracked beat to Link (lead), the beat clock to MIDI out."""
        from livedance.sync.link import LinkLeader

        if frame.sync is None or not frame.sync.leads:  # the tracker's beats, not a clock's
            for b in frame.beats:
                self._beats.add(b.index, b.time, b.tempo)
        if self.midi_out is not None:
            self.midi_out.update(present, engine.clock.position, engine.clock.rate)
        if isinstance(self.link, LinkLeader):
            m = engine.music
            t_music = frame.time - (present - now)  # what is heard now; Link peers play it now
            line = self._beats.at(t_music)
            beat, tempo = line if line is not None else (math.nan, m.tempo)
            if line is not None and abs(math.log(tempo / m.tempo)) > 0.04:
                beat = math.nan  # the line is older than a tempo change: wait for the new beats
            self.link.update(now, tempo, beat, m.confidence)

    def status(self, state: SyncState | None) -> str:
        parts = []
        if state is not None:
            parts.append(state.label())
        if self.midi_out is not None:
            parts.append(f"MIDI clock out {self.midi_out.name}")
        return " | ".join(parts)

    def close(self) -> None:
        for part in (self.link, self.midi_in, self.midi_out):
            if part is None:
                continue
            try:
                (part.session if hasattr(part, "session") else part).close()
            except Exception:  # noqa: BLE001 - close the others regardless
                log.exception("closing %s failed", type(part).__name__)
