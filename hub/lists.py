"""Lists the hub pushes to units, retained on the broker: the sealed-building list.

The document is signed with the trust-list signing key (``checkpost.signed``), published
retained on ``<root>/hub/sealed`` (``checkpost.protocol.lists``), so a gate that connects
later, or reconnects, gets the current list at once. Gates check the signature and the
version (never going back to an older list) and show the version and age on their screen.

    from checkpost.hub.lists import publish_sealed
    publish_sealed("mqtt://127.0.0.1:1883", sids, version=8, signer=key, scope="compound 12")
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from checkpost.protocol.lists import sealed_document
from checkpost.protocol.topics import DEFAULT_ROOT, Topics


def publish_sealed(
    broker: str,
    sids: Iterable[str],
    *,
    version: int,
    signer: Any,
    scope: str = "",
    root: str = DEFAULT_ROOT,
    issued_at: float | None = None,
    timeout: float = 10.0,
) -> bytes:
    """Sign and publish (QoS 1, retained) the sealed list; returns the payload sent."""
    payload = sealed_document(
        sids,
        version=version,
        issued_at=time.time() if issued_at is None else issued_at,
        signer=signer,
        scope=scope,
    )
    publish_retained(broker, Topics(root).hub_sealed, payload, timeout=timeout)
    return payload


def publish_retained(broker: str, topic: str, payload: bytes, *, timeout: float = 10.0) -> None:
    """One retained QoS 1 message on its own short connection; raises if not delivered."""
    import uuid

    import paho.mqtt.client as mqtt
    from checkpost.hub.transport import BrokerUrl

    url = BrokerUrl.parse(broker)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"hub-lists-{uuid.uuid4().hex[:8]}"
    )
    if url.username:
        client.username_pw_set(url.username, url.password)
    client.connect(url.host, url.port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"{topic}: not acknowledged by the broker within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
