"""The message the frame clock hands to every sink (viewer, OSC, VMC, recorder).

A :class:`Frame` carries all dancers of one presentation instant as stacked
arrays (leading axis = dancer), so sinks can work vectorised. Forward
kinematics has already run: sinks never recompute it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from livedance.skeleton import NUM_JOINTS, forward_kinematics, matrix_to_quaternion


@dataclass(frozen=True, slots=True)
class BeatEvent:
    """A music beat that passed since the previous frame."""

    index: int  # running count of beats since the engine started
    time: float  # music time of the beat, seconds
    tempo: float  # BPM at that beat


@dataclass(frozen=True, slots=True)
class SyncState:
    """An external beat clock (an Ableton Link session, a MIDI clock) at one
    frame's presentation instant; made by :mod:`livedance.sync`.

    Attributes:
        source: ``"link"`` or ``"midi"``.
        mode: ``"follow"`` (it may lead the dance) or ``"lead"`` (livedance
            publishes the tracked beat to it).
        tempo: the clock's tempo, BPM.
        beat: the clock's beat at that instant (Link: the session's beat
            timeline; MIDI: song position in quarter notes).
        quantum: beats per bar (Link's quantum).
        peers: other Link apps in the session (MIDI: 1 while pulses arrive).
        playing: False only once the transport is known to be stopped.
    """

    source: str
    mode: str
    tempo: float
    beat: float
    quantum: float = 4.0
    peers: int = 0
    playing: bool = True

    @property
    def phase(self) -> float:
        """Position in the bar, [0, quantum)."""
        return self.beat % self.quantum

    @property
    def leads(self) -> bool:
        """Does this clock lead the dance (follow mode, with a peer to follow)?"""
        return self.mode == "follow" and self.peers > 0

    def label(self) -> str:
        """One line for the HUD and the status line, e.g.
        ``LINK follow 2 peers 128.0 BPM 3.25/4``."""
        who = f"{self.peers} peer{'s' * (self.peers != 1)}" if self.source == "link" else ("in" if self.peers else "no clock")
        stopped = " STOPPED" if not self.playing else ""
        return f"{self.source.upper()} {self.mode} {who} {self.tempo:.1f} BPM {self.phase + 1:.2f}/{self.quantum:g}{stopped}"


@dataclass(frozen=True)
class Frame:
    """One presentation instant of D dancers.

    Attributes:
        index: frame counter since start (0, 1, 2, ...).
        time: music time the frame shows, seconds (audio clock + latency).
        wall_time: Unix time (``time.time()``) at which the frame should be
            presented; OSC uses it as the bundle timetag.
        trans: (D, 3) pelvis world position, metres, y up.
        rotations: (D, 24, 3, 3) local joint rotations (root: global).
        joints: (D, 24, 3) world joint positions, metres, y up.
        quaternions: (D, 24, 4) the local rotations as (w, x, y, z), computed
            on first use (only OSC and VMC need them) and then cached.
        tempo: current tempo estimate, BPM.
        beat_phase: position within the current beat, [0, 1).
        confidence: beat-tracker confidence, [0, 1].
        energy: music energy, [0, 1].
        level: metrical level danced (-1 half-time: a unit spans 4 music
            beats; 0 normal: 2; 1 double-time: 1), see ``livedance.live.level``.
        beats: beats that passed since the previous frame (the dance's beats:
            the tracker's, or the external clock's while it leads).
        sync: the external beat clock (Link, MIDI clock) if one is in use.
    """

    index: int
    time: float
    wall_time: float
    trans: np.ndarray
    rotations: np.ndarray
    joints: np.ndarray
    tempo: float = 120.0
    beat_phase: float = 0.0
    confidence: float = 0.0
    energy: float = 0.0
    level: int = 0
    beats: tuple[BeatEvent, ...] = field(default=())
    sync: SyncState | None = None

    @cached_property
    def quaternions(self) -> np.ndarray:
        return matrix_to_quaternion(self.rotations)

    @property
    def dancers(self) -> int:
        return int(self.trans.shape[0])

    @classmethod
    def from_pose(
        cls,
        index: int,
        time: float,
        wall_time: float,
        rotations: np.ndarray,
        trans: np.ndarray,
        **music: object,
    ) -> "Frame":
        """Build a frame from (D, 24, 3, 3) local rotations and (D, 3) root positions,
        running forward kinematics once for all sinks."""
        rotations = np.asarray(rotations, dtype=np.float32).reshape(-1, NUM_JOINTS, 3, 3)
        trans = np.asarray(trans, dtype=np.float32).reshape(-1, 3)
        _, joints = forward_kinematics(rotations, trans)
        return cls(
            index=index,
            time=time,
            wall_time=wall_time,
            trans=trans,
            rotations=rotations,
            joints=joints,
            **music,  # type: ignore[arg-type]
        )
