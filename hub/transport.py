"""The hub's one MQTT module: every broker connection the hub makes goes through `Link`.

Client choice (measured here, see `checkpost bench hub` baselines and MEASURED.md): gmqtt
(asyncio) does ~14k request/response round trips/s against paho's ~9.5k, and its reader
and our loop share one thread instead of fighting over the GIL. Units keep paho; the wire
protocol is the same.

Three things gmqtt does not give us directly, done here:
- TCP_NODELAY on the socket (asyncio usually sets it; we set it explicitly, because
  Nagle + delayed ACK stalls request/response traffic by 40-90 ms);
- acknowledging a QoS 1 message only after our own commit. gmqtt's public path for that
  is one asyncio task per message; instead the QoS 1 handler is replaced with a plain
  callback that receives the packet id, and `ack(token)` sends the PUBACK later. A token
  carries the connection generation: after a reconnect the broker re-sends what was not
  acknowledged, and an old packet id must never acknowledge a new message;
- a fast path for the packets of the hot loop (`_fast_reader`, `Link.publish`): QoS 0/1
  PUBLISH without properties, PUBACKs of our own publishes, and the PUBLISH / PUBACK
  packets we send are parsed and built here in a few byte operations (gmqtt builds
  packet objects and property dicts and makes eight debug-log calls per event; in
  `checkpost bench hub` the raw broker round trip went 24k -> 30k/s and sampling events
  8.1k -> 8.5k/s, runs minutes apart). Everything else (CONNECT,
  SUBSCRIBE, pings, packets with properties, anything unexpected) still goes through
  gmqtt, in arrival order. Our QoS 1 publishes also follow MQTT 5 flow control: at most
  the broker's receive maximum unacknowledged (Mosquitto announces 20 by default; past
  it gmqtt raised OverflowError), the rest wait in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger("checkpost.hub.transport")

# (topic, payload, token) -> None; token is None for QoS 0, else pass it to `ack`.
Handler = Callable[[str, bytes, Any], None]


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        if "://" not in url:
            url = "mqtt://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported broker scheme {parts.scheme!r} (use mqtt://host:port)")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


def set_nodelay(client: Any) -> bool:
    try:
        sock = client._connection._transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except (AttributeError, OSError):  # pragma: no cover - gmqtt internals changed
        log.warning("could not set TCP_NODELAY on the broker socket")
        return False


class Link:
    """One MQTT 5 connection with manual acknowledgement of QoS 1 deliveries."""

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        *,
        clean: bool = True,
        session_expiry: int = 0,
        receive_maximum: int = 1000,
        will: tuple[str, bytes, int, bool] | None = None,
        keepalive: int = 30,
    ) -> None:
        from gmqtt import Client, Message

        self.url = BrokerUrl.parse(url)
        self.client_id = client_id or f"checkpost-{uuid.uuid4().hex[:12]}"
        kwargs: dict[str, Any] = {"receive_maximum": receive_maximum}
        if session_expiry:
            kwargs["session_expiry_interval"] = session_expiry
        will_msg = Message(will[0], will[1], qos=will[2], retain=will[3]) if will else None
        self.client = Client(
            self.client_id,
            clean_session=clean,
            optimistic_acknowledgement=False,
            will_message=will_msg,
            logger=logging.getLogger("checkpost.hub.gmqtt"),
            **kwargs,
        )
        self.client.set_config({"reconnect_retries": 1_000_000, "reconnect_delay": 1})
        if self.url.username:
            self.client.set_auth_credentials(self.url.username, self.url.password)
        self.keepalive = keepalive
        self.generation = 0
        self.connected = asyncio.Event()
        self._routes: list[tuple[str, Handler]] = []
        self._subs: list[tuple[str, int]] = []
        # called on every (re)connect, after subscriptions are restored
        self.on_connected: list[Callable[[], None]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_qos0
        handler = self.client._package_handler
        handler._handle_qos_1_publish_packet = self._on_qos1
        self._handler = handler
        self._acks: list[Any] = []
        self._corked: tuple[Any, list[bytes]] | None = None
        # The live connection's protocol (what the fast path writes to), our QoS 1
        # publishes awaiting their PUBACK (mid -> packet, sent again after a reconnect),
        # and those waiting for a connection or for room under the broker's receive
        # maximum (MQTT 5 flow control: at most that many unacknowledged at once).
        self._proto: Any = None
        self._inflight: dict[int, bytes] = {}
        self._waiting: deque[tuple[int, bytes, bytes]] = deque()
        self.dropped = 0  # publishes dropped: QoS 0 while disconnected, or waiting overflow

    # -- connection --------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> None:
        from gmqtt.mqtt.constants import MQTTv50

        await asyncio.wait_for(
            self.client.connect(
                self.url.host, self.url.port, keepalive=self.keepalive, version=MQTTv50
            ),
            timeout,
        )
        await asyncio.wait_for(self.connected.wait(), timeout)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        self.generation += 1
        set_nodelay(client)
        self._install_fast_path()
        for topic, qos in self._subs:
            client.subscribe(topic, qos=qos)
        self.connected.set()
        self._resend()
        for hook in self.on_connected:
            hook()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self.connected.clear()
        self._proto = None

    async def disconnect(self) -> None:
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except (TimeoutError, OSError, AttributeError):  # pragma: no cover - broker gone
            pass

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, so the broker sends our will."""
        try:
            self.client._connection._transport.abort()
        except AttributeError:  # pragma: no cover
            pass

    # -- subscriptions and delivery ------------------------------------------------------

    def route(self, prefix: str, handler: Handler) -> None:
        """Deliver messages whose topic starts with `prefix` (after any $share part)."""
        self._routes.append((prefix, handler))

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subs.append((topic, qos))
        if self.connected.is_set():
            self.client.subscribe(topic, qos=qos)

    def _dispatch(self, topic: str, payload: bytes, token: Any) -> None:
        for prefix, handler in self._routes:
            if topic.startswith(prefix):
                handler(topic, payload, token)
                return
        if token is not None:
            self.ack(token)

    def _on_qos0(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> None:
        self._dispatch(topic, payload, None)

    def _on_qos1(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        self._dispatch(topic, payload, (self.generation, mid))

    def ack(self, token: Any) -> bool:
        """Send the PUBACK for a delivery; False when its connection is gone (the broker
        will deliver the message again)."""
        if token is None:
            return True
        gen, mid = token
        proto = self._proto
        if gen != self.generation or proto is None or not self.connected.is_set():
            return False
        try:
            # MQTT 5: remaining length 2 = packet id only, reason "success"
            proto.write_data(bytes((0x40, 2, mid >> 8, mid & 0xFF)))
            return True
        except (AttributeError, OSError):  # pragma: no cover - connection closing
            return False

    def ack_soon(self, token: Any) -> None:
        """`ack` at the end of this loop iteration, together with every other delivery of
        the same read: one write for a burst of PUBACKs instead of one system call each."""
        if token is None:
            return
        pending = self._acks
        pending.append(token)
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        tokens, self._acks = self._acks, []
        corked = self.cork()
        try:
            for token in tokens:
                self.ack(token)
        finally:
            if corked:
                self.uncork()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send at QoS 0 or 1. QoS 1 publishes wait (in order) while disconnected or while
        the broker's receive maximum is reached, and are sent again after a reconnect until
        acknowledged; QoS 0 while disconnected is dropped, as MQTT defines it."""
        if qos not in (0, 1):
            raise ValueError("Link publishes at QoS 0 or 1")
        head = 0x30 | (qos << 1) | int(retain)
        if qos == 0:
            proto = self._proto
            if proto is None or not self.connected.is_set():
                self.dropped += 1
                return
            proto.write_data(_publish_packet(head, topic.encode(), -1, payload))
            return
        waiting = self._waiting
        if len(waiting) >= self.max_waiting:
            waiting.popleft()
            self.dropped += 1
            log.warning("%s: %d QoS 1 publishes waiting; dropped the oldest", self.client_id,
                        len(waiting))  # fmt: skip
        waiting.append((head, topic.encode(), payload))
        self._send_waiting()

    max_waiting = 100_000

    def _send_waiting(self) -> None:
        proto = self._proto
        if proto is None or not self.connected.is_set():
            return
        ids = self._handler.id_generator  # shared with gmqtt's own packets: no mid clash
        room = ids._max - 1 - len(ids._used_ids)
        waiting, inflight = self._waiting, self._inflight
        while waiting and room > 0:
            head, topic, payload = waiting.popleft()
            mid = ids._mid_generate()  # next_id() without its two debug-log calls
            inflight[mid] = pkt = _publish_packet(head, topic, mid, payload)
            proto.write_data(pkt)
            room -= 1

    def _on_puback(self, mid: int, reason: int) -> bool:
        """A PUBACK for one of our publishes (True), or for gmqtt to handle (False)."""
        if self._inflight.pop(mid, None) is None:
            return False
        self._handler.id_generator.free_id(mid)
        if reason >= 0x80:  # refused by the broker (not authorised, quota, ...)
            self.dropped += 1
            log.warning("%s: broker refused a publish (reason 0x%02x)", self.client_id, reason)
        if self._waiting:
            self._send_waiting()
        return True

    def _resend(self) -> None:
        """After a reconnect: what the broker never acknowledged goes again (DUP set, same
        packet id, MQTT 5 §4.4), then what waited."""
        proto = self._proto
        if proto is None:
            return
        for pkt in self._inflight.values():
            proto.write_data(bytes((pkt[0] | 0x08,)) + pkt[1:])
        self._send_waiting()

    async def drained(self, timeout: float = 10.0) -> None:
        """Wait until every QoS 1 publish so far is acknowledged by the broker (a short
        connection that must not disconnect before its message is safe); TimeoutError
        when that takes longer than `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._inflight or self._waiting:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"{self.client_id}: {len(self._inflight) + len(self._waiting)} publishes "
                    f"not acknowledged by the broker within {timeout} s"
                )
            await asyncio.sleep(0.005)

    def _install_fast_path(self) -> None:
        try:
            conn = self.client._connection
            proto = conn._protocol
        except AttributeError:  # pragma: no cover - gmqtt internals changed
            log.warning("gmqtt internals changed: MQTT fast path off")
            self._proto = None
            return
        self._proto = proto
        proto._read_packet = _fast_reader(self, conn)

    def cork(self) -> bool:
        """Collect outgoing packets instead of writing each one; `uncork` sends them in one
        write. A batch's results and PUBACKs then cost one system call instead of two per
        event (on this VM a paced load spent more CPU on syscalls than on verifying)."""
        try:
            proto = self.client._connection._protocol
        except AttributeError:  # pragma: no cover - not connected
            return False
        buf: list[bytes] = []
        proto.write_data = buf.append
        self._corked = (proto, buf)
        return True

    def uncork(self) -> None:
        corked = getattr(self, "_corked", None)
        if corked is None:
            return
        proto, buf = corked
        self._corked = None
        del proto.write_data  # back to the class's method
        if buf:
            proto.write_data(b"".join(buf))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = n >> 7, n & 0x7F
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _publish_packet(head: int, topic: bytes, mid: int, payload: bytes) -> bytes:
    """An MQTT 5 PUBLISH without properties; `mid` < 0 for QoS 0 (no packet id)."""
    tl = len(topic)
    var = bytes((tl >> 8, tl & 0xFF)) + topic
    var += bytes((mid >> 8, mid & 0xFF, 0)) if mid >= 0 else b"\x00"
    return bytes((head,)) + _varint(len(var) + len(payload)) + var + payload


def _fast_reader(link: Link, conn: Any) -> Callable[[bytes], int]:
    """Replacement for gmqtt's `_read_packet` on one connection: split the read buffer
    into packets; deliver QoS 0/1 PUBLISH without properties and PUBACKs of our own
    publishes directly, hand every other packet to gmqtt in arrival order. Returns the
    bytes consumed (a partial packet stays in gmqtt's buffer), -1 on a malformed length.
    Bound to the connection's generation, so tokens never outlive their connection."""
    from gmqtt.mqtt.package import Package

    put = conn.put_package
    dispatch = link._dispatch
    on_puback = link._on_puback
    gen = link.generation

    def read(data: bytes) -> int:
        n = len(data)
        if getattr(conn._handler, "current_connection", conn) is not conn:
            return n  # a superseded connection's leftovers: gmqtt drops them too
        conn._last_data_in = time.monotonic()  # keepalive: data arrived
        pos = 0
        while n - pos >= 2:
            i = pos + 1
            size = shift = 0
            while True:  # remaining length, a variable byte integer
                if i >= n:
                    return pos
                b = data[i]
                i += 1
                size |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > 21:
                    return -1
            end = i + size
            if end > n:
                break
            cmd = data[pos]
            pos = end
            if cmd & 0xF4 == 0x30 and size >= 3:  # PUBLISH at QoS 0 or 1
                t = i + 2 + (data[i] << 8 | data[i + 1])
                p = t + 2 if cmd & 0x02 else t  # the properties' length byte
                if t > i + 2 and p < end and data[p] == 0:
                    try:
                        topic = data[i + 2 : t].decode()
                    except UnicodeDecodeError:
                        topic = ""  # gmqtt logs it
                    if topic:
                        token = (gen, data[t] << 8 | data[t + 1]) if cmd & 0x02 else None
                        try:
                            dispatch(topic, data[p + 1 : end], token)
                        except Exception:  # a handler bug must not stop the reader
                            log.exception("error handling a message on %s", topic[:120])
                        continue
            elif cmd == 0x40 and size >= 2:
                reason = data[i + 2] if size >= 3 else 0
                if on_puback(data[i] << 8 | data[i + 1], reason):
                    continue
            put(Package(cmd, data[i:end]))
        return pos

    return read
