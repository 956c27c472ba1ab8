"""The hub's HTTP API (FastAPI), in its own process so it never slows the loop.

It also owns the hub's presence on the broker: the retained birth on `hub/status` (with a
last will "offline" carrying the same session), the retained signed trust list and policy
bundle on `hub/trust` / `hub/policy` (`checkpost.hub.publisher`: re-read on start, every
`[hub] documents_poll_s` seconds and on SIGHUP), commands to units and their acks
(`checkpost.hub.command_sender`), and the fleet view built from units' retained status and
telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from checkpost.hub.command_sender import CommandSender, ack_view
from checkpost.hub.config import HubConfig
from checkpost.hub.publisher import DocumentPublisher, run_publisher
from checkpost.hub.units import Fleet, FleetCollector
from fastapi import FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse

from checkpost.protocol import HubStatus, Topics, encode, is_unit_id
from checkpost.protocol.messages import COMMANDS

log = logging.getLogger("checkpost.hub.api")

# What the store's keys are (protocol: codes of 1-64 characters, no NUL): anything else is
# a 422 here instead of an error from the database.
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class Presence:
    """Birth/death, the retained documents and commands on one broker link, plus the
    fleet view."""

    def __init__(self, cfg: HubConfig, fleet: Fleet, publisher: DocumentPublisher) -> None:
        from checkpost.hub.transport import Link

        self.topics = Topics(cfg.hub.topic_root)
        self.session = int(time.time())
        self.publisher = publisher
        self.link = Link(
            cfg.hub.broker,
            f"{cfg.hub.share_group}-api",
            will=(self.topics.hub_status, self._status("offline", ts=0.0), 1, True),
        )
        self.fleet = fleet
        self.commands = CommandSender(self.link, self.topics)
        root = self.topics.root + "/units/"
        self.link.route(root, self._on_unit)
        self.link.subscribe(self.topics.all_status, 1)
        self.link.subscribe(self.topics.all_telemetry, 0)
        self.link.subscribe(self.topics.all_acks, 1)
        # Birth and documents again on every reconnect (retained state may be gone).
        self.link.on_connected.append(self.announce)

    def _status(self, state: Literal["online", "offline"], ts: float) -> bytes:
        """Birth, death or will: the session and the versions of the documents published."""
        return encode(
            HubStatus(
                state=state,
                session=self.session,
                ts=ts,
                policy=self.publisher.version("policy"),
                trust=self.publisher.version("trust"),
            )
        )

    def birth(self) -> None:
        """The retained birth."""
        self.link.publish(
            self.topics.hub_status, self._status("online", time.time()), 1, retain=True
        )

    def announce(self) -> None:
        self.publisher.publish(self.link)
        self.birth()

    def _on_unit(self, topic: str, payload: bytes, token: Any) -> None:
        self.link.ack(token)
        rest = topic[len(self.topics.root) + len("/units/") :]
        unit, _, leaf = rest.partition("/")
        if leaf == "status":
            self.fleet.on_status(unit, payload)
        elif leaf == "telemetry":
            self.fleet.on_telemetry(unit, payload)
        elif leaf == "acks":
            self.commands.on_ack(unit, payload)

    async def start(self) -> None:
        await self.link.connect()

    async def stop(self) -> None:
        """The retained death, acknowledged by the broker before the link closes: a clean
        disconnect discards the will, so a death lost here would leave "online" retained."""
        death = self._status("offline", time.time())
        self.link.publish(self.topics.hub_status, death, 1, retain=True)
        try:
            await self.link.drained(2.0)
        except TimeoutError as exc:
            # not confirmed: drop the connection without DISCONNECT so the broker, if it
            # is there at all, publishes the will ("offline") instead
            log.warning("hub death status not confirmed, leaving it to the will: %s", exc)
            self.link.abort()
            return
        await self.link.disconnect()


class CommandBody(msgspec.Struct, forbid_unknown_fields=True):
    cmd: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout: float = 10.0


_CMD = re.compile(r"[a-z_]{1,32}")


def create_app(cfg: HubConfig, *, presence: bool = True) -> FastAPI:
    from checkpost.hub.store import open_store

    fleet = Fleet()
    state: dict[str, Any] = {"store": None, "presence": None, "publisher": None}
    lock = threading.Lock()
    wake = asyncio.Event()  # set by SIGHUP: read the document files again now

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["store"] = open_store(cfg.db_url())
        task = None
        if presence:
            publisher = DocumentPublisher(cfg)
            await asyncio.to_thread(publisher.refresh, True)
            state["publisher"] = publisher
            p = Presence(cfg, fleet, publisher)
            loop = asyncio.get_running_loop()
            app.state.reload_documents = lambda: loop.call_soon_threadsafe(wake.set)
            try:
                await p.start()
                state["presence"] = p
            except (OSError, TimeoutError) as exc:
                log.error("API: broker unreachable (%s); fleet view and documents disabled", exc)
            if state["presence"] is not None:
                task = asyncio.ensure_future(
                    run_publisher(publisher, p.link, p.birth, wake, cfg.hub.documents_poll_s)
                )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if state["presence"] is not None:
                await state["presence"].stop()
            state["store"].close()

    app = FastAPI(title="checkpost hub", version="1", lifespan=lifespan)

    def store_call(fn: str, *args: Any) -> Any:
        with lock:
            store = state["store"]
            try:
                return getattr(store, fn)(*args)
            except store.retryable:  # e.g. the database restarted since the last request
                store.reconnect_if_broken()
                return getattr(store, fn)(*args)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness that means something: the store answers and the broker link is up."""
        try:
            store_call("one", "SELECT 1")
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
    def tube(code: Key) -> dict[str, Any]:
        found = store_call("tube", code)
        if found is None:
            raise HTTPException(404, f"tube {code} not known")
        return found

    @app.get("/api/v1/passes/{sid}")
    def passes(sid: Key) -> dict[str, Any]:
        return {"sid": sid, "seen": store_call("passes", sid)}

    @app.get("/api/v1/documents")
    def documents() -> dict[str, Any]:
        """The trust list and policy bundle the hub retains for the units (version, issue
        time, age, file, hash) and the last document it refused to publish, and why."""
        pub = state["publisher"]
        if pub is None:
            raise HTTPException(503, "document publisher not running (no broker link)")
        return pub.view()

    @app.post("/api/v1/units/{unit}/commands")
    async def command(unit: str, request: Request) -> Any:
        """Send a command (reload, set_log_level {level}, resend_status, sync_now) to one
        unit and wait for its acknowledgement. 200: acknowledged; 409: the unit refused
        it (the ack says why); 504: no ack within `timeout`; 422: a bad request."""
        if not is_unit_id(unit):
            raise HTTPException(422, f"bad unit id {unit!r} (expected [a-z0-9-]{{1,32}})")
        try:
            body = msgspec.json.decode(await request.body(), type=CommandBody)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise HTTPException(422, f"bad command body: {exc}") from None
        if not _CMD.fullmatch(body.cmd) or body.cmd not in COMMANDS:
            raise HTTPException(422, f"unknown command {body.cmd!r} (one of {', '.join(COMMANDS)})")
        if not 0 < body.timeout <= 60:
            raise HTTPException(422, "timeout must be between 0 and 60 s")
        p = state["presence"]
        if p is None or not p.link.connected.is_set():
            raise HTTPException(503, "no broker link: cannot send commands")
        req, ack = await p.commands.send(unit, body.cmd, body.args, body.timeout)
        view = ack_view(unit, req, body.cmd, ack, body.timeout)
        status = 504 if ack is None else 200 if ack.ok else 409
        return JSONResponse(view, status_code=status)

    app.state.fleet = fleet
    app.state.reload_documents = lambda: None
    return app


def api_main(cfg: HubConfig, host: str, port: int, log_level: str = "warning") -> None:
    """Process entry point of the API (multiprocessing target)."""
    import uvicorn

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(cfg)
    # SIGHUP (forwarded by the supervisor): read the trust list and policy files again now.
    # uvicorn handles SIGINT/SIGTERM only; without this, SIGHUP would end the process.
    signal.signal(signal.SIGHUP, lambda signum, frame: app.state.reload_documents())
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
