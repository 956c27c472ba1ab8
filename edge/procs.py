"""Child processes the benchmark, the demo and the fault test start: a private Mosquitto and
the hub (``checkpost hub run``), on loopback and free ports, always stopped again.

Each helper waits (bounded) until its process really serves — the broker accepts a TCP
connection, the hub answers an event — so callers never race a process still starting.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


class Broker:
    """A private Mosquitto (no persistence: durability is the outbox's and the hub's job)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto not found: install the mosquitto package")
        self.exe = exe
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 1000000\nmax_inflight_messages 1000\nset_tcp_nodelay true\n"
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(200):  # bounded: 10 s
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Hub:
    """``checkpost hub run`` as a child process with a SQLite store."""

    def __init__(
        self, broker_url: str, data_dir: Path, issuer_dir: str | None, http_port: int | None = None
    ) -> None:
        self.broker_url = broker_url
        # Absolute: `sqlite:///<path>` takes the path as written, and the demo's output
        # folder is relative to where `make demo` runs.
        data_dir = Path(data_dir).resolve()
        self.data_dir = data_dir
        self.issuer_dir = issuer_dir
        self.http_port = http_port or free_port()
        self.db = data_dir / "hub.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "hub.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Hub:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "checkpost",
            "hub",
            "run",
            "--broker",
            self.broker_url,
            "--db",
            f"sqlite:///{self.db}",
            "--data-dir",
            str(self.data_dir),
            "--http",
            f"127.0.0.1:{self.http_port}",
        ]
        if self.issuer_dir:
            cmd += ["--issuer-dir", self.issuer_dir]
        with open(self.log, "ab") as log:
            # its own process group: stopping it stops its workers too
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        return self

    def stop(self, kill: bool = False) -> None:
        p = self.proc
        self.proc = None
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stored_ids(self) -> list[str]:
        """Every event id in the hub's store (read-only, straight from SQLite)."""
        import sqlite3

        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return [r[0] for r in db.execute("SELECT id FROM events")]
        finally:
            db.close()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
