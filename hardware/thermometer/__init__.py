"""Serial infrared thermometers: protocol profiles, the pyserial driver, a pty simulator.

    from checkpost.hardware.thermometer import Thermometer, ThermometerConfig
    with Thermometer(ThermometerConfig(port="/dev/ttyUSB0", profile="modbus")) as t:
        r = t.latest()          # Reading(celsius, raw, unit, at) or None if stale
        t.status()              # ok | no data | garbage | sensor error | unplugged

The simulator (:mod:`.simulator`) is only ever chosen explicitly (tests, demos,
``checkpost hw check --simulate``).
"""

from .driver import Reading, Thermometer, ThermometerConfig, to_celsius
from .profiles import (
    PROFILES,
    AsciiLine,
    BinaryFramed,
    ModbusRTU,
    Sample,
    crc16_modbus,
    make_profile,
)

__all__ = [
    "PROFILES",
    "AsciiLine",
    "BinaryFramed",
    "ModbusRTU",
    "Reading",
    "Sample",
    "Thermometer",
    "ThermometerConfig",
    "crc16_modbus",
    "make_profile",
    "to_celsius",
]
