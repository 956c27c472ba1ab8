"""The station screen: FastAPI on the unit, one HTML page, updates by server-sent events.

One page (``page.html``: inline CSS and JS, no build step, no CDN — a unit at a highway
exit has no internet) serves the 800x480 kiosk and a phone on the same network. The page
opens ``/events`` and redraws on every message; the worker thread publishes a new state
after every input, and :class:`ScreenHub` hands the newest state to every open page
without queueing stale ones (a slow phone skips states, it never delays the kiosk).

Touch buttons post ``/api/tap`` ({action, args}); ``/api/scan`` takes a code typed by
hand (and lets tests and demos drive a station without a camera).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from importlib import resources
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

log = logging.getLogger("checkpost.edge.screen")


class ScreenHub:
    """Newest state, and a wake-up for each open event stream (coalescing, never queueing)."""

    def __init__(self) -> None:
        self.latest: bytes = b"{}"
        self.version = 0
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def publish(self, state: dict[str, Any]) -> None:
        data = msgspec.json.encode(state)
        with self._lock:
            self.latest = data
            self.version += 1
            subs = list(self._subs)
        for loop, ev in subs:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that page's loop is gone
                with self._lock:
                    self._subs.discard((loop, ev))

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        sub = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._subs.discard(sub)


class TapBody(msgspec.Struct):
    action: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class ScanBody(msgspec.Struct):
    text: str


def page_html() -> str:
    return resources.files("checkpost.edge.screen").joinpath("page.html").read_text("utf-8")


def make_app(unit: Any) -> FastAPI:
    from checkpost.edge.workflows import CodeRead, Tap

    hub: ScreenHub = unit.screen
    app = FastAPI(title=f"checkpost station {unit.unit_id}", docs_url=None, redoc_url=None)
    html = page_html()

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return html

    @app.get("/api/state")
    def state() -> Response:
        return Response(hub.latest, media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"unit": unit.unit_id, "station": unit.station, "ok": True}

    async def _body(request: Request, cls: type[Any]) -> Any:
        try:
            return msgspec.json.decode(await request.body(), type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @app.post("/api/tap")
    async def tap(request: Request) -> Any:
        body = await _body(request, TapBody)
        if isinstance(body, JSONResponse):
            return body
        ok = unit.submit(Tap(body.action, body.args), timeout=1.0)
        return JSONResponse({"queued": ok}, status_code=202 if ok else 503)

    @app.post("/api/scan")
    async def scan(request: Request) -> Any:
        body = await _body(request, ScanBody)
        if isinstance(body, JSONResponse):
            return body
        ok = unit.submit(CodeRead(body.text, "keypad"), timeout=1.0)
        return JSONResponse({"queued": ok}, status_code=202 if ok else 503)

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> Any:
            sub = hub.subscribe()
            seen = -1
            try:
                yield b"retry: 1000\n\n"
                while True:
                    if hub.version != seen:
                        seen = hub.version
                        yield b"data: " + hub.latest + b"\n\n"
                    sub[1].clear()
                    if hub.version != seen:
                        continue
                    try:
                        await asyncio.wait_for(sub[1].wait(), timeout=15.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                    if await request.is_disconnected():
                        break
            finally:
                hub.unsubscribe(sub)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app


class HttpServer:
    """uvicorn on a thread; ``stop()`` asks it to exit and waits (bounded)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="station-http", daemon=True)
        self.host, self.port = host, port

    def start(self) -> HttpServer:
        self.thread.start()
        for _ in range(200):  # bounded: 10 s
            if self.server.started:
                break
            if not self.thread.is_alive():
                raise RuntimeError(f"station page could not listen on {self.host}:{self.port}")
            self.thread.join(0.05)
        if self.server.started and self.port == 0:
            sock = self.server.servers[0].sockets[0]
            self.port = sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def serve(unit: Any, listen: str) -> HttpServer:
    host, _, port = listen.rpartition(":")
    if unit.screen is None:
        unit.screen = ScreenHub()
    server = HttpServer(make_app(unit), host or "127.0.0.1", int(port)).start()
    unit.push_screen(unit.clock())
    return server
