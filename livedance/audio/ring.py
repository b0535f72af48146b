"""A preallocated single-producer / single-consumer ring of float32 samples.

The audio callback (producer) only copies into it; the analysis thread
(consumer) copies out. Each side owns one counter and only reads the other's,
and a Python int assignment is atomic under the GIL, so neither side ever
takes a lock. When the consumer falls behind, the producer drops the *new*
block rather than overwrite samples the consumer may be copying, and counts
the overrun; the consumer can call :meth:`RingBuffer.discard_old` to jump
back to "now" after a stall.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Lock-free SPSC float32 ring of ``capacity`` samples."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be >= 1 sample")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        # Monotonic sample counters: _written is only advanced by the producer,
        # _read only by the consumer. Their difference is what is buffered.
        self._written = 0
        self._read = 0
        self.overruns = 0  # number of producer blocks dropped
        self.dropped = 0  # samples dropped by overruns

    # -- producer side (audio callback: no allocation beyond array views) --
    def write(self, block: np.ndarray) -> bool:
        """Copy ``block`` in; return False (and count an overrun) if it does not fit."""
        n = block.shape[0]
        w = self._written
        if w + n - self._read > self.capacity:
            self.overruns += 1
            self.dropped += n
            return False
        start = w % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = block[:first]
        if first < n:
            self._buf[: n - first] = block[first:]
        self._written = w + n  # publish only after the copy is complete
        return True

    # -- consumer side --
    @property
    def available(self) -> int:
        """Samples written and not yet read."""
        return self._written - self._read

    def read_new(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` unread samples into ``out``; return how many."""
        r = self._read
        n = min(out.shape[0], self._written - r)
        if n <= 0:
            return 0
        start = r % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        self._read = r + n
        return n

    def discard_old(self, keep: int = 0) -> int:
        """Skip unread samples so at most ``keep`` remain; return how many were skipped."""
        skip = max(0, self.available - keep)
        self._read += skip
        return skip

    @property
    def total_written(self) -> int:
        return self._written
