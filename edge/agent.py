"""The station unit: devices → workflow → outbox → (screen, outputs, link), on one thread.

Every input (a code from the camera or a scanner, a thermometer reading, a tap on the
screen, a hub result, a pushed document, a tick) goes through one queue and one worker
thread, so the workflow needs no locks and inputs are handled in arrival order. For each:

1. the workflow computes a Step from its state (pure, see ``workflows.common``);
2. the Step's events are committed to the outbox — if the outbox refuses (limit reached,
   disk full), the workflow is restored to its snapshot and the refusal is shown: state
   never runs ahead of what is on disk;
3. outputs are driven (LED, buzzer, relay), the local audit is journalled, the screen
   state is pushed to the station page, and the link is woken to send.

Device threads (camera + decoder, scanner, thermometer poller) and the link's threads
only put inputs on the queue. The queue is bounded; a full queue blocks the producer (a
camera then drops frames, which is what it should do under overload), never an event.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkpost.edge.config import EdgeConfig
from checkpost.edge.outbox import Outbox, OutboxError
from checkpost.edge.workflows import (
    CodeRead,
    DeviceState,
    Notice,
    Reading,
    Step,
    Tick,
    Workflow,
    make_workflow,
)

from checkpost.documents import AlreadyApplied, DocumentError, Documents, write_cache
from checkpost.protocol import Result
from checkpost.reasons import reason
from checkpost.runtime import Context

log = logging.getLogger("checkpost.edge.agent")
AGENT_VERSION = "checkpost-edge/0.1"


@dataclass(frozen=True, slots=True)
class HubResult:
    result: Result


@dataclass(frozen=True, slots=True)
class PushedDocument:
    kind: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class PushedList:
    """A list the hub publishes retained under ``<root>/hub/…`` (the gate's sealed list)."""

    kind: str
    payload: bytes
    cached: bool = False  # read back from the unit's own cache at start


@dataclass(frozen=True, slots=True)
class Control:
    """Work for the worker thread from a hub command (runs in order with scans)."""

    fn: Callable[[], None]


class LatencyWindow:
    """Last N latencies (ms) for telemetry and the screen; percentiles on demand."""

    def __init__(self, n: int = 512) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, ms: float) -> None:
        self.values.append(ms)

    def pct(self, q: float) -> float | None:
        if not self.values:
            return None
        s = sorted(self.values)
        return s[min(len(s) - 1, int(q * len(s)))]


class Unit:
    """One station unit. ``start()`` runs it; ``process()`` handles one input synchronously
    (tests and the benchmark call it directly, without the worker thread)."""

    def __init__(
        self,
        cfg: EdgeConfig,
        *,
        ctx: Context | None = None,
        clock: Callable[[], float] = time.time,
        base: Path | None = None,
    ) -> None:
        from checkpost.codes.trust import load_public_key
        from checkpost.runtime import build_context

        self.cfg = cfg
        self.clock = clock
        self.unit_id = cfg.unit.id
        self.station = cfg.unit.station
        self.data_dir = Path(cfg.unit.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.base = base or Path.cwd()
        if ctx is None:
            ctx = build_context(cfg.core, issuer_dir=cfg.issuer_dir, base=self.base)
        trust_keys = [load_public_key(self._rel(k)) for k in cfg.trust.signer_keys]
        policy_keys = [load_public_key(self._rel(k)) for k in cfg.policy.signer_keys]
        if cfg.issuer_dir is not None:
            from checkpost.issuer import TestIssuer

            trust_keys.append(TestIssuer.load(cfg.issuer_dir).trust_key.public_key())
        self.documents = Documents(
            ctx,
            self.data_dir,
            trust_keys=trust_keys,
            policy_keys=policy_keys or trust_keys,
            accept_demo=cfg.trust.accept_demo or cfg.issuer_dir is not None,
            trust_max_age_h=cfg.trust.max_age_hours,
        )
        self.documents.load_cached()
        ctx = self.documents.context
        self.outbox = Outbox(
            self.data_dir / "outbox.db",
            max_events=cfg.outbox.max_events,
            max_bytes=int(cfg.outbox.max_mb * 1024 * 1024),
        )
        self.workflow: Workflow = make_workflow(
            self.station, self.unit_id, ctx.verifier, ctx.policy, **self._workflow_options()
        )
        self._lists = ("sealed",) if self.station == "gate" else ()
        for kind in self._lists:  # the newest list seen, until the hub's arrives
            cached = self.data_dir / f"{kind}-list.json"
            if cached.exists():
                self._apply_list(PushedList(kind, cached.read_bytes(), cached=True), clock())
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2000)
        self.link: Any = None
        self.io: Any = None  # hardware StationIO
        self.camera: Any = None
        self.decoder: Any = None
        self.thermometer: Any = None
        self.thermo_sim: Any = None
        self.scanner: Any = None
        self.screen: Any = None  # checkpost.edge.screen.ScreenHub
        self.http_server: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._thermo_used_at = 0.0
        self._thermo_status = ""
        self.latency = LatencyWindow()
        self.decode_ms = LatencyWindow()
        self.decoded = 0
        self.frames = 0
        self.started_at = clock()
        self.processed = 0
        self.refused = 0
        self.last_state: dict[str, Any] = {}
        self.stages: dict[str, float] = {}  # the last input's stage times (benchmark)
        self.last_events: list[Any] = []
        self.last_telemetry: Any = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.result_listeners: list[Callable[[Result], None]] = []
        self.event_listeners: list[Callable[[list[Any]], None]] = []
        from checkpost.service import Watchdog

        self.watchdog = Watchdog()
        self.last_frame_at = time.monotonic()

    def _rel(self, p: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else self.base / path)

    def _workflow_options(self) -> dict[str, Any]:
        c = self.cfg
        staff = c.unit.staff
        if self.station == "checkpoint":
            return {
                "thermometer": c.thermometer.source != "none",
                "window_s": c.thermometer.window_s,
                "shift_hours": c.checkpoint.shift_hours,
                "staff": staff,
                "directions": tuple(c.checkpoint.directions),
            }
        if self.station == "gate":
            return {
                "direction": c.gate.direction,
                "relay_ms": c.gate.relay_ms,
                "thermometer": c.thermometer.source != "none",
                "window_s": c.thermometer.window_s,
            }
        if self.station == "sampling":
            s = c.sampling
            return {
                "table": s.table or self.unit_id,
                "round_name": s.round,
                "pool": s.pool,
                "auto_close": s.auto_close,
                "tube_labels": s.tube_labels,
                "box_labels": s.box_labels,
                "utc_offset_h": s.utc_offset_h,
                "staff": staff,
                "manual_key": s.manual_key,
            }
        return {"staff": staff}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, devices: bool = True, http: bool = True, worker: bool = True) -> Unit:
        if self.cfg.link.broker != "none":
            from checkpost.edge.link import Link

            self.link = Link(
                self.unit_id,
                self.outbox,
                self.cfg.link.broker,
                station=self.station,
                root=self.cfg.link.root,
                on_result=lambda r: self.submit(HubResult(r)),
                on_command=self._on_command,
                on_document=self._on_document,
                documents=("policy", "trust", *self._lists),
                on_change=lambda: self.submit(Tick()),
                status_info=self.status_info,
                window=self.cfg.link.window,
                resend_after=self.cfg.link.resend_after_s,
            )
            self.link.start()
        if devices:
            from checkpost.edge import devices as dev

            dev.open_devices(self)
        if http and self.cfg.http.listen not in ("", "none"):
            from checkpost.edge.screen import serve

            self.http_server = serve(self, self.cfg.http.listen)
        if worker:  # the benchmark drives process() itself, on its own thread
            self._spawn(self._worker, "worker")
        from checkpost.edge.telemetry import telemetry_loop

        self._spawn(lambda: telemetry_loop(self, self._stop), "telemetry")
        return self

    def _on_document(self, kind: str, payload: bytes) -> None:
        """On the link's thread: a retained document, to the worker thread."""
        if kind in self._lists:
            if payload:  # an empty retained message only clears the topic
                self.submit(PushedList(kind, payload))
        else:
            self.submit(PushedDocument(kind, payload))

    def _apply_list(self, inp: PushedList, now: float) -> Step:
        wf = self.workflow
        if inp.kind != "sealed" or not hasattr(wf, "on_sealed_document"):
            return Step()
        step: Step = wf.on_sealed_document(inp.payload, self.documents.trust_keys, now)
        if not inp.cached and any(j[0] == "sealed_list_applied" for j in step.journal):
            write_cache(self.data_dir / f"{inp.kind}-list.json", inp.payload)
        return step

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=fn, name=f"{self.unit_id}-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop threads, leave outputs safe, close the outbox. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        from checkpost.edge import devices as dev

        dev.close_devices(self)
        for t in self._threads:
            t.join(timeout=5)
        if self.http_server is not None:
            self.http_server.stop()
        if self.link is not None:
            self.link.stop()
        self.outbox.close()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    # -- inputs -----------------------------------------------------------------------------

    def submit(self, inp: Any, timeout: float = 5.0) -> bool:
        """Queue an input for the worker; False when the unit is stopping or overloaded."""
        if self._stop.is_set():
            return False
        try:
            self.queue.put(inp, timeout=timeout)
            return True
        except queue.Full:
            log.warning("input queue full: %s dropped", type(inp).__name__)
            return False

    def _worker(self) -> None:
        tick_every = 0.25
        next_tick = time.monotonic() + tick_every
        while not self._stop.is_set():
            try:
                inp = self.queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                inp = Tick()
            if isinstance(inp, Tick):
                next_tick = time.monotonic() + tick_every
                self._poll_thermometer()
            try:
                self.process(inp)
            except Exception:  # a bug must not stop the station: log, show, go on
                log.exception("error processing %s", type(inp).__name__)
                continue
            # systemd's watchdog is fed from real progress only: the worker handled an input
            # and, where a camera is configured, frames still arrive.
            if self.camera is None or time.monotonic() - self.last_frame_at < 10.0:
                self.watchdog.progress()

    def process(self, inp: Any, t_in: float | None = None) -> dict[str, Any]:
        """Handle one input; returns the screen state pushed after it."""
        t0 = time.perf_counter() if t_in is None else t_in
        self.stages = {}
        now = self.clock()
        wf = self.workflow
        wf.online = self.link is not None and self.link.online
        if isinstance(inp, HubResult):
            step = wf.on_result(inp.result, now)
            for fn in self.result_listeners:
                fn(inp.result)
        elif isinstance(inp, PushedDocument):
            self._apply_document(inp)
            return self.push_screen(now)
        elif isinstance(inp, Control):
            inp.fn()
            return self.push_screen(now)
        elif isinstance(inp, PushedList):
            step = self._apply_list(inp, now)
        else:
            if isinstance(inp, CodeRead) and self.thermometer is not None:
                self._bind_latest_reading()
            snap = wf.snapshot()
            step = wf.handle(inp, now)
            t_decided = time.perf_counter()
            self.stages["verdict_ms"] = (t_decided - t0) * 1000.0
            if step.events:
                try:
                    self.outbox.put(step.events, now=now)
                except OutboxError as exc:
                    wf.restore(snap)
                    wf.notice = Notice("error", reason("outbox_full"))
                    self.refused += 1
                    log.error("work refused: %s", exc)
                    return self.push_screen(now, alarm=str(exc))
            if not isinstance(inp, Tick):
                self.processed += 1
            for fn in self.event_listeners:  # after the commit: these events are durable
                fn(step.events)
        t_stored = time.perf_counter()
        self.stages["store_ms"] = (t_stored - t0) * 1000.0 - self.stages.get("verdict_ms", 0.0)
        self._drive(step.outputs)
        for kind, target, detail in step.journal:
            self.outbox.journal(kind, target, detail, now=now)
        if step.events and self.link is not None:
            self.link.kick()
        state = self.push_screen(now)
        self.stages["screen_ms"] = (time.perf_counter() - t_stored) * 1000.0
        self.last_events = step.events
        if isinstance(inp, CodeRead) and step.events:
            self.latency.add((time.perf_counter() - t0) * 1000.0)
        return state

    # -- devices ----------------------------------------------------------------------------

    def _bind_latest_reading(self) -> None:
        """A code was read: the thermometer's newest reading (within its max age) goes in
        first, so the workflow binds it to this person."""
        r = self.thermometer.latest()
        if r is not None and r.at > self._thermo_used_at:
            self._thermo_used_at = r.at
            self._handle_direct(Reading(r.celsius, self.cfg.thermometer.source))

    def _handle_direct(self, inp: Any) -> None:
        wf = self.workflow
        snap = wf.snapshot()
        step = wf.handle(inp, self.clock())
        if step.events:
            try:
                self.outbox.put(step.events)
            except OutboxError:
                wf.restore(snap)
                return
        self._drive(step.outputs)

    def _poll_thermometer(self) -> None:
        t = self.thermometer
        if t is None:
            return
        status = t.status()
        if status != self._thermo_status:
            was = self._thermo_status
            self._thermo_status = status
            if status == "unplugged" or (was == "unplugged" and status != "unplugged"):
                self.process(DeviceState("thermometer", status != "unplugged", status))
        cur = getattr(self.workflow, "current", None)
        stage = getattr(cur, "stage", None)
        if stage in ("measuring", "remeasure"):
            r = t.latest()
            gap = self.cfg.thermometer.remeasure_gap_s if stage == "remeasure" else 0.0
            if r is not None and r.at > self._thermo_used_at + gap:
                self._thermo_used_at = r.at
                self.process(Reading(r.celsius, self.cfg.thermometer.source))

    def _drive(self, outputs: list[Any]) -> None:
        io = self.io
        if io is None:
            return
        for o in outputs:
            try:
                if o.device == "led":
                    io.show({"green": "pass", "red": "fail", "amber": "review"}.get(o.value))
                elif o.device == "buzzer":
                    io.buzz(
                        {"ok": "pass", "done": "pass", "error": "fail"}.get(o.value, "remeasure")
                    )
                elif o.device == "relay":
                    io.pulse_gate(o.ms / 1000.0)
            except Exception as exc:  # a GPIO fault is shown, it never stops the decision
                log.error("output %s failed: %s", o, exc)

    # -- hub commands -----------------------------------------------------------------------

    def _on_command(self, cmd: str, args: dict[str, Any]) -> Any:
        """Runs on the link's thread: quick checks here, the work on the worker thread.
        Returns the error ("" = done), or (error, detail), or a Future of (error, detail)
        that the link acknowledges when the worker has done it (docs/protocol.md)."""
        link = self.link
        if cmd in ("rebirth", "resend_status"):
            if link is not None:
                link.publish_status()
            self.send_telemetry_now()
            return "", {"session": None if link is None else link.session, **self.status_info()}
        if cmd in ("flush_outbox", "sync_now"):
            if link is not None:
                link.sync_now()
                link.refetch_documents()
            return "", {"outbox": self.outbox.stats().depth}
        if cmd == "set_log_level":
            level = str(args.get("level", "")).upper()
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                return f"unknown log level {level!r} (DEBUG, INFO, WARNING or ERROR)"
            logging.getLogger("checkpost").setLevel(level)
            return "", {"level": level}
        if cmd in ("reload", "reload_policy", "reload_trust"):
            from concurrent.futures import Future

            fut: Future[tuple[str, dict[str, Any]]] = Future()

            def reload() -> None:
                try:
                    fut.set_result(self._reload())
                except Exception as exc:  # answered, and the worker goes on
                    fut.set_result((f"reload failed: {type(exc).__name__}: {exc}", {}))
                    raise

            if not self.submit(Control(reload), timeout=2.0):
                return "unit busy or stopping: reload not queued"
            return fut
        if cmd == "set_list":
            name = str(args.get("name", ""))
            items = args.get("items")
            version = str(args.get("version", ""))
            if name == "sealed" and self.station == "gate" and isinstance(items, list):
                self.submit(
                    Control(lambda: self.workflow.set_sealed([str(i) for i in items], version))
                )  # type: ignore[attr-defined]
                return ""
            if name == "manifest" and self.station == "transfer" and isinstance(items, dict):
                self.submit(Control(lambda: self.workflow.set_manifest(items, version)))  # type: ignore[attr-defined]
                return ""
            return f"list {name!r} does not apply to a {self.station} station"
        return (
            f"unknown command {cmd!r} "
            "(this unit knows reload, set_log_level, resend_status, sync_now, set_list)"
        )

    def _reload(self) -> tuple[str, dict[str, Any]]:
        """Command `reload`: the configured trust list and policy again, then the cached
        pushed ones where newer. On an error the current documents stay in use."""
        from checkpost.runtime import build_context

        try:
            ctx = build_context(self.cfg.core, issuer_dir=self.cfg.issuer_dir, base=self.base)
        except ValueError as exc:
            log.error("reload failed, keeping the current documents: %s", exc)
            return f"reload failed, current documents kept: {exc}", {}
        self.documents.reset(ctx)
        self.documents.load_cached()
        ctx = self.documents.context
        self.workflow.set_context(ctx.verifier, ctx.policy)
        if self.link is not None:
            self.link.publish_status()
        return "", {"policy": ctx.policy.version, "trust": str(ctx.trust.version)}

    def send_telemetry_now(self) -> None:
        """One telemetry message now (command `resend_status`), besides the periodic ones."""
        if self.link is None:
            return
        import msgspec
        from checkpost.edge.telemetry import collect

        t = collect(self, self.clock(), {})
        self.last_telemetry = t
        self.link.publish_telemetry(msgspec.json.encode(t))

    def _apply_document(self, doc: PushedDocument) -> None:
        try:
            changed = self.documents.apply(doc.kind, doc.payload)
        except AlreadyApplied:
            return  # the retained document seen again (reconnect, sync_now)
        except DocumentError as exc:
            self.outbox.journal("document_refused", doc.kind, {"why": str(exc)})
            return
        if changed:
            ctx = self.documents.context
            self.workflow.set_context(ctx.verifier, ctx.policy)
            self.outbox.journal("document_applied", doc.kind, self.documents.summary(self.clock()))
            if self.link is not None:
                self.link.publish_status()

    # -- state for the screen, status and telemetry -----------------------------------------

    def status_info(self) -> dict[str, str]:
        ctx = self.documents.context
        return {
            "policy": ctx.policy.version,
            "trust": str(ctx.trust.version),
            "agent": AGENT_VERSION,
        }

    def health(self, now: float) -> dict[str, Any]:
        link = self.link
        ob = self.outbox.stats()
        docs = self.documents.summary(now)
        cam = None
        if self.camera is not None:
            h = self.camera.health()
            cam = {
                "state": h.state,
                "fps": round(h.fps, 1),
                "last_frame_age_s": None
                if h.last_frame_age_s is None
                else round(h.last_frame_age_s, 2),
                "too_dark": h.too_dark,
                "error": h.error,
            }
        return {
            "hub": {
                "configured": link is not None,
                "connected": bool(link and link.connected),
                "online": bool(link and link.online),
                "rtt_ms": None if link is None or link.rtt_ms is None else round(link.rtt_ms, 1),
            },
            "queue": {
                "depth": ob.depth,
                "oldest_age_s": None
                if ob.oldest_created is None
                else round(now - ob.oldest_created, 1),
                "alarm": ob.alarm,
                "warn": ob.warn,
            },
            "camera": cam,
            "thermometer": None if self.thermometer is None else self._thermo_status or "starting",
            "scanner": None
            if self.scanner is None
            else ("ok" if getattr(self.scanner, "connected", True) else "unplugged"),
            "clock": {
                "now": now,
                "offset_s": None
                if link is None or link.hub_clock_offset is None
                else round(link.hub_clock_offset, 3),
            },
            "documents": docs,
        }

    def push_screen(self, now: float, alarm: str = "") -> dict[str, Any]:
        state = self.workflow.screen(now)
        state["unit"] = self.unit_id
        state["health"] = self.health(now)
        if alarm:
            state["health"]["queue"]["alarm"] = alarm
        if self.documents.trust_stale(now):
            r = reason("trust_stale", hours=int(self.documents.trust_age_h(now) or 0))
            state["stale"] = {"code": r.code, "en": r.en, "zh": r.zh}
        else:
            state["stale"] = None
        self.last_state = state
        if self.screen is not None:
            self.screen.publish(state)
        for fn in self.listeners:
            fn(state)
        return state
