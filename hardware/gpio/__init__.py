"""Station GPIO: LEDs, buzzer, gate relay, button, illumination LED.

    from checkpost.hardware.gpio import PinMap, StationIO, make_backend
    with StationIO(PinMap(), make_backend("rpi")) as io:   # "mock" only when named
        io.show("pass"); io.buzz("pass"); io.pulse_gate(1.5)

The pin map is validated (BCM 2-27, no pin twice, UART pins refused) before any pin is
set up; see hardware/WIRING.md for the default map and wiring.
"""

from .backends import Backend, MockBackend, RPiGPIOBackend, make_backend
from .pins import PinMap, PinMapError
from .station import PATTERNS, ButtonDebouncer, StationIO, install_sigterm_handler

__all__ = [
    "PATTERNS",
    "Backend",
    "ButtonDebouncer",
    "MockBackend",
    "PinMap",
    "PinMapError",
    "RPiGPIOBackend",
    "StationIO",
    "install_sigterm_handler",
    "make_backend",
]
