"""GPIO against the mock backend's timeline: patterns, fail-safe relay, debounce, pin map."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from checkpost.hardware.gpio import (
    PATTERNS,
    ButtonDebouncer,
    MockBackend,
    PinMap,
    PinMapError,
    StationIO,
    make_backend,
)


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def rig(**kw) -> tuple[StationIO, MockBackend, FakeClock]:
    clock = FakeClock()
    be = MockBackend(clock=clock)
    return StationIO(PinMap(), be, sleep=clock.sleep, clock=clock, **kw), be, clock


def test_relay_is_set_up_off_before_anything_else() -> None:
    io, be, _ = rig()
    pins = PinMap()
    assert be.timeline[0] == (0.0, pins.relay, 1)  # active-low board: 1 = off
    io.close()


def test_buzzer_patterns_follow_their_timeline() -> None:
    io, be, _ = rig()
    pins = PinMap()
    for name, steps in PATTERNS.items():
        be.timeline.clear()
        start = io._clock()
        io.buzz(name, wait=True)
        hist = be.history(pins.buzzer)
        expected, t = [], start
        for on_s, off_s in steps:
            expected += [(t, 1), (t + on_s, 0)]
            t += on_s + off_s
        assert [v for _, v in hist] == [v for _, v in expected], name
        assert [t for t, _ in hist] == pytest.approx([t for t, _ in expected]), name
    io.close()


def test_verdict_lights_exactly_one_led() -> None:
    io, be, _ = rig()
    p = PinMap()
    io.show("pass")
    assert (be.levels[p.green], be.levels[p.red], be.levels[p.amber]) == (1, 0, 0)
    io.show("fail")
    assert (be.levels[p.green], be.levels[p.red], be.levels[p.amber]) == (0, 1, 0)
    io.show("remeasure")
    assert be.levels[p.amber] == 1
    io.show(None)
    assert not any(be.levels[x] for x in (p.green, p.red, p.amber))
    with pytest.raises(ValueError):
        io.show("maybe")
    io.close()


def test_gate_pulse_is_capped_and_switches_itself_off() -> None:
    be = MockBackend()
    with StationIO(PinMap(), be, relay_max_on_s=0.05) as io:
        assert io.pulse_gate(10.0) == 0.05
        assert be.levels[PinMap().relay] == 0  # on (active low)
        end = time.monotonic() + 5
        while be.levels[PinMap().relay] == 0 and time.monotonic() < end:
            time.sleep(0.01)
        assert be.levels[PinMap().relay] == 1


def test_close_switches_everything_off_relay_first_and_is_idempotent() -> None:
    io, be, _ = rig()
    p = PinMap()
    io.show("pass")
    io.illumination(True)
    io.pulse_gate(2.0)
    n = len(be.timeline)
    io.close()
    after = be.timeline[n:]
    assert after[0][1:] == (p.relay, 1)
    assert all(v == 0 for _, pin, v in after[1:])
    assert set(be.cleaned) >= set(p.outputs().values())
    io.close()
    assert len(be.timeline) == n + len(after)
    io.show("fail")  # after close: nothing is driven
    assert len(be.timeline) == n + len(after)


def test_relay_is_off_when_the_process_crashes() -> None:
    """atexit runs on an unhandled exception: the relay ends off in the timeline."""
    code = (
        "from checkpost.hardware.gpio import MockBackend, PinMap, StationIO\n"
        "import atexit\n"
        "be = MockBackend()\n"
        "atexit.register(lambda: print('RELAY', be.levels[PinMap().relay]))\n"
        "io = StationIO(PinMap(), be, relay_max_on_s=60)\n"
        "io.pulse_gate(30)\n"
        "raise RuntimeError('crash')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "RELAY 1" in r.stdout


def test_button_is_debounced() -> None:
    presses = []
    io, be, clock = rig(on_button=lambda: presses.append(clock()))
    pin = PinMap().button
    be.set_input(pin, 1)
    io.poll_button()
    for level in (0, 1, 0, 1, 0):  # contact bounce, 2 ms apart
        be.set_input(pin, level)
        io.poll_button()
        clock.sleep(0.002)
    for _ in range(20):  # held down
        io.poll_button()
        clock.sleep(0.005)
    be.set_input(pin, 1)
    for _ in range(20):
        io.poll_button()
        clock.sleep(0.005)
    assert len(presses) == 1
    io.close()


def test_debouncer_ignores_glitches_shorter_than_the_window() -> None:
    d = ButtonDebouncer(debounce_s=0.03)
    assert not d.feed(1, 0.0)
    assert not d.feed(0, 0.01)
    assert not d.feed(1, 0.02)
    assert not d.feed(0, 0.10)
    assert d.feed(0, 0.14)


def test_pin_map_errors_are_all_reported() -> None:
    with pytest.raises(PinMapError) as e:
        PinMap(green=17, red=17, amber=40, buzzer=14).validate()
    text = str(e.value)
    assert "red: BCM 17 is already used by green" in text
    assert "amber: BCM 40 is not a header GPIO" in text
    assert "buzzer: BCM 14 is UART TX" in text
    with pytest.raises(PinMapError, match="relais: unknown pin name"):
        PinMap.from_dict({"relais": 23})
    assert PinMap.from_dict({"green": 5, "illumination": None}).green == 5


def test_station_refuses_an_invalid_map_before_touching_pins() -> None:
    be = MockBackend()
    with pytest.raises(PinMapError):
        StationIO(PinMap(green=23), be)
    assert be.timeline == []


def test_real_backend_is_not_imported_unless_chosen() -> None:
    code = (
        "import sys\n"
        "import checkpost.hardware.gpio, checkpost.hardware.camera, checkpost.hardware.scanner\n"
        "import checkpost.hardware.thermometer, checkpost.hardware.decode\n"
        "mods = ('RPi', 'RPi.GPIO', 'picamera2', 'evdev', 'serial', 'cv2')\n"
        "bad = [m for m in mods if m in sys.modules]\n"
        "print('LOADED', bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in r.stdout, r.stdout + r.stderr
    with pytest.raises(ValueError, match="unknown GPIO backend"):
        make_backend("gpiozero")
    assert isinstance(make_backend("mock"), MockBackend)
