"""The hub's one MQTT module: every broker connection the hub makes goes through `Link`.

Client choice (measured here, see `checkpost bench hub` baselines and MEASURED.md): gmqtt
(asyncio) does ~14k request/response round trips/s against paho's ~9.5k, and its reader
and our loop share one thread instead of fighting over the GIL. Units keep paho; the wire
protocol is the same.

Two things gmqtt does not give us directly, done here:
- TCP_NODELAY on the socket (asyncio usually sets it; we set it explicitly, because
  Nagle + delayed ACK stalls request/response traffic by 40-90 ms);
- acknowledging a QoS 1 message only after our own commit. gmqtt's public path for that
  is one asyncio task per message; instead the QoS 1 handler is replaced with a plain
  callback that receives the packet id, and `ack(token)` sends the PUBACK later. A token
  carries the connection generation: after a reconnect the broker re-sends what was not
  acknowledged, and an old packet id must never acknowledge a new message.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
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
        for topic, qos in self._subs:
            client.subscribe(topic, qos=qos)
        self.connected.set()
        for hook in self.on_connected:
            hook()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self.connected.clear()

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
        if gen != self.generation or not self.connected.is_set():
            return False
        try:
            self._handler._send_puback(mid)
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
        self.client.publish(topic, payload, qos=qos, retain=retain)

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
