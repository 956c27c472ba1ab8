"""The serial thermometer driver: one reader thread per device, newest reading kept.

The driver turns a protocol profile's samples into :class:`Reading` objects with the
device's calibration applied, in °C. A reading outside 34-43 °C is a *sensor error* (the
sensor saw a wall, a sleeve, the sun), never a fever: it is kept for the status, not
returned as a temperature. A reading binds to a scan only while it is younger than
``max_age_s``: :meth:`Thermometer.latest` returns ``None`` after that, so a thermometer that
silently stopped answering cannot pass its last value off as current.

Status, for the station screen and the hub: ``ok``; ``stuck`` (value frozen longer
than ``stuck_after_s``, when set); ``no data`` (port open, nothing valid
within the age window); ``garbage`` (bytes arrive but no valid frame); ``sensor error``
(frames arrive but out of range); ``unplugged`` (the port is gone; the thread reopens it
with exponential backoff, so a replugged device comes back without a restart).

The port is opened through ``serial_factory`` (default :func:`serial.serial_for_url`), the
seam the simulator's pseudo-terminal plugs into, as OctoPrint does with its virtual printer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .profiles import Profile, make_profile

VALID_RANGE_C = (34.0, 43.0)


@dataclass(frozen=True, slots=True)
class Reading:
    """A calibrated temperature in °C, the raw value and unit sent, and when it arrived."""

    celsius: float
    raw: float
    unit: str
    at: float  # time.monotonic()


def to_celsius(value: float, unit: str) -> float:
    return (value - 32.0) * 5.0 / 9.0 if unit == "F" else value


@dataclass
class ThermometerConfig:
    """Per-device settings (from the station config)."""

    port: str
    profile: str = "ascii"
    baudrate: int = 9600
    unit: str = "C"  # the unit the device sends when its frames do not say
    offset_c: float = 0.0  # calibration against a reference: added to every reading
    valid_min_c: float = VALID_RANGE_C[0]
    valid_max_c: float = VALID_RANGE_C[1]
    max_age_s: float = 3.0
    poll_interval_s: float = 0.25  # polled profiles (Modbus): time between requests
    modbus_address: int = 1
    modbus_register: int = 0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    # A value that has not changed for this long is a stuck sensor (None: never). IR
    # thermometers dither by 0.1 °C; a frozen value usually means frozen firmware.
    stuck_after_s: float | None = None


class Thermometer:
    """A serial IR thermometer; ``start()`` runs the reader thread, ``close()`` stops it."""

    def __init__(
        self,
        config: ThermometerConfig,
        serial_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        kw = (
            {"address": config.modbus_address, "register": config.modbus_register}
            if config.profile == "modbus"
            else {}
        )
        self.config = config
        self.profile: Profile = make_profile(config.profile, config.unit, **kw)
        self._factory = serial_factory or _default_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Reading | None = None
        self._last_rejected: float | None = None  # last out-of-range value (°C), for status
        self._last_rejected_at = 0.0
        self._last_bytes_at = 0.0
        self._changed_at = 0.0
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: Any = None
        self.reconnects = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Thermometer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"thermo:{self.config.port}", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the port; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_port()

    def __enter__(self) -> Thermometer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def latest(self, max_age_s: float | None = None) -> Reading | None:
        """The newest valid reading if younger than ``max_age_s`` (default: config)."""
        age = self.config.max_age_s if max_age_s is None else max_age_s
        with self._lock:
            r = self._latest
            rejected_later = r is not None and self._last_rejected_at > r.at
        if r is None or rejected_later or self._clock() - r.at > age or self._is_stuck():
            return None
        return r

    def wait_reading(self, timeout_s: float, newer_than: float = 0.0) -> Reading | None:
        """Block until a valid reading newer than ``newer_than`` arrives (or timeout)."""
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            r = self.latest()
            if r is not None and r.at > newer_than:
                return r
            time.sleep(0.01)
        return None

    def status(self) -> str:
        now = self._clock()
        window = self.config.max_age_s
        with self._lock:
            if not self._connected:
                return "unplugged"
            latest_at = self._latest.at if self._latest is not None else -1.0
            if (
                self._last_rejected is not None
                and now - self._last_rejected_at <= window
                and self._last_rejected_at > latest_at
            ):
                return "sensor error"
            if self._latest is not None and now - latest_at <= window:
                return "stuck" if self._is_stuck() else "ok"
            if self._last_bytes_at and now - self._last_bytes_at <= window:
                return "garbage"
        return "no data"

    # ------------------------------------------------------------------ internals

    def accept(self, value: float, unit: str, at: float | None = None) -> Reading | None:
        """Calibrate and range-check one sample; returns the reading if valid."""
        at = self._clock() if at is None else at
        c = round(to_celsius(value, unit) + self.config.offset_c, 2)
        with self._lock:
            if self._latest is None or value != self._latest.raw:
                self._changed_at = at
            if not self.config.valid_min_c <= c <= self.config.valid_max_c:
                self._last_rejected, self._last_rejected_at = c, at
                return None
            self._latest = Reading(c, value, unit, at)
            return self._latest

    def _is_stuck(self) -> bool:
        lim = self.config.stuck_after_s
        return (
            lim is not None
            and self._latest is not None
            and self._latest.at - self._changed_at > lim
        )

    def _close_port(self) -> None:
        port, self._port = self._port, None
        with self._lock:
            self._connected = False
        if port is not None:
            try:
                port.close()
            except (OSError, Exception):  # closing a vanished device may fail any way
                pass

    def _run(self) -> None:
        import serial

        backoff = self.config.backoff_initial_s
        while not self._stop.is_set():
            try:
                self._port = self._factory(
                    self.config.port, baudrate=self.config.baudrate, timeout=0.05
                )
                with self._lock:
                    self._connected = True
                self.profile.reset()
                backoff = self.config.backoff_initial_s
                self._pump()
            except (serial.SerialException, OSError) as exc:
                self.last_error = str(exc)
            self._close_port()
            if self._stop.is_set():
                break
            self.reconnects += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.config.backoff_max_s)

    def _pump(self) -> None:
        port = self._port
        next_poll = 0.0
        while not self._stop.is_set():
            if self.profile.polled and self._clock() >= next_poll:
                port.write(self.profile.request())
                next_poll = self._clock() + self.config.poll_interval_s
            data = port.read(256)
            if not data:
                continue
            now = self._clock()
            with self._lock:
                self._last_bytes_at = now
            for s in self.profile.feed(data):
                self.accept(s.value, s.unit, now)


def _default_factory(url: str, **kw: Any) -> Any:
    import serial

    return serial.serial_for_url(url, **kw)
