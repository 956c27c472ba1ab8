"""GPIO backends: RPi.GPIO (or rpi-lgpio on a Pi 5, same import name) and a mock.

The real library is imported only when :class:`RPiGPIOBackend` is constructed, so the
package imports on a laptop; a failing real backend raises, it never falls back to the
mock (a station that thinks it drives a gate must really drive it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class Backend(Protocol):
    def setup_output(self, pin: int, value: int) -> None: ...
    def setup_input(self, pin: int, pull_up: bool) -> None: ...
    def write(self, pin: int, value: int) -> None: ...
    def read(self, pin: int) -> int: ...
    def cleanup(self, pins: list[int]) -> None: ...


class RPiGPIOBackend:
    """RPi.GPIO in BCM mode. On a Pi 5 install rpi-lgpio, which provides the same module."""

    def __init__(self) -> None:
        import RPi.GPIO as GPIO

        self._g = GPIO
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)

    def setup_output(self, pin: int, value: int) -> None:
        self._g.setup(pin, self._g.OUT, initial=self._g.HIGH if value else self._g.LOW)

    def setup_input(self, pin: int, pull_up: bool) -> None:
        self._g.setup(pin, self._g.IN, pull_up_down=self._g.PUD_UP if pull_up else self._g.PUD_DOWN)

    def write(self, pin: int, value: int) -> None:
        self._g.output(pin, self._g.HIGH if value else self._g.LOW)

    def read(self, pin: int) -> int:
        return int(self._g.input(pin))

    def cleanup(self, pins: list[int]) -> None:
        self._g.cleanup(pins)


class MockBackend:
    """Records every output change as ``(time, pin, value)``; inputs are set by tests.

    ``clock`` defaults to ``time.monotonic``; tests pass a fake clock (and the station a
    fake sleep) so the timeline is exact and no test waits for real buzzer patterns.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.timeline: list[tuple[float, int, int]] = []
        self.levels: dict[int, int] = {}
        self.modes: dict[int, str] = {}
        self.inputs: dict[int, int] = {}
        self.cleaned: list[int] = []
        self._lock = threading.Lock()

    def setup_output(self, pin: int, value: int) -> None:
        self.modes[pin] = "out"
        self.write(pin, value)

    def setup_input(self, pin: int, pull_up: bool) -> None:
        self.modes[pin] = "in"
        self.inputs.setdefault(pin, 1 if pull_up else 0)

    def write(self, pin: int, value: int) -> None:
        if self.modes.get(pin) != "out":
            raise RuntimeError(f"BCM {pin} written before being set up as an output")
        with self._lock:
            self.levels[pin] = int(bool(value))
            self.timeline.append((self.clock(), pin, int(bool(value))))

    def read(self, pin: int) -> int:
        return self.inputs.get(pin, 0)

    def cleanup(self, pins: list[int]) -> None:
        self.cleaned.extend(pins)

    def set_input(self, pin: int, value: int) -> None:
        self.inputs[pin] = int(bool(value))

    def history(self, pin: int) -> list[tuple[float, int]]:
        return [(t, v) for t, p, v in self.timeline if p == pin]


def make_backend(name: str, **kw: Any) -> Backend:
    """``rpi`` (RPi.GPIO or rpi-lgpio) or ``mock``; the mock only when named."""
    if name == "rpi":
        return RPiGPIOBackend()
    if name == "mock":
        return MockBackend(**kw)
    raise ValueError(f"unknown GPIO backend {name!r}: use 'rpi' or 'mock'")
