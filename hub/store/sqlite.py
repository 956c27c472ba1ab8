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

from checkpost.hub.store.base import INSERT_EVENTS, Store


class SqliteStore(Store):
    dialect = "sqlite"
    lock = ""
    claim_first = False  # BEGIN IMMEDIATE: one writer at a time (Store._slow)
    cache_kib = 65536

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
        # The rules look up index pages all over the tables (tube, box, person of the
        # round); with SQLite's default 2 MB page cache most of those became system calls
        # once the file outgrew it. 64 MB keeps the working set in the process.
        self.conn.execute(f"PRAGMA cache_size=-{self.cache_kib}")
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

    # Multi-row statements with RETURNING (SQLite >= 3.35): a batch's rows go in a few
    # statements instead of one each. 2,000 rows of 12 columns stay under SQLite's limit
    # of 32,766 bound parameters.
    _ROWS = 2000

    def _insert_returning(self, head: str, returning: str, rows: list[tuple[Any, ...]]) -> set[Any]:
        """Insert rows, skipping conflicts; the `returning` column of the rows inserted."""
        out: set[Any] = set()
        one = "(" + ",".join("?" * len(rows[0])) + ")" if rows else ""
        for i in range(0, len(rows), self._ROWS):
            chunk = rows[i : i + self._ROWS]
            sql = (
                f"{head} VALUES {','.join([one] * len(chunk))} "
                f"ON CONFLICT DO NOTHING RETURNING {returning}"
            )
            cur = self.conn.execute(sql, [v for row in chunk for v in row])
            out.update(r[0] for r in cur.fetchall())
        return out

    def insert_events(self, rows: list[tuple[Any, ...]]) -> set[str]:
        return self._insert_returning(INSERT_EVENTS, "id", rows)

    def insert_tokens(
        self, rows: list[tuple[Any, ...]]
    ) -> dict[tuple[str, int], tuple[str, str, str]]:
        inserted = self._insert_returning(_TOKENS, "event_id", rows)
        known: dict[tuple[str, int], tuple[str, str, str]] = {}
        for row in rows:
            if row[4] not in inserted:
                first = self.conn.execute(
                    "SELECT unit, vehicle, event_id FROM pass_tokens WHERE sid = ? AND iat = ?",
                    row[:2],
                ).fetchone()
                known[(row[0], row[1])] = tuple(first)
        return known

    def begin_migration(self) -> None:
        # Several workers may start at once: wait for the write lock instead of failing.
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))
        self.conn.execute("BEGIN IMMEDIATE")


_TOKENS = "INSERT INTO pass_tokens (sid, iat, unit, vehicle, event_id, ts)"
