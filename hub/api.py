"""The hub's HTTP API (FastAPI), in its own process so it never slows the loop.

It also owns the hub's presence on the broker: the retained birth on `hub/status` (with a
last will "offline" carrying the same session), the retained policy and trust-list
versions, and the fleet view built from units' retained status and telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from checkpost.hub.config import HubConfig
from checkpost.hub.units import Fleet, FleetCollector
from fastapi import FastAPI, HTTPException, Response

from checkpost.protocol import HubStatus, PolicyAnnounce, Topics, TrustAnnounce, encode

log = logging.getLogger("checkpost.hub.api")


class Presence:
    """Birth/death and retained announcements on one broker link, plus the fleet view."""

    def __init__(
        self, cfg: HubConfig, fleet: Fleet, policy_version: str, trust_version: str, trust_n: int
    ) -> None:
        from checkpost.hub.transport import Link

        self.topics = Topics(cfg.hub.topic_root)
        self.session = int(time.time())
        self.policy_version, self.trust_version = policy_version, trust_version
        death = HubStatus(
            state="offline", session=self.session, policy=policy_version, trust=trust_version
        )
        self.link = Link(
            cfg.hub.broker,
            f"{cfg.hub.share_group}-api",
            will=(self.topics.hub_status, encode(death), 1, True),
        )
        self.fleet = fleet
        self.trust_n = trust_n
        root = self.topics.root + "/units/"
        self.link.route(root, self._on_unit)
        self.link.subscribe(self.topics.all_status, 1)
        self.link.subscribe(self.topics.all_telemetry, 0)
        # Birth and announcements again on every reconnect (retained state may be gone).
        self.link.on_connected.append(self.announce)

    def announce(self) -> None:
        birth = HubStatus(
            state="online",
            session=self.session,
            ts=time.time(),
            policy=self.policy_version,
            trust=self.trust_version,
        )
        self.link.publish(self.topics.hub_status, encode(birth), 1, retain=True)
        self.link.publish(
            self.topics.hub_policy,
            encode(PolicyAnnounce(version=self.policy_version)),
            1,
            retain=True,
        )
        self.link.publish(
            self.topics.hub_trust,
            encode(TrustAnnounce(version=self.trust_version, entries=self.trust_n)),
            1,
            retain=True,
        )

    def _on_unit(self, topic: str, payload: bytes, token: Any) -> None:
        self.link.ack(token)
        rest = topic[len(self.topics.root) + len("/units/") :]
        unit, _, leaf = rest.partition("/")
        if leaf == "status":
            self.fleet.on_status(unit, payload)
        elif leaf == "telemetry":
            self.fleet.on_telemetry(unit, payload)

    async def start(self) -> None:
        await self.link.connect()

    async def stop(self) -> None:
        death = HubStatus(state="offline", session=self.session, ts=time.time())
        self.link.publish(self.topics.hub_status, encode(death), 1, retain=True)
        await asyncio.sleep(0.05)
        await self.link.disconnect()


def create_app(cfg: HubConfig, *, presence: bool = True) -> FastAPI:
    from checkpost.hub.loop import build_context
    from checkpost.hub.store import open_store

    fleet = Fleet()
    state: dict[str, Any] = {"store": None, "presence": None}
    lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["store"] = open_store(cfg.db_url())
        if presence:
            ctx = build_context(cfg)
            trust_version = f"{len(ctx.trust)}-keys"
            p = Presence(cfg, fleet, ctx.policy.version, trust_version, len(ctx.trust))
            try:
                await p.start()
                state["presence"] = p
            except (OSError, TimeoutError) as exc:
                log.error("API: broker unreachable (%s); fleet view disabled", exc)
        try:
            yield
        finally:
            if state["presence"] is not None:
                await state["presence"].stop()
            state["store"].close()

    app = FastAPI(title="checkpost hub", version="1", lifespan=lifespan)

    def store_call(fn: str, *args: Any) -> Any:
        with lock:
            return getattr(state["store"], fn)(*args)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness that means something: the store answers and the broker link is up."""
        try:
            with lock:
                state["store"].one("SELECT 1")
            store_ok = True
        except Exception:
            store_ok = False
        p = state["presence"]
        broker_ok = bool(p and p.link.connected.is_set())
        if not store_ok:
            raise HTTPException(503, {"store": False, "broker": broker_ok})
        return {"status": "ok", "store": store_ok, "broker": broker_ok}

    from prometheus_client import CollectorRegistry

    fleet_registry = CollectorRegistry()
    fleet_registry.register(FleetCollector(fleet))

    @app.get("/metrics")
    def metrics() -> Response:
        """Workers' metrics (aggregated across processes) and the per-unit fleet gauges."""
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            import checkpost.hub.metrics  # noqa: F401  (registers the loop's metrics)

            registry = REGISTRY
        data = generate_latest(registry) + generate_latest(fleet_registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/stats")
    def stats() -> dict[str, Any]:
        return store_call("stats")

    @app.get("/api/v1/units")
    def units() -> list[dict[str, Any]]:
        return fleet.snapshot()

    @app.get("/api/v1/tubes/{code}")
    def tube(code: str) -> dict[str, Any]:
        found = store_call("tube", code)
        if found is None:
            raise HTTPException(404, f"tube {code} not known")
        return found

    @app.get("/api/v1/passes/{sid}")
    def passes(sid: str) -> dict[str, Any]:
        return {"sid": sid, "seen": store_call("passes", sid)}

    app.state.fleet = fleet
    return app


def api_main(cfg: HubConfig, host: str, port: int, log_level: str = "warning") -> None:
    """Process entry point of the API (multiprocessing target)."""
    import uvicorn

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(cfg), host=host, port=port, log_level=log_level.lower(), access_log=False
    )
