"""OSC control input: steer the live dance from TouchDesigner, a phone
(TouchOSC), Max or a script.

Addresses (numbers may be int or float; T/F count as 1/0):

    /livedance/control/style        i  style index, -1 = follow the music
    /livedance/control/energy       f  energy bias, -1..1
    /livedance/control/temperature  f  composer temperature, 0..4
    /livedance/control/seed         i  reseed the composer, 0..2**31-1
    /livedance/control/freeze       [i]  hold the pose (no argument = 1; 0 = resume)
    /livedance/control/resume       -  carry on dancing
    /livedance/control/tempo        [f]  force BPM 40..240; 0 or no argument = automatic
    /livedance/control/tap          -  tap tempo (the server timestamps the tap)
    /livedance/control/dancers      i  number of dancers, 1..64
    /livedance/control/latency      f  output latency to compensate, ms, 0..2000
    /livedance/control/level        [i|s]  metrical level: -1 / "half", 0 / "normal", 1 / "double";
                                       "auto" or no argument = chosen by tempo
    /livedance/control/hit          f  how hard dancers hit each beat, 0..1: 0 = as real dancers do,
                                       1 = slow to a stop on every beat

With ``osc.secret`` set, every address must be prefixed by ``/<secret>``
(``/s3cret/livedance/control/energy``), which CHOP-based senders can express
as a channel name. It keeps honest mistakes and casual pranks out of a shared
stage network; it is not encryption.

Robustness: the server runs on its own thread and nothing a sender does can
stop it. Unknown addresses, wrong argument types, out-of-range values,
oversized or malformed packets, refused senders and bad secrets are logged
once per kind, counted in :attr:`ControlServer.stats`, and ignored. Bundle
timetags are ignored on purpose: python-osc's dispatcher sleeps until a
future timetag, which would let one packet stall control for years. A flood
is capped at :data:`MAX_PACKETS_PER_SECOND`; beyond it the server pauses and
the kernel drops the excess, so a flood costs the engine a bounded slice of
CPU.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

from livedance.config import OscSettings, Settings
from livedance.errors import UserError
from livedance.live.controls import Controls
from livedance.outputs.udp import is_loopback, parse_host_port

log = logging.getLogger(__name__)

PREFIX = "/livedance/control/"
#: Largest datagram parsed; control messages are tens of bytes.
MAX_DATAGRAM = 8192
MAX_PACKETS_PER_SECOND = 2000
_WINDOW = 0.1  # seconds per rate-limit window
_RECEIVE_BUFFER = 1 << 18  # small on purpose: a flood backlog drains in well under a second
_POLL = 0.1  # seconds; how quickly close() is noticed
_MAX_BUNDLE_DEPTH = 8

#: OSC address (after PREFIX) -> control name.
ADDRESSES: dict[str, str] = {
    "style": "style",
    "energy": "energy_bias",
    "temperature": "temperature",
    "seed": "seed",
    "freeze": "frozen",
    "resume": "frozen",
    "tempo": "tempo_override",
    "tap": "tap",
    "dancers": "dancers",
    "latency": "latency_ms",
    "level": "level",
    "hit": "beat_hit",
}


class IgnoredPacket(Exception):
    """A message to drop; ``kind`` names why (the key of the stats and the log)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass
class ControlStats:
    packets: int = 0  # datagrams received
    applied: int = 0  # messages that changed a control
    ignored: dict[str, int] = field(default_factory=dict)  # kind -> count


def _numbers(args: Sequence[object], address: str) -> list[float]:
    out: list[float] = []
    for arg in args:
        if isinstance(arg, bool):
            out.append(1.0 if arg else 0.0)
        elif isinstance(arg, (int, float)):
            out.append(float(arg))
        else:
            raise IgnoredPacket("wrong type", f"{address} takes numbers, got {type(arg).__name__}")
    return out


def control_value(verb: str, args: Sequence[object], address: str) -> float | int | str | None:
    """The value :meth:`Controls.apply` gets for an OSC message, by OSC conventions
    (numbers only, so "automatic" is spelled -1 or 0; the level also takes its name)."""
    if verb == "level":
        if not args:
            return None
        if len(args) == 1 and isinstance(args[0], str):
            return args[0]
    numbers = _numbers(args, address)
    if verb in ("tap", "resume"):
        return 0 if verb == "resume" else None
    if verb == "freeze" and not numbers:
        return 1
    if verb == "tempo" and (not numbers or numbers[0] == 0):
        return None
    if len(numbers) != 1:
        raise IgnoredPacket("wrong type", f"{address} takes one number, got {len(numbers)}")
    value = numbers[0]
    if verb == "style" and value == -1:
        return None
    return value


def _string(data: bytes, start: int) -> tuple[str, int]:
    end = data.find(b"\x00", start)
    if end < 0:
        raise IgnoredPacket("malformed", "unterminated OSC string")
    following = (end + 4) & ~3  # NUL-terminated, padded to 4 bytes
    if following > len(data):
        raise IgnoredPacket("malformed", "truncated OSC string")
    try:
        return data[start:end].decode("utf-8"), following
    except UnicodeDecodeError:
        raise IgnoredPacket("malformed", "OSC string is not UTF-8") from None


_FIXED = {"i": (">i", 4), "f": (">f", 4), "h": (">q", 8), "d": (">d", 8)}


def _message(data: bytes) -> tuple[str, list[object]]:
    address, at = _string(data, 0)
    # Pre-1.0 senders could omit the type tags; refusing that form means a
    # message cut right after its address is rejected rather than applied.
    tags, at = _string(data, at)
    if not tags.startswith(","):
        raise IgnoredPacket("malformed", "type tags do not start with ','")
    args: list[object] = []
    for tag in tags[1:]:
        if tag in _FIXED:
            fmt, size = _FIXED[tag]
            if at + size > len(data):
                raise IgnoredPacket("malformed", "truncated argument")
            args.append(struct.unpack_from(fmt, data, at)[0])
            at += size
        elif tag == "s":
            text, at = _string(data, at)
            args.append(text)
        elif tag in "TF":
            args.append(tag == "T")
        else:
            raise IgnoredPacket("wrong type", f"unsupported OSC type tag {tag!r}")
    if at != len(data):
        raise IgnoredPacket("malformed", "bytes after the last argument")
    return address, args


def parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, list[object]]]:
    """Every ``(address, args)`` of an OSC packet, or :class:`IgnoredPacket` if any part
    is malformed (nothing is applied from a half-broken packet).

    A strict parser, not python-osc's: that one pads a truncated argument with
    zeros, so a packet cut short in transit would apply a wrong value.
    """
    if not data or len(data) % 4:
        raise IgnoredPacket("malformed", "packet length is not a positive multiple of 4")
    if data[:1] == b"/":
        return [_message(data)]
    if not data.startswith(b"#bundle\x00") or len(data) < 16:
        raise IgnoredPacket("malformed", "not an OSC message or bundle")
    if depth >= _MAX_BUNDLE_DEPTH:
        raise IgnoredPacket("malformed", "bundles nested too deep")
    out: list[tuple[str, list[object]]] = []
    at = 16  # header + timetag, which control ignores
    while at < len(data):
        if at + 4 > len(data):
            raise IgnoredPacket("malformed", "truncated bundle element size")
        (size,) = struct.unpack_from(">i", data, at)
        at += 4
        if size <= 0 or at + size > len(data):
            raise IgnoredPacket("malformed", "bundle element size out of bounds")
        out.extend(parse_packet(data[at : at + size], depth + 1))
        at += size
    return out


class ControlServer:
    """Listens for OSC control messages and applies them to a :class:`Controls`."""

    def __init__(
        self,
        controls: Controls,
        host: str = "127.0.0.1",
        port: int = 9001,
        allow: Sequence[str] = (),
        secret: str | None = None,
    ) -> None:
        self.controls = controls
        self.stats = ControlStats()
        self._allow = [_network(a) for a in allow]
        self._secret = ("/" + secret).encode() if secret else None
        self._logged: set[str] = set()
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        except (socket.gaierror, OSError) as exc:
            raise UserError(f"cannot listen for control on {host}:{port} ({exc}); use an IP address of this machine") from None
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise UserError(
                f"cannot listen for control on {host}:{port} ({exc.strerror}); pick a free port with --control HOST:PORT"
            ) from None
        self._sock.settimeout(_POLL)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        if not is_loopback(host):
            log.warning(
                "control listens on %s:%d, reachable from the network: anyone there can steer the dance "
                "(restrict with osc.allow and osc.secret)",
                *self.address,
            )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="osc-control", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: OscSettings, controls: Controls, target: str | None = None) -> "ControlServer":
        """Listen on ``target`` ("host:port"), else ``settings.control``, else
        127.0.0.1 on the default control port."""
        text = target or settings.control
        host, port = (
            parse_host_port(text, settings.default_control_port, "--control")
            if text
            else ("127.0.0.1", settings.default_control_port)
        )
        return cls(controls, host, port, allow=settings.allow, secret=settings.secret)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * _POLL + 1.0)
        self._sock.close()

    def __enter__(self) -> "ControlServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the server thread -----------------------------------------------------

    def _serve(self) -> None:
        buf = bytearray(65536)  # the largest UDP payload, so nothing is silently truncated
        window_start = time.monotonic()
        window_count = 0
        budget = int(MAX_PACKETS_PER_SECOND * _WINDOW)
        while not self._stop.is_set():
            try:
                size, sender = self._sock.recvfrom_into(buf)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            now = time.monotonic()
            if now - window_start >= _WINDOW:
                window_start, window_count = now, 0
            window_count += 1
            try:
                self._handle(bytes(buf[:size]), sender[0])
            except IgnoredPacket as why:
                self._ignore(why.kind, str(why))
            except Exception as exc:  # noqa: BLE001 - a sender must never kill this thread
                self._ignore("malformed", f"unparsable packet ({type(exc).__name__})")
            if window_count >= budget:
                self._ignore("flood", f"over {MAX_PACKETS_PER_SECOND} packets/s; pausing, the excess is dropped")
                self._stop.wait(max(0.0, window_start + _WINDOW - time.monotonic()))

    def _handle(self, dgram: bytes, sender_ip: str) -> None:
        self.stats.packets += 1
        if self._allow and not _allowed(sender_ip, self._allow):
            raise IgnoredPacket("sender not allowed", f"packet from {sender_ip}, which is not in osc.allow")
        if len(dgram) > MAX_DATAGRAM:
            raise IgnoredPacket("oversize", f"{len(dgram)}-byte packet (control messages are tiny)")
        for address, args in parse_packet(dgram):
            try:
                self._apply(address, args)
            except IgnoredPacket as why:
                self._ignore(why.kind, str(why))

    def _apply(self, address: str, args: list[object]) -> None:
        if self._secret is not None:
            raw = address.encode("utf-8", "replace")
            head = raw[: len(self._secret)]
            if not (hmac.compare_digest(head, self._secret) and raw[len(self._secret) : len(self._secret) + 1] == b"/"):
                raise IgnoredPacket("bad secret", "message without the shared secret prefix")
            address = address[len(self._secret) :]
        verb = address[len(PREFIX) :] if address.startswith(PREFIX) else None
        name = ADDRESSES.get(verb) if verb else None
        if name is None or verb is None:
            raise IgnoredPacket("unknown address", f"unknown control address {address[:64]!r}")
        value = control_value(verb, args, address)
        try:
            self.controls.apply(name, value)
        except ValueError as exc:
            raise IgnoredPacket("out of range", f"{address}: {exc}") from None
        self.stats.applied += 1
        log.info("control %s = %r", name, value)

    def _ignore(self, kind: str, detail: str) -> None:
        self.stats.ignored[kind] = self.stats.ignored.get(kind, 0) + 1
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("OSC control: ignoring %s (further '%s' problems are counted, not logged)", detail, kind)


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UserError(f"osc.allow entry {text!r} is not an IP address or network (e.g. \"192.168.1.20\" or \"10.0.0.0/24\")") from None


def _allowed(ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    return any(address in net for net in networks)


# -- `livedance control`: send one control message (no controller needed) -----


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"what to change: {', '.join(ADDRESSES)}")
    parser.add_argument("value", nargs="?", help="the number, if the control takes one (level also: auto, half, normal, double)")
    parser.add_argument("--to", metavar="HOST:PORT", help="where `perform --control` listens (default 127.0.0.1:9001)")


def run(args: argparse.Namespace, settings: object) -> int:
    from livedance.outputs.osc_packing import encode_message
    from livedance.outputs.udp import UdpSender

    assert isinstance(settings, Settings)
    if args.name not in ADDRESSES:
        raise UserError(f"unknown control '{args.name}' (choose one of: {', '.join(ADDRESSES)})")
    value: list[float | int | str] = []
    if args.value is not None:
        try:
            number = float(args.value)
        except ValueError:
            if args.name != "level":
                raise UserError(f"control {args.name} takes a number, got {args.value!r}") from None
            value = [args.value]  # a level by name: the server checks it
        else:
            value = [int(number) if number.is_integer() else number]
    host, port = parse_host_port(args.to or settings.osc.control or "", settings.osc.default_control_port, "--to")
    secret = f"/{settings.osc.secret}" if settings.osc.secret else ""
    sender = UdpSender(host, port, what="control")
    sender.send([encode_message(f"{secret}{PREFIX}{args.name}", value)])
    sender.close()
    if sender.stats.dropped:
        raise UserError(f"could not send to {host}:{port}; is `livedance perform --control` running there?")
    return 0
