"""UDP transport for the OSC and VMC sinks: "host:port" parsing and a sender
that never blocks the frame clock.

A stage network is lossy and receivers come and go (TouchDesigner restarts, a
laptop sleeps). A late pose is worthless, so the sender never waits: the
socket is non-blocking, and a datagram the kernel cannot take right now
(``EAGAIN``), or that the network refuses (``ECONNREFUSED`` after an ICMP
port-unreachable, ``ENETUNREACH``), is dropped and counted, never retried.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Iterable

from livedance.errors import UserError

log = logging.getLogger(__name__)

#: Kernel send buffer asked for: a whole 8-dancer frame (~25 kB) many times over,
#: so a burst of datagrams is queued rather than refused.
SEND_BUFFER = 1 << 20


def parse_host_port(text: str, default_port: int, what: str = "address") -> tuple[str, int]:
    """``"host:port"``, ``"host"``, ``":port"`` or ``"[v6addr]:port"`` -> ``(host, port)``.

    ``what`` names the option in the error message (e.g. ``"--osc"``).
    """
    example = f"write HOST:PORT, e.g. 127.0.0.1:{default_port}"
    raw = text.strip()
    if not raw:
        raise UserError(f"empty {what} address ({example})")
    if raw.startswith("["):  # IPv6 literal: [::1]:9000
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UserError(f"bad {what} address '{text}' ({example}, or [::1]:{default_port} for IPv6)")
        port_text = rest[1:] if rest else ""
    elif raw.count(":") > 1:  # bare IPv6 literal without a port
        host, port_text = raw, ""
    else:
        host, _, port_text = raw.partition(":")
    host = host or "127.0.0.1"
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"bad {what} address '{text}': port '{port_text}' is not a number ({example})") from None
    if not 1 <= port <= 65535:
        raise UserError(f"bad {what} address '{text}': port {port} is not in 1-65535 ({example})")
    return host, port


def resolve(host: str, port: int, what: str = "address") -> tuple[socket.AddressFamily, tuple]:
    """Resolve once, up front: a hostname in the hot path would hit DNS every frame."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve {what} host '{host}' ({exc.strerror}); use an IP address or a known name") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class SendStats:
    """Counters of a sink, read by the HUD and benchmarks."""

    frames: int = 0
    packets: int = 0  # datagrams handed to the kernel
    bytes: int = 0
    dropped: int = 0  # datagrams refused (buffer full, receiver gone, no route)


class UdpSender:
    """A connected, non-blocking UDP socket to one receiver."""

    def __init__(self, host: str, port: int, what: str = "address") -> None:
        family, sockaddr = resolve(host, port, what)
        self.target = (host, port)
        self.stats = SendStats()
        self._logged: set[int] = set()
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        if family == socket.AF_INET:
            # Lets a stage send to a LAN broadcast address (x.x.x.255) too.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sockaddr: tuple | None = None
        try:
            # Connected, so the kernel reports a vanished receiver (ECONNREFUSED)
            # and send() skips the per-call address handling.
            self._sock.connect(sockaddr)
        except OSError as exc:
            # No route yet (a stage machine whose network comes up late): keep
            # going unconnected; frames are dropped until the route appears.
            self._sockaddr = sockaddr
            self._log_once(exc)

    def send(self, datagrams: Iterable[bytes | memoryview]) -> None:
        """Hand each datagram to the kernel; drop (and count) what it will not take now."""
        stats = self.stats
        for dgram in datagrams:
            try:
                if self._sockaddr is None:
                    stats.bytes += self._sock.send(dgram)
                else:
                    stats.bytes += self._sock.sendto(dgram, self._sockaddr)
                stats.packets += 1
            except OSError as exc:
                stats.dropped += 1
                self._log_once(exc)

    def _log_once(self, exc: OSError) -> None:
        code = exc.errno or 0
        if code in self._logged:
            return
        self._logged.add(code)
        hint = {
            errno.EAGAIN: "the network cannot keep up; frames are being dropped",
            errno.ECONNREFUSED: "nothing is listening there yet; frames are dropped until it is",
        }.get(code, "frames are being dropped")
        log.warning("UDP to %s:%d: %s (%s)", self.target[0], self.target[1], exc.strerror or exc, hint)

    def close(self) -> None:
        self._sock.close()
