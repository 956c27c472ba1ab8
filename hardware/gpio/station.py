"""Station outputs and inputs: LEDs, buzzer patterns, gate relay, button, illumination.

Fail-safe by construction: the relay is driven through :meth:`StationIO.pulse_gate`
only, capped at ``relay_max_on_s`` by a timer that switches it off even if the caller
forgets or crashes; :meth:`StationIO.close` (idempotent, also registered with ``atexit``
and run by ``with``) switches the relay off *first*, then every other output. A SIGTERM
from systemd becomes ``SystemExit`` via :func:`install_sigterm_handler`, so atexit runs.
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backends import Backend
from .pins import PinMap

# (on_s, off_s) steps. Pass: one short chirp; fail: three long; remeasure: two short.
PATTERNS: dict[str, list[tuple[float, float]]] = {
    "pass": [(0.08, 0.0)],
    "fail": [(0.35, 0.15), (0.35, 0.15), (0.35, 0.0)],
    "remeasure": [(0.08, 0.1), (0.08, 0.0)],
}
LIGHTS = {"pass": "green", "fail": "red", "review": "amber", "remeasure": "amber"}


@dataclass
class ButtonDebouncer:
    """A press counts once the level has been stable for ``debounce_s`` (contacts bounce)."""

    debounce_s: float = 0.03
    pressed_level: int = 0
    _stable: int | None = None
    _candidate: int | None = None
    _since: float = 0.0

    def feed(self, level: int, now: float) -> bool:
        """Feed one sample; True exactly once per debounced press."""
        if self._stable is None:
            self._stable = level
            return False
        if level == self._stable:
            self._candidate = None
            return False
        if self._candidate != level:
            self._candidate, self._since = level, now
            return False
        if now - self._since >= self.debounce_s:
            self._stable, self._candidate = level, None
            return level == self.pressed_level
        return False


class StationIO:
    """The station's GPIO parts on one backend; use as a context manager."""

    def __init__(
        self,
        pins: PinMap,
        backend: Backend,
        relay_max_on_s: float = 3.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_button: Callable[[], None] | None = None,
    ) -> None:
        pins.validate()
        self.pins = pins
        self.backend = backend
        self.relay_max_on_s = relay_max_on_s
        self._sleep = sleep
        self._clock = clock
        self._on_button = on_button
        self._closed = False
        self._lock = threading.RLock()
        self._relay_timer: threading.Timer | None = None
        self._buzz_thread: threading.Thread | None = None
        self._button_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.debouncer = ButtonDebouncer(pressed_level=0 if pins.button_pull_up else 1)
        # relay first, at its OFF level, before anything else can happen
        if pins.relay is not None:
            backend.setup_output(pins.relay, self._relay_level(False))
        for name, pin in pins.outputs().items():
            if name != "relay":
                backend.setup_output(pin, 0)
        if pins.button is not None:
            backend.setup_input(pins.button, pins.button_pull_up)
        atexit.register(self.close)

    # ------------------------------------------------------------------ outputs

    def _relay_level(self, on: bool) -> int:
        return int(on) ^ int(self.pins.relay_active_low)

    def _set(self, name: str, on: bool) -> None:
        pin = getattr(self.pins, name)
        if pin is None or self._closed:
            return
        self.backend.write(pin, int(on))

    def show(self, verdict: str | None) -> None:
        """Light the verdict's LED (pass/fail/review/remeasure) and only it; None = dark."""
        want = LIGHTS.get(verdict or "")
        if verdict is not None and want is None:
            raise ValueError(f"unknown verdict light {verdict!r}")
        with self._lock:
            for name in ("green", "red", "amber"):
                self._set(name, name == want)

    def illumination(self, on: bool) -> None:
        with self._lock:
            self._set("illumination", on)

    def buzz(self, pattern: str, wait: bool = False) -> None:
        """Play a buzzer pattern on a worker thread (``wait`` to block until done)."""
        steps = PATTERNS[pattern]

        def play() -> None:
            for on_s, off_s in steps:
                with self._lock:
                    self._set("buzzer", True)
                self._sleep(on_s)
                with self._lock:
                    self._set("buzzer", False)
                if off_s:
                    self._sleep(off_s)

        if wait:
            play()
            return
        t = threading.Thread(target=play, name="buzzer", daemon=True)
        self._buzz_thread = t
        t.start()

    def pulse_gate(self, seconds: float) -> float:
        """Open the gate for ``seconds``, capped at ``relay_max_on_s``; returns the time used."""
        dur = max(0.0, min(seconds, self.relay_max_on_s))
        with self._lock:
            if self._closed or self.pins.relay is None:
                return 0.0
            if self._relay_timer is not None:
                self._relay_timer.cancel()
            self.backend.write(self.pins.relay, self._relay_level(True))
            self._relay_timer = threading.Timer(dur, self.gate_off)
            self._relay_timer.daemon = True
            self._relay_timer.start()
        return dur

    def gate_off(self) -> None:
        with self._lock:
            if self._relay_timer is not None:
                self._relay_timer.cancel()
                self._relay_timer = None
            if self.pins.relay is not None and not self._closed:
                self.backend.write(self.pins.relay, self._relay_level(False))

    # ------------------------------------------------------------------ button

    def poll_button(self) -> bool:
        """Sample the button once; True (and the callback) on a debounced press."""
        if self.pins.button is None:
            return False
        pressed = self.debouncer.feed(self.backend.read(self.pins.button), self._clock())
        if pressed and self._on_button is not None:
            self._on_button()
        return pressed

    def start_button_thread(self, period_s: float = 0.005) -> None:
        def loop() -> None:
            while not self._stop.wait(period_s):
                self.poll_button()

        self._button_thread = threading.Thread(target=loop, name="button", daemon=True)
        self._button_thread.start()

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Relay off first, then every output off, then release the pins. Idempotent."""
        with self._lock:
            if self._closed:
                return
            if self._relay_timer is not None:
                self._relay_timer.cancel()
                self._relay_timer = None
            if self.pins.relay is not None:
                self.backend.write(self.pins.relay, self._relay_level(False))
            for name, pin in self.pins.outputs().items():
                if name != "relay":
                    self.backend.write(pin, 0)
            self._closed = True
            self._stop.set()
            self.backend.cleanup([*self.pins.outputs().values(), *self.pins.inputs().values()])
        atexit.unregister(self.close)

    def __enter__(self) -> StationIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so ``with`` blocks and atexit switch outputs off."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
