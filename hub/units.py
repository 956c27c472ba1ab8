"""Fleet presence: what the hub knows about each unit from its retained status and telemetry.

A unit's status carries a session number, incremented per connect, and its last will
carries the same number: a late "offline" from an earlier session is ignored, so a unit
that reconnected quickly is never shown as offline (Sparkplug's bdSeq rule).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from checkpost.protocol import (
    ProtocolError,
    Telemetry,
    UnitStatus,
    decode_telemetry,
    decode_unit_status,
)


@dataclass(slots=True)
class UnitView:
    id: str
    online: bool = False
    state: str = "unknown"
    session: int = -1
    station: str | None = None
    last_seen: float | None = None
    queue_depth: int | None = None
    queue_oldest_s: float | None = None
    policy: str = ""
    trust: str = ""
    cpu_temp: float | None = None
    undervolt: bool = False
    camera_ok: bool | None = None
    thermometer_ok: bool | None = None
    trust_age_h: float | None = None
    trust_stale: bool = False
    trust_error: str = ""
    policy_age_h: float | None = None
    policy_error: str = ""


class Fleet:
    def __init__(self) -> None:
        self._units: dict[str, UnitView] = {}
        self._lock = threading.Lock()
        self.bad_messages = 0

    def _get(self, unit: str) -> UnitView:
        view = self._units.get(unit)
        if view is None:
            view = self._units[unit] = UnitView(unit)
        return view

    def on_status(self, unit: str, payload: bytes) -> None:
        try:
            st: UnitStatus = decode_unit_status(payload)
        except ProtocolError:
            self.bad_messages += 1
            return
        if st.unit != unit:
            self.bad_messages += 1
            return
        with self._lock:
            view = self._get(unit)
            if st.session < view.session:
                return  # a will or birth from an older session: stale
            view.session = st.session
            view.state = st.state
            view.online = st.state != "offline"
            view.station = st.station or view.station
            view.policy, view.trust = st.policy or view.policy, st.trust or view.trust
            view.last_seen = time.time()

    def on_telemetry(self, unit: str, payload: bytes) -> None:
        try:
            t: Telemetry = decode_telemetry(payload)
        except ProtocolError:
            self.bad_messages += 1
            return
        if t.unit != unit:
            self.bad_messages += 1
            return
        with self._lock:
            view = self._get(unit)
            view.last_seen = time.time()
            view.trust_age_h, view.trust_stale = t.trust_age_h, t.trust_stale
            view.policy_age_h = t.policy_age_h
            view.trust_error, view.policy_error = t.trust_error, t.policy_error
            view.queue_depth = t.queue_depth
            view.queue_oldest_s = t.queue_oldest_s
            view.cpu_temp = t.cpu_temp
            view.undervolt = t.undervolt
            view.camera_ok = t.camera_ok
            view.thermometer_ok = t.thermometer_ok

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(v) for v in sorted(self._units.values(), key=lambda v: v.id)]


class FleetCollector:
    """Per-unit gauges for Prometheus (unit ids are a bounded set: the fleet)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        online = GaugeMetricFamily(
            "checkpost_unit_online", "Unit online (retained status)", labels=["unit"]
        )
        depth = GaugeMetricFamily(
            "checkpost_unit_queue_depth", "Events waiting in the unit's outbox", labels=["unit"]
        )
        lag = GaugeMetricFamily(
            "checkpost_unit_queue_lag_seconds",
            "Age of the oldest event in the unit's outbox",
            labels=["unit"],
        )
        for v in self.fleet.snapshot():
            online.add_metric([v["id"]], 1.0 if v["online"] else 0.0)
            if v["queue_depth"] is not None:
                depth.add_metric([v["id"]], float(v["queue_depth"]))
            if v["queue_oldest_s"] is not None:
                lag.add_metric([v["id"]], float(v["queue_oldest_s"]))
        yield online
        yield depth
        yield lag
