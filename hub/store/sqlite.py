"""SQLite (WAL) store: the embedded default for one machine and one worker.

`synchronous=FULL` makes each commit durable (fsync of the WAL) before the loop sends a
verdict; group commit amortises that fsync over the batch (MEASURED.md: 5.8k/s one commit
per event, 50k/s in groups of 100). Several worker processes may share the file (WAL,
busy timeout), but SQLite has one writer at a time: scale out on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from checkpost.hub.store.base import Store
from checkpost.hub.store.migrations import MIGRATIONS


class SqliteStore(Store):
    dialect = "sqlite"
    lock = ""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The connection is used by one thread at a time (the worker's commit thread, or
        # the API under its own lock), so the same-thread check is turned off deliberately.
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.readonly = readonly
        self.retryable = (sqlite3.OperationalError,)
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    def start_checkpointer(self, interval: float = 0.25) -> None:
        """Move WAL checkpoints off the commit path.

        With automatic checkpoints, the commit that crosses 1000 WAL pages copies them into
        the database and fsyncs it: 25-35 ms stalls every second or two under load. A
        background connection can checkpoint passively instead. Measured on this VM it
        made things worse (its fsync of the database file queues the writer's WAL fsync
        behind it: p99 at 500 events/s went from 16 ms to 38 ms), so it is off by default
        (`[hub] sqlite_checkpointer`); try it on hardware with better fsync isolation.
        """
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        self.conn.execute("PRAGMA wal_autocheckpoint=0")

        def run() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                while not self._stop.wait(interval):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.OperationalError:  # busy: next time
                        pass
            finally:
                conn.close()

        self._checkpointer = threading.Thread(target=run, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("{lock}", ""), params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit_tx(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
        self.conn.close()

    def insert_events(self, rows: list[tuple[Any, ...]]) -> set[str]:
        sql = (
            "INSERT INTO events (id, unit, seq, kind, unit_ts, hub_ts, ok, verdict, sid, subject, "
            "result, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        )
        cur = self.conn.cursor()
        out = set()
        for row in rows:
            if cur.execute(sql, row).rowcount:
                out.add(row[0])
        return out

    def insert_tokens(
        self, rows: list[tuple[Any, ...]]
    ) -> dict[tuple[str, int], tuple[str, str, str]]:
        cur = self.conn.cursor()
        known: dict[tuple[str, int], tuple[str, str, str]] = {}
        for row in rows:
            if not cur.execute(
                "INSERT INTO pass_tokens (sid, iat, unit, vehicle, event_id, ts) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                row,
            ).rowcount:
                first = cur.execute(
                    "SELECT unit, vehicle, event_id FROM pass_tokens WHERE sid = ? AND iat = ?",
                    row[:2],
                ).fetchone()
                known[(row[0], row[1])] = tuple(first)
        return known

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in place."""
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))
        try:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL)"
            )
            done = {r[0] for r in self.conn.execute("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for stmt in statements:
                    self.conn.execute(stmt)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time())
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        return max(v for v, _ in MIGRATIONS)
