"""PostgreSQL store: state shared by several hub workers (scale-out).

Rules that two workers could race on are decided by constraints (`ON CONFLICT DO NOTHING`)
or serialised by row locks (`SELECT ... FOR UPDATE` on the tube or box), never by a
check-then-insert. The bulk paths send a whole batch in one statement (`unnest` of
arrays), so a batch costs a few round trips whatever its size. A deadlock between two
workers' batches rolls one back; `Store.commit` retries it.

`postgresql://...?schema=NAME` puts the tables in their own schema (created if missing):
tests use one schema per session.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import psycopg
from checkpost.hub.store.base import EVENT_COLUMNS, INSERT_EVENTS, Store, Work
from psycopg import errors as pgerr

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_LOCK = 0x636B706F7374  # "ckpost": one migrator at a time


def split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k != "schema"]
    if schema is not None and not _SCHEMA.fullmatch(schema):
        raise ValueError(f"bad schema name {schema!r}")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _q(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresStore(Store):
    dialect = "postgres"
    lock = " FOR UPDATE"
    # Deadlocks between workers, and a lost connection (server restart, failover, network):
    # a batch is retried whole, on a new connection if the old one broke. Safe even when
    # the connection died during COMMIT: a batch that did commit is found stored and is
    # answered from the store.
    retryable = (
        pgerr.DeadlockDetected,
        pgerr.SerializationFailure,
        pgerr.LockNotAvailable,
        psycopg.OperationalError,
    )

    def __init__(self, url: str) -> None:
        self.url, self.schema = split_schema(url)
        self._sql: dict[str, str] = {}
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        if self.schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
        # Durable commits are what the verdict waits for; keep them so even if the server
        # default was relaxed.
        conn.execute("SET synchronous_commit TO on")
        return conn

    def reconnect_if_broken(self) -> None:
        self._usable()

    def _usable(self) -> psycopg.Connection[Any]:
        """The connection, replaced first if it broke (the caller is starting a batch)."""
        if self.conn.broken or self.conn.closed:
            try:
                self.conn.close()
            except psycopg.Error:  # pragma: no cover - already gone
                pass
            self.conn = self._connect()
        return self.conn

    def _conv(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = _q(sql.replace("{lock}", self.lock))
        return out

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(self._conv(sql), params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._conv(sql), rows)

    def begin(self) -> None:
        self._usable().execute("BEGIN")

    def commit_tx(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.broken or self.conn.closed:
            return  # nothing to roll back: the server dropped the transaction with it
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def insert_events(self, rows: list[tuple[Any, ...]]) -> set[str]:
        cols = list(zip(*rows, strict=True))
        cur = self.conn.execute(
            f"{INSERT_EVENTS} SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], "
            "%s::text[], %s::float8[], %s::float8[], %s::int[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::text[]) ON CONFLICT (id) DO NOTHING RETURNING id",
            [list(c) for c in cols],
        )
        return {r[0] for r in cur.fetchall()}

    def insert_tokens(
        self, rows: list[tuple[Any, ...]]
    ) -> dict[tuple[str, int], tuple[str, str, str]]:
        cols = [list(c) for c in zip(*rows, strict=True)]
        cur = self.conn.execute(
            "INSERT INTO pass_tokens (sid, iat, unit, vehicle, event_id, ts) SELECT * FROM "
            "unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::float8[]) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            cols,
        )
        inserted = {r[0] for r in cur.fetchall()}
        missing = [r for r in rows if r[4] not in inserted]
        if not missing:
            return {}
        cur = self.conn.execute(
            "SELECT p.sid, p.iat, p.unit, p.vehicle, p.event_id FROM pass_tokens p "
            "JOIN unnest(%s::text[], %s::bigint[]) AS k(sid, iat) "
            "ON p.sid = k.sid AND p.iat = k.iat",
            [[r[0] for r in missing], [r[1] for r in missing]],
        )
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in cur.fetchall()}

    one_statement = True

    def _commit_at_once(self, batch: list[Work], policy: str) -> None:
        """A batch of scans as one call of `checkpost_scans_v1` (migration 4), in
        autocommit: one round trip, durable on return (`commit` retries it whole)."""
        rows = []
        for w in batch:
            verdict_r, result_r = self._results_both_ways(w, policy)
            vehicle = getattr(w.event, "vehicle", None) or ""  # a temperature has none
            row = dict(zip(EVENT_COLUMNS, self._event_row(w, w.result), strict=True))
            row.update(iat=w.iat, vehicle=vehicle, verdict_r=verdict_r, result_r=result_r)
            rows.append(row)
        payload = msgspec.json.encode(rows).decode()
        cur = self._usable().execute("SELECT * FROM checkpost_scans_v1(%s::json)", (payload,))
        self._take_stored(batch, dict(cur.fetchall()))

    def begin_migration(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))

    def update_results(self, rows: list[tuple[Any, ...]]) -> None:
        cols = [list(c) for c in zip(*rows, strict=True)]
        self.conn.execute(
            "UPDATE events e SET ok = u.ok, verdict = u.verdict, result = u.result "
            "FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[]) "
            "AS u(ok, verdict, result, id) WHERE e.id = u.id",
            cols,
        )

    def drop_schema(self) -> None:
        """Remove this store's schema (tests clean up after themselves)."""
        if self.schema:
            self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
