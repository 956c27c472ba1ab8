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
    """One retained QoS 1 message on its own short connection (the hub's one MQTT module,
    `checkpost.hub.transport`); returns once the broker acknowledged it, raises if not."""
    import asyncio

    from checkpost.hub.transport import Link

    async def send() -> None:
        link = Link(broker)
        await link.connect(timeout)
        try:
            link.publish(topic, payload, 1, retain=True)
            await link.drained(timeout)
        finally:
            await link.disconnect()

    asyncio.run(send())
