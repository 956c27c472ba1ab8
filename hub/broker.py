"""A private Mosquitto for tests and benchmarks: own config, own free port, killed after.

Never the system broker: a benchmark must not fill another user's queues, and a test must
not see retained messages someone else left. The generated config also shows the settings
the hub needs from any broker: TCP_NODELAY, queues deep enough for a hub restart, and no
per-client in-flight cap below the hub's receive maximum.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 0
max_queued_messages 200000
max_queued_bytes 0
log_dest file {log}
log_type error
log_type warning
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    def __init__(self, folder: str | Path | None = None, settings: str = "") -> None:
        """`settings`: extra mosquitto.conf lines (tests of broker limits)."""
        self._tmp = None if folder else tempfile.mkdtemp(prefix="checkpost-mosq-")
        self.folder = Path(folder or self._tmp)  # type: ignore[arg-type]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        for _ in range(5):
            self.port = free_port()
            conf = self.folder / "mosquitto.conf"
            text = CONFIG.format(port=self.port, log=self.folder / "mosquitto.log")
            conf.write_text(text + self.settings)
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return self
                except OSError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"mosquitto did not start (see {self.folder}/mosquitto.log)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - manual use
    b = PrivateBroker().start()
    print(b.url, os.getpid())
