"""Commands from the hub to one unit, and waiting for the unit's acknowledgement.

    hub ── <root>/units/<unit>/commands  Command {req, cmd, args, at}      QoS 1 ──▶ unit
    hub ◀── <root>/units/<unit>/acks     CommandAck {req, unit, ok, error, cmd, detail}

The request id is a UUIDv7 made here; the ack carries it back, so any number of commands
(from the CLI and the API at once) can be in flight. No ack within the timeout means the
unit is offline or did not receive it: the caller says so, it is never reported as done.
Used by the API process (`POST /api/v1/units/{unit}/commands`, on its broker link) and by
`checkpost hub command` (its own short-lived link).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from checkpost.protocol import (
    Command,
    CommandAck,
    ProtocolError,
    Topics,
    decode_command_ack,
    encode,
    is_unit_id,
    uuid7,
)

# CLI spelling -> protocol name
CLI_NAMES = {
    "reload": "reload",
    "set-log-level": "set_log_level",
    "resend-status": "resend_status",
    "sync-now": "sync_now",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class CommandSender:
    """Publishes Commands on `link` (a hub transport Link) and matches the acks by `req`.
    The owner routes `<root>/units/+/acks` deliveries to :meth:`on_ack`."""

    def __init__(self, link: Any, topics: Topics) -> None:
        self.link = link
        self.topics = topics
        self.pending: dict[str, tuple[str, asyncio.Future[CommandAck]]] = {}
        self.bad_acks = 0

    def on_ack(self, unit: str, payload: bytes) -> None:
        try:
            ack: CommandAck = decode_command_ack(payload)
        except ProtocolError:
            self.bad_acks += 1
            return
        entry = self.pending.get(ack.req)
        if entry is None or entry[0] != unit or ack.unit != unit:
            return  # someone else's command, or an ack on another unit's topic
        fut = entry[1]
        if not fut.done():
            fut.set_result(ack)

    async def send(
        self, unit: str, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> tuple[str, CommandAck | None]:
        """(request id, the unit's ack or None when none came within `timeout`)."""
        if not is_unit_id(unit):
            raise ValueError(f"bad unit id {unit!r} (expected [a-z0-9-]{{1,32}})")
        req = uuid7()
        fut: asyncio.Future[CommandAck] = asyncio.get_running_loop().create_future()
        self.pending[req] = (unit, fut)
        try:
            msg = Command(req=req, cmd=cmd, args=dict(args or {}), at=time.time())  # type: ignore[arg-type]
            self.link.publish(self.topics.commands(unit), encode(msg), 1)
            try:
                return req, await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                return req, None
        finally:
            self.pending.pop(req, None)


def command_args(action: str, level: str | None) -> tuple[str, dict[str, Any]]:
    """A CLI action (and LEVEL) as the protocol's (cmd, args); ValueError if unusable."""
    cmd = CLI_NAMES.get(action, action)
    if cmd == "set_log_level":
        if not level:
            raise ValueError("set-log-level needs a LEVEL (DEBUG, INFO, WARNING or ERROR)")
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING or ERROR)")
        return cmd, {"level": level.upper()}
    if level:
        raise ValueError(f"{action} takes no argument (got {level!r})")
    return cmd, {}


async def send_once(
    broker: str,
    root: str,
    unit: str,
    cmd: str,
    args: dict[str, Any],
    timeout: float,
) -> tuple[str, CommandAck | None]:
    """Connect, subscribe to the unit's acks, send one command, wait, disconnect."""
    from checkpost.hub.transport import Link

    topics = Topics(root)
    link = Link(broker)
    sender = CommandSender(link, topics)
    acks = topics.acks(unit)

    def on_ack(topic: str, payload: bytes, token: Any) -> None:
        link.ack(token)
        sender.on_ack(unit, payload)

    link.route(acks, on_ack)
    link.subscribe(acks, 1)
    await link.connect(timeout=min(10.0, max(1.0, timeout)))
    try:
        # SUBSCRIBE went out on connect, before this PUBLISH: a broker handles one
        # client's packets in order, so the unit's ack cannot arrive before we listen.
        return await sender.send(unit, cmd, args, timeout)
    finally:
        await link.disconnect()


def ack_view(unit: str, req: str, cmd: str, ack: CommandAck | None, timeout: float) -> dict:
    """The ack as printed (--json) and returned by the API; a timeout has the same shape."""
    if ack is None:
        return {
            "req": req,
            "unit": unit,
            "cmd": cmd,
            "ok": False,
            "error": f"no acknowledgement within {timeout:g} s (is the unit online?)",
            "timeout": True,
            "detail": {},
        }
    return {
        "req": ack.req,
        "unit": ack.unit,
        "cmd": ack.cmd or cmd,
        "ok": ack.ok,
        "error": ack.error,
        "timeout": False,
        "detail": ack.detail,
        "at": ack.at,
    }
