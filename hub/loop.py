"""The hub's verification loop: one worker process, one asyncio thread, one MQTT link.

    broker ─$share─> on_event: size/topic/schema checks ─> verify (pipeline + policy)
           ─> pending ─> group commit (store thread, one transaction, fsync)
           ─> publish results on each unit's result topic ─> PUBACK to the broker

A result is published only after its event's commit returned, and the broker gets its
PUBACK only then too: a worker killed at any point leaves every uncommitted event
unacknowledged, and the broker delivers it again (to this worker's next session, which
reuses the client id and a persistent session). The store answers a redelivered event
with its stored result, so the unit sees one answer and the store holds one row.

Group commit is adaptive: a batch is everything that arrived while the previous one was
being committed, and it starts the moment that commit returns, with no size or timer to
wait for. At a low rate a batch is one event and its latency one commit; at a high rate
batches grow, and the fsync is shared by more events. By default (`commit_mode` "auto" =
"split") the loop thread stages the batch (all its SQL) and a store thread does only the
durable COMMIT, so the loop keeps reading and verifying during the fsync; the switch
interval is lowered so that thread gets the GIL back at once when its fsync returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter as Tally
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from checkpost.hub import reasons as R
from checkpost.hub.config import HubConfig
from checkpost.hub.prepare import Preparer
from checkpost.hub.store import Store, Work, open_store
from checkpost.hub.transport import Link

from checkpost.protocol import Alert, ProtocolError, Result, Topics, decode_event, encode
from checkpost.protocol.messages import MAX_PAYLOAD

log = logging.getLogger("checkpost.hub.loop")


def build_context(cfg: HubConfig) -> Any:
    from checkpost.runtime import build_context as core
    from checkpost.settings import CoreSettings

    return core(
        CoreSettings(trust=cfg.trust, policy=cfg.policy, hc1=cfg.hc1),
        issuer_dir=cfg.hub.issuer_dir,
    )


class RateLimitedLog:
    """Logs the first few rejects per reason per minute; counts the rest in the metrics."""

    def __init__(self, per_minute: int = 5) -> None:
        self.per_minute = per_minute
        self.window = 0
        self.seen: Tally[str] = Tally()

    def warn(self, reason: str, msg: str, *args: Any) -> None:
        minute = int(time.monotonic() // 60)
        if minute != self.window:
            self.window, self.seen = minute, Tally()
        self.seen[reason] += 1
        if self.seen[reason] <= self.per_minute:
            log.warning(msg, *args)


class Worker:
    """One loop. `index` makes the MQTT client id (and so the persistent session) stable
    across restarts, which is what lets the broker redeliver after a crash."""

    def __init__(
        self,
        cfg: HubConfig,
        index: int = 0,
        *,
        store: Store | None = None,
        context: Any = None,
        metrics: bool = True,
    ) -> None:
        self.cfg = cfg
        self.index = index
        self.topics = Topics(cfg.hub.topic_root)
        self.ctx = context or build_context(cfg)
        self.policy_version = self.ctx.policy.version
        self.prepare = Preparer(self.ctx.verifier, self.ctx.policy)
        self._store = store
        self.store: Store | None = store
        self.client_id = f"{cfg.hub.share_group}-w{index}"
        self.link: Link | None = None
        self._pending: list[tuple[Work, Any, str, float]] = []
        self._wake = asyncio.Event()
        self._in_commit = 0  # events taken from pending and not yet answered
        # receive -> answer latencies of the last interval, for the INFO progress line
        self._window: list[float] | None = [] if log.isEnabledFor(logging.INFO) else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hub-store")
        self._rejects = RateLimitedLog()
        self._units_prefix = f"{self.topics.root}/units/"
        self.stats: Tally[str] = Tally()
        # Per-event stage times for `checkpost bench hub` (CHECKPOST_HUB_TRACE=prefix): the
        # bench joins them with its simulators' send/receive times, same clock (monotonic).
        self._trace: list[tuple[Any, ...]] | None = (
            [] if os.environ.get("CHECKPOST_HUB_TRACE") else None
        )
        self._tprep: dict[str, float] = {}
        self._t_staged = 0.0
        self.metrics = metrics
        # see HubSection.commit_mode for what was measured
        self.commit_mode = cfg.hub.commit_mode
        if self.commit_mode == "auto":
            # split on both engines: re-measured once the bench's simulators stopped
            # spinning (they had taken a core each), split beat inline on SQLite too
            # (4,000 scans/s, p99 102-202 ms vs 317-484 ms with another job on the
            # machine; 15.9 ms quiet), because the loop keeps reading and verifying while
            # the fsync runs.
            self.commit_mode = "split"
        if metrics:
            from checkpost.hub import metrics as m

            self._m = m

    # -- receive ----------------------------------------------------------------------------

    def on_event(self, topic: str, payload: bytes, token: Any) -> None:
        t0 = time.perf_counter()
        unit = self.topics.parse_unit(topic, "events")
        if unit is None:
            self._reject("bad_topic", token, "event on unexpected topic %r", topic[:120])
            return
        if len(payload) > MAX_PAYLOAD:
            self._reject("too_large", token, "%s: payload of %d bytes", unit, len(payload))
            return
        try:
            event = decode_event(payload)
        except ProtocolError as exc:
            self._reject(exc.reason, token, "%s: %s", unit, exc.detail)
            return
        if event.unit != unit:
            self._spoof(unit, event, token)
            return
        now = time.time()
        try:
            w = self.prepare(event, payload.decode("utf-8", "replace"), now)
        except Exception:
            # A bug, not bad input: log it with the event, acknowledge so the broker does
            # not redeliver it forever, and keep the loop alive.
            log.exception("internal error preparing event %s from %s", event.id, unit)
            self._reject("internal_error", token, "%s: event %s", unit, event.id)
            return
        if self._trace is not None:
            self._tprep[event.id] = time.perf_counter()
        self._pending.append((w, token, unit, t0))
        self._wake.set()

    def _reject(self, reason: str, token: Any, msg: str, *args: Any) -> None:
        self.stats["rejected"] += 1
        if self._m:
            self._m.REJECTS.labels(reason).inc()
        self._rejects.warn(reason, "rejected (" + reason + ") " + msg, *args)
        if self.link is not None:
            self.link.ack(token)  # a malformed message would be malformed again: drop it

    def _spoof(self, unit: str, event: Any, token: Any) -> None:
        """A unit naming another unit in its payload: refuse, answer the sender, raise."""
        self.stats["rejected"] += 1
        detail = f"topic unit {unit} published an event naming unit {event.unit}"
        log.error("unit spoofing: %s (event %s)", detail, event.id)
        if self._m:
            self._m.REJECTS.labels("unit_mismatch").inc()
            self._m.ALERTS.labels("unit_mismatch").inc()
        if self.link is not None:
            now = time.time()
            self.link.publish(
                self.topics.hub_alerts,
                encode(Alert(code="unit_mismatch", unit=unit, detail=detail, at=now)),
                1,
            )
            res = Result(
                id=event.id, ok=False, reasons=[R.UNIT_MISMATCH], policy=self.policy_version, at=now
            )
            self.link.publish(self.topics.results(unit), encode(res), self.cfg.hub.result_qos)
            self.link.ack(token)

    # -- commit and answer ------------------------------------------------------------------

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        max_batch = self.cfg.hub.max_batch
        qos = self.cfg.hub.result_qos
        failing = 0  # consecutive failed commits
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:max_batch]
                del self._pending[:max_batch]
                self._in_commit = len(batch)
                works = [b[0] for b in batch]
                tc0 = self._t_staged = time.perf_counter()
                try:
                    secs = await self._commit(loop, works)
                except Exception as exc:
                    # Nothing of the batch is stored or acknowledged: keep it and try again,
                    # so a database restart or a full disk delays verdicts instead of losing
                    # events. The first failure is logged with its traceback, then a few
                    # lines a minute while it lasts.
                    failing += 1
                    if failing == 1:
                        log.exception("commit of %d events failed; retrying every 1 s", len(works))
                    else:
                        self._rejects.warn("commit_failed", "commit still failing (%d tries): %s",
                                           failing, exc)  # fmt: skip
                    self._pending[:0] = batch
                    self._in_commit = 0
                    await asyncio.sleep(1.0)
                    continue
                if failing:
                    log.warning("commit works again after %d failed tries", failing)
                    failing = 0
                self._in_commit = 0
                tc1 = time.perf_counter()
                if secs > 0.02:
                    log.info("slow commit: %d events in %.1f ms", len(works), secs * 1000)
                self._answer(batch, secs, qos)
                if self._trace is not None:
                    self._trace_batch(batch, tc0, self._t_staged, tc1)

    def _trace_batch(
        self, batch: list[tuple[Work, Any, str, float]], tc0: float, ts: float, tc1: float
    ) -> None:
        """(id, received, verified, commit start, staged, durable, answered, batch size)."""
        ta = time.perf_counter()
        tp = self._tprep
        self._trace.extend(  # type: ignore[union-attr]
            (w.id, t0, tp.pop(w.id, t0), tc0, ts, tc1, ta, len(batch)) for w, _, _, t0 in batch
        )

    async def _report(self, every: float = 5.0) -> None:
        """One INFO line per interval: rate, batches and the hub-side latency tail."""
        last = dict(self.stats)
        while True:
            await asyncio.sleep(every)
            win, self._window = sorted(self._window or []), []
            now = dict(self.stats)
            n = (
                now.get("stored", 0)
                + now.get("dups", 0)
                - last.get("stored", 0)
                - last.get("dups", 0)
            )
            b = now.get("batches", 0) - last.get("batches", 0)
            last = now
            if not win:
                continue
            log.info(
                "%.0f events/s, %d batches (mean %.1f), hub latency p50 %.1f p99 %.1f max %.1f ms",
                n / every, b, n / max(b, 1), win[len(win) // 2] * 1e3,
                win[int(len(win) * 0.99)] * 1e3, win[-1] * 1e3,
            )  # fmt: skip

    async def _commit(self, loop: asyncio.AbstractEventLoop, works: list[Work]) -> float:
        store = self.store
        assert store is not None
        if self.commit_mode == "inline":
            return store.commit(works, self.policy_version)
        if self.commit_mode == "thread" or store.at_once(works):
            # at_once: one statement, durable when it returns; the loop reads on meanwhile
            return await loop.run_in_executor(self._pool, store.commit, works, self.policy_version)
        t0 = time.perf_counter()
        store.stage(works, self.policy_version)
        self._t_staged = time.perf_counter()
        try:
            await loop.run_in_executor(self._pool, store.commit_tx)
        except BaseException:
            await loop.run_in_executor(self._pool, store.rollback)
            raise
        return time.perf_counter() - t0

    def _answer(self, batch: list[tuple[Work, Any, str, float]], secs: float, qos: int) -> None:
        link = self.link
        assert link is not None
        prefix = self._units_prefix
        done = time.perf_counter()
        latencies = []
        link.cork()
        try:
            for w, token, unit, t0 in batch:
                link.publish(prefix + unit + "/results", w.result, qos)
                link.ack(token)
                latencies.append(done - t0)
        finally:
            link.uncork()
        if self._window is not None:
            self._window.extend(latencies)
        self.stats["stored"] += sum(1 for w, *_ in batch if not w.dup)
        self.stats["dups"] += sum(1 for w, *_ in batch if w.dup)
        self.stats["batches"] += 1
        if self._m is not None:
            self._metrics(batch, secs, latencies)

    def _metrics(
        self, batch: list[tuple[Work, Any, str, float]], secs: float, latencies: list[float]
    ) -> None:
        m = self._m
        kinds: Tally[str] = Tally()
        verdicts: Tally[str] = Tally()
        rules: Tally[str] = Tally()
        dups = 0
        now = time.time()
        for w, *_ in batch:
            if w.dup:
                dups += 1
                continue
            kinds[w.kind] += 1
            if w.verdict is not None:
                verdicts[w.verdict] += 1
            if not w.ok:
                for r in w.reasons:
                    rules[r.code] += 1
        for k, n in kinds.items():
            m.EVENTS.labels(k).inc(n)
        for k, n in verdicts.items():
            m.VERDICTS.labels(k).inc(n)
        for k, n in rules.items():
            m.RULE_REJECTS.labels(k).inc(n)
        if dups:
            m.DUPLICATES.inc(dups)
        m.COMMIT_SECONDS.observe(secs)
        m.BATCH_SIZE.observe(len(batch))
        for lat in latencies:
            m.LOOP_LATENCY.observe(lat)
        # lag of the oldest event in the batch is enough to see queues building up
        m.EVENT_LAG.observe(max(0.0, now - min(w.event.ts for w, *_ in batch)))

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.store is None:
            loop = asyncio.get_running_loop()
            self.store = await loop.run_in_executor(self._pool, open_store, self.cfg.db_url())
            if self.cfg.hub.sqlite_checkpointer:
                self.store.start_checkpointer()
        if self.commit_mode in ("split", "thread"):
            # The store thread's COMMIT returns while the loop thread runs Python: it waits
            # for the GIL up to the switch interval (5 ms by default), and every event of
            # the batch waits with it. Measured at 4,000 scans/s on SQLite: p99 20.5 ms
            # at 5 ms, 15.9 ms at 0.5 ms.
            import sys

            sys.setswitchinterval(float(os.environ.get("CHECKPOST_HUB_SWITCH", "0.0005")))
        self._warm_up()
        # Everything allocated so far (trust store, schemas, policy, modules) lives as long
        # as the worker: keep it out of the cyclic collector's generations, so collections
        # during the loop only walk what the loop itself allocates.
        import gc

        gc.collect()
        gc.freeze()
        self.link = Link(
            self.cfg.hub.broker,
            self.client_id,
            clean=False,
            session_expiry=24 * 3600,
            receive_maximum=self.cfg.hub.inflight,
        )
        self.link.route(self._units_prefix, self.on_event)
        self.link.subscribe(self.topics.shared_events(self.cfg.hub.share_group), qos=1)
        # -- pushed documents (hub/publisher.py): checked off the loop thread, then one
        # reference swap of self.prepare / self.ctx / self.policy_version. Not the hot path.
        from checkpost.hub.publisher import follow_documents

        self.documents = follow_documents(self)
        # -- end pushed documents
        self._flush_task = asyncio.ensure_future(self._flusher())
        if self._window is not None:
            self._report_task = asyncio.ensure_future(self._report())
        await self.link.connect()
        log.info("worker %d up as %s on %s", self.index, self.client_id, self.cfg.hub.broker)

    def _warm_up(self) -> None:
        """Pay one-time costs (lazy imports, caches) before the first real event."""
        from checkpost.protocol import Scan, uuid7

        now = time.time()
        self.prepare(Scan(id=uuid7(), unit="warm-up", seq=0, ts=now, code="HP1:warm-up"), "", now)
        encode(Result(id=uuid7(), ok=True, verdict="PASS"))

    async def stop(self) -> None:
        """Finish what was received (commit, answer, acknowledge), then disconnect."""
        deadline = time.monotonic() + 10
        while (
            self._pending or self._in_commit or self._wake.is_set()
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        self._flush_task.cancel()
        if self._window is not None:
            self._report_task.cancel()
        if self.link is not None:
            await self.link.disconnect()
        if self._trace:
            import json

            with open(f"{os.environ['CHECKPOST_HUB_TRACE']}.hub{self.index}", "w") as f:
                json.dump(self._trace, f)
        self._pool.submit(self._close_store).result()
        self._pool.shutdown(wait=True)

    def _close_store(self) -> None:
        if self.store is not None and self._store is None:
            self.store.close()

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        await stop.wait()
        await self.stop()


def worker_main(cfg: HubConfig, index: int, log_level: str = "WARNING") -> None:
    """Process entry point of one worker (multiprocessing target)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(cfg, index)
        await worker.run_until(stop)

    prof_path = os.environ.get("CHECKPOST_HUB_PROFILE")
    if prof_path:  # developer aid: `CHECKPOST_HUB_PROFILE=/tmp/w.prof checkpost bench hub`
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            asyncio.run(main())
        finally:
            prof.disable()
            prof.dump_stats(f"{prof_path}.{index}")
    else:
        asyncio.run(main())
    os._exit(0)
