"""Unit VAE, composer, discriminators and checkpoint I/O.

The live engine needs only::

    from livedance.model import load_checkpoint, MusicContext

    model = load_checkpoint()            # the shipped checkpoint (or a path)
    state = model.new_state(batch=1, seed=0)
    feats, state = model.next_unit(state, MusicContext(tempo_bpm=120, energy=1.2), temperature=1.0)
"""

from livedance.model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from livedance.model.context import ANY_STYLE, DescriptorStats, MusicContext
from livedance.model.dance import ComposerState, DanceModel

__all__ = [
    "ANY_STYLE",
    "DEFAULT_CHECKPOINT",
    "ComposerState",
    "DanceModel",
    "DescriptorStats",
    "MusicContext",
    "load_checkpoint",
]
