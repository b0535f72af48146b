"""livedance-scheme OSC output, over real UDP on 127.0.0.1, read back by python-osc."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections import Counter

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message_builder import OscMessageBuilder

from livedance import skeleton as sk
from livedance.config import OscSettings
from livedance.errors import UserError
from livedance.frames import BeatEvent, Frame
from livedance.outputs.coords import Axes
from livedance.outputs.osc import OscSender, scheme_messages
from livedance.outputs.osc_packing import (
    FLOAT,
    INT,
    FrameTemplate,
    MessageSpec,
    encode_message,
    ntp_timetag,
)
from livedance.outputs.udp import parse_host_port
from loopback import OscCollector as Collector


def random_frame(dancers: int, seed: int = 0, index: int = 7, wall_time: float | None = None, **music: object) -> Frame:
    rng = np.random.default_rng(seed)
    axis_angle = rng.normal(size=(dancers, 24, 3))
    trans = rng.uniform(-1.5, 1.5, size=(dancers, 3)) + [0.0, 0.95, 0.0]
    wall = time.time() if wall_time is None else wall_time
    return Frame.from_pose(index, 12.5 + index / 60, wall, sk.axis_angle_to_matrix(axis_angle), trans, **music)


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def test_encode_message_is_byte_identical_to_python_osc():
    ours = encode_message("/a/b", (3, 1.5, "hi", True, False))
    builder = OscMessageBuilder("/a/b")
    for value in (3, 1.5, "hi", True, False):
        builder.add_arg(value)
    assert ours == builder.build().dgram


def test_template_bundles_parse_back_exactly_and_respect_the_size_limit():
    rng = np.random.default_rng(1)
    specs = [MessageSpec(f"/t/m{k}", ("name", FLOAT, INT, 2.5, FLOAT, 7)) for k in range(60)]
    template = FrameTemplate(specs, max_datagram=600)
    assert template.packets > 1 and max(template.packet_sizes) <= 600
    floats = rng.normal(size=template.n_floats).astype(np.float32)
    ints = rng.integers(-(2**31), 2**31 - 1, size=template.n_ints)
    unix = 1_700_000_000.123456
    got = []
    for view in template.pack(floats, ints, ntp_timetag(unix)):
        bundle = OscBundle(bytes(view))
        assert bundle.timestamp == pytest.approx(unix, abs=1e-6)
        got.extend(bundle)
    assert [m.address for m in got] == [s.address for s in specs]
    for k, m in enumerate(got):
        assert m.params == ["name", float(floats[2 * k]), int(ints[k]), 2.5, float(floats[2 * k + 1]), 7]


def test_template_rejects_wrong_value_counts_and_oversized_messages():
    template = FrameTemplate([MessageSpec("/x", (FLOAT, FLOAT))])
    with pytest.raises(ValueError, match="takes 2 floats"):
        template.pack(np.zeros(3))
    with pytest.raises(ValueError, match="does not fit"):
        FrameTemplate([MessageSpec("/big", (FLOAT,) * 400)], max_datagram=1400)


def test_int_slots_wrap_like_int32():
    template = FrameTemplate([MessageSpec("/i", (INT,))])
    (view,) = template.pack(np.zeros(0), [2**31 + 5])
    assert list(OscBundle(bytes(view)))[0].params == [-(2**31) + 5]


def _by_address(messages: list[tuple[str, tuple]]) -> dict[str, tuple]:
    table = dict(messages)
    assert len(table) == len(messages), "an address was sent twice in one frame"
    return table


@pytest.mark.parametrize("up_axis,units", [("y", "m"), ("z", "cm")])
def test_every_message_of_a_frame_parses_back_to_the_pose(collector, up_axis, units):
    beats = (BeatEvent(41, 12.40, 127.5), BeatEvent(42, 12.87, 128.0))
    frame = random_frame(2, tempo=128.0, beat_phase=0.25, confidence=0.8, energy=0.6, level=-1, beats=beats)
    settings = OscSettings(out=f"127.0.0.1:{collector.port}", up_axis=up_axis, units=units)
    sender = OscSender.from_settings(settings)
    datagrams = sender.encode(frame)
    assert max(len(d) for d in datagrams) <= settings.max_datagram
    sender.send(frame)
    sender.close()
    expected = len(scheme_messages(2)) + len(beats)
    collector.wait_for(expected)
    assert sender.stats.dropped == 0 and sender.stats.packets == len(datagrams)
    assert len(collector.messages) == expected

    beat_msgs = [args for addr, args in collector.messages if addr == "/livedance/beat"]
    assert [(i, tempo) for i, tempo, _ in beat_msgs] == [(41, 127.5), (42, 128.0)]
    assert [t for *_, t in beat_msgs] == pytest.approx([12.40, 12.87], abs=1e-5)
    got = _by_address([(a, args) for a, args in collector.messages if a != "/livedance/beat"])
    for args in got.values():  # TouchDesigner's OSC In CHOP takes numbers only
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args)
    assert got["/livedance/frame"] == (7, pytest.approx(frame.time, abs=1e-5))
    assert got["/livedance/dancers"] == (2,)
    assert got["/livedance/tempo"] == (128.0,)
    assert got["/livedance/phase"] == (0.25,)
    assert got["/livedance/confidence"] == (pytest.approx(0.8),)
    assert got["/livedance/energy"] == (pytest.approx(0.6),)
    assert got["/livedance/level"] == (-1,)  # half-time

    axes = Axes.from_names(up_axis, units)
    for d in range(2):
        root = axes.inverse_positions(np.array(got[f"/livedance/d{d}/root/pos"]))
        np.testing.assert_allclose(root, frame.trans[d], atol=1e-6)
        for j, name in enumerate(sk.JOINT_NAMES):
            pos = axes.inverse_positions(np.array(got[f"/livedance/d{d}/{name}/pos"]))
            np.testing.assert_allclose(pos, frame.joints[d, j], atol=1e-6)
            quat = axes.inverse_quaternions_xyzw(np.array(got[f"/livedance/d{d}/{name}/rot"]))
            # q and -q are the same rotation.
            assert abs(float(quat @ frame.quaternions[d, j])) == pytest.approx(1.0, abs=1e-6)


def test_z_up_is_a_proper_rotation_of_the_scene():
    axes = Axes.from_names("z", "m")
    up, forward, left = axes.positions(np.eye(3)[[1, 2, 0]])
    np.testing.assert_allclose(up, [0, 0, 1])
    np.testing.assert_allclose(forward, [0, -1, 0])  # faces Blender's front camera
    np.testing.assert_allclose(np.cross(left, up), forward, atol=1e-7)  # still right-handed
    # A 90-degree turn about livedance's up axis is a turn about the target's up axis.
    q = axes.quaternions_xyzw(np.array([np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0]))
    np.testing.assert_allclose(q, [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-7)


def test_timetag_is_the_presentation_time_or_immediate():
    frame = random_frame(1, wall_time=1_800_000_000.25)
    sender = OscSender("127.0.0.1", 9)
    assert OscBundle(bytes(sender.encode(frame)[0])).timestamp == pytest.approx(1_800_000_000.25, abs=1e-6)
    sender.timetags = False
    raw = bytes(sender.encode(frame)[0])
    assert raw[8:16] == (1).to_bytes(8, "big")
    sender.close()


def test_eight_dancers_at_60fps_for_10s_arrive_with_none_lost():
    """600 frames x 8 dancers, paced at 4x real time, received by a draining socket."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                received.append(receiver.recv(65536))
            except (TimeoutError, OSError):
                return

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    sender = OscSender("127.0.0.1", receiver.getsockname()[1])
    poses = [random_frame(8, seed=k) for k in range(5)]
    per_frame = len(sender.encode(poses[0]))
    frames = 600
    start = time.time()
    sent_frames = {}
    for i in range(frames):
        frame = dataclasses.replace(poses[i % 5], index=i, wall_time=start + i / 60)
        if i in (0, 299, 599):
            sent_frames[i] = frame
        sender.send(frame)
        delay = start + (i + 1) / 240 - time.time()
        if delay > 0:
            time.sleep(delay)
    thread.join(timeout=10)
    receiver.close()
    sender.close()

    assert sender.stats.dropped == 0
    assert sender.stats.packets == frames * per_frame
    assert len(received) == frames * per_frame, f"lost {frames * per_frame - len(received)} datagrams"
    assert all(len(d) <= 1400 for d in received)
    # Every frame's bundles share its timetag: each timetag appears exactly per_frame times.
    per_timetag = Counter(d[8:16] for d in received)
    assert len(per_timetag) == frames and set(per_timetag.values()) == {per_frame}
    # And a sample of frames parses back to what was sent.
    for i, frame in sent_frames.items():
        tag = ntp_timetag(frame.wall_time).to_bytes(8, "big")
        msgs = {m.address: m.params for d in received if d[8:16] == tag for m in OscBundle(d)}
        assert msgs["/livedance/frame"][0] == i
        np.testing.assert_allclose(msgs["/livedance/d7/left_wrist/pos"], frame.joints[7, 20], atol=1e-6)


def test_an_unreachable_or_stalled_receiver_never_blocks_send():
    frame = random_frame(8)
    # Nothing listening: the kernel refuses, the sender counts drops and carries on.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    refused = OscSender("127.0.0.1", closed_port)
    # A receiver that never reads: its tiny buffer fills, the kernel drops the rest.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.bind(("127.0.0.1", 0))
    slow = OscSender("127.0.0.1", stalled.getsockname()[1])
    per_frame = len(slow.encode(frame))
    worst = 0.0
    for _ in range(300):
        for sink in (refused, slow):
            t0 = time.perf_counter()
            sink.send(frame)
            worst = max(worst, time.perf_counter() - t0)
    stalled.setblocking(False)
    queued = 0
    try:
        while True:
            stalled.recv(65536)
            queued += 1
    except BlockingIOError:
        pass
    stalled.close()
    refused.close()
    slow.close()
    # A blocking send would take the whole 300-frame run; this is two orders of magnitude below.
    assert worst < 0.05
    assert refused.stats.dropped > 0
    assert slow.stats.packets + slow.stats.dropped == 300 * per_frame
    assert queued < slow.stats.packets  # the receiver really was stalled


@pytest.mark.parametrize(
    "text,expected",
    [("10.0.0.5:7000", ("10.0.0.5", 7000)), ("stage.local", ("stage.local", 9000)), (":9100", ("127.0.0.1", 9100)),
     ("[::1]:9200", ("::1", 9200)), ("::1", ("::1", 9000))],
)
def test_parse_host_port(text, expected):
    assert parse_host_port(text, 9000, "--osc") == expected


@pytest.mark.parametrize("text,needle", [("host:abc", "not a number"), ("host:70000", "not in 1-65535"),
                                         ("", "empty"), ("[::1", "bad --osc")])
def test_bad_host_port_is_a_one_line_user_error(text, needle):
    with pytest.raises(UserError, match=needle) as info:
        parse_host_port(text, 9000, "--osc")
    assert "\n" not in str(info.value) and "HOST:PORT" in str(info.value)


def test_bad_axis_settings_are_user_errors():
    with pytest.raises(UserError, match="up_axis"):
        OscSender.from_settings(OscSettings(up_axis="x"))
    with pytest.raises(UserError, match="units"):
        OscSender.from_settings(OscSettings(units="mm"))


def test_bench_osc_prints_one_json_object(capsys):
    import json

    from livedance.cli import main

    assert main(["bench", "osc", "--json", "--live-seconds", "0.2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    for key, bundles in (("dancers_1", 3), ("dancers_8", 17)):  # ~3 kB of pose per dancer, 1400-byte datagrams
        figures = result["scheme"][key]
        assert figures["dropped"] == 0 and figures["datagrams_per_frame"] >= bundles
    assert result["sustained"]["datagrams_per_s"] > 0 and isinstance(result["ok"], bool)
