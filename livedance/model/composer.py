"""The composer: the paper's MDSN ("music-to-dance synthesis"), made causal.

An LSTM runs once per dance unit. At unit k it reads

* the previous unit's movement code ``z_move[k-1]`` (zeros at the start),
* the initial-pose code of the pose unit k must start from (the end of unit
  k-1): this is the initial-pose continuity of the paper's decomposition,
* the music context of unit k (standardised log tempo, energy, busyness)
  and a style embedding (one extra row for "any style"),

* with a paired-data checkpoint, the code of the music heard so far
  (:class:`~livedance.model.music_encoder.MusicEncoder` over the audio
  features of the last units; ``audio_dim`` > 0),

and outputs a Gaussian over ``z_move[k]``. Sampling it with a temperature
gives the next movement; the unit decoder turns it into poses. Nothing in
it looks ahead: the live engine feeds the context of the beats heard so far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from livedance.model.context import ANY_STYLE, CONTEXT_DIM
from livedance.model.layers import Gaussian, GaussianHead
from livedance.model.music_encoder import MusicEncoder

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, H)


@dataclass
class ComposerConfig:
    """Sizes of the composer."""

    move_dim: int = 32
    init_dim: int = 16
    n_styles: int = 4
    style_dim: int = 8
    hidden: int = 128
    layers: int = 2
    #: A few hundred real units per style: without dropout the LSTM memorises
    #: the training takes within a few hundred steps (held-out NLL x4).
    dropout: float = 0.3
    #: Channels per audio slice the music encoder reads; 0 = descriptor-only (no encoder).
    audio_dim: int = 0
    #: Width of the music code joining the conditioning.
    audio_code: int = 32
    #: Read the energy and busyness descriptors. A paired-data composer does not
    #: by default: they were measured on the dance (the stand-in for music this
    #: composer now hears), and with them in training it learns nothing from the
    #: music. Tempo and style are read either way.
    descriptors: bool = True
    #: Paired-data composers without descriptors: the music encoder predicts the
    #: unit's (energy, busyness) from the music heard, and the composer reads them
    #: in the descriptors' place (MusicEncoder.heard_levels). Older checkpoints: False.
    levels: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "ComposerConfig":
        return cls(**d)  # type: ignore[arg-type]

    @property
    def cond_dim(self) -> int:
        """Width of the (context, style embedding[, music code]) conditioning vector."""
        return CONTEXT_DIM + self.style_dim + (self.audio_code if self.audio_dim else 0)


@dataclass
class ComposerLossWeights:
    """Weights of the composer's loss terms."""

    nll: float = 1.0
    adversarial: float = 0.05
    regression: float = 0.5  # energy/busyness of what was sampled vs what was asked
    style: float = 0.1
    style_dropout: float = 0.2  # fraction of training steps told "any style"
    context_noise: float = 0.1  # live descriptors are noisy; so are these, in training
    code_noise: float = 0.2  # live, the previous code is the composer's own sample, not the encoder's
    # Paired-data composers only: the music heard live is other music than the
    # training takes' (whose windows the encoder could otherwise memorise), and
    # silence before a song starts.
    audio_noise: float = 0.3  # std of noise on the standardised window
    audio_dropout: float = 0.2  # fraction of training steps that hear silence (all padding)
    levels: float = 1.0  # the heard levels' fit to the dance's energy and busyness (MSE, standardised)
    levels_teacher: float = 1.0  # share of training units that read the dance's levels, not the heard ones (0.5, 0: weaker, docs/training.md)


class Composer(nn.Module):
    """Causal LSTM over units -> Gaussian over the next movement code."""

    def __init__(self, cfg: ComposerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.style = nn.Embedding(cfg.n_styles + 1, cfg.style_dim)  # last row: any style
        in_dim = cfg.move_dim + cfg.init_dim + cfg.cond_dim
        self.inp = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(in_dim, cfg.hidden), nn.LeakyReLU(0.2))
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, num_layers=cfg.layers, batch_first=True, dropout=cfg.dropout)
        self.head = GaussianHead(cfg.hidden + cfg.cond_dim, cfg.move_dim)
        # Created last, and only for paired-data models: a descriptor-only
        # composer draws the same initial weights as before it existed.
        self.music = MusicEncoder(cfg.audio_dim, cfg.audio_code, levels=cfg.levels) if cfg.audio_dim else None
        #: The levels the music encoder heard in the last call (..., 2), for the training loss.
        self.heard: torch.Tensor | None = None

    def condition(
        self, context: torch.Tensor, style: torch.Tensor, audio: torch.Tensor | None = None, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(..., 3) standardised context, (...,) style ids (ANY_STYLE allowed)
        [, (..., units, steps, audio_dim) audio window] -> (..., cond_dim).
        ``teacher`` (...,) bool, training only: where the encoder's heard levels
        give way to the context's (the dance's own energy and busyness)."""
        idx = torch.where(style == ANY_STYLE, torch.full_like(style, self.cfg.n_styles), style)
        measured = context
        if not self.cfg.descriptors:  # tempo only: energy and busyness at their training means
            context = torch.cat([context[..., :1], torch.zeros_like(context[..., 1:])], dim=-1)
        if self.music is None:
            return torch.cat([context, self.style(idx)], dim=-1)
        if audio is None:
            raise ValueError("this composer was trained on paired music: it needs the audio window")
        code = self.music(audio)
        if self.music.levels is not None:
            heard = self.heard = self.music.heard_levels(audio)
            if teacher is not None:
                heard = torch.where(teacher[..., None], measured[..., 1:], heard)
            context = torch.cat([context[..., :1], heard], dim=-1)
        return torch.cat([context, self.style(idx), code], dim=-1)

    def forward(
        self,
        prev_move: torch.Tensor,
        init_code: torch.Tensor,
        context: torch.Tensor,
        style: torch.Tensor,
        state: LSTMState | None = None,
        audio: torch.Tensor | None = None,
        teacher: torch.Tensor | None = None,
    ) -> tuple[Gaussian, LSTMState]:
        """One or more steps.

        Args:
            prev_move: (B, K, Zm) movement code of the unit before each step.
            init_code: (B, K, Zi) initial-pose code each unit starts from.
            context: (B, K, 3) standardised music context of each unit.
            style: (B, K) style ids.
            state: LSTM state carried from the previous call, or None.
            audio: (B, K, units, steps, audio_dim) music window of each step
                (paired-data composers only; see ``AudioInput``).
            teacher: (B, K) bool, training a composer with heard levels:
                where it reads the context's energy and busyness instead.

        Returns:
            (Gaussian over z_move (B, K, Zm), new LSTM state).
        """
        cond = self.condition(context, style, audio, teacher)
        h, new_state = self.lstm(self.inp(torch.cat([prev_move, init_code, cond], dim=-1)), state)
        # The context also skips the LSTM, so a sudden change in the music
        # reaches the very next unit instead of leaking in through the memory.
        return self.head(torch.cat([h, cond], dim=-1)), new_state
