"""The loop over a real (private) Mosquitto: exactly-once storage, crashes, races, garbage."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
import uuid
from typing import Any

import msgspec
import pytest
from checkpost.hub.config import HubConfig, HubSection
from checkpost.hub.loop import Worker, worker_main
from checkpost.hub.store import open_store
from checkpost.hub.transport import Link

from checkpost.protocol import (
    Result,
    Scan,
    Topics,
    TubeOpen,
    decode_result,
    encode,
    uuid7,
)

from .conftest import arun, new_db_url

T = Topics()


def hub_config(broker: Any, issuer: Any, db: str, group: str | None = None) -> HubConfig:
    return HubConfig(
        hub=HubSection(
            broker=broker.url,
            db=db,
            issuer_dir=str(issuer.folder),
            share_group=group or f"hub-{uuid.uuid4().hex[:8]}",
        )
    )


class Units:
    """Simulated units on one connection: publish events, collect results by event id."""

    def __init__(self, broker_url: str, units: list[str]) -> None:
        self.link = Link(broker_url, f"units-{uuid.uuid4().hex[:8]}")
        self.results: dict[str, list[Result]] = {}
        self.alerts: list[bytes] = []
        self.link.route(T.root + "/units/", self._on_result)
        self.link.route(T.hub_alerts, lambda t, p, tok: (self.alerts.append(p), self.link.ack(tok)))
        for u in units:
            self.link.subscribe(T.results(u), 1)
        self.link.subscribe(T.hub_alerts, 1)
        self.seq = 0

    def _on_result(self, topic: str, payload: bytes, token: Any) -> None:
        res = decode_result(payload)
        self.results.setdefault(res.id, []).append(res)
        self.link.ack(token)

    async def __aenter__(self) -> Units:
        await self.link.connect()
        await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.link.disconnect()

    def event(self, cls: Any, unit: str, **fields: Any) -> Any:
        self.seq += 1
        return cls(id=uuid7(), unit=unit, seq=self.seq, ts=time.time(), **fields)

    def send(self, ev: Any, unit: str | None = None) -> Any:
        self.link.publish(T.events(unit or ev.unit), encode(ev), 1)
        return ev

    def raw(self, topic: str, payload: bytes) -> None:
        self.link.publish(topic, payload, 1)

    async def wait(self, ids: list[str], timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.results.get(i, [])) >= count for i in ids):
                return
            await asyncio.sleep(0.01)
        missing = [i for i in ids if len(self.results.get(i, [])) < count]
        raise AssertionError(f"{len(missing)} of {len(ids)} events unanswered")


def test_redelivered_events_answered_from_the_store_and_stored_once(broker, issuer, db_url):
    cfg = hub_config(broker, issuer, db_url)

    async def main() -> None:
        worker = Worker(cfg)
        await worker.start()
        try:
            async with Units(broker.url, ["cp-1"]) as u:
                scan = u.send(u.event(Scan, "cp-1", code=issuer.hp1(), temps=[36.6]))
                await u.wait([scan.id])
                u.send(scan)  # the unit's outbox resends (no ack seen, reconnect, ...)
                u.send(scan)
                await u.wait([scan.id], count=3)
                first, *again = u.results[scan.id]
                assert first.verdict == "PASS" and not first.dup
                assert all(r.dup and r.verdict == "PASS" and r.at == first.at for r in again)
        finally:
            await worker.stop()
        store = open_store(db_url)
        assert store.count_events([scan.id]) == 1
        assert store.count_events() == 1
        store.close()

    arun(main())


def test_a_failing_commit_keeps_the_batch_until_the_store_recovers(
    broker, issuer, tmp_path, caplog
):
    """A full disk (or a database away): nothing is answered or acknowledged while commits
    fail, nothing is lost, and the log says so once with a traceback, not every second."""
    import sqlite3

    db = str(tmp_path / "hub.db")
    store = open_store(db)
    real_commit_tx = store.commit_tx
    failures = {"left": 3}

    def commit_tx() -> None:
        if failures["left"]:
            failures["left"] -= 1
            store.rollback()
            raise sqlite3.OperationalError("database or disk is full")
        real_commit_tx()

    store.commit_tx = commit_tx  # type: ignore[method-assign]
    cfg = hub_config(broker, issuer, db)

    async def main() -> None:
        worker = Worker(cfg, store=store)
        await worker.start()
        try:
            async with Units(broker.url, ["cp-f"]) as u:
                scans = [u.send(u.event(Scan, "cp-f", code=issuer.hp1(), temps=[36.6]))
                         for _ in range(5)]  # fmt: skip
                await asyncio.sleep(0.5)
                assert not u.results  # no verdict before its commit
                await u.wait([s.id for s in scans], timeout=20)
                assert all(len(u.results[s.id]) == 1 for s in scans)
        finally:
            await worker.stop()

    with caplog.at_level("WARNING", logger="checkpost.hub.loop"):
        arun(main())
    assert failures["left"] == 0 and store.count_events() == 5
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "disk is full" in caplog.text
    assert "commit works again after 3 failed tries" in caplog.text
    store.close()


def test_malformed_inputs_are_rejected_and_the_loop_lives(broker, issuer, tmp_path):
    cfg = hub_config(broker, issuer, str(tmp_path / "hub.db"))

    async def main() -> None:
        worker = Worker(cfg)
        await worker.start()
        try:
            async with Units(broker.url, ["cp-2", "cp-3"]) as u:
                good = u.event(Scan, "cp-2", code=issuer.hp1(), temps=[36.6])
                obj = msgspec.to_builtins(good)
                bad = [
                    os.urandom(300),
                    b"",
                    b"[1, 2, 3]",
                    b'{"v":1,"kind":"scan","id":42}',
                    msgspec.json.encode({**obj, "temps": "hot"}),
                    msgspec.json.encode({**obj, "v": 2}),
                    msgspec.json.encode({**obj, "kind": "teleport"}),
                    b"{" + b" " * (10 * 1024 * 1024) + b"}",  # 10 MB
                ]
                for payload in bad:
                    u.raw(T.events("cp-2"), payload)
                u.raw("checkpost/v1/units/NOT_A_UNIT/events", encode(good))
                spoof = u.event(Scan, "cp-3", code=issuer.hp1(), temps=[36.6])
                u.send(spoof, unit="cp-2")  # cp-2 publishes naming cp-3
                u.send(good)
                await u.wait([good.id, spoof.id])
                assert u.results[good.id][0].verdict == "PASS"
                spoofed = u.results[spoof.id][0]
                assert not spoofed.ok and spoofed.reasons[0].code == "unit_mismatch"
                for _ in range(100):
                    if u.alerts:
                        break
                    await asyncio.sleep(0.01)
                assert b"unit_mismatch" in u.alerts[0]
                assert worker.stats["rejected"] == len(bad) + 2
        finally:
            await worker.stop()
        from prometheus_client import REGISTRY

        assert (
            REGISTRY.get_sample_value("checkpost_hub_rejects_total", {"reason": "unknown_version"})
            >= 1
        )
        assert (
            REGISTRY.get_sample_value("checkpost_hub_rejects_total", {"reason": "too_large"}) >= 1
        )
        store = open_store(cfg.db_url())
        assert store.count_events() == 1  # only the good one
        store.close()

    arun(main())


def _spawn_worker(cfg: HubConfig, index: int) -> Any:
    p = mp.get_context("spawn").Process(target=worker_main, args=(cfg, index, "ERROR"), daemon=True)
    p.start()
    return p


async def _wait_subscribed(u: Units, issuer: Any, unit: str, timeout: float = 30) -> None:
    """Probe until a worker answers (the shared subscription exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = u.send(u.event(Scan, unit, code="HP1:probe"))
        try:
            await u.wait([probe.id], timeout=1)
            return
        except AssertionError:
            continue
    raise AssertionError("no worker answered")


def test_worker_killed_mid_batch_loses_nothing(broker, issuer, tmp_path):
    cfg = hub_config(broker, issuer, str(tmp_path / "hub.db"))
    open_store(cfg.db_url()).close()
    n = 3000

    async def main() -> None:
        proc = _spawn_worker(cfg, 0)
        try:
            async with Units(broker.url, ["cp-k"]) as u:
                await _wait_subscribed(u, issuer, "cp-k")
                codes = [issuer.hp1(id_number=str(i)) for i in range(200)]
                events = [
                    u.event(Scan, "cp-k", code=codes[i % 200], temps=[36.5]) for i in range(n)
                ]
                for ev in events:
                    u.send(ev)
                ids = [e.id for e in events]
                while sum(1 for i in ids if i in u.results) < 200:
                    await asyncio.sleep(0.002)
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: batches in flight
                proc.join(10)
                answered_before = sum(1 for i in ids if i in u.results)
                assert answered_before < n, "the worker finished before it was killed"
                proc = _spawn_worker(cfg, 0)  # same index: same client id and session
                await u.wait(ids, timeout=60)
        finally:
            proc.terminate()
            proc.join(10)
        store = open_store(cfg.db_url())
        stored = {r[0] for r in store.all("SELECT id FROM events WHERE unit = 'cp-k'")}
        assert set(ids) <= stored  # nothing lost
        assert store.count_events(ids) == n  # nothing twice (primary key, and counted)
        store.close()

    arun(main(), timeout=120)


def test_two_workers_race_for_the_same_tubes_one_winner(broker, issuer, pg_server, tmp_path):
    db = new_db_url("postgres", tmp_path, pg_server)
    cfg = hub_config(broker, issuer, db)
    open_store(db).close()
    procs = [_spawn_worker(cfg, 0), _spawn_worker(cfg, 1)]

    async def main() -> None:
        async with Units(broker.url, ["table-a", "table-b"]) as u:
            await _wait_subscribed(u, issuer, "table-a")
            await _wait_subscribed(u, issuer, "table-b")
            pairs = []
            for _ in range(200):
                tube = f"{uuid.uuid4().int % 10**12:012d}"
                a = u.send(u.event(TubeOpen, "table-a", tube=tube, pool=5, round="race"))
                b = u.send(u.event(TubeOpen, "table-b", tube=tube, pool=5, round="race"))
                pairs.append((a.id, b.id))
            await u.wait([i for p in pairs for i in p], timeout=60)
            for a, b in pairs:
                wins = [u.results[a][0].ok, u.results[b][0].ok]
                assert sorted(wins) == [False, True]
                loser = u.results[a if not wins[0] else b][0]
                assert loser.reasons[0].code == "tube_already_opened"

    try:
        arun(main(), timeout=120)
    finally:
        for p in procs:
            p.terminate()
            p.join(10)


def test_replayed_pass_is_flagged_over_the_loop(broker, issuer, tmp_path):
    cfg = hub_config(broker, issuer, str(tmp_path / "hub.db"))

    async def main() -> None:
        worker = Worker(cfg)
        await worker.start()
        try:
            async with Units(broker.url, ["cp-x", "cp-y"]) as u:
                token = issuer.hp1(id_number="replay-1")
                first = u.send(u.event(Scan, "cp-x", code=token, temps=[36.5]))
                await u.wait([first.id])
                second = u.send(u.event(Scan, "cp-y", code=token, temps=[36.5]))
                await u.wait([second.id])
                assert u.results[first.id][0].flags == []
                res = u.results[second.id][0]
                assert res.flags == ["replay"] and res.verdict == "REVIEW"
        finally:
            await worker.stop()

    arun(main())


# starlette's TestClient wants `httpx2`; httpx (installed) still works and is what we use.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_api_and_hub_presence(broker, issuer, tmp_path):
    from checkpost.hub.api import create_app
    from fastapi.testclient import TestClient

    from checkpost.protocol import UnitStatus, decode_hub_status

    cfg = hub_config(broker, issuer, str(tmp_path / "hub.db"))
    app = create_app(cfg)

    async def feed() -> str:
        worker = Worker(cfg)
        await worker.start()
        try:
            async with Units(broker.url, ["st-1"]) as u:
                tube = f"{uuid.uuid4().int % 10**12:012d}"
                ev = u.send(u.event(TubeOpen, "st-1", tube=tube, pool=5, round="api"))
                scan = u.send(u.event(Scan, "st-1", code=issuer.hp1(id_number="api"), temps=[36.5]))
                await u.wait([ev.id, scan.id])
                status = UnitStatus(unit="st-1", state="online", session=4, station="sampling")
                u.link.publish(T.status("st-1"), encode(status), 1, retain=True)
                stale = UnitStatus(unit="st-1", state="offline", session=3)
                u.link.publish(T.status("st-1"), encode(stale), 1, retain=False)
                await asyncio.sleep(0.3)
                return tube
        finally:
            await worker.stop()

    with TestClient(app) as client:
        tube = arun(feed())
        assert client.get("/healthz").json() == {"status": "ok", "store": True, "broker": True}
        stats = client.get("/api/v1/stats").json()
        assert stats["events"] == 2 and stats["tubes"]["opened"] == 1
        found = client.get(f"/api/v1/tubes/{tube}").json()
        assert found["unit"] == "st-1" and found["pool"] == 5
        assert client.get("/api/v1/tubes/999").status_code == 404
        for bad in ("/api/v1/tubes/a%00b", "/api/v1/passes/" + "x" * 65):
            assert client.get(bad).status_code == 422  # refused before the database
        units = client.get("/api/v1/units").json()
        assert units[0]["id"] == "st-1" and units[0]["online"] and units[0]["session"] == 4
        metrics = client.get("/metrics").text
        assert (
            "checkpost_hub_events_total" in metrics
            and 'checkpost_unit_online{unit="st-1"} 1.0' in metrics
        )
        assert client.get("/openapi.json").status_code == 200

        async def hub_status() -> Any:
            got: asyncio.Queue[bytes] = asyncio.Queue()
            link = Link(broker.url)
            link.route(T.hub_status, lambda t, p, tok: (got.put_nowait(p), link.ack(tok)))
            link.subscribe(T.hub_status, 1)
            await link.connect()
            payload = await asyncio.wait_for(got.get(), 5)
            await link.disconnect()
            return decode_hub_status(payload)

        alive = arun(hub_status())
        assert alive.state == "online" and alive.policy
    # the death published on shutdown (acknowledged before the link closed), not the will:
    # it has a time, and the same document versions as the birth
    death = arun(hub_status())
    assert death.state == "offline" and death.ts > 0
    assert (death.policy, death.trust, death.session) == (alive.policy, alive.trust, alive.session)
