"""External beat clocks: Ableton Link (follow and lead) and MIDI clock (in and out).

The same role as :mod:`livedance.music`'s tracker: a source of tempo and beat
phase. Each clock is one object that is fed observations (a Link reading, a
MIDI message with its arrival time) and answers :class:`~livedance.frames.SyncState`
at any instant, so it runs live or replayed offline with the same output.
All times here are on ``time.monotonic()``'s clock, in seconds.

This package never imports :mod:`livedance.live` or :mod:`livedance.model`;
``live/syncing.py`` wires it into ``perform``.
"""
