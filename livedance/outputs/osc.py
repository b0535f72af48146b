"""OSC output, livedance scheme: every frame's pose and music state as OSC
bundles, for TouchDesigner, Resolume, Max, Unity and the like.

The scheme (docs/osc.md is the user-facing copy):

    /livedance/frame          i index, f time          frame counter, music time (s)
    /livedance/dancers        i count
    /livedance/tempo          f bpm
    /livedance/phase          f [0, 1)                 position within the beat
    /livedance/confidence     f [0, 1]                 beat-tracker confidence
    /livedance/energy         f [0, 1]
    /livedance/level          i -1, 0, 1               metrical level danced: half-time, normal, double-time
    /livedance/d{k}/root/pos  f x, f y, f z            dancer k's pelvis (root) position
    /livedance/d{k}/{joint}/pos  f x, f y, f z         world position of an SMPL joint
    /livedance/d{k}/{joint}/rot  f qx, f qy, f qz, f qw  local rotation (relative to its parent)
    /livedance/beat           i index, f bpm, f time   once per music beat, in its own bundle
    /livedance/link           i peers, f bpm, f beat, f phase, i playing   Ableton Link session (perform --link), each frame

Arguments are numbers only and addresses read as channel names, because
TouchDesigner's OSC In CHOP accepts nothing else. Each frame is split into
bundles of at most ``max_datagram`` bytes (default 1400: a 1500-byte LAN MTU
minus IP/UDP headers, with room for a VPN or VLAN tag), all carrying the
frame's presentation time as timetag: an IP-fragmented datagram is lost
whole if any fragment is, and some receivers cap their buffers at 1.5 kB.
"""

from __future__ import annotations

import logging

import numpy as np

from livedance.config import OscSettings
from livedance.frames import Frame
from livedance.outputs.coords import Axes
from livedance.outputs.osc_packing import (
    FLOAT,
    IMMEDIATE,
    INT,
    FrameTemplate,
    MessageSpec,
    encode_bundle,
    encode_message,
    ntp_timetag,
)
from livedance.outputs.udp import SendStats, UdpSender, parse_host_port
from livedance.skeleton import JOINT_NAMES

log = logging.getLogger(__name__)

PREFIX = "/livedance"
#: Floats per dancer: root position, then per joint a position and a quaternion.
FLOATS_PER_DANCER = 3 + len(JOINT_NAMES) * 7


def scheme_messages(dancers: int) -> list[MessageSpec]:
    """The per-frame messages for ``dancers`` dancers, in wire order."""
    messages = [
        MessageSpec(f"{PREFIX}/frame", (INT, FLOAT)),
        MessageSpec(f"{PREFIX}/dancers", (INT,)),
        MessageSpec(f"{PREFIX}/tempo", (FLOAT,)),
        MessageSpec(f"{PREFIX}/phase", (FLOAT,)),
        MessageSpec(f"{PREFIX}/confidence", (FLOAT,)),
        MessageSpec(f"{PREFIX}/energy", (FLOAT,)),
        MessageSpec(f"{PREFIX}/level", (INT,)),
    ]
    for k in range(dancers):
        messages.append(MessageSpec(f"{PREFIX}/d{k}/root/pos", (FLOAT,) * 3))
        for name in JOINT_NAMES:
            messages.append(MessageSpec(f"{PREFIX}/d{k}/{name}/pos", (FLOAT,) * 3))
            messages.append(MessageSpec(f"{PREFIX}/d{k}/{name}/rot", (FLOAT,) * 4))
    return messages


class OscSender:
    """The livedance-scheme sink: ``send(frame)`` never blocks."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        axes: Axes | None = None,
        timetags: bool = True,
        max_datagram: int = 1400,
    ) -> None:
        self.axes = axes or Axes.from_names()
        self.timetags = timetags
        self.max_datagram = max_datagram
        self._udp = UdpSender(host, port, what="OSC output")
        # One template per dancer count: the count can change live (controls).
        self._templates: dict[int, FrameTemplate] = {}

    @classmethod
    def from_settings(cls, settings: OscSettings, target: str | None = None) -> "OscSender":
        """Sender to ``target`` ("host:port"), else ``settings.out``, else
        127.0.0.1 on the default port. Whether OSC is on is the caller's call."""
        text = target or settings.out
        host, port = (
            parse_host_port(text, settings.default_out_port, "--osc") if text else ("127.0.0.1", settings.default_out_port)
        )
        return cls(
            host,
            port,
            axes=Axes.from_names(settings.up_axis, settings.units),
            timetags=settings.timetags,
            max_datagram=settings.max_datagram,
        )

    @property
    def stats(self) -> SendStats:
        return self._udp.stats

    def _template(self, dancers: int) -> FrameTemplate:
        template = self._templates.get(dancers)
        if template is None:
            template = FrameTemplate(scheme_messages(dancers), self.max_datagram)
            self._templates[dancers] = template
            log.debug("OSC layout for %d dancers: %d bundles/frame", dancers, template.packets)
        return template

    def frame_values(self, frame: Frame) -> tuple[np.ndarray, tuple[int, int]]:
        """The frame's numbers in template order: (floats, ints)."""
        d = frame.dancers
        body = np.empty((d, FLOATS_PER_DANCER), dtype=np.float32)
        body[:, :3] = self.axes.positions(frame.trans)
        joints = body[:, 3:].reshape(d, len(JOINT_NAMES), 7)
        joints[..., :3] = self.axes.positions(frame.joints)
        joints[..., 3:] = self.axes.quaternions_xyzw(frame.quaternions)
        head = np.array([frame.time, frame.tempo, frame.beat_phase, frame.confidence, frame.energy], np.float32)
        return np.concatenate([head, body.reshape(-1)]), (frame.index, d, frame.level)

    def encode(self, frame: Frame) -> list[memoryview | bytes]:
        """All datagrams of ``frame``: beat events first, then the pose bundles.
        The views are reused by the next call."""
        timetag = ntp_timetag(frame.wall_time) if self.timetags else IMMEDIATE
        floats, ints = self.frame_values(frame)
        datagrams: list[memoryview | bytes] = []
        if frame.beats:
            beats = [encode_message(f"{PREFIX}/beat", (b.index, float(b.tempo), float(b.time))) for b in frame.beats]
            datagrams.append(encode_bundle(timetag, beats))
        sync = frame.sync
        if sync is not None and sync.source == "link":
            link = (sync.peers, float(sync.tempo), float(sync.beat), float(sync.phase), int(sync.playing))
            datagrams.append(encode_bundle(timetag, [encode_message(f"{PREFIX}/link", link)]))
        datagrams.extend(self._template(frame.dancers).pack(floats, ints, timetag))
        return datagrams

    def send(self, frame: Frame) -> None:
        self._udp.send(self.encode(frame))
        self._udp.stats.frames += 1

    def close(self) -> None:
        self._udp.close()
