"""The engine: music in, beat-locked frames out.

Three entry points, one per clock of DESIGN.md, so the same object runs live
(each on its own thread) and offline (called in turn, deterministically):

* :meth:`Engine.hear` - analysis clock: audio samples -> features -> beat
  tracker -> listener (loudness, busyness, silence).
* :meth:`Engine.plan` - generation: asks the composer for the units the
  timeline is missing (at least one unit ahead of the playing one). Live, a
  worker thread calls it; it never runs on the frame clock.
* :meth:`Engine.frame` - frame clock: advances the beat clock toward the
  tracker's phase, samples the timeline (cross-faded with the idle groove
  when there is no music to follow), integrates the root on the stage, runs
  forward kinematics once and returns a :class:`~livedance.frames.Frame`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livedance import skeleton as sk
from livedance.config import Settings
from livedance.frames import BeatEvent, Frame, SyncState
from livedance.live.heard import HeardMusic
from livedance.live.idle import idle_features
from livedance.live.listener import Listener
from livedance.live.phase import BeatClock, grid_phase
from livedance.live.level import LevelChooser, dance_tempo, parse_level, span
from livedance.live.timeline import UNIT_FRAMES, UnitTimeline
from livedance.model.context import ANY_STYLE
from livedance.model.dance import beat_floor

log = logging.getLogger(__name__)

#: Spacing between dancers' home spots on stage, metres.
DANCER_SPACING = 1.6
#: With several dancers each keeps within this fraction of the spacing of its
#: home spot, so they never walk into each other.
PERSONAL_SPACE = 0.35
#: Metres per second a dancer walks to a new home spot, onto or off the stage
#: (the number of dancers changed): a brisk walk, never a jump.
WALK_SPEED = 1.2
#: Dancers enter and leave this far beyond the stage's edge (the wings).
WINGS = 1.0
#: A tapped tempo this close (log ratio, ~6%) to a confident tracker's gives
#: way to it when ``engine.tap_follows_music`` is on.
TAP_HANDOVER = 0.06


def home_spots(count: int, radius: float) -> tuple[np.ndarray, float]:
    """Home spots ``(count, 3)`` (y = 0) for ``count`` dancers, and how far each
    may wander from its spot, so that every dancer stays inside the stage
    circle of ``radius`` metres.

    A line or a hexagonal cluster, whichever leaves them further apart; spots
    ``DANCER_SPACING`` apart when the stage is big enough, closer when not.
    """
    if count <= 1:
        return np.zeros((max(count, 1), 3)), radius
    line = np.stack([np.arange(count) - (count - 1) / 2.0, np.zeros(count)], axis=1)
    i, j = np.meshgrid(np.arange(-5, 6), np.arange(-5, 6))
    lattice = np.stack([(i + j / 2.0).ravel(), (j * math.sqrt(3) / 2.0).ravel()], axis=1)
    order = np.lexsort((lattice[:, 0], lattice[:, 1], np.round(np.hypot(*lattice.T), 6)))
    hexa = lattice[order[:count]]
    hexa = hexa - hexa.mean(axis=0)
    best, best_spacing = line, -1.0
    for layout in (line, hexa):
        extent = float(np.hypot(*layout.T).max())
        spacing = min(DANCER_SPACING, radius / (extent + PERSONAL_SPACE))
        if spacing > best_spacing + 1e-9:
            best, best_spacing = layout, spacing
    spots = np.zeros((count, 3))
    spots[:, 0], spots[:, 2] = best[:, 0] * best_spacing, best[:, 1] * best_spacing
    return spots, PERSONAL_SPACE * best_spacing


def _wings(spots: np.ndarray, radius: float) -> np.ndarray:
    """Where dancers bound for (or leaving) ``spots`` stand off stage: the
    nearer side, level with their spot."""
    side = np.where(spots[:, 0] > 1e-9, 1.0, np.where(spots[:, 0] < -1e-9, -1.0, np.where(np.arange(len(spots)) % 2, -1.0, 1.0)))
    out = spots.copy()
    out[:, 0] = side * (radius + WINGS)
    return out


@dataclass
class MusicView:
    """The engine's latest understanding of the music (read by the frame clock)."""

    time: float = 0.0  # music time of the latest analysed hop
    tempo: float = 120.0
    next_beat: float = math.inf  # predicted time of the next beat
    confidence: float = 0.0
    energy: float = 0.0
    busyness: float = 0.0
    silent: bool = True
    beats: list[BeatEvent] = field(default_factory=list)  # not yet handed to a frame


#: Unit generation times kept for statistics (the most recent ones only).
UNIT_TIMES_KEPT = 4096


@dataclass
class EngineStats:
    units: int = 0
    # Bounded: a list grew by one float per unit forever (~1 MB a day of
    # dancing, without end in an installation that runs for months).
    unit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=UNIT_TIMES_KEPT))
    beats: int = 0
    # Units the model could not make as asked: made in the previous style
    # instead, or (failed) not made at all (the dancer grooves idle meanwhile).
    style_fallbacks: int = 0
    generation_failures: int = 0
    device_fallbacks: int = 0  # times the model left a failing GPU for the CPU


class Engine:
    """Composes audio analysis, the dance model and the timeline.

    Args:
        settings: all settings (audio/features/beats/engine sections are used).
        model: a loaded :class:`livedance.model.checkpoint.DanceModel`.
        controls: optional :class:`livedance.live.controls.Controls`; read once per frame.
    """

    def __init__(self, settings: Settings, model: Any, controls: Any = None) -> None:
        from livedance.music.beats import BeatTracker
        from livedance.music.features import FeatureExtractor

        self.settings = settings
        self.model = model
        self.controls = controls
        es = settings.engine
        self.dancers = int(es.dancers)
        self.seed = int(es.seed)
        sr, hop = settings.audio.sample_rate, settings.audio.hop
        self.features = FeatureExtractor(settings.features, sr, hop)
        self.tracker = BeatTracker(settings.beats, sr / hop, onset_latency=self.features.onset_latency)
        self.listener = Listener(hop / sr)
        self.music = MusicView(tempo=settings.beats.preferred_bpm)
        self.stats = EngineStats()
        self._lock = threading.Lock()  # guards timeline + composer state across threads
        self._controls_version = -1
        self._seed_count = controls.snapshot().seed_count if controls is not None else 0
        if controls is not None and hasattr(model, "style_names"):
            # Controls accept only the styles this checkpoint knows: a style it
            # lacks made every unit fail and froze the dancer.
            controls.limit_styles(len(model.style_names))
        self._good_style = ANY_STYLE  # the last style a unit was made in
        self._last_unit: np.ndarray | None = None  # host copy of the last unit made (for a CPU fall-back)
        self._failed_index: int | None = None  # unit that could not be made (not retried)
        self._failed_version = -1  # controls version when it failed: a change retries
        self._logged: set[str] = set()
        # Music time minus the taps' clock (time.monotonic()): the live runner
        # keeps it current; offline, taps are given in music time.
        self.tap_clock_offset = 0.0
        self._target = 0.0  # the dance weight's target on the last frame (1 dancing, 0 idle)
        self.levels = LevelChooser.for_model(model)
        envelope = getattr(model, "envelope", None)  # the realism envelope of the training takes, if stored
        self._energy_cap = None if envelope is None else np.float32(max(s.median("speed") for s in envelope.styles.values()))
        self.forced_level = parse_level(es.level)  # the setting; a level control replaces it
        self.level = 0  # metrical level of the unit playing (see livedance.live.level)
        self.frame_index = 0  # never reset: receivers order frames by it
        # A paired-data checkpoint hears the music itself: keep what was heard.
        audio = getattr(model, "audio", None)
        self.heard = None if audio is None else HeardMusic(audio, sr, hop, settings.features)
        self._sync_beat: float | None = None  # a leading external clock's beat on the last frame
        self._reset_dance()

    # ------------------------------------------------------------------ setup

    def _reset_dance(self) -> None:
        b = self.dancers
        self.timeline = UnitTimeline()
        self.clock = BeatClock()
        self.composer_state = self.model.new_state(b, self.seed)
        self._state_after: dict[int, Any] = {}  # composer state after each recent unit, by unit number
        self.home, self.wander = home_spots(b, self.settings.engine.stage_radius)
        self.home_target = self.home.copy()  # where each home spot is walking to
        self.wander_now = self.wander  # eases to a new wander radius at walking speed
        self.offset = np.zeros((b, 3), dtype=np.float64)  # position relative to home
        self.yaw = np.zeros(b, dtype=np.float64)
        self.weight = 0.0  # dance (1) vs idle (0)
        self.enter_at: float | None = 0.0  # beat position at which dancing may start
        self.last_feats: np.ndarray | None = None

    # ---------------------------------------------------------------- analysis

    def hear(self, samples: np.ndarray) -> None:
        """Analyse new mono samples at the analysis rate (any count)."""
        block = self.features.process(samples)
        if len(block.onset) == 0:
            return
        states = self.tracker.hear(block)
        heard = self.listener.update(block.rms, block.onset, np.fromiter((x.phase for x in states), np.float64, len(states)))
        m = self.music
        last = states[-1]
        new_beats = [
            BeatEvent(index=self.stats.beats + i, time=float(s.beat_time), tempo=float(s.tempo))
            for i, s in enumerate(x for x in states if x.beat)
        ]
        self.stats.beats += len(new_beats)
        with self._lock:
            if self.heard is not None:  # under the lock: the planner reads it
                self.heard.add(block, [b.time for b in new_beats])
            m.time = float(last.time)
            m.tempo = float(last.tempo)
            m.next_beat = float(last.next_beats[0]) if len(last.next_beats) else math.inf
            m.confidence = float(last.confidence)
            m.energy, m.busyness, m.silent = heard.energy, heard.busyness, heard.silent
            m.beats.extend(new_beats)

    # -------------------------------------------------------------- generation

    def _choose_level(self) -> int:
        """The metrical level for a unit planned now (forced by a control or the setting, else by tempo)."""
        if self.controls is not None:
            c = self.controls.snapshot()
            style, forced = ANY_STYLE if c.style is None else c.style, c.level
        else:
            style, forced = ANY_STYLE, self.forced_level
        if forced is None and self._override() is None and self.music.confidence < 0.5:
            # No tempo to trust yet (the tracker starts at its preferred tempo
            # and may read an octave off at first): keep the level, normal at first.
            return self.levels.level
        return self.levels.choose(self._tempo(), style, forced, self.clock.position)

    def _follow_level(self) -> None:
        """A new level takes over at the next unit boundary: queued units that
        have not started and span another level are dropped, to be made again
        (else a half-time unit queued on a wrong early tempo plays for 4 beats)."""
        level = self._choose_level()
        if any(u.level != level for u in self.timeline.queued_after(self.clock.position)):
            self.timeline.clear_after(self.clock.position)
            # The next unit continues the one kept, not the one dropped (its
            # pose would be far off: the seam would whip the hands across).
            kept = self._state_after.get(self.timeline.last_index)
            if kept is not None and kept.batch == self.composer_state.batch:
                self.composer_state = kept

    def _context(self) -> tuple[Any, float, int]:
        """The next unit's music context, temperature and metrical level."""
        m = self.music
        if self.controls is not None:
            # The controls start from the engine settings, so they replace them
            # (adding both would count the configured bias twice).
            c = self.controls.snapshot()
            bias, temperature = c.energy_bias, c.temperature
            style = ANY_STYLE if c.style is None else c.style
        else:
            es = self.settings.engine
            bias, temperature, style = es.energy_bias, es.temperature, ANY_STYLE
        energy = float(np.clip(m.energy + bias, 0.0, 1.0))
        tempo = self._tempo()
        level = self._choose_level()
        # The composer is asked for units danced at the tempo they will be
        # played at: half the music's in half-time.
        ctx = self.model.descriptors.context_from_levels(dance_tempo(tempo, level), energy, m.busyness, style)
        if self._energy_cap is not None:
            # Loud music or "wilder" asked for the top of the training units'
            # energies (up to 2.5 m/s): far past the liveliest style's typical
            # 1.65, and the units made for it skated out of the envelope.
            ctx.energy = np.minimum(ctx.energy, self._energy_cap)
        if self.heard is not None:
            ctx.audio = self.heard.window()  # the music heard so far, no look-ahead
        return ctx, temperature, level

    def _wanted(self) -> int | None:
        """The unit to make next, unless it is one that already failed (and
        no control changed since): a failure is retried at the next unit, never
        in a loop."""
        index = self.timeline.needs(self.clock.position)
        if index is not None and index == self._failed_index:
            version = self.controls.snapshot().version if self.controls is not None else -1
            if version == self._failed_version:
                return None
        return index

    def needs_unit(self) -> bool:
        """Does the timeline lack a unit it will need soon? (cheap; for waking the generator)"""
        return self._wanted() is not None

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(message + " (further ones are counted, not logged)", *args)

    def _next_unit(self, state: Any, ctx: Any, temperature: float, seconds: float | None = None) -> tuple[np.ndarray, Any]:
        """``model.next_unit``; a GPU that fails mid-show (out of memory, device lost)
        hands the model and the state to the CPU, once, and the unit is made there."""
        hit = self.controls.snapshot().beat_hit if self.controls is not None else self.settings.engine.beat_hit
        self.model.beat_floor = beat_floor(hit)
        try:
            feats, state = self.model.next_unit(state, ctx, temperature, seconds)
        except Exception as exc:  # noqa: BLE001 - re-raised below unless it is the GPU's
            from livedance.model.device import fall_back_to_cpu, is_device_error

            device = getattr(self.model, "device", None)
            if device is None or device.type == "cpu" or not is_device_error(exc):
                raise
            self.stats.device_fallbacks += 1
            self.model, state = fall_back_to_cpu(self.model, state, exc, self._last_unit)  # carries beat_floor over
            feats, state = self.model.next_unit(state, ctx, temperature, seconds)
        self._last_unit = feats
        return feats, state

    def _compose(self, state: Any, ctx: Any, temperature: float, seconds: float | None = None) -> tuple[np.ndarray, Any]:
        """One unit from the model; a style it cannot make falls back to the
        last style that worked. Raises only if that fails too."""
        try:
            feats, new_state = self._next_unit(state, ctx, temperature, seconds)
        except Exception as exc:  # noqa: BLE001 - any model failure: try the fallback
            if ctx.style == self._good_style:
                raise
            self.stats.style_fallbacks += 1
            self._log_once("style", "cannot dance style %r (%s); dancing style %r instead", ctx.style, exc, self._good_style)
            ctx.style = self._good_style
            feats, new_state = self._next_unit(state, ctx, temperature, seconds)
        self._good_style = int(np.asarray(ctx.style).flat[0]) if np.ndim(ctx.style) else int(ctx.style)
        return feats, new_state

    def plan(self) -> int:
        """Generate every unit the timeline needs now; returns how many.

        A unit the model fails to make is counted and logged once; the dancer
        grooves idle until a later unit succeeds (retried once per unit, or at
        once when a control changes). Generation never raises."""
        made = 0
        while True:
            with self._lock:
                self._follow_level()
                index = self._wanted()
                if index is None:
                    return made
                ctx, temperature, level = self._context()
                seconds = span(level) * 60.0 / max(self._tempo(), 1.0)  # how long the unit will play
                state = self.composer_state
                version = self.controls.snapshot().version if self.controls is not None else -1
            t0 = time.perf_counter()
            try:
                feats, state = self._compose(state, ctx, temperature, seconds)
            except Exception as exc:  # noqa: BLE001 - the show goes on in the idle groove
                self.stats.generation_failures += 1
                self._log_once("generation", "unit %d could not be generated (%s: %s); grooving idle", index, type(exc).__name__, exc)
                log.debug("unit generation failed", exc_info=True)
                with self._lock:
                    self._failed_index, self._failed_version = index, version
                return made
            self.stats.unit_seconds.append(time.perf_counter() - t0)
            with self._lock:
                if len(feats) != self.offset.shape[0]:
                    continue  # the number of dancers changed while it was made: make it again
                self._failed_index = None
                self.composer_state = state
                if index > self.timeline.last_index:
                    self.timeline.append(index, np.asarray(feats, dtype=np.float32), span(level), self.clock.position)
                    self._state_after[index] = state
                    for old in [k for k in self._state_after if k < index - 3]:
                        del self._state_after[old]
            self.stats.units += 1
            made += 1

    # -------------------------------------------------------------- frame clock

    def _override(self) -> float | None:
        """The operator's forced tempo (OSC, tap, keyboard), if any."""
        if self.controls is None:
            return None
        override = self.controls.snapshot().tempo_override
        return float(override) if override else None

    def _tap_phase(self, t: float, bpm: float) -> float | None:
        """The tapped beats' phase at music time ``t`` (None: not tapped)."""
        tap = self.controls.snapshot().tap_beat if self.controls is not None else None
        return None if tap is None else grid_phase(t, tap + self.tap_clock_offset, bpm)

    def _music_takes_over(self, bpm: float) -> bool:
        """With ``engine.tap_follows_music``, a tapped tempo gives way to the
        tracker once it is confident at (nearly) the same tempo: a tap that
        drifts against the music is corrected by the music."""
        m = self.music
        if not self.settings.engine.tap_follows_music or self.controls is None or self.controls.snapshot().tap_beat is None:
            return False
        if m.silent or m.confidence < 0.5 or abs(math.log(max(m.tempo, 1.0) / bpm)) > TAP_HANDOVER:
            return False
        self._log_once("tap", "tapped %.1f BPM: following the music's %.1f BPM beat", bpm, m.tempo)
        return True

    def _tempo(self) -> float:
        override = self._override()
        return override if override is not None else self.music.tempo

    def _phase_at(self, t: float) -> float | None:
        m = self.music
        if not math.isfinite(m.next_beat) or m.confidence <= 0.0:
            return None
        period = 60.0 / max(m.tempo, 1.0)
        return ((t - m.next_beat) / period) % 1.0

    def _follow_controls(self) -> bool:
        """Apply seed and dancer-count changes; returns whether the dance is frozen."""
        if self.controls is None:
            return False
        c = self.controls.snapshot()
        if c.version != self._controls_version:
            self._controls_version = c.version
            if c.dancers != self.dancers:
                with self._lock:
                    self._resize(c.dancers)
            elif c.seed_count != self._seed_count:
                with self._lock:
                    # A new seed takes over from the next unit: no cut mid-move.
                    self.seed = c.seed
                    self.composer_state = self.model.new_state(self.dancers, self.seed)
                    self.timeline.clear_after(self.clock.position)
            self._seed_count = c.seed_count
        return c.frozen

    def _resize(self, count: int) -> None:
        """Change the number of dancers without a jump: those who stay walk to
        their new spots, dancing; new ones (copies of a dancer, set apart by the
        next unit's sampling) walk in from the wings; leaving ones walk off and
        are dropped once there (see :meth:`_walk`). Caller holds the lock."""
        rows = self.offset.shape[0]  # dancers on stage now, leaving ones included
        radius = self.settings.engine.stage_radius
        spots, self.wander = home_spots(count, radius)
        if count > rows:
            take = np.arange(count) % rows
            self.composer_state = self.composer_state.rows(take)
            self.timeline.take_rows(take)
            if self.last_feats is not None:
                self.last_feats = self.last_feats[take]
            self.offset = np.concatenate([self.offset, np.zeros((count - rows, 3))])
            self.yaw = np.concatenate([self.yaw, np.zeros(count - rows)])
            self.home = np.concatenate([self.home, _wings(spots, radius)[rows:]])
            rows = count
        target = np.concatenate([spots, _wings(self.home[count:], radius)]) if rows > count else spots
        self.home_target = target
        self.dancers = count

    def _walk(self, dt: float) -> None:
        """Move home spots toward their targets at walking speed; drop dancers
        who have walked off into the wings. Caller holds the lock."""
        self.wander_now += min(max(self.wander - self.wander_now, -WALK_SPEED * dt), WALK_SPEED * dt)
        gap = self.home_target - self.home
        dist = np.hypot(gap[:, 0], gap[:, 2])
        if dist.max() <= 0.0:
            return
        step = np.minimum(1.0, WALK_SPEED * dt / np.maximum(dist, 1e-12))
        self.home += gap * step[:, None]
        rows = self.offset.shape[0]
        if rows > self.dancers and np.all(dist[self.dancers :] <= WALK_SPEED * dt):
            keep = np.arange(self.dancers)
            self.composer_state = self.composer_state.rows(keep)
            self.timeline.take_rows(keep)
            if self.last_feats is not None:
                self.last_feats = self.last_feats[keep]
            self.home, self.home_target = self.home[keep], self.home_target[keep]
            self.offset, self.yaw = self.offset[keep], self.yaw[keep]

    def _clock_beats(self, sync: SyncState | None, music_time: float) -> tuple[BeatEvent, ...] | None:
        """The beats of a leading external clock that passed since the last
        frame, at their exact music times (index: the clock's own beat number,
        so ``index % quantum`` is the bar position); None when no clock leads."""
        if sync is None or not sync.leads:
            self._sync_beat = None
            return None
        prev, self._sync_beat = self._sync_beat, sync.beat
        if prev is None or math.floor(sync.beat) <= math.floor(prev) or sync.beat - prev > 4.0:
            return ()  # first frame, no beat passed, or the session jumped (a peer re-aligned it)
        period = 60.0 / sync.tempo
        return tuple(
            BeatEvent(index=k, time=music_time - (sync.beat - k) * period, tempo=sync.tempo)
            for k in range(math.floor(prev) + 1, math.floor(sync.beat) + 1)
        )

    def frame(self, music_time: float, wall_time: float, dt: float, sync: SyncState | None = None) -> Frame:
        """The frame showing ``music_time``, advancing all state by ``dt`` seconds.

        ``sync``: an external beat clock (Link, MIDI clock) at the frame's
        instant; while it leads (:attr:`SyncState.leads`), the dance takes its
        tempo, beat phase and beats instead of the tracker's (which keeps
        running: its tempo and confidence stay in the frame)."""
        frozen = self._follow_controls()
        clock_beats = self._clock_beats(sync, music_time)
        with self._lock:
            m = self.music
            override = self._override()
            beats = tuple(m.beats)
            m.beats.clear()
            if override is not None:
                # The operator is in charge: dance at that tempo whatever the
                # tracker thinks; on the tapped beats when it was tapped, else
                # free-running on from the phase the dance had.
                tempo, phase, dancing = override, self._tap_phase(music_time, override), True
                if self._music_takes_over(override):
                    tempo, phase = m.tempo, self._phase_at(music_time)
            elif clock_beats is not None and sync is not None:
                # The DJ's clock leads: dance through silence (between tracks)
                # until its transport is stopped.
                tempo, phase, dancing, beats = sync.tempo, sync.beat % 1.0, sync.playing, clock_beats
            else:
                tempo, phase = m.tempo, self._phase_at(music_time)
                dancing = (not m.silent) and m.confidence >= (0.25 if self.weight > 0 else 0.5)
            dancing = dancing and self._failed_index is None  # no units: idle groove, not a frozen pose
            if dancing and self.enter_at is None and self.weight > 0.0:
                # Back before the dance had faded out (a dropout of a beat or
                # two): carry on where it is. A clock jump or a new unit now
                # would pop the body still on show (a hand moved 1.1 m in a
                # frame on quiet 60 BPM music that dropped out every beat).
                self.enter_at = self.clock.position
            elif dancing and self.enter_at is None:
                # Re-enter on the beat: the next unit starts on the next predicted beat.
                start = float(math.ceil(self.clock.position))
                if phase is not None:
                    self.clock.jump_to_phase(phase)
                    start = float(math.ceil(self.clock.position))
                    if clock_beats is not None and sync is not None:
                        # Enter on the session's downbeat: the units then fall on its bars.
                        start += -round(sync.beat + start - self.clock.position) % max(1, round(sync.quantum))
                    self.timeline.restart_at(start)
                self.enter_at = start
            elif not dancing:
                self.enter_at = None
            step = 0.0 if frozen else self.clock.advance(dt, tempo, phase)
            target = 1.0 if (self.enter_at is not None and self.clock.position >= self.enter_at) else 0.0
            if target != self._target:  # INFO: when the dance starts and pauses (start-up timing, show logs)
                self._target = target
                log.info("dance %s at music time %.2f s", "starts" if target else "pauses (idle groove)", music_time)
            if target != self.weight:
                # Plain float arithmetic: np.clip and np.sign on a scalar cost ~10 us a frame.
                rate = dt / (0.5 if target > self.weight else 0.8)
                self.weight = min(1.0, max(0.0, self.weight + math.copysign(rate, target - self.weight)))
            self._walk(dt)
            dance = self.timeline.sample(self.clock.position)
            playing = self.timeline.playing(self.clock.position)
            if playing is not None:
                self.level = playing.level
            unit_span = span(self.level)
        beat_phase = self.clock.position % 1.0
        if dance is not None:
            self.last_feats = dance
        elif self.last_feats is not None:
            dance = self.last_feats
        w = self.weight * self.weight * (3 - 2 * self.weight)  # smoothstep: no velocity kink
        if dance is None or w < 1.0:
            idle = idle_features(music_time, beat_phase, np.arange(self.offset.shape[0]) + self.seed)
            dance = idle if dance is None else dance
            feats = w * dance + (1 - w) * idle
            feats[:, 1:4] = w * dance[:, 1:4]  # idle stands still
        else:
            feats = dance.copy()
        if frozen:
            feats[:, 1:4] = 0.0
        rotations, trans = self._pose(feats, step * UNIT_FRAMES / unit_span)
        frame = Frame.from_pose(
            self.frame_index,
            music_time,
            wall_time,
            rotations,
            trans,
            tempo=float(m.tempo if clock_beats is not None else tempo),
            beat_phase=float(phase if phase is not None else beat_phase),
            confidence=float(m.confidence),
            energy=float(m.energy),
            level=self.level,
            beats=beats,
            sync=sync,
        )
        self.frame_index += 1
        return frame

    def _pose(self, feats: np.ndarray, canonical_step: float) -> tuple[np.ndarray, np.ndarray]:
        """(B, 148) features and the canonical frames advanced -> local rotations
        (B, 24, 3, 3) and root positions (B, 3), integrating the root on stage."""
        b = feats.shape[0]
        # Same convention as motion.representation: world step = yaw_to_matrix(yaw) @ (dx, 0, dz).
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        dx, dz = feats[:, 1] * canonical_step, feats[:, 2] * canonical_step
        self.offset[:, 0] += c * dx + s * dz
        self.offset[:, 2] += -s * dx + c * dz
        self.yaw += feats[:, 3] * canonical_step
        if canonical_step > 0:  # frozen dancers are not steered either
            self._keep_on_stage()
        local = sk.rot6d_to_matrix(feats[:, 4:].reshape(b, sk.NUM_JOINTS, 6).astype(np.float64))
        local[:, 0] = sk.yaw_to_matrix(self.yaw) @ local[:, 0]
        trans = self.home + self.offset
        trans[:, 1] = feats[:, 0]
        return local, trans

    def _keep_on_stage(self) -> None:
        """Soft wall: beyond 70% of the wander radius, turn the dancer toward home;
        at the radius, stop outward motion. Home spots and wander radius keep
        every dancer within ``engine.stage_radius`` of the stage centre."""
        radius = self.wander_now
        r = np.hypot(self.offset[:, 0], self.offset[:, 2])
        out = r > 0.7 * radius
        if out.any():
            # Heading that faces home: forward is (sin yaw, cos yaw) in (x, z).
            home_yaw = np.arctan2(-self.offset[:, 0], -self.offset[:, 2])
            err = (home_yaw - self.yaw + np.pi) % (2 * np.pi) - np.pi
            pull = np.clip((r - 0.7 * radius) / (0.3 * radius), 0.0, 1.0)
            self.yaw = np.where(out, self.yaw + 0.05 * pull * err, self.yaw)
        over = r > radius
        if over.any():
            scale = np.where(over, radius / np.maximum(r, 1e-9), 1.0)
            self.offset[:, 0] *= scale
            self.offset[:, 2] *= scale
