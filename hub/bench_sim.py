"""Simulated station units for `checkpost bench hub`, run in their own processes.

A checkpoint simulator publishes signed HP1 scans as fast as a window of outstanding
events allows (or paced at a fixed rate) and measures publish -> result latency; a
sampling simulator runs each table as a sequential workflow (open tube, add people, close,
box, seal, handover), one event at a time per table as a real table works. Codes are
minted before the clock starts so minting never competes with the hub during the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from checkpost.protocol import (
    BoxAdd,
    BoxOpen,
    BoxSeal,
    Handover,
    Scan,
    Topics,
    TubeAdd,
    TubeClose,
    TubeOpen,
    decode_result,
    encode,
    uuid7,
)

# share of scans that should not PASS, and how each one fails
FAILURES = ("expired", "red", "old_test", "forged", "fever")


def mint_scans(issuer_dir: str, n: int, seed: int) -> list[tuple[str, list[float], str]]:
    """(code, temps, expectation) triples; about 5 % fail, each for a different reason."""
    from checkpost.issuer import TestIssuer

    iss = TestIssuer.load(issuer_dir)
    rnd = random.Random(seed)
    now = time.time()
    out = []
    for i in range(n):
        sid = f"{seed:08x}{i:024x}"
        temps = [round(rnd.uniform(36.0, 37.0), 1)]
        kind = "ok"
        r = rnd.random()
        if r < 0.05:
            kind = FAILURES[i % len(FAILURES)]
        if kind == "expired":
            code = iss.hp1(sid=sid, iat=now - 3600)
        elif kind == "red":
            code = iss.hp1(sid=sid, colour="R")
        elif kind == "old_test":
            code = iss.hp1(sid=sid, test_age_hours=60)
        elif kind == "forged":
            good = iss.hp1(sid=sid)
            code = good[:-6] + ("AAAAAA" if good[-6:] != "AAAAAA" else "BBBBBB")
        else:
            code = iss.hp1(sid=sid)
        if kind == "fever":
            temps = [38.4]
        out.append((code, temps, kind))
    return out


def mint_people(issuer_dir: str, n: int, seed: int) -> list[str]:
    from checkpost.issuer import TestIssuer

    iss = TestIssuer.load(issuer_dir)
    return [iss.sr1(sid=f"{seed:08x}{i:024x}", registration=f"R{seed}-{i}") for i in range(n)]


class Tally:
    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.answered: set[str] = set()
        self.latencies: list[float] = []
        self.dup_answers = 0
        self.verdicts: dict[str, int] = {}
        self.rejected = 0
        self.waiters: dict[str, asyncio.Future[Any]] = {}
        self.trace: list[tuple[str, float, float]] | None = (
            [] if os.environ.get("CHECKPOST_HUB_TRACE") else None
        )

    def on_result(self, payload: bytes) -> None:
        now = time.perf_counter()
        res = decode_result(payload)
        t0 = self.sent.get(res.id)
        if t0 is None:
            return
        if res.id in self.answered:
            self.dup_answers += 1
            return
        self.answered.add(res.id)
        self.latencies.append(now - t0)
        if self.trace is not None:
            self.trace.append((res.id, t0, now))
        key = res.verdict or ("ok" if res.ok else "rejected")
        self.verdicts[key] = self.verdicts.get(key, 0) + 1
        fut = self.waiters.pop(res.id, None)
        if fut is not None and not fut.done():
            fut.set_result(res)

    def write_trace(self, units: list[str], seed: int) -> None:
        """This simulator's (id, sent, answered) times, for the bench's stage report."""
        if self.trace is None:
            return
        import json

        tag = units[0].split("-")[1]  # bench-cp-0000: the phase
        with open(f"{os.environ['CHECKPOST_HUB_TRACE']}.sim-{tag}-{seed}", "w") as f:
            json.dump(self.trace, f)


async def _connect_units(
    broker: str, units: list[str], conns: int, tally: Tally, root: str
) -> list[Any]:
    from checkpost.hub.transport import Link

    topics = Topics(root)
    links = []
    per = max(1, -(-len(units) // conns))
    for i in range(0, len(units), per):
        link = Link(broker, f"sim-{units[i]}-{uuid7()[-6:]}", receive_maximum=65535)

        def handler(topic: str, payload: bytes, token: Any, link: Any = link) -> None:
            tally.on_result(payload)  # the clock stops here, before any work of ours
            link.ack_soon(token)

        link.route(topics.root + "/units/", handler)
        for u in units[i : i + per]:
            link.subscribe(topics.results(u), qos=1)
        await link.connect()
        links.append((link, units[i : i + per]))
    await asyncio.sleep(0.3)
    return links


def run_checkpoint(
    broker: str,
    issuer_dir: str,
    units: list[str],
    seed: int,
    n_codes: int,
    rate: float,
    duration: float,
    start_at: float,
    window: int,
    root: str,
    ready: Any,
) -> dict[str, Any]:
    codes = mint_scans(issuer_dir, n_codes, seed)
    # Encode every event before the clock starts (ids made now, in order): a real unit is
    # another machine, so its encoding must not take CPU from the hub under test here.
    seqs = dict.fromkeys(units, 0)
    now = time.time()
    prepared = []
    for i, (code, temps, kind) in enumerate(codes):
        unit = units[i % len(units)]
        seqs[unit] += 1
        ev = Scan(id=uuid7(), unit=unit, seq=seqs[unit], ts=now, code=code, temps=temps)
        prepared.append((ev.id, encode(ev), kind))
    del codes

    async def main() -> dict[str, Any]:
        tally = Tally()
        links = await _connect_units(broker, units, min(len(units), 10), tally, root)
        topics = Topics(root)
        link_of = {u: link for link, us in links for u in us}
        slots = [(link_of[u], topics.events(u)) for u in units]
        ready.put(("ready", seed))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t_start = time.perf_counter()
        end = t_start + duration
        i = 0
        expected: dict[str, int] = {"ok": 0}
        sent = tally.sent
        answered = tally.answered
        n = len(prepared)
        while True:
            now = time.perf_counter()
            if now >= end or i >= n:
                break
            room = window - (len(sent) - len(answered))
            due = room if rate <= 0 else min(int((now - t_start) * rate) + 1 - i, room)
            if due > 0:
                # Several events at once (max rate): one write per connection for them all.
                # The units are other machines in reality, so their system calls should not
                # eat this machine's CPU more than needed.
                burst = due > 2
                if burst:
                    for link, _ in links:
                        link.cork()
                for _ in range(min(due, n - i)):
                    link, topic = slots[i % len(slots)]
                    eid, payload, kind = prepared[i]
                    sent[eid] = time.perf_counter()
                    link.publish(topic, payload, 1)
                    expected[kind] = expected.get(kind, 0) + 1
                    i += 1
                if burst:
                    for link, _ in links:
                        link.uncork()
            if rate > 0:
                # Sleep until the next event is due. uvloop's timers have 1 ms resolution and
                # round a shorter delay to zero, i.e. a busy loop: the old 0.5 ms tick made
                # each simulator spin a whole core, which showed up as hub latency.
                wait = t_start + i / rate - time.perf_counter()
                await asyncio.sleep(max(0.001, wait))
            else:
                await asyncio.sleep(0.001)
        t_sent = time.perf_counter() - t_start
        drain_end = time.perf_counter() + 20
        while len(tally.answered) < len(tally.sent) and time.perf_counter() < drain_end:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # a late duplicate answer would show up here
        for link, _ in links:
            await link.disconnect()
        tally.write_trace(units, seed)
        return {
            "sent": len(tally.sent),
            "answered": len(tally.answered),
            "send_seconds": t_sent,
            "latencies": tally.latencies,
            "dup_answers": tally.dup_answers,
            "verdicts": tally.verdicts,
            "expected": expected,
            "ids": list(tally.sent),
            "first_send": start_at,
        }

    return _run_loop(main())


def run_sampling(
    broker: str,
    issuer_dir: str,
    units: list[str],
    seed: int,
    people_per_unit: int,
    duration: float,
    start_at: float,
    root: str,
    ready: Any,
    run_id: int,
    pool: int = 10,
    tubes_per_box: int = 5,
) -> dict[str, Any]:
    people = mint_people(issuer_dir, people_per_unit * len(units), seed)

    async def main() -> dict[str, Any]:
        tally = Tally()
        links = await _connect_units(broker, units, min(len(units), 10), tally, root)
        topics = Topics(root)
        ready.put(("ready", seed))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t_start = time.perf_counter()
        end = t_start + duration
        rejected: dict[str, int] = {}

        async def table(link: Any, unit: str, n: int) -> None:
            mine = people[n * people_per_unit : (n + 1) * people_per_unit]
            seq = 0
            tube_no = 0
            box_no = 0
            person = 0
            cycle = 0
            station = int(unit.rsplit("-", 1)[-1])

            async def send(ev: Any) -> bool:
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                tally.waiters[ev.id] = fut
                tally.sent[ev.id] = time.perf_counter()
                link.publish(topics.events(unit), encode(ev), 1)
                res = await fut  # no per-event timer: the phase as a whole has a deadline
                if not res.ok:
                    for r in res.reasons:
                        rejected[r.code] = rejected.get(r.code, 0) + 1
                return res.ok

            def base() -> dict[str, Any]:
                nonlocal seq
                seq += 1
                return {"id": uuid7(), "unit": unit, "seq": seq, "ts": time.time()}

            while time.perf_counter() < end:
                box_no += 1
                box = f"BOX{run_id % 1000:03d}{station % 1000:03d}{box_no:04d}"
                await send(BoxOpen(**base(), box=box))
                tubes = []
                for _ in range(tubes_per_box):
                    tube_no += 1
                    tube = f"{run_id % 1000:03d}{station % 1000:03d}{tube_no:06d}"
                    await send(
                        TubeOpen(**base(), tube=tube, pool=pool, round=f"bench-{run_id}-c{cycle}")
                    )
                    for _ in range(pool):
                        await send(TubeAdd(**base(), tube=tube, code=mine[person]))
                        person += 1
                        if person >= len(mine):
                            person, cycle = 0, cycle + 1
                    await send(TubeClose(**base(), tube=tube, count=pool))
                    await send(BoxAdd(**base(), box=box, tube=tube))
                    tubes.append(tube)
                    if time.perf_counter() >= end:
                        break
                await send(BoxSeal(**base(), box=box, tubes=len(tubes)))
                await send(
                    Handover(
                        **base(),
                        box=box,
                        tubes=len(tubes),
                        samples=len(tubes) * pool,
                        handler="courier-1",
                    )
                )

        tasks = [
            asyncio.ensure_future(table(link, u, idx))
            for idx, (link, u) in enumerate((link, u) for link, us in links for u in us)
        ]
        _, late = await asyncio.wait(tasks, timeout=duration + 30)
        for task in late:  # a table whose event was never answered: count it, stop it
            task.cancel()
        t_sent = time.perf_counter() - t_start
        await asyncio.sleep(0.5)
        for link, _ in links:
            await link.disconnect()
        tally.write_trace(units, seed)
        return {
            "sent": len(tally.sent),
            "answered": len(tally.answered),
            "send_seconds": t_sent,
            "latencies": tally.latencies,
            "dup_answers": tally.dup_answers,
            "verdicts": tally.verdicts,
            "rule_rejects": rejected,
            "ids": list(tally.sent),
        }

    return _run_loop(main())


def _entry(kind: str, out: Any, kwargs: dict[str, Any]) -> None:
    import gc
    import logging

    logging.basicConfig(level="ERROR")
    # The simulator holds every prepared event and every send time: a full collection
    # over that heap pauses it for tens of ms, which would show up as hub latency. It is
    # a bounded, short-lived process, so it runs without the cyclic collector.
    gc.disable()
    try:
        fn = run_checkpoint if kind == "checkpoint" else run_sampling
        out.put(("done", fn(ready=out, **kwargs)))
    except BaseException as exc:  # report, never hang the parent
        import traceback

        out.put(("error", f"{exc!r}\n{traceback.format_exc()}"))


def _run_loop(coro: Any) -> Any:
    """uvloop when installed (the hub extra has it), else the standard event loop."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)
