"""The durable outbox: every event a unit makes is on disk before anything acts on it.

Why a database of our own and not the MQTT client's queue: paho keeps unacknowledged
messages in memory and Mosquitto persists only periodically, so either loses events on a
pulled plug. The outbox is one SQLite file in WAL mode with ``synchronous=FULL``: when
:meth:`Outbox.put` returns, the events survive kill -9 and power loss.

Contract (DESIGN.md §5, issue 6 §5):

- ``put(events)`` stamps each event with the next per-unit sequence number and commits
  them in one transaction (group commit), *before* the caller shows a verdict, pulses a
  relay or publishes. Sequence numbers have no gaps and follow insertion order.
- ``pending()`` returns what is still undelivered in sequence order; the link replays it
  in batches after every (re)connect, so delivery is at-least-once and in order.
- ``ack(ids)`` removes events only when the hub's result for that id has arrived. A
  result for an unknown id (a duplicate answer) is ignored.
- A size limit (events and bytes) turns into :class:`OutboxFull` with a clear message
  and a raised ``alarm``; nothing is ever dropped to make room. A full disk (SQLITE_FULL)
  turns into :class:`OutboxFull` too: the transaction is rolled back, what was stored
  before stays stored, and the caller refuses the new work.

A second table, ``journal``, keeps the unit's local audit (hub corrections of a verdict,
staff decisions, undo reasons) so that what a unit showed can be reconstructed later.
The same file keeps durable counters (``meta``): the sequence number and the MQTT session
number, so a restarted unit never reuses either.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from checkpost.protocol import encode

log = logging.getLogger("checkpost.edge.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    kind    TEXT NOT NULL,
    created REAL NOT NULL,
    body    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    n      INTEGER PRIMARY KEY,
    at     REAL NOT NULL,
    kind   TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail BLOB NOT NULL
);
"""
SQLITE_FULL = 13


class OutboxError(RuntimeError):
    """The outbox cannot take this work; the message says why in words staff can act on."""


class OutboxFull(OutboxError):
    """The size limit is reached or the disk is full. Nothing stored was lost; new work is
    refused until the hub has taken some events (or the disk has room again)."""


class DuplicateEvent(OutboxError):
    """An event id that is already waiting in the outbox: a programming error upstream."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    id: str
    kind: str
    created: float
    body: bytes


@dataclass(frozen=True, slots=True)
class Stats:
    depth: int
    bytes: int
    oldest_created: float | None
    alarm: str  # "" when fine; otherwise the text shown on the screen and in telemetry
    warn: bool  # above the warning fraction of the limit


class Outbox:
    """One writer per file (the unit's agent); safe to call from several threads."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_events: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        warn_fraction: float = 0.8,
        max_page_count: int | None = None,
        journal_keep_s: float = 30 * 24 * 3600,
    ) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("outbox limits must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.warn_fraction = warn_fraction
        self.journal_keep_s = journal_keep_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{self.path}: cannot use WAL journal (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")
        # A crashed writer's WAL is replayed by SQLite on open; checkpoint regularly so the
        # WAL file stays small on an SD card.
        db.execute("PRAGMA wal_autocheckpoint=256")
        if max_page_count is not None:  # tests simulate a full disk with this
            db.execute(f"PRAGMA max_page_count={int(max_page_count)}")
        try:
            db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:
            raise OutboxError(f"{self.path}: cannot open outbox: {exc}") from None
        row = db.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM events").fetchone()
        self._depth, self._bytes = int(row[0]), int(row[1])
        self._alarm = ""
        self._disk_full = False
        self._update_alarm()

    # -- writing ----------------------------------------------------------------------------

    def put(self, events: Sequence[msgspec.Struct], now: float | None = None) -> list[Any]:
        """Stamp `events` with sequence numbers and store them durably, all or none.

        Returns the stamped events (same order). Raises OutboxFull when the limit or the
        disk would be exceeded; nothing of this batch is stored then.
        """
        if not events:
            return []
        now = time.time() if now is None else now
        with self._lock:
            bodies_len_guess = 0
            if self._depth + len(events) > self.max_events:
                self._alarm = (
                    f"upload queue full ({self._depth} events waiting, limit {self.max_events}): "
                    "new work refused until the hub takes some — check the hub link"
                )
                raise OutboxFull(self._alarm)
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
                seq = int(row[0]) if row else 0
                stamped: list[Any] = []
                rows: list[tuple[int, str, str, float, bytes]] = []
                for ev in events:
                    seq += 1
                    ev2 = msgspec.structs.replace(ev, seq=seq)  # type: ignore[type-var]
                    body = encode(ev2)
                    bodies_len_guess += len(body)
                    kind = ev2.__struct_config__.tag  # type: ignore[attr-defined]
                    rows.append((seq, ev2.id, str(kind), now, body))  # type: ignore[attr-defined]
                    stamped.append(ev2)
                if self._bytes + bodies_len_guess > self.max_bytes:
                    db.execute("ROLLBACK")
                    self._alarm = (
                        f"upload queue full ({self._bytes // 1024} kB waiting, limit "
                        f"{self.max_bytes // 1024} kB): new work refused — check the hub link"
                    )
                    raise OutboxFull(self._alarm)
                db.executemany(
                    "INSERT INTO events (seq, id, kind, created, body) VALUES (?, ?, ?, ?, ?)", rows
                )
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('seq', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (seq,),
                )
                db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._rollback()
                raise DuplicateEvent(f"event id already in the outbox: {exc}") from None
            except sqlite3.OperationalError as exc:
                self._rollback()
                if _is_full(exc):
                    self._disk_full = True
                    self._alarm = (
                        f"storage full ({self.path.parent}): new work refused, "
                        f"{self._depth} stored events kept — free space or replace the SD card"
                    )
                    log.error("outbox: %s", self._alarm)
                    raise OutboxFull(self._alarm) from None
                raise OutboxError(f"{self.path}: cannot store events: {exc}") from None
            self._depth += len(rows)
            self._bytes += bodies_len_guess
            self._disk_full = False
            self._update_alarm()
            return stamped

    def ack(self, ids: Iterable[str]) -> int:
        """Remove delivered events (the hub's result arrived). Unknown ids are ignored."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                removed = 0
                freed = 0
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    row = db.execute(
                        f"SELECT count(*), coalesce(sum(length(body)), 0) FROM events "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    removed += int(row[0])
                    freed += int(row[1])
                    db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
                db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # Deleting can need a page on a full disk (WAL frames): keep the events,
                # they will be acknowledged again when the hub answers the replay.
                self._rollback()
                log.warning("outbox: cannot remove delivered events: %s", exc)
                return 0
            self._depth -= removed
            self._bytes -= freed
            self._update_alarm()
            return removed

    def journal(self, kind: str, target: str, detail: Any, now: float | None = None) -> None:
        """Append to the local audit (corrections shown, staff decisions, undo reasons).

        Best effort on a full disk: the audit never blocks a verdict, the event itself is
        what the hub keeps."""
        now = time.time() if now is None else now
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO journal (at, kind, target, detail) VALUES (?, ?, ?, ?)",
                    (now, kind, target, msgspec.json.encode(detail)),
                )
            except sqlite3.OperationalError as exc:
                log.warning("outbox: journal entry %s not kept: %s", kind, exc)

    def journal_entries(self, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            sql = "SELECT at, kind, target, detail FROM journal"
            params: tuple[Any, ...] = ()
            if kind is not None:
                sql += " WHERE kind = ?"
                params = (kind,)
            rows = self._db.execute(sql + " ORDER BY n LIMIT ?", (*params, limit)).fetchall()
        return [
            {"at": r[0], "kind": r[1], "target": r[2], "detail": msgspec.json.decode(r[3])}
            for r in rows
        ]

    def purge_journal(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            try:
                cur = self._db.execute(
                    "DELETE FROM journal WHERE at < ?", (now - self.journal_keep_s,)
                )
            except sqlite3.OperationalError:
                return 0
            return cur.rowcount

    def bump(self, key: str) -> int:
        """Increment a durable counter and return its new value (e.g. the MQTT session)."""
        with self._lock:
            try:
                row = self._db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, 1) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
                    (key,),
                ).fetchone()
            except sqlite3.OperationalError as exc:
                raise OutboxError(f"{self.path}: cannot update {key}: {exc}") from None
            return int(row[0])

    def counter(self, key: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    # -- reading ----------------------------------------------------------------------------

    def pending(self, limit: int = 100, after_seq: int = 0) -> list[Pending]:
        """Undelivered events with seq > `after_seq`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, kind, created, body FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Pending(int(r[0]), r[1], r[2], float(r[3]), bytes(r[4])) for r in rows]

    def contains(self, event_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
                is not None
            )

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def alarm(self) -> str:
        return self._alarm

    def stats(self) -> Stats:
        with self._lock:
            row = self._db.execute("SELECT min(created) FROM events").fetchone()
        oldest = float(row[0]) if row and row[0] is not None else None
        warn = (
            self._depth >= self.warn_fraction * self.max_events
            or self._bytes >= self.warn_fraction * self.max_bytes
        )
        return Stats(self._depth, self._bytes, oldest, self._alarm, warn or bool(self._alarm))

    def check(self) -> str:
        """SQLite's own integrity check ("ok" when the file is sound)."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # SQLite already rolled back (it does on SQLITE_FULL)

    def _update_alarm(self) -> None:
        if self._disk_full:
            return
        if self._depth >= self.max_events or self._bytes >= self.max_bytes:
            self._alarm = (
                f"upload queue full ({self._depth} events waiting): new work refused "
                "until the hub takes some — check the hub link"
            )
        else:
            self._alarm = ""


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == SQLITE_FULL or "full" in str(exc).lower()
