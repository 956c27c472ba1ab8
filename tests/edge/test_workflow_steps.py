"""Issue 6 §2-3 gaps, driven with exact times: the vehicle's direction, advice and
disinfection as timestamped one-tap steps, people entered by hand at sampling, the sealed
list the hub pushes to gates (also over a real broker, through the unit), and every kind of
mismatch at the transfer point against what the hub answers about a box."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from checkpost.edge.workflows import CodeRead, Reading, Tap, make_workflow
from checkpost.hub.lists import publish_retained, publish_sealed

from checkpost.protocol import Result, decode_event, encode
from checkpost.protocol.lists import sealed_document
from checkpost.protocol.topics import Topics
from checkpost.reasons import Reason

from .conftest import T0
from .helpers import make_unit, wait_for


def kinds(step: Any) -> list[str]:
    return [e.__struct_config__.tag for e in step.events]


def notice(wf: Any) -> str | None:
    return None if wf.notice is None else wf.notice.reason.code


def roundtrip(step: Any) -> None:
    for e in step.events:
        assert decode_event(encode(e)) == e


# -- checkpoint: direction, advice, disinfection --------------------------------------------


def test_vehicle_direction_recorded_from_configured_names(ctx: Any, issuer: Any) -> None:
    cp = make_workflow("checkpoint", "cp-1", ctx.verifier, ctx.policy, directions=["进城", "出城"])
    assert cp.screen(T0)["workflow"]["direction"] == "进城"
    s = cp.handle(Tap("plate", {"plate": "京A12345"}), T0)  # the preselected direction
    assert kinds(s) == ["vehicle_open"] and s.events[0].direction == "进城"
    roundtrip(s)
    cp.handle(Tap("turn_back", {"why": "no pass"}), T0 + 1)
    assert cp.handle(Tap("direction"), T0 + 2).events == []  # toggles to the next name
    s = cp.handle(Tap("plate", {"plate": "京A12346"}), T0 + 3)
    assert s.events[0].direction == "出城"
    assert cp.screen(T0 + 3)["workflow"]["vehicle"]["direction"] == "出城"
    cp.handle(Tap("turn_back", {"why": "x"}), T0 + 4)
    s = cp.handle(Tap("plate", {"plate": "京A12347", "direction": "north"}), T0 + 5)
    assert s.events == [] and notice(cp) == "bad_direction" and cp.vehicle is None
    c = cp.counters(T0 + 5)
    assert (c["dir:进城"], c["dir:出城"], c["vehicles"]) == (1, 1, 2)
    journal = dict((j[0], j[2]) for j in cp.handle(Tap("plate", {"plate": "京A1"}), T0).journal)
    assert journal == {}  # a bad plate records nothing
    with pytest.raises(ValueError):
        make_workflow("checkpoint", "c", ctx.verifier, ctx.policy, directions=["in", "in"])


def test_advice_and_disinfection_are_timestamped_one_tap_steps(ctx: Any, issuer: Any) -> None:
    cp = make_workflow("checkpoint", "cp-1", ctx.verifier, ctx.policy, window_s=10)
    assert cp.handle(Tap("advice"), T0).events == [] and notice(cp) == "no_vehicle"
    vid = cp.handle(Tap("plate", {"plate": "京A12345", "direction": "out"}), T0).events[0].id
    assert {"advice", "disinfect"} <= set(cp.buttons())
    cp.handle(Reading(36.5), T0 + 1)
    cp.handle(CodeRead(issuer.hp1(iat=T0)), T0 + 2)
    s = cp.handle(Tap("advice"), T0 + 30)
    assert kinds(s) == ["vehicle_step"]
    ev = s.events[0]
    assert (ev.vehicle, ev.step, ev.ts) == (vid, "advice", T0 + 30)
    roundtrip(s)
    again = cp.handle(Tap("advice"), T0 + 31)
    assert again.events == [] and notice(cp) == "advice_done"
    assert "advice" not in cp.buttons() and "disinfect" in cp.buttons()
    s = cp.handle(Tap("disinfect"), T0 + 45)
    assert kinds(s) == ["vehicle_step"] and s.events[0].step == "disinfect"
    assert s.events[0].ts == T0 + 45
    v = cp.screen(T0 + 46)["workflow"]["vehicle"]
    assert (v["advice_at"], v["disinfected_at"]) == (T0 + 30, T0 + 45)
    s = cp.handle(Tap("release"), T0 + 50)
    outcome = {j[0]: j[2] for j in s.journal}["vehicle_outcome"]
    assert outcome["advice_at"] == T0 + 30 and outcome["disinfected_at"] == T0 + 45
    assert outcome["direction"] == "out"
    c = cp.counters(T0 + 50)
    assert (c["advice"], c["disinfected"], c["released"], c["dir:out"]) == (1, 1, 1, 1)
    # a new shift starts from zero
    assert cp.counters(T0 + 9 * 3600)["advice"] == 0


# -- sampling: people entered by hand --------------------------------------------------------


@pytest.fixture
def sp(ctx: Any) -> Any:
    return make_workflow("sampling", "table-1", ctx.verifier, ctx.policy, table="t1", pool=5)


def test_manual_person_twice_refused_in_tube_and_round(sp: Any, issuer: Any) -> None:
    me = {"name": "王小明", "id_number": "110101199003071234", "phone": "13800001234"}
    sp.handle(CodeRead("100000000001"), T0)
    s = sp.handle(Tap("manual", me), T0 + 1)
    assert kinds(s) == ["tube_add"]
    ev = s.events[0]
    assert ev.code is None and ev.person.name == "王*明" and ev.person.phone == "138****1234"
    assert "110101199003071234" not in encode(ev).decode()
    assert sp.view.reasons[0].code == "manual_entry"
    # the same ID number (typed with a space and a lower-case x is the same) with another
    # spelling of the name: still the same person
    same = {"name": "王晓明", "id_number": "1101011990 03071234", "phone": ""}
    assert sp.handle(Tap("manual", same), T0 + 2).events == []
    assert notice(sp) == "person_in_tube"
    # someone else, same name and phone, other ID number: a different person
    other = dict(me, id_number="110101199003075678")
    assert kinds(sp.handle(Tap("manual", other), T0 + 3)) == ["tube_add"]
    sp.handle(Tap("close_tube"), T0 + 4)
    # a second tube in the same round: refused until staff override, with the reason
    sp.handle(CodeRead("100000000002"), T0 + 5)
    assert sp.handle(Tap("manual", me), T0 + 6).events == []
    assert notice(sp) == "person_in_round" and "override" in sp.buttons()
    assert sp.handle(Tap("override", {"why": ""}), T0 + 7).events == []
    s = sp.handle(Tap("override", {"why": "sample spilled", "staff": "s1"}), T0 + 8)
    assert kinds(s) == ["tube_add"]
    assert s.events[0].override.why == "sample spilled" and s.events[0].person == ev.person
    roundtrip(s)
    c = sp.counters(T0 + 8)
    assert (c["manual"], c["samples"], c["overrides"]) == (3, 3, 1)
    # the hub refusing a hand entry (already sampled at another table) is a conflict now
    s = sp.on_result(Result(id=s.events[0].id, ok=False, reasons=[Reason("x", "y", "z")]), T0 + 9)
    assert notice(sp) == "hub_conflict" and sp.view.verdict == "FAIL"


def test_manual_entry_keyed_hash_and_masks(ctx: Any) -> None:
    from checkpost.edge.workflows.sampling import manual_id_hash, mask_name, mask_phone

    assert manual_id_hash("11010119900307123x") == manual_id_hash(" 11010119900307123X ")
    assert manual_id_hash("1", "key-a-123") != manual_id_hash("1", "key-b-123")
    assert (mask_name("欧阳小明"), mask_name("李雷"), mask_name("王")) == ("欧**明", "李*", "王*")
    assert (mask_phone("13800001234"), mask_phone("123")) == ("138****1234", "***")
    a = make_workflow("sampling", "t-a", ctx.verifier, ctx.policy, pool=5, manual_key="key-a-123")
    a.handle(CodeRead("100000000009"), T0)
    s = a.handle(Tap("manual", {"name": "王小明", "id_number": "1"}), T0)
    assert s.events[0].person.id_hash == manual_id_hash("1", "key-a-123")


# -- gate: the sealed list the hub pushes ----------------------------------------------------


def test_sealed_resident_refused_after_hub_push(ctx: Any, issuer: Any) -> None:
    g = make_workflow("gate", "gate-1", ctx.verifier, ctx.policy)
    keys = [issuer.trust_key.public_key()]
    resident = issuer.sid("110101199001011234")
    g.handle(Tap("direction", {"direction": "out"}), T0)
    assert g.handle(CodeRead(issuer.hp1(iat=T0)), T0).events[0].local == "PASS"
    doc = sealed_document([resident], version=5, issued_at=T0 - 600, signer=issuer.trust_key)
    s = g.on_sealed_document(doc, keys, T0 + 1)
    assert s.notice is not None and s.notice.reason.code == "sealed_list_applied"
    state = g.screen(T0 + 1)["workflow"]
    assert (state["sealed_list"], state["sealed_version"], state["sealed_source"]) == (
        1,
        "5",
        "hub",
    )
    assert state["sealed_age_s"] == 601
    s = g.handle(CodeRead(issuer.hp1(iat=T0 + 2)), T0 + 2)
    assert s.events[0].local == "FAIL" and g.view.reasons[0].code == "sealed_building"
    assert "relay" not in [o.device for o in s.outputs]
    assert g.counters(T0)["sealed_refused"] == 1
    # an older list is refused (journalled), a forged one too: the seal stays
    old = sealed_document([], version=4, issued_at=T0, signer=issuer.trust_key)
    assert g.on_sealed_document(old, keys, T0 + 3).journal[0][0] == "sealed_list_refused"
    from cryptography.hazmat.primitives.asymmetric import ec

    forged = sealed_document(
        [], version=9, issued_at=T0, signer=ec.generate_private_key(ec.SECP256R1())
    )
    assert g.on_sealed_document(forged, keys, T0 + 3).journal[0][0] == "sealed_list_refused"
    assert g.on_sealed_document(b"{not json", keys, T0 + 3).journal[0][0] == "sealed_list_refused"
    assert g.sealed == {resident}
    # the same list again (reconnect) changes nothing; a newer empty one lifts the seal
    assert g.on_sealed_document(doc, keys, T0 + 4).journal == []
    lifted = sealed_document([], version=6, issued_at=T0 + 5, signer=issuer.trust_key)
    g.on_sealed_document(lifted, keys, T0 + 5)
    assert g.handle(CodeRead(issuer.hp1(iat=T0 + 6)), T0 + 6).events[0].local == "PASS"


def test_gate_unit_applies_the_list_pushed_by_the_hub(
    tmp_path: Path, issuer: Any, broker: Any
) -> None:
    """Over a real broker: the hub publishes the signed list retained; a gate that connects
    afterwards applies it, refuses the resident's exit, and keeps the list across a restart
    without the hub."""
    resident = issuer.sid("110101199001011234")
    publish_sealed(broker.url, [resident], version=3, signer=issuer.trust_key, scope="compound 12")
    unit = make_unit(tmp_path, issuer, broker=broker.url, unit="gate-sealed", station="gate")
    unit.start(devices=False)
    try:
        wait_for(lambda: unit.workflow.sealed_version == "3", what="sealed list applied")
        unit.submit(Tap("direction", {"direction": "out"}))
        wait_for(lambda: unit.workflow.current_direction == "out", what="direction out")
        unit.submit(CodeRead(issuer.hp1(iat=time.time())))
        wait_for(lambda: unit.workflow.view is not None, what="verdict")
        assert unit.workflow.view.verdict == "FAIL"
        assert unit.workflow.view.reasons[0].code == "sealed_building"
        state = unit.last_state["workflow"]
        assert state["sealed_scope"] == "compound 12" and state["sealed_source"] == "hub"
        # a newer list while running
        publish_sealed(broker.url, [], version=4, signer=issuer.trust_key)
        wait_for(lambda: unit.workflow.sealed_version == "4", what="new list applied")
        assert unit.workflow.sealed == frozenset()
    finally:
        unit.stop()
    publish_sealed(broker.url, [resident], version=5, signer=issuer.trust_key)
    offline = make_unit(tmp_path, issuer, unit="gate-sealed", station="gate")  # no broker
    try:
        assert offline.workflow.sealed_version == "4" and offline.workflow.sealed == frozenset()
    finally:
        offline.stop()
        # the broker is shared by the session: leave no retained list for other gates
        publish_retained(broker.url, Topics("checkpost/v1").hub_sealed, b"")


# -- transfer: every mismatch against what the hub knows -------------------------------------


@pytest.fixture
def tp(ctx: Any) -> Any:
    t = make_workflow("transfer", "xfer-1", ctx.verifier, ctx.policy)
    t.handle(Tap("handler", {"handler": "赵师傅"}), T0)
    return t


def hub_knows(check_id: str, tubes: list[str], samples: int, sealed: bool = True) -> Result:
    flags = (["sealed"] if sealed else []) + [f"known:{len(tubes)}/{samples}"]
    flags += [f"tube:{t}" for t in tubes]
    if sealed:
        return Result(id=check_id, ok=True, flags=flags)
    why = Reason("box_not_sealed", "Box not sealed yet", "转运箱尚未封箱")
    return Result(id=check_id, ok=False, reasons=[why], flags=flags)


def test_box_checked_against_the_hub_and_matches(tp: Any) -> None:
    s = tp.handle(CodeRead("BOX0000001"), T0)
    assert kinds(s) == ["box_check"] and s.events[0].box == "BOX0000001"
    roundtrip(s)
    tp.on_result(hub_knows(s.events[0].id, ["100000000001", "100000000002"], 7), T0 + 1)
    exp = tp.screen(T0 + 1)["workflow"]["receiving"]["expected"]
    assert exp == {"tubes": 2, "samples": 7, "source": "hub"}
    tp.handle(CodeRead("100000000001"), T0 + 2)
    tp.handle(CodeRead("100000000002"), T0 + 3)
    s = tp.handle(Tap("register"), T0 + 4)
    h = s.events[0]
    assert kinds(s) == ["handover"] and (h.tubes, h.samples) == (2, 7)
    assert tp.view.verdict == "PASS" and tp.received["BOX0000001"].status == "pending"


@pytest.mark.parametrize(
    "case", ["extra_tube", "missing_tube", "count_mismatch", "seal_broken", "box_unknown"]
)
def test_every_transfer_mismatch_holds_the_box(tp: Any, case: str) -> None:
    check = tp.handle(CodeRead("BOX0000001"), T0).events[0].id
    hub = ["100000000001", "100000000002"]
    if case == "box_unknown":
        why = Reason("box_not_open", "Box not opened", "转运箱未开箱")
        tp.on_result(Result(id=check, ok=False, reasons=[why]), T0 + 1)
        assert notice(tp) == "box_unknown" and tp.view.verdict == "FAIL"
    else:
        tp.on_result(hub_knows(check, hub, 10), T0 + 1)
    scanned = {
        "extra_tube": [*hub, "100000000099"],
        "missing_tube": hub[:1],
        "count_mismatch": hub,
        "seal_broken": hub,
        "box_unknown": hub,
    }[case]
    for n, t in enumerate(scanned):
        tp.handle(CodeRead(t), T0 + 2 + n)
    if case == "extra_tube":
        assert notice(tp) == "extra_tube"
    if case == "seal_broken":
        tp.handle(Tap("seal_broken"), T0 + 5)
    args = {"samples": 9} if case == "count_mismatch" else {}
    s = tp.handle(Tap("register", args), T0 + 6)
    assert kinds(s) == ["handover"]  # registered and sent, but held here
    found = {r.code for r in tp.received["BOX0000001"].findings}
    assert case in found
    assert tp.received["BOX0000001"].status == "held" and tp.view.verdict == "FAIL"
    assert notice(tp) == "box_held" and tp.counters(T0)["held"] == 1
    if case == "missing_tube":
        assert "count_mismatch" in found  # one tube of two: the count is off too
    if case == "seal_broken":
        assert s.events[0].seal_intact is False


def test_unsealed_box_and_late_hub_answer_hold_the_box(tp: Any) -> None:
    check = tp.handle(CodeRead("BOX0000002"), T0).events[0].id
    tp.on_result(hub_knows(check, ["100000000003"], 5, sealed=False), T0 + 1)
    assert notice(tp) == "box_not_sealed" and tp.view.verdict == "FAIL"
    tp.handle(CodeRead("100000000003"), T0 + 1)
    tp.handle(Tap("register"), T0 + 1)
    assert tp.received["BOX0000002"].status == "held"
    assert [r.code for r in tp.received["BOX0000002"].findings] == ["box_not_sealed"]
    # offline: the hub's answer comes only after the box was registered
    check = tp.handle(CodeRead("BOX0000003"), T0 + 2).events[0].id
    tp.handle(CodeRead("100000000004"), T0 + 3)
    tp.handle(Tap("register", {"samples": 5}), T0 + 4)
    rec = tp.received["BOX0000003"]
    assert rec.status == "pending" and rec.findings == []  # nothing to compare with yet
    s = tp.on_result(hub_knows(check, ["100000000004", "100000000005"], 10), T0 + 5)
    assert rec.status == "held" and notice(tp) == "box_held"
    assert {r.code for r in rec.findings} == {"missing_tube", "count_mismatch"}
    assert s.journal[0][0] == "box_held"


def test_missing_box_at_end_of_shipment(tp: Any) -> None:
    tp.set_manifest({"BOX0000001": {"tubes": 1, "samples": 5}, "BOX0000002": {"tubes": 1}})
    check = tp.handle(CodeRead("BOX0000001"), T0).events[0].id
    tp.on_result(hub_knows(check, ["100000000001"], 5), T0 + 1)
    tp.handle(CodeRead("100000000001"), T0 + 2)
    tp.handle(Tap("register"), T0 + 3)
    assert tp.received["BOX0000001"].status == "pending"
    s = tp.handle(Tap("end_shipment"), T0 + 4)
    assert notice(tp) == "missing_box" and [j[1] for j in s.journal] == ["BOX0000002"]


def test_config_directions_and_manual_key(tmp_path: Path) -> None:
    from checkpost.edge.config import load_config

    from checkpost.config import ConfigError

    good = tmp_path / "good.toml"
    good.write_text(
        '[checkpoint]\ndirections = ["进城", "出城"]\n[sampling]\nmanual_key = "k-12345678"\n'
    )
    cfg = load_config(good)
    assert cfg.checkpoint.directions == ["进城", "出城"] and cfg.sampling.manual_key == "k-12345678"
    bad = tmp_path / "bad.toml"
    bad.write_text('[checkpoint]\ndirections = ["in", "in"]\n')
    with pytest.raises(ConfigError, match=r"checkpoint\.directions"):
        load_config(bad)
