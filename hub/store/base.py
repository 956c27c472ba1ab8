"""The store interface, and the city-wide rules written once for both engines.

`Store.commit(batch)` is the only write path: one transaction per batch (group commit),
durable when it returns, after which the loop may publish verdicts. Inside the batch:

- checkpoint-type events (scans, temperatures, vehicles, staff overrides) are idempotent
  by construction, so they go in bulk: pass tokens first (replay detection by the
  `pass_tokens` primary key), then the events themselves with `ON CONFLICT (id) DO
  NOTHING`; ids that did not insert were stored before and are answered from the store
  (on PostgreSQL a batch of scans and temperatures alone is one autocommitted call that
  does the same: see `at_once`);
- sampling events change shared state, so each first claims its id (insert the event
  row; SQLite, the only writer during its transaction, looks the ids up instead), then
  applies its rule with constraints and row locks, then writes its result.

Engines differ only in connection handling, placeholders, row locks and the bulk paths;
the SQL of every rule is shared. SQL is written with `?` placeholders and `{lock}` where
PostgreSQL takes a row lock (`FOR UPDATE`), which SQLite (one writer) does not need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from checkpost.hub import reasons as R
from checkpost.hub.store.migrations import MIGRATIONS

from checkpost.policy.engine import RANK
from checkpost.protocol import Result, encode
from checkpost.protocol.messages import decode_result
from checkpost.reasons import Reason, reason

log = logging.getLogger("checkpost.hub.store")

# Event kinds whose effects are idempotent and order-free: they take the bulk path.
FAST_KINDS = frozenset(
    {
        "scan",
        "temp",
        "vehicle_open",
        "vehicle_close",
        "vehicle_turn_back",
        "vehicle_step",
        "override",
    }
)


# The columns of an `events` row as `Store._event_row` builds it; every engine's insert
# names them from here.
EVENT_COLUMNS = (
    "id", "unit", "seq", "kind", "unit_ts", "hub_ts", "ok", "verdict", "sid", "subject",
    "result", "body",
)  # fmt: skip
INSERT_EVENTS = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"


@dataclass(slots=True)
class Work:
    """One event on its way through a commit: what verification decided, then the outcome.

    `pre_*` come from verification (code pipeline + policy) before the commit and never
    change; the commit copies them into the outcome fields and applies the city-wide rules,
    so a batch that must be retried (deadlock, serialization failure) starts clean.
    """

    event: Any
    body: str
    hub_ts: float
    pre_ok: bool = True
    pre_verdict: str | None = None
    pre_reasons: list[Reason] = field(default_factory=list)
    pre_flags: list[str] = field(default_factory=list)
    sid: str | None = None  # HP1 (scan) or SR1 (tube_add) subject id
    iat: int | None = None  # HP1 token issue time, for replay detection
    subject: str | None = None  # tube, box, vehicle or target the event concerns
    # outcome, filled by Store.commit
    ok: bool = True
    verdict: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    result: bytes = b""
    dup: bool = False

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def kind(self) -> str:
        return self.event.__struct_config__.tag

    def reset(self) -> None:
        self.ok, self.verdict = self.pre_ok, self.pre_verdict
        self.reasons, self.flags = list(self.pre_reasons), list(self.pre_flags)
        self.result, self.dup = b"", False

    def reject(self, why: Reason) -> None:
        self.ok = False
        self.reasons.append(why)


class StoreError(RuntimeError):
    pass


class Store:
    """Base class: subclasses provide the connection, transactions and bulk paths."""

    dialect = "base"
    lock = ""  # row-lock clause appended to SELECTs that guard a rule
    retryable: tuple[type[BaseException], ...] = ()
    max_attempts = 5

    # -- engine primitives (subclasses) ---------------------------------------------------

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit_tx(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def insert_events(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert event rows, skipping ids already stored; return the ids inserted."""
        raise NotImplementedError

    def reconnect_if_broken(self) -> None:
        """Replace a connection the server dropped. Only between transactions (the API
        before a read; batches do it themselves when they start)."""

    def insert_tokens(
        self, rows: list[tuple[Any, ...]]
    ) -> dict[tuple[str, int], tuple[str, str, str]]:
        """Insert pass tokens (sid, iat, unit, vehicle, event_id, ts), skipping known ones;
        return, for every token that was already known, its first (unit, vehicle, event)."""
        raise NotImplementedError

    def begin_migration(self) -> None:
        """Open the migration transaction, excluding every other migrator (engine-specific:
        SQLite takes the write lock, PostgreSQL an advisory lock)."""
        raise NotImplementedError

    def migrate(self) -> int:
        """Apply pending migrations in one transaction; return the schema version in place.
        Written once for both engines: only how the transaction is opened differs."""
        self.begin_migration()
        try:
            self.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at DOUBLE PRECISION)"
            )
            done = {r[0] for r in self.all("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for stmt in statements:
                    if isinstance(stmt, tuple):  # for one engine only
                        dialect, stmt = stmt
                        if dialect != self.dialect:
                            continue
                    self.execute(stmt)
                self.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            self.commit_tx()
        except BaseException:
            self.rollback()
            raise
        return max(v for v, _ in MIGRATIONS)

    def start_checkpointer(self) -> None:
        """Engine housekeeping off the commit path (SQLite WAL checkpoints)."""

    # -- helpers ---------------------------------------------------------------------------

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self.execute(sql, params).rowcount

    # -- the write path --------------------------------------------------------------------

    def commit(self, batch: list[Work], policy: str = "") -> float:
        """Apply and durably store a batch; fill each item's `result`. Returns seconds spent.

        Retries the whole batch on a retryable engine error (deadlock between workers);
        any other error propagates and nothing of the batch is stored or answered.
        """
        t0 = time.perf_counter()
        if self.at_once(batch):
            self._attempts(batch, lambda: self._commit_at_once(batch, policy))
        else:

            def attempt() -> None:
                self.begin()
                self._apply(batch, policy)
                self.commit_tx()

            self._attempts(batch, attempt)
        return time.perf_counter() - t0

    def _attempts(self, batch: list[Work], attempt: Callable[[], None]) -> None:
        """Run `attempt` (one whole try at the batch, from its `pre_*` fields) until it
        succeeds, retrying on a retryable engine error up to `max_attempts`; anything
        else rolls back and propagates."""
        for n in range(1, self.max_attempts + 1):
            for w in batch:
                w.reset()
            try:
                attempt()
                return
            except self.retryable as exc:
                self.rollback()
                if n == self.max_attempts:
                    raise
                log.info("batch retry %d after %s", n, type(exc).__name__)
                time.sleep(0.001 * n)
            except BaseException:
                self.rollback()
                raise

    # Kinds an engine may store in a single statement (see `at_once`): their whole effect
    # is the pass token and the event row.
    AT_ONCE_KINDS = frozenset({"scan", "temp"})
    one_statement = False  # the engine implements `_commit_at_once`

    def at_once(self, batch: list[Work]) -> bool:
        """True when this batch commits in one statement (one round trip, durable when it
        returns) instead of BEGIN / statements / COMMIT: an engine that has the path, and
        a batch of scans and temperatures only — the checkpoint's hot path."""
        if not self.one_statement:
            return False
        kinds = self.AT_ONCE_KINDS
        return all(w.event.__struct_config__.tag in kinds for w in batch)

    def _commit_at_once(self, batch: list[Work], policy: str) -> None:
        raise NotImplementedError

    def _results_both_ways(self, w: Work, policy: str) -> tuple[str | None, str | None]:
        """Fill `w`'s outcome (just reset by `_attempts`) as if its pass was not
        replayed; return the verdict and result it gets if the store finds it was (None,
        None for an event without a pass token). The engine picks one in its statement."""
        if w.iat is None or w.sid is None:
            self._finish(w, policy)
            return None, None
        _flag_replay(w)
        self._finish(w, policy)
        replayed = w.verdict, w.result.decode()
        w.reset()
        self._finish(w, policy)
        return replayed

    def _take_stored(self, batch: list[Work], stored: dict[str, str]) -> None:
        """After a one-statement commit: `stored` maps each event id the statement inserted
        to the result it stored. An event stored with its replay variant takes that
        outcome; ids not inserted (stored before, or twice in the batch) are dups."""
        dups: list[Work] = []
        for w in batch:
            text = stored.pop(w.id, None)
            if text is None:
                dups.append(w)
            elif text.encode() != w.result:  # the store picked the replay variant
                _flag_replay(w)
                w.result = text.encode()
        if dups:
            self._answer_dups(dups)

    def stage(self, batch: list[Work], policy: str = "") -> None:
        """The first half of `commit`: open the transaction and apply the batch, leaving
        only `commit_tx` (the durable flush) to do. With `commit_mode = "split"` the loop
        runs this half itself and hands only the flush to the store thread, so the GIL
        changes hands twice per batch instead of once per SQL statement."""

        def attempt() -> None:
            self.begin()
            self._apply(batch, policy)

        self._attempts(batch, attempt)

    def _apply(self, batch: list[Work], policy: str) -> None:
        fast = [w for w in batch if w.kind in FAST_KINDS]
        slow = [w for w in batch if w.kind not in FAST_KINDS]
        dups: list[Work] = []
        if fast:
            self._fast(fast, policy, dups)
        if slow:
            self._slow(slow, policy, dups)
        if dups:
            self._answer_dups(dups)

    # Whether a sampling event must claim its id before its rule runs. Yes where several
    # writers run at once (PostgreSQL); SQLite's BEGIN IMMEDIATE makes the batch the only
    # writer until it commits, so there an id stored before is simply looked up first.
    claim_first = True

    def _slow(self, slow: list[Work], policy: str, dups: list[Work]) -> None:
        """Sampling events, each rule applied in order. Dups first: with `claim_first`,
        every id of the batch is claimed in one statement (the primary key decides which
        were stored before: another worker holding the same id makes this wait for its
        commit, then see the conflict) and results are written back in one statement;
        otherwise the ids stored before are read in one statement and each event is
        inserted once, with its result (no second write of every row)."""
        if self.claim_first:
            fresh = self.insert_events([self._event_row(w, b"") for w in slow])
        else:
            stored = self.stored_ids([w.id for w in slow])
            fresh = {w.id for w in slow} - stored
        done: list[Work] = []
        for w in slow:
            if w.id not in fresh:
                dups.append(w)
                continue
            fresh.discard(w.id)  # the same id twice in one batch: the second is a dup
            RULES[w.kind](self, w)
            self._finish(w, policy)
            done.append(w)
        if not done:
            return
        if self.claim_first:
            self.update_results([(int(w.ok), w.verdict, w.result.decode(), w.id) for w in done])
        else:  # ids known to be new: one prepared statement, no conflict handling
            marks = ", ".join("?" * len(EVENT_COLUMNS))
            self.executemany(
                f"{INSERT_EVENTS} VALUES ({marks})", [self._event_row(w, w.result) for w in done]
            )

    def stored_ids(self, ids: list[str]) -> set[str]:
        """The ids among `ids` that are stored already."""
        return {r[0] for r in self._events_by_id(ids, "id")}

    def _events_by_id(self, ids: list[str], columns: str) -> list[Any]:
        """Rows (`columns`) of the stored events among `ids`, 500 ids per statement."""
        rows: list[Any] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.all(f"SELECT {columns} FROM events WHERE id IN ({marks})", tuple(chunk))
        return rows

    def update_results(self, rows: list[tuple[Any, ...]]) -> None:
        """Set (ok, verdict, result) of claimed events, rows of (ok, verdict, result, id)."""
        self.executemany("UPDATE events SET ok = ?, verdict = ?, result = ? WHERE id = ?", rows)

    def _fast(self, fast: list[Work], policy: str, dups: list[Work]) -> None:
        tokens = [
            (w.sid, w.iat, w.event.unit, w.event.vehicle or "", w.id, w.hub_ts)
            for w in fast
            if w.iat is not None and w.sid is not None
        ]
        if tokens:
            known = self.insert_tokens(tokens)
            if known:
                for w in fast:
                    if w.iat is None:
                        continue
                    first = known.get((w.sid, w.iat))  # type: ignore[arg-type]
                    if first is None or first[2] == w.id:
                        continue
                    if first[0] != w.event.unit or first[1] != (w.event.vehicle or ""):
                        _flag_replay(w)
        for w in fast:
            k = w.kind
            if k == "vehicle_open":
                # a vehicle_step handled first (another worker) left a row without a plate
                self.run(
                    "INSERT INTO vehicles (id, unit, plate, opened_ts, direction) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "plate = excluded.plate, direction = excluded.direction, "
                    "opened_ts = excluded.opened_ts WHERE vehicles.plate = ''",
                    (w.id, w.event.unit, w.event.plate, w.hub_ts, w.event.direction),
                )
            elif k == "vehicle_step":
                col = "advice_ts" if w.event.step == "advice" else "disinfected_ts"
                self.run(
                    f"INSERT INTO vehicles (id, unit, plate, opened_ts, {col}) "
                    f"VALUES (?, ?, '', ?, ?) "
                    f"ON CONFLICT (id) DO UPDATE SET {col} = excluded.{col}",
                    (w.event.vehicle, w.event.unit, w.hub_ts, w.event.ts),
                )
            elif k == "vehicle_close":
                self.run(
                    "UPDATE vehicles SET closed_ts = ?, occupants = ? WHERE id = ?",
                    (w.hub_ts, w.event.occupants, w.event.vehicle),
                )
            elif k == "vehicle_turn_back":
                self.run(
                    "UPDATE vehicles SET turned_back = 1, why = ?, outcome = ? WHERE id = ?",
                    (w.event.why, w.event.outcome, w.event.vehicle),
                )
            self._finish(w, policy)
        inserted = self.insert_events([self._event_row(w, w.result) for w in fast])
        if len(inserted) != len(fast):  # stored before, or twice in this batch
            for w in fast:
                if w.id in inserted:
                    inserted.discard(w.id)
                else:
                    dups.append(w)

    def _event_row(self, w: Work, result: bytes) -> tuple[Any, ...]:
        """An `events` row, in the order of EVENT_COLUMNS."""
        e = w.event
        return (
            w.id,
            e.unit,
            e.seq,
            w.kind,
            e.ts,
            w.hub_ts,
            int(w.ok),
            w.verdict,
            w.sid,
            w.subject,
            result.decode(),
            w.body,
        )

    def _finish(self, w: Work, policy: str) -> None:
        w.result = encode(
            Result(
                id=w.id,
                ok=w.ok,
                verdict=w.verdict,
                reasons=w.reasons,
                flags=w.flags,
                policy=policy,
                at=w.hub_ts,
            )
        )

    def _answer_dups(self, dups: list[Work]) -> None:
        stored = dict(self._events_by_id(list({w.id for w in dups}), "id, result"))
        for w in dups:
            text = stored.get(w.id)
            if not text:  # pragma: no cover - a claimed id always has its result
                raise StoreError(f"event {w.id} claimed but has no stored result")
            res = msgspec.structs.replace(decode_result(text.encode()), dup=True)
            w.ok, w.verdict, w.reasons, w.flags = (
                res.ok,
                res.verdict,
                list(res.reasons),
                list(res.flags),
            )
            w.dup = True
            w.result = encode(res)

    # -- read side (API) -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        events = self.one("SELECT COUNT(*) FROM events")[0]
        verdicts = {
            (v or "none"): n
            for v, n in self.all(
                "SELECT verdict, COUNT(*) FROM events WHERE kind = 'scan' GROUP BY verdict"
            )
        }
        kinds = dict(self.all("SELECT kind, COUNT(*) FROM events GROUP BY kind"))
        rejected = self.one("SELECT COUNT(*) FROM events WHERE ok = 0")[0]
        tubes = self.one("SELECT COUNT(*), COUNT(closed_ts) FROM tubes")
        boxes = self.one("SELECT COUNT(*), COUNT(sealed_ts) FROM boxes")
        return {
            "events": events,
            "by_kind": kinds,
            "verdicts": verdicts,
            "rejected": rejected,
            "tubes": {"opened": tubes[0], "closed": tubes[1]},
            "boxes": {"opened": boxes[0], "sealed": boxes[1]},
            "samples": self.one("SELECT COUNT(*) FROM tube_members")[0],
        }

    def tube(self, code: str) -> dict[str, Any] | None:
        row = self.one(
            "SELECT code, event_id, unit, tbl, round, pool, opened_ts, closed_ts, closed_count "
            "FROM tubes WHERE code = ?",
            (code,),
        )
        if row is None:
            return None
        members = [
            {
                "slot": m[0],
                "sid": m[1],
                "unit": m[2],
                "at": m[3],
                "override": bool(m[4]),
                "event": m[5],
            }
            for m in self.all(
                "SELECT slot, sid, unit, ts, override, event_id FROM tube_members WHERE tube = ? "
                "ORDER BY slot",
                (code,),
            )
        ]
        box = self.one("SELECT box, ts FROM box_tubes WHERE tube = ?", (code,))
        handovers = []
        if box is not None:
            handovers = [
                {
                    "event": h[0],
                    "place": h[1],
                    "handler": h[2],
                    "tubes": h[3],
                    "samples": h[4],
                    "ok": bool(h[5]),
                    "at": h[6],
                }
                for h in self.all(
                    "SELECT event_id, place, handler, tubes, samples, ok, ts FROM handovers "
                    "WHERE box = ? ORDER BY ts",
                    (box[0],),
                )
            ]
        return {
            "code": row[0],
            "opened_by": row[1],
            "unit": row[2],
            "table": row[3],
            "round": row[4],
            "pool": row[5],
            "opened_at": row[6],
            "closed_at": row[7],
            "closed_count": row[8],
            "members": members,
            "box": box[0] if box else None,
            "boxed_at": box[1] if box else None,
            "handovers": handovers,
        }

    def passes(self, sid: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT id, unit, kind, unit_ts, hub_ts, verdict, subject, result FROM events "
            "WHERE sid = ? ORDER BY hub_ts DESC LIMIT ?",
            (sid, limit),
        )
        out = []
        for r in rows:
            res = decode_result(r[7].encode()) if r[7] else None
            out.append(
                {
                    "event": r[0],
                    "unit": r[1],
                    "kind": r[2],
                    "unit_ts": r[3],
                    "hub_ts": r[4],
                    "verdict": r[5],
                    "vehicle" if r[2] == "scan" else "tube": r[6],
                    "flags": res.flags if res else [],
                }
            )
        return out

    def event_result(self, event_id: str) -> bytes | None:
        row = self.one("SELECT result FROM events WHERE id = ?", (event_id,))
        return row[0].encode() if row else None

    def count_events(self, ids: list[str] | None = None) -> int:
        if ids is None:
            return self.one("SELECT COUNT(*) FROM events")[0]
        n = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            n += self.one(
                f"SELECT COUNT(*) FROM events WHERE id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )[0]
        return n


# -- city-wide rules for sampling events ------------------------------------------------------
#
# Three shapes recur, written once each: open a container once, ever (the primary key
# decides); find a container under a row lock and refuse it when missing or already
# closed/sealed; close a container recording the count the hub knows.


def _open_once(s: Store, w: Work, sql: str, params: tuple[Any, ...], taken: Reason) -> None:
    """Insert a tube or box; the primary key makes the first opener the only winner."""
    if w.ok and s.run(sql + " ON CONFLICT DO NOTHING", params) == 0:
        w.reject(taken)


def _locked(
    s: Store, w: Work, sql: str, key: str, missing: Reason, done: Reason
) -> tuple[Any, ...] | None:
    """The row of a tube or box, locked for the rest of the transaction (PostgreSQL), or
    None after rejecting the event: `missing` when it does not exist, `done` when its last
    column (closed_ts / sealed_ts) is set."""
    row = s.one(sql + s.lock, (key,))
    if row is None:
        w.reject(missing)
        return None
    if row[-1] is not None:
        w.reject(done)
        return None
    return tuple(row)


def _close_counted(
    s: Store, w: Work, update: str, count: int, key: str, claimed: int, what: str
) -> None:
    """Close a tube / seal a box with the count the hub knows; a different count from the
    unit is refused (and the known one given back), the closing stands."""
    s.run(update, (w.hub_ts, count, key))
    if count != claimed:
        w.reject(reason("count_mismatch", what=what, got=claimed, want=count))
        w.flags.append(f"known:{count}")


def _flag_replay(w: Work) -> None:
    """The pass was first shown at another unit or for another vehicle."""
    w.flags.append("replay")
    w.reasons.append(R.REPLAYED_PASS)
    if w.verdict is not None and RANK[w.verdict] < RANK["REVIEW"]:
        w.verdict = "REVIEW"


_TUBE = "SELECT pool, round, closed_ts FROM tubes WHERE code = ?"
_BOX = "SELECT sealed_ts FROM boxes WHERE code = ?"
# the tube with its member count and highest slot: one statement per tube_add
_TUBE_SLOTS = (
    "SELECT pool, round, "
    "(SELECT COUNT(*) FROM tube_members m WHERE m.tube = t.code), "
    "(SELECT COALESCE(MAX(slot), 0) FROM tube_members m WHERE m.tube = t.code), "
    "closed_ts FROM tubes t WHERE code = ?"
)


def _box_samples(s: Store, box: str) -> int:
    """People sampled into the tubes of a box."""
    return int(
        s.one(
            "SELECT COUNT(*) FROM tube_members m JOIN box_tubes b ON m.tube = b.tube "
            "WHERE b.box = ?",
            (box,),
        )[0]
    )


def _tube_open(s: Store, w: Work) -> None:
    e = w.event
    _open_once(
        s,
        w,
        "INSERT INTO tubes (code, event_id, unit, tbl, round, pool, opened_ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (e.tube, w.id, e.unit, e.table, e.round, e.pool, w.hub_ts),
        R.TUBE_ALREADY_OPENED,
    )


def _tube_add(s: Store, w: Work) -> None:
    if not w.ok:
        return
    e = w.event
    tube = _locked(s, w, _TUBE_SLOTS, e.tube, R.TUBE_NOT_OPEN, R.TUBE_CLOSED)
    if tube is None:
        return
    pool, rnd, members, top, _ = tube
    slot = top + 1
    if members != top:  # a gap left by an undo: the lowest free slot
        used = {r[0] for r in s.all("SELECT slot FROM tube_members WHERE tube = ?", (e.tube,))}
        slot = next(i for i in range(1, pool + 2) if i not in used)
    if slot > pool:
        w.reject(reason("pool_full", count=pool, pool=pool))
        return
    override = 1 if e.override is not None else 0
    # Once per round: the partial unique index on (round, sid) decides, not a prior check.
    # The tube's row lock keeps the slot ours, so a conflict can only be that index.
    n = s.run(
        "INSERT INTO tube_members (tube, slot, pool, sid, round, override, event_id, unit, ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (e.tube, slot, pool, w.sid, rnd, override, w.id, e.unit, w.hub_ts),
    )
    if n == 0:
        w.reject(R.ALREADY_SAMPLED)
        return
    if override:
        w.flags.append("override")


def _tube_close(s: Store, w: Work) -> None:
    e = w.event
    if _locked(s, w, _TUBE, e.tube, R.TUBE_NOT_OPEN, R.TUBE_CLOSED) is None:
        return
    count = s.one("SELECT COUNT(*) FROM tube_members WHERE tube = ?", (e.tube,))[0]
    _close_counted(
        s,
        w,
        "UPDATE tubes SET closed_ts = ?, closed_count = ? WHERE code = ?",
        count,
        e.tube,
        e.count,
        "samples",
    )


def _box_open(s: Store, w: Work) -> None:
    e = w.event
    _open_once(
        s,
        w,
        "INSERT INTO boxes (code, event_id, unit, opened_ts) VALUES (?, ?, ?, ?)",
        (e.box, w.id, e.unit, w.hub_ts),
        R.BOX_ALREADY_OPENED,
    )


def _box_add(s: Store, w: Work) -> None:
    e = w.event
    if _locked(s, w, _BOX, e.box, R.BOX_NOT_OPEN, reason("box_sealed", box=e.box)) is None:
        return
    tube = s.one("SELECT closed_ts FROM tubes WHERE code = ?", (e.tube,))
    if tube is None:
        w.reject(R.TUBE_NOT_OPEN)
        return
    if tube[0] is None:
        w.reject(reason("tube_not_closed", tube=e.tube))
        return
    _open_once(
        s,
        w,
        "INSERT INTO box_tubes (tube, box, event_id, ts) VALUES (?, ?, ?, ?)",
        (e.tube, e.box, w.id, w.hub_ts),
        R.TUBE_IN_BOX,
    )


def _box_seal(s: Store, w: Work) -> None:
    e = w.event
    if _locked(s, w, _BOX, e.box, R.BOX_NOT_OPEN, reason("box_sealed", box=e.box)) is None:
        return
    count = s.one("SELECT COUNT(*) FROM box_tubes WHERE box = ?", (e.box,))[0]
    _close_counted(
        s,
        w,
        "UPDATE boxes SET sealed_ts = ?, sealed_tubes = ? WHERE code = ?",
        count,
        e.box,
        e.tubes,
        "tubes",
    )


def _handover(s: Store, w: Work) -> None:
    e = w.event
    box = s.one(_BOX, (e.box,))
    if box is None:
        w.reject(R.BOX_NOT_OPEN)
        return
    if box[0] is None:
        w.reject(reason("box_not_sealed", box=e.box))
        return
    tubes = s.one("SELECT COUNT(*) FROM box_tubes WHERE box = ?", (e.box,))[0]
    samples = _box_samples(s, e.box)
    if tubes != e.tubes:
        w.reject(reason("count_mismatch", what="tubes", got=e.tubes, want=tubes))
    if samples != e.samples:
        w.reject(reason("count_mismatch", what="samples", got=e.samples, want=samples))
    if tubes != e.tubes or samples != e.samples:
        w.flags.append(f"known:{tubes}/{samples}")
    if not e.seal_intact:
        w.reject(R.SEAL_BROKEN)
    s.run(
        "INSERT INTO handovers (event_id, box, unit, place, handler, tubes, samples, known_tubes, "
        "known_samples, ok, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            w.id,
            e.box,
            e.unit,
            e.place,
            e.handler,
            e.tubes,
            e.samples,
            tubes,
            samples,
            int(w.ok),
            w.hub_ts,
        ),
    )


def _undo(s: Store, w: Work) -> None:
    e = w.event
    target = s.one("SELECT kind, unit, ok FROM events WHERE id = ?", (e.target,))
    if target is None or target[1] != e.unit:
        w.reject(R.UNKNOWN_TARGET)
        return
    kind = target[0]
    if kind == "tube_add":
        member = s.one("SELECT tube FROM tube_members WHERE event_id = ?", (e.target,))
        if member is None:
            return  # the add was rejected or already undone: nothing to take back
        tube = s.one(f"SELECT closed_ts FROM tubes WHERE code = ?{s.lock}", (member[0],))
        if tube is not None and tube[0] is not None:
            w.reject(R.CANNOT_UNDO)
            return
        s.run("DELETE FROM tube_members WHERE event_id = ?", (e.target,))
    elif kind == "box_add":
        entry = s.one("SELECT box FROM box_tubes WHERE event_id = ?", (e.target,))
        if entry is None:
            return
        box = s.one(f"SELECT sealed_ts FROM boxes WHERE code = ?{s.lock}", (entry[0],))
        if box is not None and box[0] is not None:
            w.reject(R.CANNOT_UNDO)
            return
        s.run("DELETE FROM box_tubes WHERE event_id = ?", (e.target,))
    elif kind in ("tube_open", "tube_close", "box_open", "box_seal", "handover"):
        # A tube opens once, ever, and seals are physical: these are corrected by staff
        # at the hub, not undone from a unit.
        w.reject(R.CANNOT_UNDO)


def _box_check(s: Store, w: Work) -> None:
    """A transfer point asks what the hub knows of a box: answered in the result's flags."""
    e = w.event
    box = s.one(_BOX, (e.box,))
    if box is None:
        w.reject(R.BOX_NOT_OPEN)
        return
    rows = s.all("SELECT tube FROM box_tubes WHERE box = ? ORDER BY tube", (e.box,))
    tubes = [r[0] for r in rows]
    samples = _box_samples(s, e.box)
    if box[0] is None:
        w.reject(reason("box_not_sealed", box=e.box))
    else:
        w.flags.append("sealed")
    w.flags.append(f"known:{len(tubes)}/{samples}")
    w.flags.extend(f"tube:{t}" for t in tubes[:500])


RULES = {
    "tube_open": _tube_open,
    "tube_add": _tube_add,
    "tube_close": _tube_close,
    "box_open": _box_open,
    "box_add": _box_add,
    "box_seal": _box_seal,
    "handover": _handover,
    "undo": _undo,
    "box_check": _box_check,
}
