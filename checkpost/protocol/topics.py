"""The topic tree. Every topic starts with a root (default `checkpost/v1`) so that two
deployments, or two protocol generations, can share one broker without crosstalk.

    <root>/units/<unit>/events      unit -> hub   QoS 1   Event (scan, tube_open, ...)
    <root>/units/<unit>/results     hub -> unit   QoS 1   Result, one per event id
    <root>/units/<unit>/status      unit          QoS 1, retained; last will "offline"
    <root>/units/<unit>/telemetry   unit          QoS 0   Telemetry
    <root>/units/<unit>/commands    hub -> unit   QoS 1   Command (request id)
    <root>/units/<unit>/acks        unit -> hub   QoS 1   CommandAck (same request id)
    <root>/hub/status               hub           QoS 1, retained; last will "offline"
    <root>/hub/policy               hub           QoS 1, retained: the signed policy bundle
    <root>/hub/trust                hub           QoS 1, retained: the signed trust list
    <root>/hub/sealed               hub           QoS 1, retained: the signed sealed-building list
    <root>/hub/alerts               hub           QoS 1   Alert (e.g. a unit spoofing another)

Hub workers subscribe to events through the shared subscription
`$share/<group>/<root>/units/+/events`, so the broker spreads the load over them.
"""

from __future__ import annotations

import re

UNIT_ID = re.compile(r"[a-z0-9-]{1,32}")
DEFAULT_ROOT = "checkpost/v1"


def is_unit_id(text: object) -> bool:
    """Unit ids are `[a-z0-9-]{1,32}`: also the MQTT username and certificate name."""
    return isinstance(text, str) and UNIT_ID.fullmatch(text) is not None


class Topics:
    """Topic names under one root; `unit_*` methods refuse an invalid unit id."""

    __slots__ = ("_events_prefix", "root")

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        if not root or "+" in root or "#" in root or root.startswith("$") or root.endswith("/"):
            raise ValueError(f"bad topic root {root!r}")
        self.root = root
        self._events_prefix = f"{root}/units/"

    def _unit(self, unit: str, leaf: str) -> str:
        if not is_unit_id(unit):
            raise ValueError(f"bad unit id {unit!r} (expected [a-z0-9-]{{1,32}})")
        return f"{self.root}/units/{unit}/{leaf}"

    def events(self, unit: str) -> str:
        return self._unit(unit, "events")

    def results(self, unit: str) -> str:
        return self._unit(unit, "results")

    def status(self, unit: str) -> str:
        return self._unit(unit, "status")

    def telemetry(self, unit: str) -> str:
        return self._unit(unit, "telemetry")

    def commands(self, unit: str) -> str:
        return self._unit(unit, "commands")

    def acks(self, unit: str) -> str:
        return self._unit(unit, "acks")

    @property
    def all_events(self) -> str:
        return f"{self.root}/units/+/events"

    def shared_events(self, group: str) -> str:
        if not is_unit_id(group):
            raise ValueError(f"bad share group {group!r}")
        return f"$share/{group}/{self.all_events}"

    @property
    def all_status(self) -> str:
        return f"{self.root}/units/+/status"

    @property
    def all_telemetry(self) -> str:
        return f"{self.root}/units/+/telemetry"

    @property
    def all_acks(self) -> str:
        return f"{self.root}/units/+/acks"

    @property
    def hub_status(self) -> str:
        return f"{self.root}/hub/status"

    @property
    def hub_policy(self) -> str:
        return f"{self.root}/hub/policy"

    @property
    def hub_trust(self) -> str:
        return f"{self.root}/hub/trust"

    @property
    def hub_sealed(self) -> str:
        return f"{self.root}/hub/sealed"

    @property
    def hub_alerts(self) -> str:
        return f"{self.root}/hub/alerts"

    def parse_unit(self, topic: str, leaf: str) -> str | None:
        """The unit id in `<root>/units/<unit>/<leaf>`, or None if the topic is not that."""
        return unit_of(topic, self.root, leaf)


def unit_of(topic: str, root: str, leaf: str) -> str | None:
    prefix = f"{root}/units/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix) :]
    unit, sep, tail = rest.partition("/")
    if not sep or tail != leaf or not is_unit_id(unit):
        return None
    return unit
