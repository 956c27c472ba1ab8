"""The unit's MQTT link: the outbox drained to the hub in order, results and commands back.

paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``) with its network loop on a thread, plus one
sender thread of ours. What this module promises and why:

- **Nothing travels that is not on disk first.** The sender publishes only rows of the
  outbox (QoS 1, in sequence order, at most ``window`` in flight) and forgets nothing: an
  event leaves the outbox only when the hub's Result for its id arrives (the hub answers
  after its own commit). paho's in-memory queue is never trusted with an event.
- **At-least-once, in order, batched on reconnect.** After every (re)connect, and whenever
  the hub announces a new session (it restarted and may have lost what was in flight), the
  sender starts again from the oldest undelivered event. An event without a result after
  ``resend_after`` seconds triggers the same replay. The hub stores by event id, so a
  replay is answered from its store (``dup``) and never counted twice.
- **Presence that cannot lie** (Sparkplug's bdSeq): the retained status carries a session
  number, persisted in the outbox file and incremented per connect; the last will carries
  the same number, so a late "offline" from an old session is recognisable as such.
- **TCP_NODELAY** on the socket after connect: without it a request/response stalls
  43-88 ms in Nagle + delayed ACK (MEASURED.md).
- Subscriptions are made in the connect callback, so a reconnect restores them.
- A malformed message is logged with its topic and dropped; processing goes on.
- Signed documents (``hub/policy``, ``hub/trust``, at gates ``hub/sealed``; up to
  ``MAX_DOCUMENT``) go to the agent as they are; the agent checks and applies them.
- Every command gets a CommandAck (``ok`` false with a reason for an unknown one); a
  command the agent runs on its worker thread (reload) is acknowledged when it is done.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import msgspec
from checkpost.edge.outbox import Outbox

from checkpost.protocol import (
    CommandAck,
    ProtocolError,
    Result,
    Topics,
    UnitStatus,
    decode_hub_status,
    decode_result,
    encode,
)
from checkpost.protocol.messages import MAX_DOCUMENT, MAX_PAYLOAD

log = logging.getLogger("checkpost.edge.link")

# Events whose hub rule reads state an earlier event of the same unit creates (docs/protocol.md:
# "a unit must not send an event that depends on another before it has that event's result").
# Scans, readings and vehicle_open stand alone and are pipelined.
DEPENDENT_KINDS = frozenset(
    {
        "vehicle_close",
        "vehicle_turn_back",
        "override",
        "tube_open",
        "tube_add",
        "tube_close",
        "box_open",
        "box_add",
        "box_seal",
        "handover",
        "undo",
    }
)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://host:port`` or ``mqtts://user:pass@host:port`` (or a bare ``host:port``)."""
        if "://" not in url:
            url = "mqtt://" + url
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not u.hostname:
            raise ValueError(f"broker URL {url!r}: no host")
        tls = u.scheme in ("mqtts", "ssl")
        return cls(u.hostname, u.port or (8883 if tls else 1883), tls, u.username, u.password)


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """A hub command as the unit reads it. Lenient on `cmd` (the protocol's Literal plus
    the unit's own: set_log_level, reload, resend_status, sync_now) so an unknown command
    is answered with a clear error instead of being dropped as malformed."""

    v: int = 1
    req: str
    cmd: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    at: float = 0.0


_command_decoder = msgspec.json.Decoder(Command)


class Link:
    """One broker connection for one unit. Callbacks run on paho's thread: keep them short
    (the agent's callbacks only enqueue)."""

    def __init__(
        self,
        unit: str,
        outbox: Outbox,
        broker: str,
        *,
        station: str,
        root: str = "checkpost/v1",
        on_result: Callable[[Result], None] = lambda r: None,
        # -> error ("" = ok), or (error, detail), or a Future of (error, detail)
        on_command: Callable[[str, dict[str, Any]], Any] = lambda c, a: f"unknown command {c}",
        on_document: Callable[[str, bytes], None] = lambda kind, payload: None,
        documents: tuple[str, ...] = ("policy", "trust"),
        on_change: Callable[[], None] = lambda: None,
        status_info: Callable[[], dict[str, str]] = dict,
        window: int = 256,
        resend_after: float = 10.0,
        keepalive: int = 10,
        client_id: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.unit = unit
        self.outbox = outbox
        self.address = BrokerAddress.parse(broker)
        self.station = station
        self.topics = Topics(root)
        self.on_result = on_result
        self.on_command = on_command
        self.on_document = on_document
        # Retained documents the hub publishes that this unit follows: topic -> kind
        # ("sealed" only at gates). Each goes to `on_document` as it is.
        by_kind = {
            "policy": self.topics.hub_policy,
            "trust": self.topics.hub_trust,
            "sealed": self.topics.hub_sealed,
        }
        self._documents = {by_kind[kind]: kind for kind in documents}
        self.on_change = on_change
        self.status_info = status_info
        self.window = window
        self.resend_after = resend_after
        self.keepalive = keepalive
        self.connected = False
        self.hub_online = False
        self.hub_session: int | None = None
        self.hub_clock_offset: float | None = None  # hub clock - unit clock, from results
        self.session = 0
        self.published = 0
        self.results = 0
        self.replays = 0
        self.held_back = 0  # times a dependent event waited for earlier results
        self.last_result_at: float | None = None
        self.rtt_ms: float | None = None
        self._inflight: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> (seq, sent)
        self._last_seq = 0
        self._replay = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sender: threading.Thread | None = None
        self._mqtt = mqtt
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"unit-{unit}",
            clean_session=True,
        )
        if self.address.username:
            self.client.username_pw_set(
                self.address.username, self.address.password or _credential("mqtt-password")
            )
        if self.address.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(max(20, window))
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """The hub can answer now: connected, and either the hub's birth is the latest word
        on ``hub/status`` or (no status seen at all) its results arrived recently."""
        if not self.connected:
            return False
        if self.hub_online:
            return True
        if self.hub_session is not None:  # the hub's will said it is gone
            return False
        return self.last_result_at is not None and time.time() - self.last_result_at < 30.0

    def start(self) -> None:
        self._new_session()
        self.client.connect_async(self.address.host, self.address.port, self.keepalive)
        self.client.loop_start()
        self._sender = threading.Thread(
            target=self._send_loop, name=f"link-{self.unit}", daemon=True
        )
        self._sender.start()

    def stop(self, *, graceful: bool = True) -> None:
        """Publish "offline" (graceful) and disconnect; undelivered events stay on disk."""
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=5)
        if graceful and self.connected:
            try:
                info = self.client.publish(
                    self.topics.status(self.unit), self._status("offline"), qos=1, retain=True
                )
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def kick(self) -> None:
        """New events are in the outbox: send them now rather than at the next poll."""
        self._wake.set()

    def sync_now(self) -> None:
        """Replay everything undelivered from the oldest (command `sync_now`/`flush_outbox`)."""
        self._replay.set()
        self._wake.set()

    def refetch_documents(self) -> None:
        """Subscribe to the document topics again: the broker sends the retained documents
        once more (command `sync_now`); the one held already is a no-op."""
        if self.connected:
            self.client.subscribe([(topic, 1) for topic in self._documents])

    # -- status and telemetry ---------------------------------------------------------------

    def _new_session(self) -> None:
        self.session = self.outbox.bump("mqtt_session")
        self.client.will_set(
            self.topics.status(self.unit), self._status("offline"), qos=1, retain=True
        )

    def _status(self, state: str) -> bytes:
        info = self.status_info()
        return encode(
            UnitStatus(
                unit=self.unit,
                state=state,  # type: ignore[arg-type]
                session=self.session,
                station=self.station,  # type: ignore[arg-type]
                ts=time.time(),
                policy=str(info.get("policy", ""))[:64],
                trust=str(info.get("trust", ""))[:64],
                agent=str(info.get("agent", ""))[:64],
            )
        )

    def publish_status(self, state: str = "online") -> None:
        if self.connected:
            self.client.publish(
                self.topics.status(self.unit), self._status(state), qos=1, retain=True
            )

    def publish_telemetry(self, payload: bytes) -> None:
        if self.connected:
            self.client.publish(self.topics.telemetry(self.unit), payload, qos=0)

    # -- paho callbacks ---------------------------------------------------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("broker refused the connection: %s", rc)
            return
        sock = client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        t = self.topics
        client.subscribe(
            [
                (t.results(self.unit), 1),
                (t.commands(self.unit), 1),
                (t.hub_status, 1),
                *((topic, 1) for topic in self._documents),
            ]
        )
        self.connected = True
        client.publish(t.status(self.unit), self._status("online"), qos=1, retain=True)
        log.info(
            "connected to %s:%s (session %d)", self.address.host, self.address.port, self.session
        )
        self._replay.set()
        self._wake.set()
        self.on_change()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        was = self.connected
        self.connected = False
        if was:
            log.info("disconnected from the broker: %s", rc)
        if not self._stop.is_set():
            # The next connection is a new session: its will must carry the new number.
            try:
                self._new_session()
            except Exception as exc:  # the outbox may be on a full disk; keep the old one
                log.warning("session number not advanced: %s", exc)
        self.on_change()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        topic, payload = msg.topic, msg.payload
        t = self.topics
        try:
            document = self._documents.get(topic)
            limit = MAX_PAYLOAD if document is None else MAX_DOCUMENT
            if len(payload) > limit:
                raise ProtocolError("too_large", f"{len(payload)} bytes > {limit}")
            if topic == t.results(self.unit):
                self._handle_result(decode_result(payload))
            elif topic == t.commands(self.unit):
                self._handle_command(payload)
            elif topic == t.hub_status:
                self._handle_hub_status(payload)
            elif document is not None:
                self.on_document(document, payload)
        except (ProtocolError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("bad message on %s dropped: %s", topic, exc)
        except Exception:  # a bug in a handler must not kill paho's thread
            log.exception("error handling a message on %s", topic)

    def _handle_result(self, result: Result) -> None:
        now = time.time()
        with self._lock:
            sent = self._inflight.pop(result.id, None)
        if sent is not None:
            self.rtt_ms = (now - sent[1]) * 1000.0
        if result.at:
            self.hub_clock_offset = result.at - now
        self.outbox.ack([result.id])
        self.results += 1
        self.last_result_at = now
        self.on_result(result)
        self._wake.set()

    def _handle_hub_status(self, payload: bytes) -> None:
        if not payload:  # retained status cleared
            self.hub_online = False
            self.on_change()
            return
        hs = decode_hub_status(payload)
        if hs.state == "online":
            came_back = not self.hub_online or hs.session != self.hub_session
            self.hub_online, self.hub_session = True, hs.session
            if came_back:
                # A (re)born hub: tell it who we are again and replay what it has not answered.
                self.publish_status()
                self.sync_now()
        elif self.hub_session is None or hs.session == self.hub_session:
            self.hub_online = False  # a will from an older hub session changes nothing
        self.on_change()

    def _handle_command(self, payload: bytes) -> None:
        try:
            cmd = _command_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("bad command dropped: %s", exc)
            return
        log.info("command %s (req %s) %s", cmd.cmd, cmd.req, cmd.args or "")
        if cmd.v != 1:
            self._ack(cmd, f"protocol version {cmd.v} not supported")
            return
        try:
            reply = self.on_command(cmd.cmd, cmd.args)
        except Exception as exc:
            log.exception("command %s failed", cmd.cmd)
            self._ack(cmd, f"{type(exc).__name__}: {exc}")
            return
        if isinstance(reply, Future):  # done on the agent's worker thread: ack when done

            def done(fut: Future[Any]) -> None:
                try:
                    self._ack(cmd, *_reply(fut.result()))
                except Exception as exc:
                    self._ack(cmd, f"{type(exc).__name__}: {exc}")

            reply.add_done_callback(done)
            return
        self._ack(cmd, *_reply(reply))

    def _ack(self, cmd: Command, error: str, detail: dict[str, Any] | None = None) -> None:
        if error:
            log.warning("command %s (req %s) refused: %s", cmd.cmd, cmd.req, error)
        ack = CommandAck(
            req=cmd.req,
            unit=self.unit,
            ok=not error,
            error=error[:500],
            cmd=cmd.cmd[:64],
            detail=detail or {},
            at=time.time(),
        )
        self.client.publish(self.topics.acks(self.unit), encode(ack), qos=1)

    # -- the sender -------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if not self.connected:
                continue
            try:
                self._send_some()
            except Exception:
                log.exception("sender error")
                self._stop.wait(0.5)

    def _send_some(self) -> None:
        now = time.time()
        with self._lock:
            stale = (
                bool(self._inflight)
                and now - next(iter(self._inflight.values()))[1] > self.resend_after
            )
            if self._replay.is_set() or stale:
                self._replay.clear()
                if self._inflight or stale:
                    self.replays += 1
                self._inflight.clear()
                self._last_seq = 0
            room = self.window - len(self._inflight)
            after = self._last_seq
        if room <= 0:
            return
        rows = self.outbox.pending(limit=room, after_seq=after)
        topic = self.topics.events(self.unit)
        for row in rows:
            if not self.connected:
                return
            if row.kind in DEPENDENT_KINDS and self._inflight:
                # Protocol rule: an event that depends on earlier ones (a tube_add after its
                # tube_open) waits until they are answered — with several hub workers two
                # events of one unit may otherwise be handled out of order. A result wakes us.
                self.held_back += 1
                return
            with self._lock:
                self._inflight[row.id] = (row.seq, time.time())
                self._last_seq = row.seq
            info = self.client.publish(topic, row.body, qos=1)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                # Not connected after all: the row stays in the outbox; replay on connect.
                self._replay.set()
                return
            self.published += 1
        if len(rows) == room:
            self._wake.set()  # more waiting: go on as soon as the window allows

    def inflight(self) -> int:
        return len(self._inflight)


def _reply(reply: Any) -> tuple[str, dict[str, Any]]:
    """An on_command answer as (error, detail)."""
    if isinstance(reply, tuple):
        return str(reply[0] or ""), dict(reply[1] or {})
    return str(reply or ""), {}


def _credential(name: str) -> str | None:
    """A secret systemd passed with LoadCredential= (never in the config file)."""
    import os

    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None
