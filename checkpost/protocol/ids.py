"""Event ids: UUIDv7 (RFC 9562), made on the unit.

Time-ordered ids keep the hub's primary-key index append-mostly (B-tree inserts at the
right edge) and let anyone read an event's creation time from its id, while the 74 random
bits make two units' ids collide with negligible probability, with no coordination.
"""

from __future__ import annotations

import os
import re
import threading
import time

_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(now: float | None = None) -> str:
    """A new UUIDv7 as lowercase text.

    Without `now`, ids are strictly increasing within one process (a 12-bit counter
    orders ids made in the same millisecond, and a clock stepping back does not reorder
    them). With an explicit `now` (tests, replays) the id encodes exactly that time.
    """
    global _last_ms, _counter
    if now is not None:
        return _format(int(now * 1000), int.from_bytes(os.urandom(2), "big") & 0xFFF)
    ms = int(time.time() * 1000)
    with _lock:
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted within one millisecond: borrow the next
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        counter = _counter
    return _format(ms, counter)


def _format(ms: int, counter: int) -> str:
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFFFFFFFFFFFFFF
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid7(text: object) -> bool:
    return isinstance(text, str) and _PATTERN.fullmatch(text) is not None


def uuid7_time(text: str) -> float:
    """Creation time (epoch seconds) encoded in a UUIDv7."""
    return int(text[:8] + text[9:13], 16) / 1000.0
