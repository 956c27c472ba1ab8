"""USB-serial (CDC ACM) hand-held scanners through pyserial, and their pty simulator.

The driver reads on a thread, frames with :class:`~.framing.Framer` (suffix, prefix,
pause) and calls ``on_read`` with a :class:`Read` whose ``source`` is ``"scanner"``;
an unplugged scanner is reopened with backoff, like the thermometer.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checkpost.hardware.decode.pipeline import Read

from .framing import Framer


class SerialScanner:
    def __init__(
        self,
        port: str,
        on_read: Callable[[Read], None],
        baudrate: int = 9600,
        framer: Framer | None = None,
        serial_factory: Callable[..., Any] | None = None,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.port, self.on_read, self.baudrate = port, on_read, baudrate
        self.framer = framer or Framer()
        self._factory = serial_factory
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.reconnects = 0

    def start(self) -> SerialScanner:
        self._thread = threading.Thread(target=self._run, name="serial-scanner", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SerialScanner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        import serial

        factory = self._factory or serial.serial_for_url
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            port = None
            try:
                port = factory(self.port, baudrate=self.baudrate, timeout=0.02)
                self.connected = True
                backoff = self.backoff_initial_s
                while not self._stop.is_set():
                    data = port.read(256)
                    now = time.monotonic()
                    codes = (
                        self.framer.feed(data.decode("latin-1"), now)
                        if data
                        else self.framer.flush(now)
                    )
                    for text, fmt in codes:
                        self.on_read(Read(text, fmt, source="scanner"))
            except (serial.SerialException, OSError):
                pass
            finally:
                self.connected = False
                if port is not None:
                    try:
                        port.close()
                    except (OSError, serial.SerialException):
                        pass
            if self._stop.is_set():
                break
            self.reconnects += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)


class SerialScannerSimulator:
    """A scanner on a pseudo-terminal (stable symlink path); :meth:`scan` sends a code."""

    def __init__(self, suffix: str = "\r\n", prefix: str = "") -> None:
        self.suffix, self.prefix = suffix, prefix
        self._dir = tempfile.TemporaryDirectory(prefix="checkpost-scanner-")
        self.path = str(Path(self._dir.name) / "ttySCAN0")
        self._master: int | None = None
        self._slave: int | None = None
        self.replug()

    def replug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        tmp = self.path + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        Path(self.path).unlink(missing_ok=True)

    def scan(self, text: str, split: bool = False, aim: str = "") -> None:
        data = (self.prefix + aim + text + self.suffix).encode("latin-1")
        assert self._master is not None, "unplugged"
        if split and len(data) > 2:
            os.write(self._master, data[: len(data) // 2])
            time.sleep(0.03)
            os.write(self._master, data[len(data) // 2 :])
        else:
            os.write(self._master, data)

    def close(self) -> None:
        if self._master is not None:
            self.unplug()
        self._dir.cleanup()

    def __enter__(self) -> SerialScannerSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
