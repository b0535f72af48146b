"""Loopback receivers the tests listen with: real sockets on 127.0.0.1,
an ephemeral port unless one is asked for, each on its own thread, stopped
by ``close()`` (bounded: nothing outlives its test)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from livedance.bench.loopback import RECEIVE_BUFFER, LoopbackReceiver


class OscCollector:
    """A python-osc server recording every message as ``(address, args)``."""

    def __init__(self, port: int = 0) -> None:
        self.messages: list[tuple[str, tuple]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", port), dispatcher)
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class UdpCollector(LoopbackReceiver):
    """Raw datagrams, kept as bytes (cheap enough to keep up with 60 fps x 8 dancers).
    Subclasses override :meth:`handle` to digest each datagram as it arrives."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        super().__init__()

    def handle(self, packet: memoryview) -> None:
        self.packets.append(bytes(packet))

    def frames(self) -> int:
        """``/livedance/frame`` messages received so far."""
        return sum(b"/livedance/frame" in p for p in self.packets)

    def messages(self) -> list[tuple[str, list]]:
        """Every OSC message in the datagrams received so far, as ``(address, params)``."""
        return [(m.message.address, m.message.params) for p in self.packets for m in OscPacket(p).messages]

    def close(self) -> None:
        super().close(tail=0.0)


def perform_to(song: Path, record: Path, *, stdout: int = subprocess.PIPE) -> tuple[subprocess.Popen[str], UdpCollector]:
    """``livedance perform`` on ``song`` (paced like a live input, no window),
    its OSC to a fresh :class:`UdpCollector` and its frames recorded to ``record``."""
    rx = UdpCollector()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance.cli", "perform", "--input", str(song), "--no-window",
         "--osc", f"127.0.0.1:{rx.port}", "--record", str(record)],
        stdout=stdout, stderr=subprocess.PIPE, text=True,
    )
    return proc, rx
