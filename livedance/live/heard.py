"""The music heard so far, kept for a paired-data composer's music encoder.

Only engines whose checkpoint hears audio (``model.audio`` set) keep one.
It holds the recent hops' features and tracked beats (analysis clock; a
few seconds of arrays, appended per ``hear`` call, never in the audio
callback) and hands :meth:`window` to the planner: the features of the last
whole units of two beats, ending on the last beat heard. Nothing later than
what has been heard exists here, so the composer cannot look ahead.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from livedance.config import FeatureSettings
from livedance.errors import UserError
from livedance.model.music_encoder import AudioInput
from livedance.music.features import FeatureBlock


class HeardMusic:
    """Recent feature hops and beat times -> the music encoder's window."""

    #: Slowest tempo the window must cover (BPM): how much audio to keep.
    MIN_BPM = 40.0

    def __init__(self, audio: AudioInput, sample_rate: int, hop: int, settings: FeatureSettings) -> None:
        problem = audio.check(sample_rate, hop, settings)
        if problem is not None:
            raise UserError(
                f"the checkpoint's music encoder was trained with other analysis settings: {problem}; "
                "set them back in the config file or use a checkpoint trained at these settings"
            )
        self.audio = audio
        beats = 2 * int(audio.units)
        self.keep_seconds = (beats + 1) * 60.0 / self.MIN_BPM
        self._blocks: deque[FeatureBlock] = deque()
        self._beats: deque[float] = deque(maxlen=beats + 1)

    def add(self, block: FeatureBlock, beat_times: list[float]) -> None:
        """New hops and the beats tracked in them."""
        if len(block):
            self._blocks.append(block)
            newest = float(block.times[-1])
            while len(self._blocks) > 1 and float(self._blocks[0].times[-1]) < newest - self.keep_seconds:
                self._blocks.popleft()
        self._beats.extend(beat_times)

    def window(self) -> np.ndarray:
        """(units, steps, channels) encoder input of the music heard so far."""
        if not self._blocks:
            return self.audio.silence()
        if len(self._blocks) > 1:  # one array from here on: the next call appends to it
            self._blocks = deque([FeatureBlock.concat(list(self._blocks))])
        return self.audio.window(self._blocks[0], np.asarray(self._beats))
