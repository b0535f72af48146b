"""External beat clocks, offline: the engine following a replayed Link session,
the Link lead policy, MIDI clock in and out with real mido messages, and the
command line. (Link against real peers: tests/test_sync_link.py; MIDI on real
JACK ports: tests/test_sync_midi.py.)"""

from __future__ import annotations

import math
import sys
import time

import mido
import numpy as np
import pytest

from livedance.config import Settings, load
from livedance.frames import SyncState
from livedance.live.commands import build_engine
from livedance.sync.lead import BeatLine, LeadPolicy
from livedance.sync.midi import PPQN, ClockFollower, ClockSender, interval_jitter

FPS = 60.0
SR = 22050
BPM = 128.0


def link_state(t: float, peers: int = 1, shift: float = 0.0, playing: bool = True) -> SyncState:
    """A Link session at 128 BPM as the follower reads it at time t."""
    return SyncState("link", "follow", BPM, 3.0 + shift + t * BPM / 60.0, 4.0, peers, playing)


def replay(states, seconds: float, audio: np.ndarray | None = None):
    """The engine on ``audio`` (default: silence), each frame given ``states(t)``
    (or None): frames, clock positions, dance weights."""
    eng = build_engine(Settings())
    dt = 1.0 / FPS
    frames, positions, weights = [], [], []
    pos = 0
    audio = np.zeros(int(seconds * SR) + SR, np.float32) if audio is None else audio
    for i in range(int(seconds * FPS)):
        t = i * dt
        end = int(round(t * SR))
        if end > pos:
            eng.hear(audio[pos:end])
            pos = end
        eng.plan()
        frames.append(eng.frame(t, t, dt, sync=states(t)))
        positions.append(eng.clock.position)
        weights.append(eng.weight)
    return frames, np.asarray(positions), np.asarray(weights)


@pytest.fixture(scope="module")
def follow_run():
    # Peer present 0-6 s, gone 6-8 s (back to the tracker: silence, idle),
    # back 8-12 s with a session re-aligned by 0.3 beat (another peer's timeline).
    def states(t: float) -> SyncState:
        if t < 6.0:
            return link_state(t)
        if t < 8.0:
            return link_state(t, peers=0)
        return link_state(t, shift=0.3)

    return replay(states, 12.0)


def test_follow_beats_are_the_sessions_beats(follow_run):
    frames, *_ = follow_run
    beats = [(b.time, b.index) for f in frames if f.time < 6.0 for b in f.beats]
    times = np.array([t for t, _ in beats])
    assert len(times) > 10
    assert np.abs(np.diff(times) * 1000 - 468.75).max() < 0.5
    session = 3.0 + times * BPM / 60.0  # the session's beat at those instants
    assert np.abs(session - np.round(session)).max() * 468.75 < 0.5  # ms
    assert [i for _, i in beats] == list(range(beats[0][1], beats[0][1] + len(beats)))
    assert all(f.sync is not None and f.sync.peers == 1 for f in frames[:360])


def test_follow_dances_on_the_sessions_phase_through_silence(follow_run):
    _, positions, weights = follow_run
    t = np.arange(len(positions)) / FPS
    steady = (t > 3.0) & (t < 6.0)
    error = (positions - (3.0 + t * BPM / 60.0) + 0.5) % 1.0 - 0.5
    assert np.abs(error[steady]).max() * 468.75 < 10.0, "the dance is off the Link beat"
    assert weights[steady].min() == 1.0, "silence stopped a Link-led dance"
    assert weights[(t > 7.5) & (t < 8.0)].max() == 0.0, "no peers and silence: the dancer should idle"
    late = t > 10.5
    assert np.abs(((positions - (3.3 + t * BPM / 60.0) + 0.5) % 1.0 - 0.5)[late]).max() * 468.75 < 10.0


def clock_bpm(positions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The tempo the beat clock moved at, frame by frame, where the dance shows
    (the idle dancer re-enters on the beat by design: a jump while idle is unseen)."""
    steps = np.diff(positions) * FPS * 60.0
    return steps[(weights[1:] > 0) & (weights[:-1] > 0)]


def test_following_the_dance_enters_on_the_sessions_downbeat(follow_run):
    _, _, weights = follow_run
    t = np.arange(len(weights)) / FPS
    # The dance starts at once (as without Link); it re-enters after the pause
    # (no peer, silence) when the shifted session comes back.
    starts = np.flatnonzero((weights[1:] > 0) & (weights[:-1] == 0)) + 1
    assert len(starts) == 1 and t[starts[0]] > 8.0, t[starts]
    session = np.array([3.0 + t[i] * BPM / 60.0 + (0.3 if t[i] >= 8.0 else 0.0) for i in starts])
    bar = session % 4.0  # where in the session's 4-beat bar the dance began
    assert np.all((bar < 1.5 / 60 * BPM / 60.0 + 1e-6) | (bar > 4.0 - 1e-6)), bar  # on the one, within a frame


def test_peer_leaving_and_rejoining_does_not_make_the_dance_jump(follow_run):
    frames, positions, weights = follow_run
    steps = clock_bpm(positions, weights)
    assert steps.min() >= 0.0
    assert steps.max() < BPM * 1.61, "the beat clock jumped"
    joints = np.stack([f.joints[0] for f in frames])
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1) * FPS  # fastest joint, m/s
    t = np.arange(1, len(frames)) / FPS
    normal = np.percentile(speed[(t > 3.0) & (t < 6.0)], 99)
    around = speed[t > 5.5]  # the peer leaves at 6 s, a shifted session joins at 8 s
    assert around.max() < 1.5 * normal + 0.5, f"{around.max():.2f} m/s around the change vs {normal:.2f} normally"


def test_the_last_peer_leaving_hands_the_dance_back_to_the_tracker_smoothly():
    from livedance.music.synth import drum_track

    audio, beats = drum_track(120.0, 11.0, SR, seed=3, pattern="four")
    # The session runs at 128 BPM, off the music; the peer leaves at 6 s.
    frames, positions, weights = replay(lambda t: link_state(t, peers=int(t < 6.0)), 11.0, audio)
    t = np.arange(len(positions)) / FPS
    assert weights[t > 3.0].min() == 1.0, "the dancer stopped when the tracker took over"
    steps = clock_bpm(positions, weights)
    assert steps.max() < 128.0 * 1.61 and steps.min() > 120.0 * 0.39, "the beat clock jumped"
    # ... and it ends on the music's beats (120 BPM, the tracker's), not the session's.
    late = (t > 9.0) & (t < beats[-1])
    error = (positions[late] - np.interp(t[late], beats, np.arange(len(beats))) + 0.5) % 1.0 - 0.5
    assert np.abs(error).max() * 500.0 < 40.0, f"{np.abs(error).max() * 500:.0f} ms off the music"
    assert all(f.sync.peers == 0 for f in frames[-10:])


def test_a_stopped_link_transport_stops_the_dance():
    frames, _, weights = replay(lambda t: link_state(t, playing=t < 5.0), 8.0)
    t = np.arange(len(weights)) / FPS
    assert weights[(t > 3.0) & (t < 5.0)].min() == 1.0
    assert weights[t > 7.0].max() == 0.0
    assert frames[-1].sync is not None and "STOPPED" in frames[-1].sync.label()


def test_replay_gives_the_same_dance():
    a, pa, _ = replay(link_state, 3.0)
    b, pb, _ = replay(link_state, 3.0)
    assert np.array_equal(pa, pb)
    assert np.array_equal(a[-1].joints, b[-1].joints)


# ------------------------------------------------------------------ Link lead


def tracker_beats(bpm: float, seconds: float, jitter: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, seconds, 60.0 / bpm)
    return times + rng.normal(0.0, jitter, len(times))


def test_beat_line_reads_tempo_and_phase_through_hop_jitter():
    line = BeatLine()
    times = tracker_beats(130.0, 10.0, jitter=0.010)
    for i, t in enumerate(times):
        line.add(i, t, 130.0)
    beat, tempo = line.at(10.0)
    assert abs(tempo - 130.0) < 0.5
    assert abs(beat - 10.0 * 130.0 / 60.0) * 60 / 130.0 < 0.008  # s
    line.add(100, 10.5, 130.0)  # a gap in the count: the line starts afresh
    assert line.at(10.6) is None


def test_lead_publishes_the_bar_then_only_rate_limited_corrections():
    policy = LeadPolicy()
    session_tempo, session_beat0, t_session = 100.0, 0.37, 0.0
    publishes = []
    rng = np.random.default_rng(1)
    for i in range(600):  # 10 s of frames; the tracker jitters by 2 ms around 130 BPM
        t = i / FPS
        beat = 5.0 + t * 130.0 / 60.0 + rng.normal(0, 0.002) * 130.0 / 60.0
        tempo = 130.0 + rng.normal(0, 0.1)
        session_beat = session_beat0 + (t - t_session) * session_tempo / 60.0
        change = policy.decide(t, 0.9, tempo, beat, session_tempo, session_beat, 4.0)
        if change is not None:
            publishes.append((t, change))
            if change.tempo is not None:
                session_tempo = change.tempo
            session_beat0, t_session = (change.beat if change.beat is not None else session_beat), t
    first = publishes[0][1]
    assert publishes[0][0] == 0.0 and first.tempo == pytest.approx(130.0, abs=0.5)
    assert first.beat is not None and (first.beat - 5.0) % 4.0 == pytest.approx(0.0, abs=0.01)  # bar from the index
    gaps = np.diff([t for t, _ in publishes])
    assert len(publishes) <= 3 and (len(gaps) == 0 or gaps.min() >= policy.interval), publishes
    # No confidence: nothing published, the session left as it is.
    assert policy.decide(11.0, 0.1, 90.0, 1.0, 130.0, 3.0, 4.0) is None


# ------------------------------------------------------------------ MIDI clock


def clock_messages(bpm: float, beats: float, jitter: float, start: float = 1.0, seed: int = 0):
    """Real mido messages as a drum machine sends them: Start, then 24 pulses a beat."""
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm / PPQN
    msgs = [(mido.Message("start"), start - 0.001)]
    for k in range(int(beats * PPQN)):
        msgs.append((mido.Message("clock"), start + k * period + rng.normal(0.0, jitter)))
    return msgs


def test_clock_in_follows_tempo_and_position_through_jitter():
    follower = ClockFollower()
    msgs = clock_messages(126.0, 16, jitter=0.001)
    for m, t in msgs:
        follower.feed(mido.Message.from_bytes(m.bytes()), t)  # through the wire format
    t = msgs[-1][1] + 0.1
    state = follower.state(t)
    assert state is not None and state.leads
    assert state.tempo == pytest.approx(126.0, abs=0.3)
    expected = (t - 1.0) * 126.0 / 60.0
    assert abs(state.beat - expected) * 60 / 126.0 < 0.003  # s
    assert follower.state(t + 1.0).peers == 0  # pulses stopped: it no longer leads


def test_clock_in_transport_and_song_position():
    follower = ClockFollower()
    for m, t in clock_messages(120.0, 2, jitter=0.0):
        follower.feed(m, t)
    follower.feed(mido.Message("stop"), 2.1)
    assert not follower.state(2.1).playing
    follower.feed(mido.Message("songpos", pos=32), 2.2)  # bar 3 (32 sixteenths = 8 beats)
    follower.feed(mido.Message("continue"), 2.3)
    period = 0.5 / PPQN
    for k in range(24):
        follower.feed(mido.Message("clock"), 2.4 + k * period)
    state = follower.state(2.4)
    assert state.playing and state.beat == pytest.approx(8.0, abs=1e-6)


def test_clock_out_sends_24_ppqn_with_start_and_position():
    sent: list[tuple[float, mido.Message]] = []
    sender = ClockSender(lambda m: sent.append((time.monotonic(), m)))
    t0 = time.monotonic()
    sender.update(t0, 2.1, 2.0)  # beat 2.1 at 120 BPM
    time.sleep(1.6)
    sender.update(time.monotonic(), 2.1 + (time.monotonic() - t0) * 2.0, 2.0)
    time.sleep(0.5)
    t_close = time.monotonic()
    sender.close()
    kinds = [m.type for _, m in sent]
    assert kinds[:2] == ["songpos", "continue"] and sent[0][1].pos == 9  # next sixteenth after beat 2.1
    assert kinds[-1] == "stop"
    pulses = [t for t, m in sent if m.type == "clock"]
    # Pulse k is due at beat 9/4 + k/24: check the send times against it.
    due = t0 + (9 / 4 + np.arange(len(pulses)) / PPQN - 2.1) / 2.0
    late = (np.array(pulses) - due) * 1000
    due_by_close = math.floor((2.1 + (t_close - t0) * 2.0) * PPQN) - 9 * 6 + 1
    assert len(pulses) == pytest.approx(due_by_close, abs=2)
    # On the grid, not drifting; timing figures are bench sync's (a shared CPU
    # delays a thread now and then: a few late pulses are the scheduler's).
    assert np.median(np.abs(late)) < 2.0 and np.percentile(np.abs(late), 90) < 10.0, np.round(late, 1)
    stats = interval_jitter(pulses)
    assert stats["mean_ms"] == pytest.approx(1000 / 48, abs=0.2)


def test_clock_out_feeds_clock_in():
    follower = ClockFollower()
    sender = ClockSender(lambda m: follower.feed(m, time.monotonic()))
    t0 = time.monotonic()
    sender.update(t0, 0.0, 140.0 / 60.0)
    time.sleep(1.2)
    sender.close()
    state = follower.state(time.monotonic() - 0.3)
    assert state is not None
    assert state.tempo == pytest.approx(140.0, abs=0.5)


# ------------------------------------------------------------- command line


def test_settings_and_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[link]\nmode = "lead"\nquantum = 3\n[midi]\nclock_out = "Through"\n')
    s = load(cfg)
    assert s.link.mode == "lead" and s.link.quantum == 3.0 and s.midi.clock_out == "Through"
    from livedance.cli import build_parser

    args = build_parser().parse_args(["perform", "--link", "--midi-clock-out", "x"])
    assert args.link == "follow" and args.midi_clock_out == "x"


def test_link_without_the_extra_is_a_one_line_error(monkeypatch):
    import argparse

    from livedance.errors import UserError
    from livedance.live.syncing import SyncHub

    monkeypatch.setitem(sys.modules, "aalink", None)  # as if `pip install livedance[link]` was never run
    with pytest.raises(UserError) as err:
        SyncHub.from_args(argparse.Namespace(link="follow"), Settings())
    assert "pip install 'livedance[link]'" in str(err.value) and "\n" not in str(err.value)


def test_a_midi_port_that_is_not_there_is_a_one_line_error():
    import argparse

    from livedance.errors import UserError
    from livedance.live.syncing import SyncHub

    with pytest.raises(UserError) as err:
        SyncHub.from_args(argparse.Namespace(midi_clock_out="no-such-port-xyz"), Settings())
    assert "MIDI" in str(err.value) and "\n" not in str(err.value)


def test_the_settings_alone_turn_sync_on(monkeypatch):
    """A kiosk has only its config file: [link] mode and [midi] clock_out act without flags."""
    import argparse

    from livedance.errors import UserError
    from livedance.live.syncing import SyncHub

    none = argparse.Namespace()
    assert SyncHub.from_args(none, Settings()) is None  # default: off, nothing opened
    s = Settings()
    s.link.mode = "lead"
    monkeypatch.setitem(sys.modules, "aalink", None)
    with pytest.raises(UserError, match="livedance\\[link\\]"):
        SyncHub.from_args(none, s)
    s = Settings()
    s.midi.clock_out = "no-such-port-xyz"
    with pytest.raises(UserError, match="no-such-port-xyz|MIDI"):
        SyncHub.from_args(none, s)
    s = Settings()
    s.link.mode, s.link.quantum = "follow", 0.0
    with pytest.raises(UserError, match="link.quantum"):
        SyncHub.from_args(none, s)
    s = Settings()
    s.link.mode = "sideways"
    with pytest.raises(UserError, match="follow, lead"):
        SyncHub.from_args(none, s)


def test_sync_never_imports_live_or_model():
    import ast
    from pathlib import Path

    import livedance.sync

    for path in Path(livedance.sync.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.startswith(("livedance.live", "livedance.model"))]
            assert not bad, f"{path.name} imports {bad} (DESIGN.md: sync never imports live or model)"


def test_label_shows_the_link_state():
    s = SyncState("link", "follow", 128.0, 6.5, 4.0, 2, True)
    assert s.label() == "LINK follow 2 peers 128.0 BPM 3.50/4"
    assert math.isclose(s.phase, 2.5)


def test_osc_carries_the_link_state():
    from pythonosc.osc_bundle import OscBundle

    from livedance.frames import Frame
    from livedance.outputs.osc import OscSender

    rot = np.broadcast_to(np.eye(3), (1, 24, 3, 3)).copy()
    sync = SyncState("link", "lead", 130.0, 9.25, 4.0, 3, False)
    frame = Frame.from_pose(0, 1.0, 1.0, rot, np.zeros((1, 3)), sync=sync)
    plain = Frame.from_pose(0, 1.0, 1.0, rot, np.zeros((1, 3)))
    sender = OscSender("127.0.0.1", 9)
    try:
        def link(f: Frame) -> list:
            return [m.params for d in sender.encode(f) for m in OscBundle(bytes(d)) if m.address == "/livedance/link"]

        assert link(frame) == [[3, 130.0, 9.25, 1.25, 0]]  # peers, bpm, beat, bar phase, playing
        assert link(plain) == []
    finally:
        sender.close()


def test_status_line_shows_the_link_state():
    import types

    from livedance.frames import Frame
    from livedance.live.run import LiveRunner
    from livedance.live.syncing import SyncHub

    rot = np.broadcast_to(np.eye(3), (1, 24, 3, 3)).copy()
    runner = LiveRunner(None, types.SimpleNamespace(), [], 60.0, 0.0, sync=SyncHub())  # type: ignore[arg-type]
    runner.latest = Frame.from_pose(0, 1.0, 1.0, rot, np.zeros((1, 3)), sync=link_state(1.0, peers=2))
    assert "LINK follow 2 peers 128.0 BPM" in runner.status_line()
