"""OSC control input over real UDP on 127.0.0.1: valid messages steer the
Controls; hostile or broken packets are survived, counted and ignored."""

from __future__ import annotations

import logging
import os
import socket
import struct
import time

import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from livedance.config import OscSettings
from livedance.errors import UserError
from livedance.live.controls import Controls
from livedance.live.osc_control import ControlServer


def message(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class Client:
    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(server.address)

    def send(self, dgram: bytes) -> None:
        self.sock.send(dgram)

    def until(self, predicate, timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()

    def settle(self, packets: int) -> None:
        """Wait until the server has taken in ``packets`` datagrams in total."""
        assert self.until(lambda: self.server.stats.packets >= packets), self.server.stats


@pytest.fixture
def served():
    controls = Controls()
    server = ControlServer(controls, "127.0.0.1", 0)
    client = Client(server)
    yield controls, server, client
    client.sock.close()
    server.close()


def test_every_control_address_applies(served):
    controls, server, client = served
    for dgram in [
        message("/livedance/control/style", 3),
        message("/livedance/control/energy", 0.5),
        message("/livedance/control/temperature", 0.25),
        message("/livedance/control/seed", 1234),
        message("/livedance/control/freeze"),
        message("/livedance/control/tempo", 100.0),
        message("/livedance/control/dancers", 4.0),  # CHOP senders send floats
        message("/livedance/control/latency", 35),
        message("/livedance/control/hit", 1.0),
    ]:
        client.send(dgram)
    client.settle(9)
    state = controls.snapshot()
    assert (state.style, state.energy_bias, state.temperature, state.seed) == (3, 0.5, 0.25, 1234)
    assert (state.frozen, state.tempo_override, state.dancers, state.latency_ms) == (True, 100.0, 4, 35.0)
    assert state.beat_hit == 1.0
    client.send(message("/livedance/control/resume"))
    client.send(message("/livedance/control/tempo", 0))  # 0 = back to the beat tracker
    client.send(message("/livedance/control/style", -1))  # -1 = follow the music
    client.settle(12)
    state = controls.snapshot()
    assert not state.frozen and state.tempo_override is None and state.style is None
    assert server.stats.applied == 12 and not server.stats.ignored


def test_tap_messages_set_the_tempo(served):
    controls, _, client = served
    for k in range(4):
        client.send(message("/livedance/control/tap"))
        client.settle(k + 1)
        time.sleep(0.3)
    assert controls.snapshot().tempo_override == pytest.approx(200.0, rel=0.15)


def test_bundles_apply_at_once_whatever_their_timetag(served):
    controls, _, client = served
    builder = OscBundleBuilder(time.time() + 3600)  # an hour in the future
    builder.add_content(OscMessageBuilder("/livedance/control/energy").build())
    inner = OscBundleBuilder(0)
    m = OscMessageBuilder("/livedance/control/dancers")
    m.add_arg(2)
    inner.add_content(m.build())
    builder.add_content(inner.build())
    client.send(builder.build().dgram)
    assert client.until(lambda: controls.snapshot().dancers == 2, timeout=1.0)


def test_malformed_packets_are_survived_and_a_valid_message_still_applies(served, caplog):
    controls, server, client = served
    valid = message("/livedance/control/energy", 0.75)
    bad = [
        valid[:-3],  # truncated argument
        valid[:9],  # truncated type tags
        message("/livedance/control/energy", "loud"),  # wrong type
        message("/livedance/control/energy", 0.1, 0.2),  # too many numbers
        message("/livedance/control/energy", 7.0),  # out of range
        message("/livedance/control/dancers", 2.5),  # not a whole number
        message("/livedance/nothing", 1),  # unknown address
        message("/livedance/control/"),  # empty verb
        b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 4000) + b"/x\x00\x00",  # lying element size
        b"#bundle\x00" + b"\xff" * 3,  # truncated bundle header
        os.urandom(700),  # random bytes
        b"/" + os.urandom(300),  # random bytes that look like an address
        message("/livedance/control/energy", 0.5) + b"\x00" * 60000,  # huge
        b"",  # empty datagram
    ]
    with caplog.at_level(logging.WARNING, logger="livedance.live.osc_control"):
        for dgram in bad:
            client.send(dgram)
        client.settle(len(bad))
        client.send(valid)
        assert client.until(lambda: controls.snapshot().energy_bias == 0.75)
    ignored = server.stats.ignored
    assert {"malformed", "wrong type", "out of range", "unknown address", "oversize"} <= set(ignored)
    assert sum(ignored.values()) >= len(bad) - 2  # random bytes may happen to parse as an unknown address
    assert server.stats.applied == 1
    # Logged once per kind, not once per packet.
    kinds = [r.getMessage() for r in caplog.records]
    assert len(kinds) == len(set(ignored)) and len(kinds) < len(bad)


def test_a_flood_is_survived(served):
    controls, server, client = served
    junk = [os.urandom(64) for _ in range(16)] + [message("/livedance/nothing", 1.0)]
    t0 = time.monotonic()
    for k in range(20000):
        try:
            client.send(junk[k % len(junk)])
        except OSError:  # the kernel may push back on the flooder: fine
            pass
    flood_seconds = time.monotonic() - t0
    # UDP: a message sent while the flood fills the buffer is lost, so a real
    # controller (like this one) repeats it; it must get through within seconds.
    deadline = time.monotonic() + 5.0
    while controls.snapshot().seed != 77 and time.monotonic() < deadline:
        client.send(message("/livedance/control/seed", 77))
        time.sleep(0.05)
    assert controls.snapshot().seed == 77, server.stats
    assert server.stats.packets < 20000 or flood_seconds > 5  # the excess was shed, not all parsed
    assert server._thread.is_alive()


def test_allow_list_refuses_other_senders():
    controls = Controls()
    with ControlServer(controls, "127.0.0.1", 0, allow=["10.0.0.0/8"]) as server:
        client = Client(server)
        client.send(message("/livedance/control/dancers", 3))
        client.settle(1)
        assert controls.snapshot().dancers == 1 and server.stats.ignored == {"sender not allowed": 1}
    with ControlServer(controls, "127.0.0.1", 0, allow=["127.0.0.1"]) as server:
        client = Client(server)
        client.send(message("/livedance/control/dancers", 3))
        assert client.until(lambda: controls.snapshot().dancers == 3)


def test_shared_secret_prefix_is_required():
    controls = Controls()
    with ControlServer(controls, "127.0.0.1", 0, secret="s3cret") as server:
        client = Client(server)
        client.send(message("/livedance/control/dancers", 3))
        client.send(message("/wrong1/livedance/control/dancers", 3))
        client.send(message("/s3cretX/livedance/control/dancers", 3))
        client.settle(3)
        assert server.stats.ignored.get("bad secret") == 3 and controls.snapshot().dancers == 1
        client.send(message("/s3cret/livedance/control/dancers", 5))
        assert client.until(lambda: controls.snapshot().dancers == 5)


def test_binding_beyond_loopback_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="livedance.live.osc_control"):
        with ControlServer(Controls(), "0.0.0.0", 0):
            pass
    assert any("reachable from the network" in r.getMessage() for r in caplog.records)


def test_from_settings_and_port_in_use_is_a_user_error():
    controls = Controls()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with ControlServer.from_settings(OscSettings(control=f":{port}"), controls) as server:
        assert server.address == ("127.0.0.1", port)
        with pytest.raises(UserError, match="pick a free port"):
            ControlServer(controls, "127.0.0.1", server.address[1])
    with pytest.raises(UserError, match="osc.allow"):
        ControlServer.from_settings(OscSettings(control=f":{port}", allow=["not-an-ip"]), controls)


def test_parser_turns_every_mutation_into_a_parse_or_a_clean_rejection():
    import random

    from livedance.live.osc_control import IgnoredPacket, parse_packet

    inner = OscBundleBuilder(0)
    inner.add_content(OscMessageBuilder("/livedance/control/tap").build())
    outer = OscBundleBuilder(0)
    m = OscMessageBuilder("/livedance/control/energy")
    m.add_arg(0.5)
    m.add_arg("x")
    m.add_arg(3)
    outer.add_content(m.build())
    outer.add_content(inner.build())
    valid = outer.build().dgram
    assert parse_packet(valid) == [("/livedance/control/energy", [0.5, "x", 3]), ("/livedance/control/tap", [])]
    rng = random.Random(0)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            if choice < 0.4 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif choice < 0.7:
                del data[rng.randrange(len(data) + 1) :]
            else:
                data += bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 8))))
        try:
            parse_packet(bytes(data))
            outcomes["parsed"] += 1
        except IgnoredPacket:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1000 and outcomes["parsed"] > 0
    # A packet cut short never yields a value: python-osc would have read 0.75 as 0.5.
    full = message("/livedance/control/energy", 0.75)
    for cut in range(1, len(full)):
        with pytest.raises(IgnoredPacket):
            parse_packet(full[:cut])


def test_livedance_control_command_reaches_a_running_server():
    from livedance.cli import main

    controls = Controls()
    with ControlServer(controls, "127.0.0.1", 0, secret="k3y") as server:
        to = f"127.0.0.1:{server.address[1]}"
        assert main(["--set", 'osc.secret="k3y"', "control", "energy", "-0.25", "--to", to]) == 0
        assert main(["--set", 'osc.secret="k3y"', "control", "freeze", "--to", to]) == 0
        client = Client(server)
        assert client.until(lambda: controls.snapshot().energy_bias == -0.25 and controls.snapshot().frozen)
        assert main(["control", "loudness", "1", "--to", to]) == 2  # a one-line user error
