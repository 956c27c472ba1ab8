"""The unit wired to the hardware package: thermometer simulator on a pty read by the real
serial driver (unplugged mid-vehicle and back), mock GPIO (relay only on release / PASS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpost.edge.workflows import CodeRead, Tap

from .helpers import make_unit, wait_for


def relay_writes(unit: Any) -> list[tuple[float, int, int]]:
    pin = unit.io.pins.relay
    return [e for e in unit.io.backend.timeline if e[1] == pin]


def test_thermometer_unplugged_mid_vehicle_and_relay_on_release(
    tmp_path: Path, issuer: Any
) -> None:
    u = make_unit(tmp_path, issuer, unit="cp-hw", thermometer="sim", gpio="mock").start(http=False)
    events: list[Any] = []
    u.event_listeners.append(events.extend)
    try:
        wait_for(lambda: u.thermometer.status() == "ok", what="thermometer ok")
        u.submit(Tap("plate", {"plate": "京A12345"}))
        u.submit(CodeRead(issuer.hp1(name="张*三")))
        wait_for(lambda: any(e.__struct_config__.tag == "scan" for e in events), what="first scan")
        scan = next(e for e in events if e.__struct_config__.tag == "scan")
        assert scan.local == "PASS" and scan.temps and 36.0 < scan.temps[0] < 37.0
        before_release = len(relay_writes(u))
        # the USB adapter is pulled
        u.thermo_sim.unplug()
        wait_for(lambda: u.workflow.devices.get("thermometer") is False, what="unplug seen")
        assert u.last_state["health"]["thermometer"] == "unplugged"
        assert u.workflow.notice.reason.code == "thermometer_unplugged"
        u.submit(CodeRead(issuer.hp1(id_number="2", name="李*四")))
        wait_for(lambda: sum(e.__struct_config__.tag == "scan" for e in events) == 2, what="2nd")
        assert events[-1].local == "REMEASURE"
        u.submit(Tap("temp", {"celsius": 36.6}))  # measured by hand
        wait_for(
            lambda: events[-1].__struct_config__.tag == "scan" and events[-1].local == "PASS",
            what="hand reading",
        )
        assert len(relay_writes(u)) == before_release  # nothing opened yet
        u.thermo_sim.replug()
        wait_for(lambda: u.workflow.devices.get("thermometer") is True, what="replug seen")
        u.submit(Tap("release"))
        wait_for(lambda: len(relay_writes(u)) > before_release, what="barrier opened")
    finally:
        u.stop()


def test_gate_relay_pulses_on_pass_only(tmp_path: Path, issuer: Any) -> None:
    u = make_unit(tmp_path, issuer, unit="gate-hw", station="gate", gpio="mock").start(http=False)
    try:
        base = len(relay_writes(u))
        u.submit(CodeRead(issuer.hp1(colour="R")))
        wait_for(lambda: u.workflow.view is not None, what="decided")
        assert u.workflow.view.verdict == "FAIL" and len(relay_writes(u)) == base
        u.submit(CodeRead(issuer.hp1(id_number="ok")))
        wait_for(lambda: len(relay_writes(u)) > base, what="relay pulse")
        assert u.workflow.view.verdict == "PASS"
    finally:
        u.stop()
