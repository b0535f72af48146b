"""A UDP receiver on 127.0.0.1 for benchmarks and tests: judging what was
sent from outside the sender, as a stage tool would receive it.

It binds an ephemeral port with a large receive buffer (seconds of 8-dancer
frames if its thread is starved), reads on a thread of its own into one
reused buffer, and hands each datagram to :meth:`LoopbackReceiver.handle`,
which subclasses override. ``close()`` lets the tail arrive and stops it.
"""

from __future__ import annotations

import socket
import threading
import time

#: Large enough for seconds of 8-dancer frames if the receiving thread is starved.
RECEIVE_BUFFER = 1 << 22


class LoopbackReceiver:
    """Counts datagrams (``datagrams``); override :meth:`handle` to digest them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopback-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        while not self._stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except (TimeoutError, OSError):
                continue
            self.datagrams += 1
            self.handle(view[:n])

    def handle(self, packet: memoryview) -> None:
        """One datagram, valid only during the call (the buffer is reused)."""

    def close(self, tail: float = 0.2) -> None:
        time.sleep(tail)  # let the last datagrams arrive
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
