"""Fast OSC 1.0 encoding for frames whose layout never changes.

python-osc builds a bundle argument by argument in Python (about 4k small
bundles per second on this machine), far too slow for 24 joints x 8 dancers
at 60 fps. But a frame's messages have the same addresses and type tags every
frame; only the numbers change. So :class:`FrameTemplate` lays the bytes out
once, and each frame writes all its numbers into that template with a single
vectorised numpy assignment. This works because every OSC element (string,
type tag, int32, float32) is padded to 4 bytes: each number is exactly one
aligned big-endian 32-bit word of the buffer.

The generic :func:`encode_message` / :func:`encode_bundle` cover the rare,
variable-length messages (beat events) and build the templates' constant
parts. Only the OSC 1.0 types livedance sends are supported: ``i``, ``f``,
``s``, ``T``, ``F``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET = 2208988800
#: The OSC timetag meaning "process immediately".
IMMEDIATE = 1
BUNDLE_HEADER = b"#bundle\x00"


class Slot(enum.Enum):
    """A placeholder argument, filled in on every :meth:`FrameTemplate.pack`."""

    FLOAT = "f"
    INT = "i"


FLOAT = Slot.FLOAT
INT = Slot.INT

Constant = Union[bool, int, float, str]
Arg = Union[Slot, Constant]


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message of a template: an address and its arguments, each either a
    :class:`Slot` (a number that changes per frame) or a constant baked in."""

    address: str
    args: tuple[Arg, ...]


def osc_string(text: str) -> bytes:
    """ASCII/UTF-8 string, NUL-terminated and padded to a multiple of 4 bytes."""
    raw = text.encode("utf-8")
    return raw + b"\x00" * (4 - len(raw) % 4)


def _type_tag(arg: Arg) -> str:
    if isinstance(arg, Slot):
        return arg.value
    if isinstance(arg, bool):  # before int: bool is an int subclass
        return "T" if arg else "F"
    if isinstance(arg, int):
        return "i"
    if isinstance(arg, float):
        return "f"
    if isinstance(arg, str):
        return "s"
    raise TypeError(f"cannot encode OSC argument of type {type(arg).__name__}")


def _encode_constant(arg: Constant) -> bytes:
    if isinstance(arg, bool):
        return b""
    if isinstance(arg, int):
        return struct.pack(">i", arg)
    if isinstance(arg, float):
        return struct.pack(">f", arg)
    return osc_string(arg)


def encode_message(address: str, args: Sequence[Constant] = ()) -> bytes:
    """One OSC message from Python values (slow path: rare or variable messages)."""
    tags = "," + "".join(_type_tag(a) for a in args)
    return osc_string(address) + osc_string(tags) + b"".join(_encode_constant(a) for a in args)


def ntp_timetag(unix_time: float) -> int:
    """Unix time (seconds) -> 64-bit OSC/NTP timetag (32.32 fixed point since 1900)."""
    seconds = unix_time + NTP_UNIX_OFFSET
    whole = int(seconds)
    fraction = min(int((seconds - whole) * 2**32), 2**32 - 1)
    return (whole << 32) | fraction


def encode_bundle(timetag: int, elements: Iterable[bytes]) -> bytes:
    """An OSC bundle of already-encoded messages (or bundles)."""
    parts = [BUNDLE_HEADER, struct.pack(">Q", timetag)]
    for element in elements:
        parts.append(struct.pack(">i", len(element)))
        parts.append(element)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _EncodedMessage:
    data: bytes
    float_words: tuple[int, ...]  # word offsets of FLOAT slots within ``data``
    int_words: tuple[int, ...]


def _encode_template_message(spec: MessageSpec) -> _EncodedMessage:
    head = osc_string(spec.address) + osc_string("," + "".join(_type_tag(a) for a in spec.args))
    body = bytearray(head)
    floats: list[int] = []
    ints: list[int] = []
    for arg in spec.args:
        if arg is FLOAT:
            floats.append(len(body) // 4)
            body += b"\x00\x00\x00\x00"
        elif arg is INT:
            ints.append(len(body) // 4)
            body += b"\x00\x00\x00\x00"
        else:
            body += _encode_constant(arg)  # type: ignore[arg-type]
    return _EncodedMessage(bytes(body), tuple(floats), tuple(ints))


class FrameTemplate:
    """Pre-laid-out bundles for a fixed list of messages.

    The messages are packed greedily, in order, into as few bundles as fit
    ``max_datagram`` bytes each; every bundle carries the same timetag, so a
    receiver sees one instant however the frame was split. Slot values are
    consumed in message order: the k-th ``FLOAT`` slot takes ``floats[k]``.

    Not thread-safe: :meth:`pack` reuses one buffer, and the views it returns
    are valid until the next call. Send them before packing again.
    """

    def __init__(self, messages: Sequence[MessageSpec], max_datagram: int = 1400) -> None:
        encoded = [_encode_template_message(m) for m in messages]
        packets: list[list[_EncodedMessage]] = []
        size = 0
        for msg in encoded:
            element = 4 + len(msg.data)  # int32 size prefix + message
            if len(BUNDLE_HEADER) + 8 + element > max_datagram:
                raise ValueError(f"an OSC message of {element} bytes does not fit a {max_datagram}-byte datagram")
            if not packets or size + element > max_datagram:
                packets.append([])
                size = len(BUNDLE_HEADER) + 8
            packets[-1].append(msg)
            size += element

        chunks: list[bytes] = []
        float_words: list[int] = []
        int_words: list[int] = []
        timetag_words: list[int] = []
        bounds: list[tuple[int, int]] = []
        offset = 0  # bytes so far in the whole buffer
        for packet in packets:
            start = offset
            timetag_words.append((offset + len(BUNDLE_HEADER)) // 4)
            chunks.append(BUNDLE_HEADER + b"\x00" * 8)
            offset += len(BUNDLE_HEADER) + 8
            for msg in packet:
                chunks.append(struct.pack(">i", len(msg.data)))
                offset += 4
                base = offset // 4
                float_words.extend(base + w for w in msg.float_words)
                int_words.extend(base + w for w in msg.int_words)
                chunks.append(msg.data)
                offset += len(msg.data)
            bounds.append((start, offset))

        self._buf = np.frombuffer(bytearray(b"".join(chunks)), dtype=np.uint8)
        # Three typed views of the same bytes; OSC is big-endian.
        self._f32 = self._buf.view(">f4")
        self._i32 = self._buf.view(">i4")
        self._u32 = self._buf.view(">u4")
        self._float_idx = np.asarray(float_words, dtype=np.intp)
        self._int_idx = np.asarray(int_words, dtype=np.intp)
        self._hi_idx = np.asarray(timetag_words, dtype=np.intp)
        self._lo_idx = self._hi_idx + 1
        whole = memoryview(self._buf)
        self._views = [whole[a:b] for a, b in bounds]
        self.n_floats = len(float_words)
        self.n_ints = len(int_words)
        self.packet_sizes = tuple(b - a for a, b in bounds)

    @property
    def packets(self) -> int:
        return len(self._views)

    def pack(
        self, floats: np.ndarray, ints: np.ndarray | Sequence[int] | None = None, timetag: int = IMMEDIATE
    ) -> list[memoryview]:
        """Write this frame's numbers and timetag; return one view per datagram."""
        floats = np.asarray(floats).reshape(-1)
        if floats.shape[0] != self.n_floats:
            raise ValueError(f"template takes {self.n_floats} floats, got {floats.shape[0]}")
        self._f32[self._float_idx] = floats
        if self.n_ints:
            values = np.asarray(ints if ints is not None else (), dtype=np.int64).reshape(-1)
            if values.shape[0] != self.n_ints:
                raise ValueError(f"template takes {self.n_ints} ints, got {values.shape[0]}")
            # int32 wrap-around, as the wire type demands (a frame counter may outgrow it).
            self._i32[self._int_idx] = ((values + 2**31) % 2**32 - 2**31).astype(np.int32)
        self._u32[self._hi_idx] = timetag >> 32
        self._u32[self._lo_idx] = timetag & 0xFFFFFFFF
        return self._views
