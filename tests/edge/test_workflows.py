"""Station workflows, driven with exact times: every path of issue 6 §2-3 and every error
path of §8 (tube reopened, person twice, sealed box, pool overfull, count mismatch at the
transfer point, risk plate, sealed-building resident, thermometer unplugged mid-vehicle)."""

from __future__ import annotations

from typing import Any

import pytest
from checkpost.edge.workflows import (
    CodeRead,
    DeviceState,
    Reading,
    Tap,
    Tick,
    make_workflow,
)
from checkpost.edge.workflows.common import Workflow

from checkpost.protocol import Result, decode_event, encode

from .conftest import T0


def kinds(step: Any) -> list[str]:
    return [e.__struct_config__.tag for e in step.events]


def notice(wf: Workflow) -> str | None:
    return None if wf.notice is None else wf.notice.reason.code


def roundtrip(step: Any) -> None:
    """Every event a workflow makes is a valid protocol message."""
    for e in step.events:
        assert decode_event(encode(e)) == e


@pytest.fixture
def cp(ctx: Any) -> Workflow:
    return make_workflow("checkpoint", "cp-1", ctx.verifier, ctx.policy, window_s=10)


# -- checkpoint ---------------------------------------------------------------------------


def test_vehicle_with_two_occupants_released(cp: Any, issuer: Any) -> None:
    s = cp.handle(Tap("plate", {"plate": "京A12345", "direction": "in"}), T0)
    assert kinds(s) == ["vehicle_open"]
    vid = s.events[0].id
    s = cp.handle(Reading(36.5, "ir-1"), T0 + 1)  # measured just before the scan
    assert kinds(s) == ["temp"]
    s = cp.handle(CodeRead(issuer.hp1(iat=T0, name="张*三")), T0 + 2)
    assert kinds(s) == ["scan"]
    ev = s.events[0]
    assert ev.local == "PASS" and ev.temps == [36.5] and ev.vehicle == vid and ev.readings
    assert cp.view.verdict == "PASS" and cp.view.name == "张*三" and cp.view.provisional
    assert ("led", "green") in [(o.device, o.value) for o in s.outputs]
    # second occupant scanned first, then measured (the reading comes after the scan)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0, id_number="2", name="李*四")), T0 + 5)
    assert s.events == [] and cp.current.stage == "measuring"
    s = cp.handle(Reading(36.6), T0 + 6)
    assert kinds(s) == ["temp", "scan"] and s.events[1].local == "PASS"
    cp.handle(Tap("advice"), T0 + 7)
    cp.handle(Tap("disinfect"), T0 + 8)
    s = cp.handle(Tap("release"), T0 + 9)
    assert kinds(s) == ["vehicle_close"] and s.events[0].occupants == 2
    assert ("relay", "pulse") in [(o.device, o.value) for o in s.outputs]
    journal = {j[0]: j for j in s.journal}
    assert journal["vehicle_outcome"][2]["outcome"] == "released"
    c = cp.counters(T0 + 9)
    assert c["released"] == 1 and c["pass"] == 2 and c["occupants"] == 2
    roundtrip(s)


def test_scan_before_plate_is_refused(cp: Any, issuer: Any) -> None:
    s = cp.handle(CodeRead(issuer.hp1(iat=T0)), T0)
    assert s.events == [] and notice(cp) == "plate_first"


def test_risk_plate_flagged_for_turning_back(cp: Any) -> None:
    s = cp.handle(Tap("plate", {"plate": "鄂A88888"}), T0)
    assert notice(cp) == "risk_plate" and cp.vehicle.risk_region == "鄂A"
    assert ("led", "red") in [(o.device, o.value) for o in s.outputs]
    s = cp.handle(Tap("release"), T0 + 1)  # no release without a staff reason
    assert s.events == [] and notice(cp) == "release_blocked"
    assert "relay" not in [o.device for o in s.outputs]
    s = cp.handle(Tap("turn_back"), T0 + 2)
    assert kinds(s) == ["vehicle_turn_back", "vehicle_close"]
    assert "risk region" in s.events[0].why
    assert cp.counters(T0 + 2)["turned_back"] == 1
    assert "relay" not in [o.device for o in s.outputs]


def test_risk_plate_released_with_override_is_recorded(cp: Any) -> None:
    cp.handle(Tap("plate", {"plate": "沪B12345"}), T0)
    s = cp.handle(Tap("release", {"why": "resident returning home", "staff": "w01"}), T0 + 1)
    assert (
        kinds(s) == ["override", "vehicle_close"] and s.events[0].why == "resident returning home"
    )


def test_same_person_twice_in_one_vehicle_is_caught(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(36.5), T0)
    cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)
    cp.handle(Reading(36.5), T0 + 2)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0 + 2)), T0 + 3)  # same id number, new code
    assert s.events == [] and notice(cp) == "same_person"
    assert len(cp.vehicle.occupants) == 1


def test_remeasure_then_fever(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(37.9), T0)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)
    assert s.events[0].local == "REMEASURE" and cp.current.stage == "remeasure"
    s = cp.handle(Reading(38.1), T0 + 20)  # second reading, whatever the window
    assert kinds(s) == ["temp", "scan"]
    assert s.events[1].local == "FAIL" and s.events[1].temps == [37.9, 38.1]
    assert len(s.events[1].readings) == 2
    s = cp.handle(Tap("release"), T0 + 21)
    assert notice(cp) == "release_blocked"
    s = cp.handle(Tap("refer", {"why": "fever"}), T0 + 22)
    assert s.events[0].outcome == "referred" and s.events[0].why == "fever"
    assert cp.counters(T0)["referred"] == 1


def test_remeasure_then_normal_passes(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(37.4), T0)
    cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)
    s = cp.handle(Reading(36.8), T0 + 3)
    assert s.events[1].local == "PASS"


def test_review_decision_is_recorded_with_reason(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(36.5), T0)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0, colour="Y")), T0 + 1)
    scan_id = s.events[0].id
    assert s.events[0].local == "REVIEW" and "allow" in cp.buttons()
    assert cp.handle(Tap("decide", {"allow": True}), T0 + 2).events == []  # reason required
    assert notice(cp) == "override_needed"
    s = cp.handle(
        Tap("decide", {"allow": True, "why": "travel permit seen", "staff": "w7"}), T0 + 3
    )
    assert kinds(s) == ["override"]
    assert s.events[0].target == scan_id and s.events[0].verdict == "PASS"
    assert s.journal[0][0] == "review_decision"
    assert cp.vehicle.occupants[0].verdict == "PASS"
    assert kinds(cp.handle(Tap("release"), T0 + 4)) == ["vehicle_close"]


def test_scan_waits_for_reading_then_times_out(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)
    assert s.events == [] and cp.view.verdict == "REMEASURE"
    assert cp.handle(Tick(), T0 + 5).events == []
    s = cp.handle(Tick(), T0 + 12)
    assert kinds(s) == ["scan"] and s.events[0].local == "REMEASURE"
    assert s.events[0].temps == []


def test_another_scan_while_measuring_is_refused(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    code = issuer.hp1(iat=T0)
    cp.handle(CodeRead(code), T0 + 1)
    assert cp.handle(CodeRead(code), T0 + 1.5).events == []  # same code seen again: quiet
    s = cp.handle(CodeRead(issuer.hp1(iat=T0, id_number="9")), T0 + 2)
    assert s.events == [] and notice(cp) == "measure_first"


def test_thermometer_unplugged_mid_vehicle(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(36.5), T0)
    cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)  # first occupant measured: PASS
    cp.handle(CodeRead(issuer.hp1(iat=T0, id_number="2")), T0 + 2)  # waiting for a reading
    s = cp.handle(DeviceState("thermometer", False, "/dev/ttyUSB0 gone"), T0 + 3)
    assert kinds(s) == ["scan"] and s.events[0].local == "REMEASURE"
    assert notice(cp) == "thermometer_unplugged"
    assert cp.screen(T0)["workflow"]["thermometer"] is False
    s = cp.handle(Tap("temp", {"celsius": 36.7}), T0 + 10)  # hand-held reading typed in
    assert kinds(s) == ["temp", "scan"] and s.events[0].sensor == "manual"
    assert s.events[1].local == "PASS"
    # the next occupant is decided at once, asking for a hand measurement
    s = cp.handle(CodeRead(issuer.hp1(iat=T0, id_number="3")), T0 + 11)
    assert s.events[0].local == "REMEASURE" and notice(cp) == "thermometer_unplugged"


def test_invalid_codes_fail_with_reason(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    s = cp.handle(CodeRead("https://example.com"), T0)
    assert s.events[0].local == "FAIL" and cp.view.reasons[0].code == "unknown_format"
    s = cp.handle(CodeRead(issuer.hp1(iat=T0 - 3600)), T0 + 1)
    assert s.events[0].local == "FAIL" and cp.view.reasons[0].code == "expired"


def test_bad_plate_and_second_vehicle(cp: Any) -> None:
    assert cp.handle(Tap("plate", {"plate": "x"}), T0).events == []
    assert notice(cp) == "bad_plate"
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    assert cp.handle(Tap("plate", {"plate": "京A54321"}), T0).events == []
    assert notice(cp) == "vehicle_open"


def test_hub_correction_is_shown_and_journalled(cp: Any, issuer: Any) -> None:
    cp.online = True
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(36.5), T0)
    s = cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1)
    eid = s.events[0].id
    from checkpost.reasons import Reason

    risk = Reason(
        "risk_travel", "Risk-area travel — staff decide", "有中高风险地区行程，请人工核查"
    )
    s = cp.on_result(
        Result(id=eid, ok=True, verdict="REVIEW", reasons=[risk], flags=["replay"]),
        T0 + 1.01,
    )
    assert cp.view.verdict == "REVIEW" and cp.view.corrected_from == "PASS"
    assert cp.view.confirmed and not cp.view.provisional
    assert s.journal[0][0] == "correction" and notice(cp) == "hub_correction"
    assert cp.vehicle.occupants[0].verdict == "REVIEW"
    assert cp.on_result(Result(id=eid, ok=True, verdict="PASS"), T0 + 2).journal == []  # dup


def test_confirmation_without_change(cp: Any, issuer: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Reading(36.5), T0)
    eid = cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 1).events[0].id
    assert cp.view.offline  # decided while the hub was unreachable: marked so
    s = cp.on_result(Result(id=eid, ok=True, verdict="PASS"), T0 + 30)
    assert s.journal == [] and cp.view.confirmed and cp.view.corrected_from is None


def test_shift_counters_roll_over(cp: Any) -> None:
    cp.handle(Tap("plate", {"plate": "京A12345"}), T0)
    cp.handle(Tap("turn_back", {"why": "x"}), T0)
    assert cp.counters(T0)["turned_back"] == 1
    assert cp.counters(T0 + 9 * 3600)["turned_back"] == 0


# -- gate ----------------------------------------------------------------------------------


def test_gate_each_scan_own_decision_relay_only_on_pass(ctx: Any, issuer: Any) -> None:
    g = make_workflow("gate", "gate-1", ctx.verifier, ctx.policy)
    s = g.handle(CodeRead(issuer.hp1(iat=T0)), T0)
    assert kinds(s) == ["scan"] and s.events[0].station == "gate" and s.events[0].local == "PASS"
    assert ("relay", "pulse") in [(o.device, o.value) for o in s.outputs]
    s = g.handle(CodeRead(issuer.hp1(iat=T0, colour="R", id_number="5")), T0 + 1)
    assert s.events[0].local == "FAIL" and "relay" not in [o.device for o in s.outputs]
    assert g.counters(T0) == {
        "in": 1,
        "out": 0,
        "pass": 1,
        "review": 0,
        "fail": 1,
        "sealed_refused": 0,
    }


def test_gate_sealed_building_resident_refused_exit(ctx: Any, issuer: Any) -> None:
    g = make_workflow("gate", "gate-1", ctx.verifier, ctx.policy)
    sealed_sid = issuer.sid("110101199001011234")
    g.set_sealed([sealed_sid], "v3")
    g.handle(Tap("direction", {"direction": "out"}), T0)
    s = g.handle(CodeRead(issuer.hp1(iat=T0)), T0)
    assert s.events[0].local == "FAIL" and g.view.reasons[0].code == "sealed_building"
    assert "relay" not in [o.device for o in s.outputs]
    # the hub does not know the sealed list: its PASS cannot lift the local refusal
    s = g.on_result(Result(id=s.events[0].id, ok=True, verdict="PASS"), T0 + 1)
    assert g.view.verdict == "FAIL" and s.journal == []
    # someone else leaves; the sealed resident may still come in
    assert g.handle(CodeRead(issuer.hp1(iat=T0, id_number="7")), T0).events[0].local == "PASS"
    g.handle(Tap("direction", {"direction": "in"}), T0)
    assert g.handle(CodeRead(issuer.hp1(iat=T0 + 1)), T0 + 1).events[0].local == "PASS"


def test_gate_direction_fixed(ctx: Any) -> None:
    g = make_workflow("gate", "gate-1", ctx.verifier, ctx.policy, direction="in")
    g.handle(Tap("direction", {"direction": "out"}), T0)
    assert g.current_direction == "in" and notice(g) == "release_blocked"
    with pytest.raises(ValueError):
        make_workflow("gate", "g", ctx.verifier, ctx.policy, direction="sideways")


# -- sampling ------------------------------------------------------------------------------


@pytest.fixture
def sp(ctx: Any) -> Any:
    return make_workflow(
        "sampling",
        "table-1",
        ctx.verifier,
        ctx.policy,
        table="t1",
        pool=5,
        tube_labels=22,
        box_labels=3,
    )


def people(issuer: Any, n: int, start: int = 0) -> list[str]:
    return [issuer.sr1(iat=T0, id_number=f"ID{start + i}", name=f"王*{i}") for i in range(n)]


def test_tube_fills_and_closes_then_boxed_sealed_handed_over(sp: Any, issuer: Any) -> None:
    s = sp.handle(CodeRead("100000000001"), T0)
    assert kinds(s) == ["tube_open"] and s.events[0].pool == 5 and s.events[0].table == "t1"
    for i, code in enumerate(people(issuer, 5)):
        s = sp.handle(CodeRead(code, source="scanner"), T0 + i + 1)
    assert kinds(s) == ["tube_add", "tube_close"] and s.events[1].count == 5
    assert sp.tube is None
    assert kinds(sp.handle(CodeRead("BOX0000001"), T0 + 10)) == ["box_open"]
    assert kinds(sp.handle(CodeRead("100000000001"), T0 + 11)) == ["box_add"]
    s = sp.handle(Tap("seal_box"), T0 + 12)
    assert kinds(s) == ["box_seal"] and s.events[0].tubes == 1
    s = sp.handle(Tap("handover", {"handler": "刘师傅"}), T0 + 13)
    assert kinds(s) == ["handover"]
    h = s.events[0]
    assert (h.box, h.tubes, h.samples, h.handler, h.place) == ("BOX0000001", 1, 5, "刘师傅", "site")
    sheet = sp.screen(T0)["workflow"]["last_sheet"]
    assert sheet["samples"] == 5 and sheet["tube_codes"] == ["100000000001"]
    c = sp.counters(T0 + 13)
    assert (c["tubes"], c["samples"], c["boxes"]) == (1, 5, 1)
    roundtrip(s)


def test_tube_reopened_is_refused(sp: Any, issuer: Any) -> None:
    sp.handle(CodeRead("100000000001"), T0)
    sp.handle(CodeRead(people(issuer, 1)[0]), T0 + 1)
    sp.handle(Tap("close_tube"), T0 + 2)
    s = sp.handle(CodeRead("100000000001"), T0 + 3)
    assert s.events == [] and notice(sp) == "tube_reopened" and sp.view.verdict == "FAIL"


def test_hub_conflict_on_tube_opened_elsewhere_is_shown(sp: Any) -> None:
    from checkpost.reasons import Reason

    eid = sp.handle(CodeRead("100000000002"), T0).events[0].id
    why = Reason("tube_used", "Tube already opened at table-9", "试管已在 table-9 使用")
    s = sp.on_result(Result(id=eid, ok=False, reasons=[why]), T0 + 5)
    assert notice(sp) == "hub_conflict" and sp.view.verdict == "FAIL"
    assert s.journal[0][0] == "conflict"


def test_person_twice_in_tube_and_in_round(sp: Any, issuer: Any) -> None:
    a = people(issuer, 1)[0]
    sp.handle(CodeRead("100000000001"), T0)
    sp.handle(CodeRead(a), T0 + 1)
    s = sp.handle(CodeRead(a), T0 + 2)
    assert s.events == [] and notice(sp) == "person_in_tube"
    sp.handle(Tap("close_tube"), T0 + 3)
    sp.handle(CodeRead("100000000002"), T0 + 4)
    s = sp.handle(CodeRead(a), T0 + 5)
    assert s.events == [] and notice(sp) == "person_in_round" and "override" in sp.buttons()
    assert sp.handle(Tap("override", {}), T0 + 6).events == []  # needs a reason
    s = sp.handle(Tap("override", {"why": "first sample spilled", "staff": "s2"}), T0 + 7)
    assert kinds(s) == ["tube_add"] and s.events[0].override.why == "first sample spilled"
    assert sp.counters(T0)["overrides"] == 1


def test_pool_overfull_without_auto_close(ctx: Any, issuer: Any) -> None:
    sp = make_workflow("sampling", "t", ctx.verifier, ctx.policy, pool=1, auto_close=False)
    sp.handle(CodeRead("100000000003"), T0)
    a, b = people(issuer, 2)
    assert kinds(sp.handle(CodeRead(a), T0 + 1)) == ["tube_add"]
    s = sp.handle(CodeRead(b), T0 + 2)
    assert s.events == [] and notice(sp) == "pool_full"
    assert kinds(sp.handle(Tap("close_tube"), T0 + 3)) == ["tube_close"]


def test_person_without_tube_and_manual_entry(sp: Any) -> None:
    assert sp.handle(Tap("manual", {"name": "王小明", "phone": "13800001234"}), T0).events == []
    assert notice(sp) == "no_open_tube"
    sp.handle(CodeRead("100000000004"), T0)
    s = sp.handle(Tap("manual", {"name": "王小明", "phone": "13800001234"}), T0 + 1)
    assert kinds(s) == ["tube_add"] and s.events[0].code is None
    p = s.events[0].person
    assert (p.name, p.phone) == ("王*明", "138****1234") and len(p.id_hash) == 64
    assert "王小明" not in encode(s.events[0]).decode()
    assert "13800001234" not in encode(s.events[0]).decode()
    roundtrip(s)
    assert sp.handle(Tap("manual", {"name": "王小明", "phone": "13800001234"}), T0 + 2).events == []
    assert notice(sp) == "person_in_tube"


def test_sealed_box_takes_no_tubes(sp: Any, issuer: Any) -> None:
    for n, tube in enumerate(["100000000005", "100000000006"]):
        sp.handle(CodeRead(tube), T0 + n * 10)
        sp.handle(CodeRead(people(issuer, 1, start=n)[0]), T0 + n * 10 + 1)
        sp.handle(Tap("close_tube"), T0 + n * 10 + 2)
    sp.handle(CodeRead("BOX0000002"), T0 + 30)
    sp.handle(CodeRead("100000000005"), T0 + 31)
    sp.handle(Tap("seal_box"), T0 + 32)
    s = sp.handle(CodeRead("BOX0000002"), T0 + 33)
    assert s.events == [] and notice(sp) == "box_sealed"
    assert sp.handle(CodeRead("100000000006"), T0 + 34).events == []  # no open box now
    assert notice(sp) == "tube_reopened"
    sp.handle(CodeRead("BOX0000003"), T0 + 35)
    s = sp.handle(CodeRead("100000000005"), T0 + 36)  # already in the sealed box
    assert s.events == [] and notice(sp) == "tube_in_box"


def test_undo_last_steps_with_audit(sp: Any, issuer: Any) -> None:
    sp.handle(CodeRead("100000000007"), T0)
    a = sp.handle(CodeRead(people(issuer, 1)[0]), T0 + 1).events[0]
    s = sp.handle(Tap("undo", {"why": "wrong person"}), T0 + 2)
    assert kinds(s) == ["undo"] and s.events[0].target == a.id and s.events[0].why == "wrong person"
    assert sp.tube.members == [] and s.journal[0][0] == "undo"
    # the undone person can be sampled again in this round without an override
    assert kinds(sp.handle(CodeRead(people(issuer, 1)[0]), T0 + 3)) == ["tube_add"]
    sp.handle(Tap("close_tube"), T0 + 4)
    s = sp.handle(Tap("undo"), T0 + 5)  # reopen the tube
    assert kinds(s) == ["undo"] and sp.tube is not None
    sp.handle(Tap("undo"), T0 + 6)  # the add
    s = sp.handle(Tap("undo"), T0 + 7)  # the open: the tube label is free again
    assert sp.tube is None and "100000000007" not in sp.tubes
    assert sp.handle(Tap("undo"), T0 + 8).events == [] and notice(sp) == "nothing_to_undo"


def test_labels_running_low_warning(sp: Any) -> None:
    sp.handle(CodeRead("100000000008"), T0)  # 22 -> 21 labels: still fine
    assert notice(sp) is None and sp.counters(T0)["tube_labels_left"] == 21
    sp.handle(Tap("undo"), T0)  # an undone open gives its label back
    assert sp.counters(T0)["tube_labels_left"] == 22
    sp.tube_labels = 21
    sp.handle(CodeRead("100000000009"), T0 + 1)
    assert notice(sp) == "labels_low" and sp.counters(T0)["tube_labels_left"] == 20


def test_box_labels_and_pool_setting(sp: Any) -> None:
    sp.handle(CodeRead("BOX0000009"), T0)
    assert notice(sp) == "labels_low" and sp.counters(T0)["box_labels_left"] == 2
    assert sp.handle(Tap("set_pool", {"pool": 7}), T0).events == [] and notice(sp) == "bad_pool"
    sp.handle(Tap("set_pool", {"pool": 20}), T0)
    assert sp.pool == 20


def test_wrong_codes_at_sampling(sp: Any, issuer: Any) -> None:
    sp.handle(CodeRead("100000000010"), T0)
    s = sp.handle(CodeRead(issuer.hp1(iat=T0)), T0)
    assert s.events == [] and sp.view.verdict == "FAIL"
    assert sp.view.reasons[0].code == "wrong_station"
    s = sp.handle(CodeRead(issuer.sr1(iat=T0 - 40 * 86400)), T0)
    assert s.events == [] and notice(sp) == "registration_invalid"


# -- transfer ------------------------------------------------------------------------------


@pytest.fixture
def tp(ctx: Any) -> Any:
    t = make_workflow("transfer", "xfer-1", ctx.verifier, ctx.policy)
    t.set_manifest(
        {
            "BOX0000001": {
                "tubes": 2,
                "samples": 15,
                "tube_codes": ["100000000001", "100000000002"],
            },
            "BOX0000002": {"tubes": 1, "samples": 5},
        },
        "m1",
    )
    return t


def test_transfer_box_matches(tp: Any) -> None:
    tp.handle(Tap("handler", {"handler": "赵师傅"}), T0)
    tp.handle(CodeRead("BOX0000001"), T0)
    tp.handle(CodeRead("100000000001"), T0 + 1)
    tp.handle(CodeRead("100000000002"), T0 + 2)
    s = tp.handle(Tap("register"), T0 + 3)
    assert kinds(s) == ["handover"]
    h = s.events[0]
    assert (h.tubes, h.samples, h.place, h.seal_intact) == (2, 15, "transfer", True)
    assert tp.view.verdict == "PASS"
    tp.on_result(Result(id=h.id, ok=True), T0 + 4)
    assert tp.received["BOX0000001"].status == "ok" and tp.view.confirmed


def test_transfer_count_mismatch_extra_tube_and_broken_seal(tp: Any) -> None:
    tp.handle(CodeRead("BOX0000001"), T0)
    for t in ("100000000001", "100000000002", "100000000099"):
        tp.handle(CodeRead(t), T0 + 1)
    assert notice(tp) == "extra_tube"
    s = tp.handle(CodeRead("100000000002"), T0 + 2)
    assert notice(tp) == "tube_twice" and s.events == []
    tp.handle(Tap("seal_broken"), T0 + 3)
    assert tp.handle(Tap("register"), T0 + 4).events == [] and notice(tp) == "no_handler"
    s = tp.handle(Tap("register", {"handler": "赵师傅"}), T0 + 5)
    codes = [r.code for r in tp.view.reasons]
    assert "extra_tube" in codes and "seal_broken" in codes and "count_mismatch" in codes
    assert tp.view.verdict == "FAIL" and notice(tp) == "box_held"
    assert s.events[0].seal_intact is False and tp.counters(T0)["held"] == 1
    assert tp.received["BOX0000001"].status == "held"


def test_transfer_hub_mismatch_holds_box(tp: Any) -> None:
    from checkpost.reasons import Reason

    tp.handle(CodeRead("BOX0000002"), T0)
    tp.handle(CodeRead("100000000003"), T0)
    eid = tp.handle(Tap("register", {"handler": "h"}), T0 + 1).events[0].id
    why = Reason("count_mismatch", "hub knows 2 tubes", "中心记录 2 管")
    tp.on_result(Result(id=eid, ok=False, reasons=[why]), T0 + 2)
    assert tp.received["BOX0000002"].status == "held" and tp.view.verdict == "FAIL"
    assert tp.counters(T0)["held"] == 1


def test_transfer_missing_and_unannounced_boxes(tp: Any) -> None:
    tp.handle(CodeRead("BOX0000077"), T0)
    assert notice(tp) == "box_expected"
    tp.handle(Tap("register", {"handler": "h", "samples": 3}), T0 + 1)
    s = tp.handle(Tap("end_shipment"), T0 + 2)
    assert notice(tp) == "missing_box" and {j[1] for j in s.journal} == {"BOX0000001", "BOX0000002"}
    assert tp.counters(T0)["missing"] == 2


def test_transfer_box_twice_and_tube_without_box(tp: Any) -> None:
    assert tp.handle(CodeRead("100000000001"), T0).events == [] and notice(tp) == "no_open_box"
    tp.handle(CodeRead("BOX0000002"), T0)
    tp.handle(Tap("register", {"handler": "h"}), T0)
    tp.handle(CodeRead("BOX0000002"), T0 + 1)
    assert notice(tp) == "box_sealed"


# -- every workflow: snapshot/restore, unknown actions, screens ----------------------------


@pytest.mark.parametrize("kind", ["checkpoint", "gate", "sampling", "transfer"])
def test_snapshot_restore_and_bad_taps(ctx: Any, issuer: Any, kind: str) -> None:
    wf = make_workflow(kind, "u-1", ctx.verifier, ctx.policy)
    snap = wf.snapshot()
    wf.handle(Tap("plate", {"plate": "京A12345"}), T0)
    wf.handle(CodeRead("100000000011"), T0)
    wf.handle(CodeRead(issuer.hp1(iat=T0)), T0)
    wf.restore(snap)
    assert wf.screen(T0) == make_workflow(kind, "u-1", ctx.verifier, ctx.policy).screen(T0)
    wf.handle(Tap("no_such_action"), T0)
    assert notice(wf) == "unknown_action"
    wf.handle(Tap("set_pool" if kind == "sampling" else "temp", {"pool": "x", "celsius": "x"}), T0)
    screen = wf.screen(T0)
    assert screen["station"] == kind and isinstance(screen["buttons"], list)


def test_restore_keeps_identity_of_shared_records(sp: Any, issuer: Any) -> None:
    """After a refused step is rolled back, the open tube is still one object (the same
    as in the table's tube list), so later steps change both views of it."""
    sp.handle(CodeRead("100000000012"), T0)
    snap = sp.snapshot()
    sp.handle(CodeRead(people(issuer, 1)[0]), T0 + 1)
    sp.restore(snap)
    assert sp.tube is sp.tubes["100000000012"] and sp.tube.members == []
    sp.handle(CodeRead(people(issuer, 1)[0]), T0 + 2)
    assert len(sp.tubes["100000000012"].members) == 1
