"""Hand-held 2D scanners as a source of reads, like the camera.

- :class:`WedgeScanner`: USB HID keyboard-wedge scanners via evdev, exclusively grabbed.
- :class:`SerialScanner`: USB-serial (CDC ACM) scanners via pyserial.

Both call ``on_read(Read(text, format, source="scanner"))``; framing (suffix, prefix,
pause, AIM identifiers) is in :mod:`.framing`. Simulators: :func:`key_events` (the key
event stream of a wedge scanner) and :class:`SerialScannerSimulator` (a pty).
"""

from .framing import Framer
from .keyboard import KeyDecoder, WedgeScanner, key_events
from .serial_scanner import SerialScanner, SerialScannerSimulator

__all__ = [
    "Framer",
    "KeyDecoder",
    "SerialScanner",
    "SerialScannerSimulator",
    "WedgeScanner",
    "key_events",
]
