"""The hub's MQTT link: its fast path for the loop's packets, against a real Mosquitto,
and its packet splitter against arbitrary streams (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from checkpost.hub.broker import PrivateBroker
from checkpost.hub.transport import Link, _fast_reader, _publish_packet, _varint
from hypothesis import given
from hypothesis import strategies as st

from .conftest import arun


async def _collect(link: Link, n: int, timeout: float = 15) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    def on(topic: str, payload: bytes, token: Any) -> None:
        got.append((topic, payload))
        link.ack(token)
        if len(got) >= n:
            done.set()

    link.route("t/", on)
    link.subscribe("t/#", 1)
    await link.connect()
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass  # the caller's assertion shows what did arrive
    return got


def test_qos1_publishes_respect_a_small_receive_maximum() -> None:
    """Mosquitto's default announces a receive maximum of 20 (gmqtt itself raised
    OverflowError past it): 500 results in one burst must all arrive, in order."""
    with PrivateBroker(settings="max_inflight_messages 5\n") as broker:

        async def main() -> tuple[list[tuple[str, bytes]], Link]:
            rx = Link(broker.url)
            tx = Link(broker.url)
            await tx.connect()
            rx_task = asyncio.ensure_future(_collect(rx, 500))
            await asyncio.sleep(0.3)  # subscribed
            peak = 0
            for i in range(500):
                tx.publish(f"t/{i % 7}", b"%d" % i, 1)
                peak = max(peak, len(tx._inflight))
            got = await rx_task
            for _ in range(100):
                if not tx._inflight:
                    break
                await asyncio.sleep(0.05)
            assert peak <= 5 and not tx._waiting and not tx._inflight and tx.dropped == 0
            await tx.disconnect()
            await rx.disconnect()
            return got, tx

        got, _ = arun(main())
        assert [int(p) for _, p in got] == list(range(500))


async def _exchange(url: str, n: int, send: Any) -> list[tuple[str, bytes]]:
    """A receiver subscribed to t/#, then `send(tx)` on a second link; what arrived."""
    rx = Link(url)
    rx_task = asyncio.ensure_future(_collect(rx, n))
    await asyncio.sleep(0.3)
    tx = Link(url)
    await send(tx)
    got = await rx_task
    await tx.disconnect()
    await rx.disconnect()
    return got


def test_publish_before_connect_waits_and_qos0_is_dropped() -> None:
    async def send(tx: Link) -> None:
        tx.publish("t/a", b"kept", 1)  # no connection yet: waits for one
        tx.publish("t/a", b"lost", 0)  # QoS 0 without a connection: dropped
        assert tx.dropped == 1 and len(tx._waiting) == 1
        await tx.connect()

    with PrivateBroker() as broker:
        assert arun(_exchange(broker.url, 1, send)) == [("t/a", b"kept")]


def test_messages_with_properties_go_through_gmqtt() -> None:
    """The fast path takes PUBLISH without properties; one with properties (here a
    message expiry set by another client) is parsed by gmqtt and delivered the same."""

    async def send(tx: Link) -> None:
        await tx.connect()
        tx.client.publish("t/p", b"with-expiry", qos=1, message_expiry_interval=60)
        tx.publish("t/p", b"plain", 1)

    with PrivateBroker() as broker:
        got = arun(_exchange(broker.url, 2, send))
    assert sorted(got) == [("t/p", b"plain"), ("t/p", b"with-expiry")]


# -- the packet splitter, without a broker ---------------------------------------------------


class _Conn:
    def __init__(self) -> None:
        self.passed: list[tuple[int, bytes]] = []
        self._last_data_in = 0.0
        self._handler = self  # gmqtt: the handler knows its current connection
        self.current_connection = self

    def put_package(self, pkg: Any) -> None:
        self.passed.append((pkg.cmd, bytes(pkg.data)))


class _Link:
    generation = 7

    def __init__(self, mine: set[int]) -> None:
        self.mine = mine
        self.delivered: list[tuple[str, bytes, Any]] = []
        self.acked: list[tuple[int, int]] = []

    def _dispatch(self, topic: str, payload: bytes, token: Any) -> None:
        self.delivered.append((topic, payload, token))

    def _on_puback(self, mid: int, reason: int) -> bool:
        if mid in self.mine:
            self.acked.append((mid, reason))
            return True
        return False


def _packet(cmd: int, body: bytes) -> bytes:
    return bytes((cmd,)) + _varint(len(body)) + body


topics = st.text(alphabet="abcz/-_0123456789", min_size=1, max_size=40)
payloads = st.binary(max_size=300)
mids = st.integers(1, 65535)

fast_publish = st.builds(
    lambda qos, retain, dup, t, m, p: (
        "fast",
        _publish_packet(0x30 | (qos << 1) | retain | (dup << 3), t.encode(), m if qos else -1, p),
        (t, p, (7, m) if qos else None),
    ),
    st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), topics, mids, payloads,
)  # fmt: skip
with_properties = st.builds(
    lambda t, m, p: (
        "gmqtt",
        _packet(0x32, len(t).to_bytes(2, "big") + t.encode() + m.to_bytes(2, "big")
                + b"\x05\x02\x00\x00\x00\x3c" + p),  # message expiry 60 s
        None,
    ),
    topics, mids, payloads,
)  # fmt: skip
puback_mine = st.builds(
    lambda m: ("ack", _packet(0x40, m.to_bytes(2, "big")), m), st.integers(1, 9)
)
puback_other = st.builds(
    lambda m: ("gmqtt", _packet(0x40, m.to_bytes(2, "big")), None), st.integers(100, 200)
)
other = st.sampled_from(
    [("gmqtt", b"\xd0\x00", None), ("gmqtt", b"\x90\x04\x00\x01\x00\x01", None)]
)


@given(
    st.lists(st.one_of(fast_publish, with_properties, puback_mine, puback_other, other),
             max_size=25),
    st.lists(st.integers(1, 64), max_size=40),
)  # fmt: skip
def test_splitter_delivers_every_packet_once_in_order(packets, cuts) -> None:
    """However the stream is cut into reads, every packet is handled once: fast ones
    delivered with their token, PUBACKs of ours taken, everything else handed to gmqtt
    whole and in order."""
    link, conn = _Link(mine=set(range(1, 10))), _Conn()
    read = _fast_reader(link, conn)  # type: ignore[arg-type]
    stream = b"".join(p for _, p, _ in packets)
    buf, pos = b"", 0
    for cut in [*cuts, len(stream)]:  # gmqtt's read loop: append, parse, keep the rest
        buf += stream[pos : pos + cut]
        pos += cut
        used = read(buf)
        assert used >= 0
        buf = buf[used:]
    assert buf == b""
    want_fast = [x for kind, _, x in packets if kind == "fast"]
    assert link.delivered == want_fast
    assert [m for m, _ in link.acked] == [x for kind, _, x in packets if kind == "ack"]
    want_passed = []
    for kind, pkt, _ in packets:
        if kind == "gmqtt":
            size_len = 1
            while pkt[size_len] & 0x80:
                size_len += 1
            want_passed.append((pkt[0], pkt[1 + size_len :]))
    assert conn.passed == want_passed


def test_splitter_drops_what_a_superseded_connection_still_reads() -> None:
    link, conn = _Link(mine=set()), _Conn()
    read = _fast_reader(link, conn)  # type: ignore[arg-type]
    conn.current_connection = object()  # reconnected: this connection is the old one
    data = _publish_packet(0x32, b"t/x", 5, b"late")
    assert read(data) == len(data) and link.delivered == [] and conn.passed == []


def test_splitter_rejects_a_malformed_length() -> None:
    read = _fast_reader(_Link(set()), _Conn())  # type: ignore[arg-type]
    assert read(b"\x30\xff\xff\xff\xff\x01") == -1


@pytest.mark.parametrize("n", [0, 127, 128, 16383, 16384, 2097151, 2097152])
def test_varint_round_trip(n: int) -> None:
    enc = _varint(n)
    value = shift = 0
    for b in enc:
        value |= (b & 0x7F) << shift
        shift += 7
    assert value == n and len(enc) == 1 + (n >= 128) + (n >= 16384) + (n >= 2097152)


def test_drained_raises_when_the_broker_never_acknowledges() -> None:
    """A short connection waits for its publish to be safe; without a broker it says so."""
    link = Link("mqtt://127.0.0.1:1")  # never connected
    link.publish("t/x", b"pending", 1)
    with pytest.raises(TimeoutError, match="1 publishes not acknowledged"):
        arun(link.drained(0.05))
