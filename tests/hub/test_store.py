"""City-wide rules in the store, the same suite on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from checkpost.hub.prepare import Preparer
from checkpost.hub.store import Store, Work, open_store

from checkpost.codes import Verifier
from checkpost.policy import load_policy
from checkpost.protocol import (
    BoxAdd,
    BoxOpen,
    BoxSeal,
    Handover,
    Scan,
    TubeAdd,
    TubeClose,
    TubeOpen,
    Undo,
    VehicleOpen,
    encode,
    uuid7,
)
from checkpost.protocol.messages import Override


@pytest.fixture(scope="module")
def prep(issuer: Any) -> Preparer:
    return Preparer(Verifier(issuer.trust_store()), load_policy(None))


class Unit:
    """Makes events as one unit would (own id, sequence, clock)."""

    def __init__(self, name: str) -> None:
        self.name, self.seq = name, 0

    def __call__(self, cls: Any, **fields: Any) -> Any:
        self.seq += 1
        return cls(id=uuid7(), unit=self.name, seq=self.seq, ts=time.time(), **fields)


def commit(store: Store, prep: Preparer, *events: Any) -> list[Work]:
    now = time.time()
    works = [prep(e, encode(e).decode(), now) for e in events]
    store.commit(works, "test")
    return works


def codes(works: list[Work]) -> list[list[str]]:
    return [[r.code for r in w.reasons] for w in works]


def tube_code() -> str:
    return str(uuid.uuid4().int)[:12]


def test_event_stored_once_and_redelivery_answered_from_store(store, prep, issuer):
    u = Unit("cp-1")
    scan = u(Scan, code=issuer.hp1(), temps=[36.5])
    opened = u(TubeOpen, tube=tube_code(), pool=5, round="r1")
    first = commit(store, prep, scan, opened)
    assert [w.dup for w in first] == [False, False]
    assert first[0].verdict == "PASS" and first[1].ok
    again = commit(store, prep, scan, opened, scan)  # redelivered, even twice in one batch
    assert [w.dup for w in again] == [True, True, True]
    assert again[0].verdict == "PASS" and again[1].ok  # the stored answer, not "already opened"
    assert store.count_events([scan.id, opened.id]) == 2


def test_tube_opens_once_ever(store, prep):
    code = tube_code()
    a, b = Unit("table-a"), Unit("table-b")
    w = commit(store, prep, a(TubeOpen, tube=code, pool=5, round="r1"))
    assert w[0].ok
    w = commit(store, prep, b(TubeOpen, tube=code, pool=5, round="r2"))
    assert not w[0].ok and codes(w) == [["tube_already_opened"]]
    same_batch = commit(
        store,
        prep,
        a(TubeOpen, tube=(c := tube_code()), pool=5, round="r"),
        b(TubeOpen, tube=c, pool=5, round="r"),
    )
    assert [x.ok for x in same_batch] == [True, False]


def test_bad_tube_code_and_pool_size(store, prep):
    u = Unit("t")
    w = commit(
        store,
        prep,
        u(TubeOpen, tube="not-a-tube", pool=5, round="r"),
        u(TubeOpen, tube=tube_code(), pool=7, round="r"),
    )
    assert codes(w) == [["bad_tube_code"], ["pool_size"]]


def test_person_once_per_round_unless_overridden(store, prep, issuer):
    u = Unit("t1")
    t1, t2 = tube_code(), tube_code()
    person = issuer.sr1(id_number=str(uuid.uuid4()))
    w = commit(
        store,
        prep,
        u(TubeOpen, tube=t1, pool=5, round="round-x"),
        u(TubeOpen, tube=t2, pool=5, round="round-x"),
        u(TubeAdd, tube=t1, code=person),
        u(TubeAdd, tube=t2, code=person),
        u(TubeAdd, tube=t2, code=person, override=Override(staff="nurse-4", why="tube dropped")),
    )
    assert [x.ok for x in w] == [True, True, True, False, True]
    assert codes(w)[3] == ["already_sampled"]
    assert "override" in w[4].flags
    other_round = tube_code()
    w = commit(
        store,
        prep,
        u(TubeOpen, tube=other_round, pool=5, round="round-y"),
        u(TubeAdd, tube=other_round, code=person),
    )
    assert [x.ok for x in w] == [True, True]


def test_pool_size_enforced_and_close_counts(store, prep, issuer):
    u = Unit("t2")
    t = tube_code()
    people = [issuer.sr1(id_number=str(uuid.uuid4())) for _ in range(6)]
    w = commit(
        store,
        prep,
        u(TubeOpen, tube=t, pool=5, round="r"),
        *[u(TubeAdd, tube=t, code=p) for p in people],
    )
    assert [x.ok for x in w] == [True] * 6 + [False]
    assert codes(w)[-1] == ["pool_full"]
    w = commit(store, prep, u(TubeClose, tube=t, count=4))
    assert codes(w) == [["count_mismatch"]]  # closed anyway; the hub knows 5
    w = commit(
        store,
        prep,
        u(TubeAdd, tube=t, code=issuer.sr1(id_number="late")),
        u(TubeClose, tube=t, count=5),
    )
    assert codes(w) == [["tube_closed"], ["tube_closed"]]
    info = store.tube(t)
    assert info is not None and len(info["members"]) == 5 and info["closed_count"] == 5


def test_forged_registration_is_refused_without_touching_the_tube(store, prep, issuer):
    u = Unit("t3")
    t = tube_code()
    good = issuer.sr1(id_number="x1")
    forged = good[:-5] + ("AAAAA" if not good.endswith("AAAAA") else "BBBBB")
    w = commit(
        store,
        prep,
        u(TubeOpen, tube=t, pool=5, round="r"),
        u(TubeAdd, tube=t, code=forged),
        u(TubeAdd, tube=t, code=issuer.hp1()),
    )
    assert [x.ok for x in w] == [True, False, False]
    assert store.tube(t)["members"] == []


def _filled_box(
    store: Store, prep: Preparer, issuer: Any, u: Unit, tubes: int = 2, pool: int = 5
) -> tuple[str, list[str]]:
    box = f"BOX{uuid.uuid4().int % 10**8:08d}"
    codes_ = []
    events: list[Any] = [u(BoxOpen, box=box)]
    for _ in range(tubes):
        t = tube_code()
        codes_.append(t)
        events.append(u(TubeOpen, tube=t, pool=pool, round=f"r-{box}"))
        events += [
            u(TubeAdd, tube=t, code=issuer.sr1(id_number=str(uuid.uuid4()))) for _ in range(pool)
        ]
        events.append(u(TubeClose, tube=t, count=pool))
        events.append(u(BoxAdd, box=box, tube=t))
    w = commit(store, prep, *events)
    assert all(x.ok for x in w), codes(w)
    return box, codes_


def test_tube_in_one_box_and_sealed_box_takes_nothing(store, prep, issuer):
    u = Unit("t4")
    box, tubes = _filled_box(store, prep, issuer, u)
    other = f"BOX{uuid.uuid4().int % 10**8:08d}"
    w = commit(store, prep, u(BoxOpen, box=other), u(BoxAdd, box=other, tube=tubes[0]))
    assert codes(w) == [[], ["tube_in_other_box"]]
    w = commit(store, prep, u(BoxSeal, box=box, tubes=2))
    assert w[0].ok
    _filled_box(store, prep, issuer, u, tubes=1)  # a closed tube, boxed elsewhere
    extra = tube_code()
    w = commit(
        store, prep,
        u(TubeOpen, tube=extra, pool=1, round="z"),
        u(TubeClose, tube=extra, count=0),
        u(BoxAdd, box=box, tube=extra),
        u(BoxSeal, box=box, tubes=2),
    )  # fmt: skip
    assert codes(w)[2:] == [["box_sealed"], ["box_sealed"]]


def test_handover_counts_must_match(store, prep, issuer):
    u = Unit("t5")
    box, _ = _filled_box(store, prep, issuer, u, tubes=2, pool=5)
    w = commit(store, prep, u(Handover, box=box, tubes=2, samples=10, handler="c1"))
    assert codes(w) == [["box_not_sealed"]]
    commit(store, prep, u(BoxSeal, box=box, tubes=2))
    w = commit(
        store, prep,
        u(Handover, box=box, tubes=2, samples=10, handler="c1"),
        u(Handover, box=box, tubes=2, samples=9, handler="lab", place="lab"),
        u(Handover, box=box, tubes=2, samples=10, handler="t", place="transfer", seal_intact=False),
    )  # fmt: skip
    assert codes(w) == [[], ["count_mismatch"], ["seal_broken"]]
    info = store.tube(_[0])
    assert info["box"] == box and len(info["handovers"]) == 3


def test_undo_frees_the_slot_until_the_tube_closes(store, prep, issuer):
    u = Unit("t6")
    t = tube_code()
    person = issuer.sr1(id_number=str(uuid.uuid4()))
    opened, added = u(TubeOpen, tube=t, pool=1, round="u"), u(TubeAdd, tube=t, code=person)
    commit(store, prep, opened, added)
    w = commit(
        store, prep, u(Undo, target=added.id, why="wrong tube"), u(TubeAdd, tube=t, code=person)
    )
    assert [x.ok for x in w] == [True, True]
    w = commit(
        store,
        prep,
        u(TubeClose, tube=t, count=1),
        u(Undo, target=w[1].id),
        u(Undo, target=opened.id),
    )
    assert codes(w) == [[], ["cannot_undo"], ["cannot_undo"]]
    w = commit(store, prep, Unit("other")(Undo, target=added.id))
    assert codes(w) == [["unknown_target"]]


def test_replayed_pass_is_flagged(store, prep, issuer):
    token = issuer.hp1(id_number=str(uuid.uuid4()))
    a, b = Unit("cp-a"), Unit("cp-b")
    va, vb = a(VehicleOpen, plate="京A12345"), a(VehicleOpen, plate="京B00001")
    w = commit(store, prep, va, vb, a(Scan, code=token, temps=[36.4], vehicle=va.id))
    assert w[2].verdict == "PASS" and w[2].flags == []
    w = commit(
        store, prep,
        a(Scan, code=token, temps=[36.4], vehicle=va.id),  # rescanned in the same car: fine
        a(Scan, code=token, temps=[36.4], vehicle=vb.id),  # same screenshot, another car
        b(Scan, code=token, temps=[36.4]),  # same screenshot, another checkpoint
    )  # fmt: skip
    assert [x.flags for x in w] == [[], ["replay"], ["replay"]]
    assert [x.verdict for x in w] == ["PASS", "REVIEW", "REVIEW"]
    assert "replayed_pass" in codes(w)[2]
    sid = w[0].sid
    seen = store.passes(sid)
    assert {s["unit"] for s in seen} == {"cp-a", "cp-b"} and len(seen) == 4


def test_scans_alone_commit_in_one_statement_with_the_same_rules(store, prep, issuer):
    """PostgreSQL stores a batch of scans and temperatures in one call (one round trip);
    replay, redelivery and stored results must come out as on the general path."""
    token = issuer.hp1(id_number=str(uuid.uuid4()))
    a, b = Unit("cp-a"), Unit("cp-b")
    first = a(Scan, code=token, temps=[36.4], vehicle="car-1")
    events = [
        first,
        a(Scan, code=token, temps=[36.4], vehicle="car-1"),  # rescanned in the same car
        b(Scan, code=token, temps=[36.4]),  # same screenshot, another checkpoint
        first,  # redelivered within the batch
    ]
    now = time.time()
    works = [prep(e, encode(e).decode(), now) for e in events]
    assert store.at_once(works) == (store.dialect == "postgres")
    mixed = [*works, prep(a(VehicleOpen, plate="京A1"), "{}", now)]
    assert not store.at_once(mixed)  # a vehicle row needs the general path
    store.commit(works, "test")
    assert [w.flags for w in works] == [[], [], ["replay"], []]
    assert [w.verdict for w in works] == ["PASS", "PASS", "REVIEW", "PASS"]
    assert [w.dup for w in works] == [False, False, False, True]
    for w in works[:3]:  # what was answered is what was stored
        row = store.one("SELECT result, verdict FROM events WHERE id = ?", (w.id,))
        assert row[0].encode() == w.result and row[1] == w.verdict
    again = commit(store, prep, events[2])  # redelivered later: answered from the store
    assert again[0].dup and again[0].flags == ["replay"] and again[0].verdict == "REVIEW"


def test_concurrent_sightings_of_one_pass_flag_exactly_one(db_url, prep, issuer):
    """Two workers see the same pass at two units at the same instant: one of the two
    sightings is the first, the other is flagged — on both engines, on both paths."""
    stores = [open_store(db_url) for _ in range(2)]
    tokens = [issuer.hp1(id_number=str(uuid.uuid4())) for _ in range(15)]
    results: list[list[Work]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        u = Unit(f"cp-{i}")
        for t in tokens:
            barrier.wait()
            results[i] += commit(stores[i], prep, u(Scan, code=t, temps=[36.5]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(results[0]) == len(results[1]) == len(tokens)
    for x, y in zip(results[0], results[1], strict=True):
        assert sorted([x.flags, y.flags]) == [[], ["replay"]]
    for s in stores:
        s.close()


def test_concurrent_same_tube_opens_have_one_winner(db_url, prep):
    """Two connections (as two workers) open the same tubes at the same instant."""
    stores = [open_store(db_url) for _ in range(2)]
    tubes = [tube_code() for _ in range(30)]
    results: list[list[Work]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        u = Unit(f"table-{i}")
        for t in tubes:
            barrier.wait()
            results[i] += commit(stores[i], prep, u(TubeOpen, tube=t, pool=5, round="race"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for a, b in zip(results[0], results[1], strict=True):
        assert a.ok != b.ok  # exactly one winner per tube
    assert sum(s.one("SELECT COUNT(*) FROM tubes")[0] for s in stores[:1]) >= len(tubes)
    for s in stores:
        s.close()


def test_stats_and_lookups(store, prep, issuer):
    u = Unit("cp-s")
    commit(
        store,
        prep,
        u(Scan, code=issuer.hp1(colour="R"), temps=[36.5]),
        u(Scan, code=issuer.hp1(), temps=[36.5]),
    )
    s = store.stats()
    assert s["verdicts"]["FAIL"] >= 1 and s["verdicts"]["PASS"] >= 1
    assert store.tube("000") is None


def test_sampling_redelivered_in_one_batch_is_stored_once(store, prep, issuer):
    u = Unit("t-dup")
    t = tube_code()
    opened = u(TubeOpen, tube=t, pool=5, round="r")
    add = u(TubeAdd, tube=t, code=issuer.sr1(id_number=str(uuid.uuid4())))
    w = commit(store, prep, opened, add, add)  # the same event twice in one batch
    assert [(x.ok, x.dup) for x in w] == [(True, False), (True, False), (True, True)]
    assert store.count_events([opened.id, add.id]) == 2
    info = store.tube(t)
    assert info is not None and len(info["members"]) == 1


def test_migrate_is_shared_and_idempotent(store):
    from checkpost.hub.store.migrations import MIGRATIONS

    version = max(v for v, _ in MIGRATIONS)
    assert store.migrate() == version  # again: nothing to apply
    done = sorted(r[0] for r in store.all("SELECT version FROM schema_migrations"))
    assert done == [v for v, _ in MIGRATIONS]


def test_sr1_cache_re_decides_expiry_and_follows_the_trust_store(issuer):
    from checkpost.hub.prepare import Preparer

    prep = Preparer(Verifier(issuer.trust_store()), load_policy(None))
    now = time.time()
    code = issuer.sr1(id_number=str(uuid.uuid4()), iat=now - 10, lifetime=100)
    u = Unit("t-cache")
    first = prep(u(TubeAdd, tube=tube_code(), code=code), "", now)
    second = prep(u(TubeAdd, tube=tube_code(), code=code), "", now + 1)
    assert first.pre_ok and second.pre_ok and second.sid == first.sid
    assert prep.sr1_hits == 1
    # past its expiry (+ the verifier's skew) the cached outcome no longer holds
    late = prep(u(TubeAdd, tube=tube_code(), code=code), "", now + 100 + 61)
    assert not late.pre_ok and [r.code for r in late.pre_reasons] == ["expired"]
    assert prep.sr1_hits == 1
    # a forged code is never remembered
    forged = code[:-5] + ("AAAAA" if not code.endswith("AAAAA") else "BBBBB")
    for _ in range(2):
        assert not prep(u(TubeAdd, tube=tube_code(), code=forged), "", now).pre_ok
    assert prep.sr1_hits == 1
    # a new trust store empties the cache, and so does a revocation added in place
    prep.verifier = Verifier(issuer.trust_store())
    assert prep(u(TubeAdd, tube=tube_code(), code=code), "", now).pre_ok
    assert prep.sr1_hits == 1
    from checkpost.codes.trust import hashed_id

    prep.verifier.trust.revoked_ids.add(hashed_id(first.sid))
    revoked = prep(u(TubeAdd, tube=tube_code(), code=code), "", now)
    assert not revoked.pre_ok and [r.code for r in revoked.pre_reasons] == ["revoked"]
    # size 0: no cache at all
    off = Preparer(Verifier(issuer.trust_store()), load_policy(None))
    off.sr1_cache_size = 0
    for _ in range(2):
        assert off(u(TubeAdd, tube=tube_code(), code=code), "", now).pre_ok
    assert off.sr1_hits == 0


def test_a_dropped_database_connection_is_replaced(pg_server, tmp_path, prep, issuer):
    """PostgreSQL restarted or failed over: the next batch (scans alone, and sampling)
    goes through on a new connection, and reads recover too. (SQLite has no server.)"""
    import psycopg
    from checkpost.hub.store.postgres import split_schema

    from .conftest import new_db_url

    db_url = new_db_url("postgres", tmp_path, pg_server)
    store = open_store(db_url)
    admin = psycopg.connect(split_schema(db_url)[0], autocommit=True)
    try:
        u = Unit("cp-r")
        for events in (
            [u(Scan, code=issuer.hp1(id_number=str(uuid.uuid4())), temps=[36.5])],
            [u(TubeOpen, tube=tube_code(), pool=5, round="r")],
        ):
            admin.execute("SELECT pg_terminate_backend(%s)", (store.conn.info.backend_pid,))
            w = commit(store, prep, *events)
            assert w[0].ok and not w[0].dup
            assert store.one("SELECT COUNT(*) FROM events WHERE id = ?", (w[0].id,))[0] == 1
        admin.execute("SELECT pg_terminate_backend(%s)", (store.conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            store.stats()  # a read outside a batch fails once ...
        store.reconnect_if_broken()  # ... the API replaces the connection and reads again
        assert store.stats()["events"] >= 2
    finally:
        admin.close()
        store.close()
