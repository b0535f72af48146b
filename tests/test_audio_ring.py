"""The lock-free ring buffer, including a real producer thread."""

from __future__ import annotations

import threading

import numpy as np

from livedance.audio.ring import RingBuffer


def test_wraps_around_and_keeps_order():
    ring = RingBuffer(10)
    out = np.zeros(10, np.float32)
    seq = np.arange(1000, dtype=np.float32)
    pos = got = 0
    rng = np.random.default_rng(0)
    while got < seq.size:
        n = int(rng.integers(1, 7))
        if pos < seq.size and ring.write(seq[pos : pos + n]):
            pos += min(n, seq.size - pos)
        k = ring.read_new(out[: int(rng.integers(1, 10))])
        np.testing.assert_array_equal(out[:k], seq[got : got + k])
        got += k
    assert ring.overruns >= 0 and ring.available == 0


def test_overrun_drops_the_new_block_and_counts_it():
    ring = RingBuffer(8)
    assert ring.write(np.ones(6, np.float32))
    assert not ring.write(np.full(4, 2.0, np.float32))  # would overwrite unread samples
    assert ring.overruns == 1 and ring.dropped == 4 and ring.available == 6
    out = np.zeros(8, np.float32)
    assert ring.read_new(out) == 6 and np.all(out[:6] == 1.0)
    assert ring.write(np.full(4, 2.0, np.float32))  # room again


def test_discard_old_jumps_to_now():
    ring = RingBuffer(100)
    ring.write(np.arange(50, dtype=np.float32))
    assert ring.discard_old(keep=5) == 45
    out = np.zeros(10, np.float32)
    assert ring.read_new(out) == 5
    np.testing.assert_array_equal(out[:5], np.arange(45, 50))


def test_concurrent_producer_and_consumer_lose_nothing():
    ring = RingBuffer(4096)
    total, block = 200_000, 256
    data = np.arange(total, dtype=np.float32)

    def produce() -> None:
        i = 0
        while i < total:
            if ring.write(data[i : i + block]):
                i += block

    t = threading.Thread(target=produce)
    t.start()
    out = np.zeros(1000, np.float32)
    got = []
    n_read = 0
    while n_read < total:
        k = ring.read_new(out)
        if k:
            got.append(out[:k].copy())
            n_read += k
    t.join()
    np.testing.assert_array_equal(np.concatenate(got), data)
