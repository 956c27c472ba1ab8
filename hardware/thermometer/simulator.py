"""A serial thermometer on a pseudo-terminal, speaking any profile, with injectable faults.

The simulator owns the master side of ``os.openpty()`` and publishes the slave under a
stable path (a symlink in a temporary folder), exactly as udev publishes
``/dev/serial/by-id/...``: the **real** pyserial driver opens that path. ``unplug()``
closes the pty (the driver's read fails as with a pulled USB adapter) and removes the
link; ``replug()`` makes a new pty behind the same path.

Faults (attributes, change them at any time): ``drop_ratio`` (frames not sent),
``garbage_ratio`` (random bytes before a frame), ``split`` (a frame written in pieces
with pauses), ``bad_checksum_ratio`` (a corrupted frame: bad CRC/checksum, or a mangled
ASCII line), ``stuck`` (the value stops changing), plus ``silent`` (sends nothing) and
``value`` itself. A random generator seeded at construction makes a run repeatable.
"""

from __future__ import annotations

import os
import random
import select
import tempfile
import threading
import time
from pathlib import Path

from .profiles import Profile, make_profile


class ThermometerSimulator:
    """Start with ``with ThermometerSimulator("modbus") as sim:``; open ``sim.path``."""

    def __init__(
        self,
        profile: str = "ascii",
        unit: str = "C",
        value: float = 36.6,
        interval_s: float = 0.05,
        seed: int = 0,
        **profile_kw: int,
    ) -> None:
        self.profile: Profile = make_profile(profile, unit, **profile_kw)
        self.unit = unit
        self.value = value
        self.interval_s = interval_s
        self.drop_ratio = 0.0
        self.garbage_ratio = 0.0
        self.bad_checksum_ratio = 0.0
        self.split = False
        self.stuck = False
        self.silent = False
        self.sent: list[float] = []  # every value actually put on the wire intact
        self._rng = random.Random(seed)
        self._dir = tempfile.TemporaryDirectory(prefix="checkpost-thermo-")
        self.path = str(Path(self._dir.name) / "ttyTHERMO0")
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stuck_value: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ThermometerSimulator:
        self.replug()
        self._thread = threading.Thread(target=self._run, name="thermo-sim", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.unplug()
        self._dir.cleanup()

    def __enter__(self) -> ThermometerSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unplug(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._master = self._slave = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def replug(self) -> None:
        with self._lock:
            master, slave = os.openpty()
            import tty

            tty.setraw(slave)  # a serial line is raw: no echo, no line discipline
            self._master, self._slave = master, slave
            tmp = self.path + ".new"
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    # ------------------------------------------------------------------ wire

    def _frame(self) -> tuple[bytes, float | None]:
        """The next frame to send and the value it carries intact (None if corrupted)."""
        if self.stuck:
            if self._stuck_value is None:
                self._stuck_value = self.value
            v = self._stuck_value
        else:
            self._stuck_value = None
            v = self.value
        data = self.profile.encode(v, self.unit if self.profile.name != "modbus" else None)
        if self._rng.random() < self.bad_checksum_ratio:
            b = bytearray(data)
            if self.profile.name == "ascii":
                b[2:3] = b"x"  # 'T=x6.6': malformed, the only corruption ASCII can reveal
            else:
                b[-1] ^= 0x5A
            return bytes(b), None
        return data, v

    def _write(self, data: bytes) -> None:
        with self._lock:
            fd = self._master
        if fd is None:
            return
        try:
            if self.split and len(data) > 1:
                cut = self._rng.randint(1, len(data) - 1)
                os.write(fd, data[:cut])
                time.sleep(0.01)
                os.write(fd, data[cut:])
            else:
                os.write(fd, data)
        except OSError:
            pass  # unplugged meanwhile

    def _send_one(self) -> None:
        if self.silent or self._rng.random() < self.drop_ratio:
            return
        if self._rng.random() < self.garbage_ratio:
            junk = bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 12)))
            if self.profile.name == "ascii":
                junk = junk.replace(b"\n", b"?") + b"\r\n"
            self._write(junk)
        data, v = self._frame()
        if v is not None:
            self.sent.append(v)
        self._write(data)

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            fd = self._master
            if fd is None:
                time.sleep(self.interval_s)
                continue
            if not self.profile.polled:
                self._send_one()
                self._stop.wait(self.interval_s)
                continue
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                buf += os.read(fd, 256)
            except OSError:
                time.sleep(0.05)
                continue
            req = self.profile.request()
            while req in buf:
                i = buf.index(req)
                del buf[: i + len(req)]
                self._send_one()
            if len(buf) > 64:
                buf.clear()
