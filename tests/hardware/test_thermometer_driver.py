"""The real pyserial driver against the pseudo-terminal simulator, for every profile.

Waits poll for a condition with a generous ceiling; nothing asserts on elapsed time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from checkpost.hardware.thermometer import Thermometer, ThermometerConfig
from checkpost.hardware.thermometer.simulator import ThermometerSimulator

PROFILES = ["ascii", "modbus", "binary"]


def until(cond: Callable[[], object], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(params=PROFILES)
def rig(request) -> Iterator[tuple[ThermometerSimulator, Thermometer]]:
    sim = ThermometerSimulator(request.param, value=36.6, interval_s=0.02, seed=7).start()
    cfg = ThermometerConfig(
        port=sim.path,
        profile=request.param,
        poll_interval_s=0.02,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        max_age_s=0.5,
    )
    t = Thermometer(cfg).start()
    try:
        yield sim, t
    finally:
        t.close()
        sim.close()


def test_reads_and_reports_ok(rig) -> None:
    _, t = rig
    assert until(lambda: t.latest() is not None)
    r = t.latest()
    assert r is not None and r.celsius == 36.6 and t.status() == "ok"


def test_faults_never_yield_a_value_not_sent(rig) -> None:
    sim, t = rig
    sim.garbage_ratio, sim.bad_checksum_ratio, sim.split, sim.drop_ratio = 0.4, 0.3, True, 0.2
    seen: set[float] = set()
    for v in (36.1, 36.9, 37.4, 35.5):
        sim.value = v
        assert until(lambda v=v: (r := t.latest()) is not None and r.raw == v)
        seen.add(t.latest().raw)  # type: ignore[union-attr]
    assert seen <= set(sim.sent)


def test_unplug_then_replug_without_restart(rig) -> None:
    sim, t = rig
    assert until(lambda: t.status() == "ok")
    sim.unplug()
    assert until(lambda: t.status() == "unplugged")
    assert t.latest(max_age_s=0.0) is None
    sim.value = 36.2
    sim.replug()
    assert until(lambda: (r := t.latest()) is not None and r.raw == 36.2)
    assert t.status() == "ok" and t.reconnects >= 1


def test_silence_becomes_no_data_and_stale_reading_is_withheld(rig) -> None:
    sim, t = rig
    assert until(lambda: t.status() == "ok")
    sim.silent = True
    assert until(lambda: t.status() == "no data")
    assert t.latest() is None


def test_garbage_only_is_reported_as_garbage(rig) -> None:
    sim, t = rig
    assert until(lambda: t.status() == "ok")
    sim.bad_checksum_ratio = 1.0
    assert until(lambda: t.status() == "garbage")


def test_out_of_range_is_a_sensor_error_not_a_fever(rig) -> None:
    sim, t = rig
    assert until(lambda: t.status() == "ok")
    sim.value = 44.5
    assert until(lambda: t.status() == "sensor error")
    assert t.latest() is None
    sim.value = 33.0
    assert until(lambda: t.status() == "sensor error")


def test_calibration_offset_and_fahrenheit() -> None:
    with ThermometerSimulator("binary", unit="F", value=98.6, interval_s=0.02) as sim:
        cfg = ThermometerConfig(port=sim.path, profile="binary", unit="F", offset_c=-0.3)
        with Thermometer(cfg) as t:
            assert until(lambda: t.latest() is not None)
            r = t.latest()
            assert r is not None and r.unit == "F" and r.celsius == pytest.approx(36.7, abs=0.01)


def test_stuck_value_is_flagged_when_configured() -> None:
    with ThermometerSimulator("ascii", value=36.6, interval_s=0.02) as sim:
        cfg = ThermometerConfig(port=sim.path, profile="ascii", stuck_after_s=0.3)
        with Thermometer(cfg) as t:
            sim.stuck = True
            assert until(lambda: t.status() == "stuck")
            assert t.latest() is None
            sim.stuck = False
            sim.value = 36.8
            assert until(lambda: t.status() == "ok")


def test_close_is_idempotent_and_unknown_profile_is_refused() -> None:
    with ThermometerSimulator("ascii") as sim:
        t = Thermometer(ThermometerConfig(port=sim.path)).start()
        t.close()
        t.close()
    with pytest.raises(ValueError, match="unknown thermometer profile"):
        Thermometer(ThermometerConfig(port="/dev/null", profile="nope"))
