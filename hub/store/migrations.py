"""Schema migrations, portable between SQLite and PostgreSQL.

Each migration is a version number and a list of statements, applied in order inside one
transaction and recorded in `schema_migrations`. Never edit a released migration: add one.

City-wide rules live here as constraints, so they hold across any number of workers
without check-then-insert races:
  - a tube opens once, ever: `tubes.code` primary key;
  - a person is sampled once per round unless overridden: partial unique index on
    `tube_members (round, sid) WHERE override = 0`;
  - pool size: a member takes a numbered slot, `PRIMARY KEY (tube, slot)` with
    `CHECK (slot BETWEEN 1 AND pool)`;
  - a tube is in one box: `box_tubes.tube` primary key;
  - a pass token (sid, iat) is first seen once: `pass_tokens` primary key, so a second
    sighting elsewhere is detected by the conflict;
  - an event is stored once: `events.id` primary key.
"""

from __future__ import annotations

# A statement is portable SQL, or (dialect, SQL) for one engine only.
Statement = str | tuple[str, str]

MIGRATIONS: list[tuple[int, list[Statement]]] = [
    (
        1,
        [
            """CREATE TABLE events (
                id TEXT PRIMARY KEY,
                unit TEXT NOT NULL,
                seq BIGINT NOT NULL,
                kind TEXT NOT NULL,
                unit_ts DOUBLE PRECISION NOT NULL,
                hub_ts DOUBLE PRECISION NOT NULL,
                ok INTEGER NOT NULL,
                verdict TEXT,
                sid TEXT,
                subject TEXT,
                result TEXT NOT NULL,
                body TEXT NOT NULL
            )""",
            "CREATE INDEX events_sid ON events (sid) WHERE sid IS NOT NULL",
            "CREATE INDEX events_unit_seq ON events (unit, seq)",
            "CREATE INDEX events_subject ON events (subject) WHERE subject IS NOT NULL",
            """CREATE TABLE pass_tokens (
                sid TEXT NOT NULL,
                iat BIGINT NOT NULL,
                unit TEXT NOT NULL,
                vehicle TEXT NOT NULL,
                event_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (sid, iat)
            )""",
            """CREATE TABLE tubes (
                code TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                tbl TEXT NOT NULL,
                round TEXT NOT NULL,
                pool INTEGER NOT NULL,
                opened_ts DOUBLE PRECISION NOT NULL,
                closed_ts DOUBLE PRECISION,
                closed_count INTEGER
            )""",
            """CREATE TABLE tube_members (
                tube TEXT NOT NULL,
                slot INTEGER NOT NULL,
                pool INTEGER NOT NULL,
                sid TEXT NOT NULL,
                round TEXT NOT NULL,
                override INTEGER NOT NULL,
                event_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (tube, slot),
                CHECK (slot >= 1 AND slot <= pool)
            )""",
            "CREATE UNIQUE INDEX tube_members_once ON tube_members (round, sid) WHERE override = 0",
            "CREATE INDEX tube_members_sid ON tube_members (sid)",
            "CREATE UNIQUE INDEX tube_members_event ON tube_members (event_id)",
            """CREATE TABLE boxes (
                code TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                opened_ts DOUBLE PRECISION NOT NULL,
                sealed_ts DOUBLE PRECISION,
                sealed_tubes INTEGER
            )""",
            """CREATE TABLE box_tubes (
                tube TEXT PRIMARY KEY,
                box TEXT NOT NULL,
                event_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX box_tubes_box ON box_tubes (box)",
            """CREATE TABLE handovers (
                event_id TEXT PRIMARY KEY,
                box TEXT NOT NULL,
                unit TEXT NOT NULL,
                place TEXT NOT NULL,
                handler TEXT NOT NULL,
                tubes INTEGER NOT NULL,
                samples INTEGER NOT NULL,
                known_tubes INTEGER NOT NULL,
                known_samples INTEGER NOT NULL,
                ok INTEGER NOT NULL,
                ts DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX handovers_box ON handovers (box)",
            """CREATE TABLE vehicles (
                id TEXT PRIMARY KEY,
                unit TEXT NOT NULL,
                plate TEXT NOT NULL,
                opened_ts DOUBLE PRECISION NOT NULL,
                closed_ts DOUBLE PRECISION,
                occupants INTEGER,
                turned_back INTEGER NOT NULL DEFAULT 0,
                why TEXT
            )""",
        ],
    ),
    (
        2,
        [
            # checkpoint steps: the vehicle's direction, advice and disinfection (unit clock)
            "ALTER TABLE vehicles ADD COLUMN direction TEXT",
            "ALTER TABLE vehicles ADD COLUMN advice_ts DOUBLE PRECISION",
            "ALTER TABLE vehicles ADD COLUMN disinfected_ts DOUBLE PRECISION",
        ],
    ),
    (
        3,
        [
            # No query reads these, and every event paid for them: each is a random insertion
            # point per batch, so together they doubled the pages a group commit writes
            # (SQLite WAL: 9.4 -> 4.9 kB per sampling event; commit 46 -> 26 us per event).
            # A person's tubes are still found through events_sid and tube_members_event.
            "DROP INDEX IF EXISTS events_unit_seq",
            "DROP INDEX IF EXISTS events_subject",
            "DROP INDEX IF EXISTS tube_members_sid",
        ],
    ),
    (
        4,
        [
            # PostgreSQL: a batch of scans in one statement (Store.at_once). BEGIN, token
            # insert, event insert and COMMIT were four round trips, each a wait for the
            # server to be scheduled on a loaded machine; as one autocommitted call the
            # batch is durable when the call returns. The batch comes as one JSON array of
            # objects (PostgresStore._commit_at_once), parsed once per row by the server
            # instead of dumped element by element in the client. Two statements, in
            # order, so that the second sees every first sighting: ours, earlier ones,
            # and one another worker committed while our token insert waited for it
            # (READ COMMITTED takes a new snapshot per statement). A pass first seen at
            # another unit or for another vehicle stores the replay variant of the result
            # the worker computed.
            (
                "postgres",
                """CREATE OR REPLACE FUNCTION checkpost_scans_v1(batch json)
                RETURNS TABLE (eid text, stored text) LANGUAGE plpgsql AS $fn$
                BEGIN
                    INSERT INTO pass_tokens (sid, iat, unit, vehicle, event_id, ts)
                    SELECT b.sid, b.iat, b.unit, b.vehicle, b.id, b.hub_ts
                    FROM json_to_recordset(batch) AS b(id text, unit text, hub_ts float8,
                                                       sid text, iat bigint, vehicle text)
                    WHERE b.iat IS NOT NULL
                    ON CONFLICT DO NOTHING;
                    RETURN QUERY
                    WITH b AS (
                        SELECT * FROM json_to_recordset(batch) AS b(
                            id text, unit text, seq bigint, kind text, unit_ts float8,
                            hub_ts float8, ok int, verdict text, sid text, subject text,
                            result text, body text, iat bigint, vehicle text,
                            verdict_r text, result_r text)
                    ), m AS (
                        SELECT b.*, (b.iat IS NOT NULL AND EXISTS (
                            SELECT 1 FROM pass_tokens p
                            WHERE p.sid = b.sid AND p.iat = b.iat AND p.event_id <> b.id
                              AND (p.unit <> b.unit OR p.vehicle <> b.vehicle))) AS replay
                        FROM b
                    ), ins AS (
                        INSERT INTO events (id, unit, seq, kind, unit_ts, hub_ts, ok,
                                            verdict, sid, subject, result, body)
                        SELECT m.id, m.unit, m.seq, m.kind, m.unit_ts, m.hub_ts, m.ok,
                               CASE WHEN m.replay THEN m.verdict_r ELSE m.verdict END,
                               m.sid, m.subject,
                               CASE WHEN m.replay THEN m.result_r ELSE m.result END, m.body
                        FROM m ON CONFLICT (id) DO NOTHING
                        RETURNING events.id, events.result
                    )
                    SELECT ins.id, ins.result FROM ins;
                END
                $fn$""",
            ),
        ],
    ),
    (
        5,
        [
            # why a vehicle did not pass: "turned_back" or "referred" (NULL: it passed, or
            # it was turned back before units sent the outcome)
            "ALTER TABLE vehicles ADD COLUMN outcome TEXT",
        ],
    ),
]
