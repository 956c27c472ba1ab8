"""USB HID keyboard-wedge scanners through evdev, grabbed so codes do not leak.

A wedge scanner is a keyboard: without an exclusive grab every code would also be typed
into whatever window has focus. :class:`WedgeScanner` opens the input device with
python-evdev (imported only here), grabs it, and turns key events into characters with
:class:`KeyDecoder` (US layout, which wedge scanners emit by default). Linux input key
codes are a stable kernel ABI, so the table below needs no evdev import; the simulator
(:func:`key_events`) produces the exact event sequence a scanner sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from checkpost.hardware.decode.pipeline import Read

from .framing import Framer

EV_KEY = 1
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_ENTER, KEY_KPENTER = 42, 54, 28, 96
# keycode -> (unshifted, shifted), from linux/input-event-codes.h
KEYMAP: dict[int, tuple[str, str]] = {
    2: ("1", "!"),
    3: ("2", "@"),
    4: ("3", "#"),
    5: ("4", "$"),
    6: ("5", "%"),
    7: ("6", "^"),
    8: ("7", "&"),
    9: ("8", "*"),
    10: ("9", "("),
    11: ("0", ")"),
    12: ("-", "_"),
    13: ("=", "+"),
    16: ("q", "Q"),
    17: ("w", "W"),
    18: ("e", "E"),
    19: ("r", "R"),
    20: ("t", "T"),
    21: ("y", "Y"),
    22: ("u", "U"),
    23: ("i", "I"),
    24: ("o", "O"),
    25: ("p", "P"),
    26: ("[", "{"),
    27: ("]", "}"),
    30: ("a", "A"),
    31: ("s", "S"),
    32: ("d", "D"),
    33: ("f", "F"),
    34: ("g", "G"),
    35: ("h", "H"),
    36: ("j", "J"),
    37: ("k", "K"),
    38: ("l", "L"),
    39: (";", ":"),
    40: ("'", '"'),
    41: ("`", "~"),
    43: ("\\", "|"),
    44: ("z", "Z"),
    45: ("x", "X"),
    46: ("c", "C"),
    47: ("v", "V"),
    48: ("b", "B"),
    49: ("n", "N"),
    50: ("m", "M"),
    51: (",", "<"),
    52: (".", ">"),
    53: ("/", "?"),
    57: (" ", " "),
    15: ("\t", "\t"),
}
_REVERSE = {ch: (code, i == 1) for code, pair in KEYMAP.items() for i, ch in enumerate(pair)}


class KeyDecoder:
    """Key events (code, value: 1 down, 0 up, 2 repeat) to characters; Enter = ``\\r``."""

    def __init__(self) -> None:
        self.shift = False

    def feed(self, code: int, value: int) -> str:
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            self.shift = value != 0
            return ""
        if value != 1:
            return ""
        if code in (KEY_ENTER, KEY_KPENTER):
            return "\r"
        pair = KEYMAP.get(code)
        return "" if pair is None else pair[1 if self.shift else 0]


def key_events(text: str, enter: bool = True) -> Iterator[tuple[int, int]]:
    """The (code, value) events a wedge scanner sends to type ``text`` (the simulator)."""
    for ch in text:
        if ch not in _REVERSE:
            raise ValueError(f"{ch!r} cannot be typed on a US keyboard layout")
        code, shifted = _REVERSE[ch]
        if shifted:
            yield KEY_LEFTSHIFT, 1
        yield code, 1
        yield code, 0
        if shifted:
            yield KEY_LEFTSHIFT, 0
    if enter:
        yield KEY_ENTER, 1
        yield KEY_ENTER, 0


class WedgeScanner:
    """Reads from an evdev device on a thread and calls ``on_read(Read)`` per code.

    ``events`` replaces the device (an iterable of objects with ``type``, ``code``,
    ``value``, or of ``(code, value)`` tuples): the simulator's seam."""

    def __init__(
        self,
        device: str,
        on_read: Callable[[Read], None],
        grab: bool = True,
        framer: Framer | None = None,
        events: Iterable[Any] | None = None,
    ) -> None:
        self.device_path, self.on_read, self.grab = device, on_read, grab
        self.framer = framer or Framer(suffix="\r", timeout_s=None)
        self._events = events
        self._dev: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: str | None = None

    def start(self) -> WedgeScanner:
        events = self._events if self._events is not None else self._open()
        self._thread = threading.Thread(target=self._run, args=(events,), name="wedge", daemon=True)
        self._thread.start()
        return self

    def _open(self) -> Iterable[Any]:
        import evdev

        dev = evdev.InputDevice(self.device_path)
        if self.grab:
            dev.grab()  # exclusive: the codes go to us, not to the focused window
        self._dev = dev
        return dev.read_loop()

    def _run(self, events: Iterable[Any]) -> None:
        keys = KeyDecoder()
        try:
            for ev in events:
                if self._stop.is_set():
                    break
                if isinstance(ev, tuple):
                    code, value = ev
                elif getattr(ev, "type", EV_KEY) == EV_KEY:
                    code, value = ev.code, ev.value
                else:
                    continue
                ch = keys.feed(code, value)
                if ch:
                    for text, fmt in self.framer.feed(ch, time.monotonic()):
                        self.on_read(Read(text, fmt, source="scanner"))
        except OSError as exc:  # unplugged
            self.error = str(exc)

    def close(self) -> None:
        self._stop.set()
        if self._dev is not None:
            try:
                if self.grab:
                    self._dev.ungrab()
                self._dev.close()
            except OSError:
                pass
            self._dev = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
