"""Test helpers: a fake hub on MQTT (answers every event after "storing" it by id), bounded
waits, and a unit factory. No timed assertions: a wait fails only after a generous bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from checkpost.edge.agent import Unit
from checkpost.edge.config import load_config

from checkpost.protocol import HubStatus, Result, Topics, decode_event, encode


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class FakeHub:
    """Stores events by id (exactly once), answers a Result for every delivery (``dup`` on
    a repeat), keeps a retained birth/will with a session number."""

    def __init__(self, port: int, verdict: Callable[[Any], str | None] | None = None) -> None:
        self.port = port
        self.topics = Topics()
        self.stored: dict[str, Any] = {}
        self.order: list[str] = []
        self.deliveries = 0
        self.acks: list[Any] = []
        self.session = 0
        self.verdict = verdict or (lambda e: getattr(e, "local", None))
        self.answer = True
        self.client: mqtt.Client | None = None
        self.lock = threading.Lock()

    def start(self) -> FakeHub:
        self.session += 1
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fakehub-{self.session}")
        death = encode(HubStatus(state="offline", session=self.session))
        c.will_set(self.topics.hub_status, death, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        self.client = c
        wait_for(lambda: c.is_connected(), what="fake hub connected")
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(self.topics.all_events, 1), (self.topics.all_acks, 1)])
        birth = encode(HubStatus(state="online", session=self.session, ts=time.time()))
        client.publish(self.topics.hub_status, birth, qos=1, retain=True)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.endswith("/acks"):
            from checkpost.protocol import decode_command_ack

            self.acks.append(decode_command_ack(msg.payload))
            return
        e = decode_event(msg.payload)
        with self.lock:
            self.deliveries += 1
            dup = e.id in self.stored
            if not dup:
                self.stored[e.id] = e
                self.order.append(e.id)
        if not self.answer:
            return
        r = Result(
            id=e.id,
            ok=True,
            verdict=self.verdict(e) if e.__struct_config__.tag == "scan" else None,
            at=time.time(),
            dup=dup,
        )
        client.publish(self.topics.results(e.unit), encode(r), qos=1)

    def stop(self, graceful: bool = False) -> None:
        """Abrupt by default: the broker publishes the will (hub offline)."""
        c = self.client
        if c is None:
            return
        if graceful:
            c.publish(
                self.topics.hub_status,
                encode(HubStatus(state="offline", session=self.session)),
                qos=1,
                retain=True,
            )
            c.disconnect()
        else:
            sock = c.socket()
            if sock is not None:
                sock.close()
        c.loop_stop()
        self.client = None

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.client is not None
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def make_unit(
    tmp: Path,
    issuer: Any,
    *,
    station: str = "checkpoint",
    broker: str = "none",
    unit: str = "unit-1",
    http: str = "none",
    **over: Any,
) -> Unit:
    overrides = {
        "unit": unit,
        "station": station,
        "data_dir": str(tmp / unit),
        "http": http,
        "broker": broker,
        "issuer_dir": str(issuer.folder),
        **over,
    }
    cfg = load_config(None, overrides)
    return Unit(cfg)
