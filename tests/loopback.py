"""Loopback receivers the tests listen with: real sockets on 127.0.0.1,
an ephemeral port unless one is asked for, each on its own thread, stopped
by ``close()`` (bounded: nothing outlives its test)."""

from __future__ import annotations

import socket
import threading
import time

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

#: Large enough for seconds of 8-dancer frames if a test thread is starved.
RECEIVE_BUFFER = 1 << 22


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


class UdpCollector:
    """Raw datagrams, kept as bytes (cheap enough to keep up with 60 fps x 8 dancers).
    Subclasses override :meth:`handle` to digest each datagram as it arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.handle(packet)

    def handle(self, packet: bytes) -> None:
        self.packets.append(packet)

    def messages(self) -> list[tuple[str, list]]:
        """Every OSC message in the datagrams received so far, as ``(address, params)``."""
        return [(m.message.address, m.message.params) for p in self.packets for m in OscPacket(p).messages]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
