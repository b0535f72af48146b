"""The engine's live controls: validation, tap tempo, thread safety."""

from __future__ import annotations

import threading

import pytest

from livedance.config import Settings
from livedance.live.controls import ControlState, Controls


def test_defaults_and_snapshot_is_immutable():
    controls = Controls()
    state = controls.snapshot()
    assert state == ControlState()
    with pytest.raises(AttributeError):
        state.dancers = 3  # type: ignore[misc]
    controls.apply("dancers", 3)
    assert state.dancers == 1 and controls.snapshot().dancers == 3  # old snapshots do not change


@pytest.mark.parametrize(
    "name,good,bad",
    [
        ("style", 9, 10),
        ("energy_bias", -1.0, 1.5),
        ("temperature", 0.0, -0.1),
        ("seed", 2**31 - 1, -1),
        ("tempo_override", 240.0, 300.0),
        ("dancers", 64, 65),
        ("latency_ms", 2000.0, 2500.0),
        ("beat_hit", 1.0, 1.5),
    ],
)
def test_setters_accept_the_range_and_reject_outside_it(name, good, bad):
    controls = Controls(styles=10)
    controls.apply(name, good)
    assert getattr(controls.snapshot(), name) == good
    before = controls.snapshot()
    with pytest.raises(ValueError, match=name):
        controls.apply(name, bad)
    assert controls.snapshot() == before  # a rejected value changes nothing


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "3", True, 2.5])
def test_bad_types_are_value_errors(value):
    with pytest.raises(ValueError):
        Controls().apply("dancers", value)


def test_none_means_automatic_or_toggle():
    controls = Controls()
    controls.apply("style", 4)
    controls.apply("style", None)
    controls.apply("tempo_override", 100.0)
    controls.apply("tempo_override", None)
    state = controls.snapshot()
    assert state.style is None and state.tempo_override is None
    controls.apply("frozen", None)
    assert controls.snapshot().frozen is True
    controls.apply("frozen", None)
    assert controls.snapshot().frozen is False
    controls.apply("frozen", 1)
    assert controls.snapshot().frozen is True


def test_unknown_control_names_the_known_ones():
    with pytest.raises(KeyError, match="energy_bias"):
        Controls().apply("energy", 0.5)


def test_version_and_seed_count_change_even_for_equal_values():
    controls = Controls()
    controls.apply("seed", 0)
    controls.apply("seed", 0)
    state = controls.snapshot()
    assert state.seed_count == 2 and state.version == 2


def test_tap_tempo_follows_the_median_interval():
    controls = Controls()
    for t in (10.0, 10.5):
        controls.tap(t)
    assert controls.snapshot().tempo_override is None  # two taps are not enough
    controls.tap(11.0)
    assert controls.snapshot().tempo_override == pytest.approx(120.0)
    for t in (11.52, 11.98, 12.5, 13.0):  # human jitter: the median holds
        controls.tap(t)
    assert controls.snapshot().tempo_override == pytest.approx(120.0, abs=1.0)
    controls.tap(13.0)  # a repeated tap carries no interval and changes nothing
    # A long pause starts a new sequence at the new tempo.
    for t in (20.0, 20.4, 20.8, 21.2):
        controls.tap(t)
    assert controls.snapshot().tempo_override == pytest.approx(150.0)


def test_tap_tempo_sets_the_beat_too_and_a_forced_tempo_clears_it():
    controls = Controls()
    for t in (10.03, 10.49, 11.02, 11.51, 12.0):  # on a 120 BPM grid through 10.0, with jitter
        controls.tap(t)
    s = controls.snapshot()
    assert s.tempo_override == pytest.approx(120.0, abs=3.0)
    assert s.tap_beat is not None and abs(s.tap_beat - 12.0) < 0.02  # the fitted grid, not the last tap alone
    controls.tap(13.0)  # a missed tap (one beat skipped): still on the grid
    assert abs(controls.snapshot().tap_beat - 13.0) < 0.03
    controls.apply("tempo_override", 100.0)  # forced: no tapped beat, the dance keeps its phase
    assert controls.snapshot().tap_beat is None


def test_tap_tempo_outside_the_range_is_ignored():
    controls = Controls()
    for t in (0.0, 0.1, 0.2, 0.3):  # 600 BPM: a drum roll, not a tempo
        controls.tap(t)
    assert controls.snapshot().tempo_override is None


def test_from_settings_takes_the_engine_defaults_and_validates_them():
    settings = Settings()
    settings.engine.dancers = 4
    settings.engine.temperature = 0.7
    settings.engine.latency_ms = 40.0
    settings.engine.beat_hit = 0.5
    state = Controls.from_settings(settings).snapshot()
    assert (state.dancers, state.temperature, state.latency_ms, state.beat_hit) == (4, 0.7, 40.0, 0.5)
    settings.engine.dancers = 99
    with pytest.raises(ValueError, match="dancers"):
        Controls.from_settings(settings)


def test_concurrent_writers_lose_no_update():
    controls = Controls()
    seen_versions: list[int] = []

    def writer() -> None:
        for k in range(500):
            controls.set_seed(k)

    def reader() -> None:
        for _ in range(2000):
            seen_versions.append(controls.snapshot().version)

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert controls.snapshot().seed_count == 2000
    assert seen_versions == sorted(seen_versions)  # a reader never sees time run backwards
