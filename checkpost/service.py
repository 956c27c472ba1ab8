"""systemd integration without a dependency: readiness and a watchdog tied to progress.

`Type=notify` units wait for READY=1, and `WatchdogSec=` restarts a unit that stops sending
WATCHDOG=1. A watchdog pinged from a timer proves only that a timer runs; callers ping from
the place where real work completes (an event stored, a frame decoded), through
`Watchdog.progress()`, which rate-limits the datagrams. Outside systemd
(no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


def _send(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def notify_ready(status: str = "") -> bool:
    return _send("READY=1" + (f"\nSTATUS={status}" if status else ""))


def notify_status(status: str) -> bool:
    return _send(f"STATUS={status}")


def notify_stopping() -> bool:
    return _send("STOPPING=1")


class Watchdog:
    """Sends WATCHDOG=1 at most every half watchdog period, only when progress is reported."""

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC")
        self.interval = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def progress(self) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            _send("WATCHDOG=1")
