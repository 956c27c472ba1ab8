"""The message codecs: round trips, and rejection of anything else with a clear reason."""

from __future__ import annotations

import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpost.protocol import (
    EVENT_TYPES,
    MAX_PAYLOAD,
    Command,
    HubStatus,
    ProtocolError,
    Result,
    Scan,
    Topics,
    TubeAdd,
    TubeOpen,
    UnitStatus,
    decode_event,
    decode_hub_status,
    decode_result,
    decode_unit_status,
    encode,
    is_unit_id,
    is_uuid7,
    unit_of,
    uuid7,
    uuid7_time,
)
from checkpost.protocol.messages import Override
from checkpost.reasons import Reason

unit_ids = st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True)
event_ids = st.builds(lambda t: uuid7(t), st.floats(min_value=1.6e9, max_value=2.5e9))
clock = st.floats(min_value=0, max_value=1e11, allow_nan=False)
seq = st.integers(min_value=0, max_value=2**63 - 1)
# Texts as the protocol allows them: any character but NUL (refused, see below).


def texts(**kw):
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), **kw)


short = texts(min_size=1, max_size=64)
celsius = st.floats(min_value=-50, max_value=150, allow_nan=False)

scans = st.builds(
    Scan,
    id=event_ids,
    unit=unit_ids,
    seq=seq,
    ts=clock,
    code=texts(min_size=1, max_size=400),
    station=st.sampled_from(["checkpoint", "gate"]),
    local=st.sampled_from([None, "PASS", "REVIEW", "REMEASURE", "FAIL"]),
    temps=st.one_of(st.none(), st.lists(celsius, max_size=4)),
    readings=st.lists(event_ids, max_size=3),
    vehicle=st.one_of(st.none(), event_ids),
    frame_ms=st.one_of(st.none(), st.floats(min_value=0, max_value=600_000, allow_nan=False)),
)
tube_opens = st.builds(
    TubeOpen,
    id=event_ids,
    unit=unit_ids,
    seq=seq,
    ts=clock,
    tube=short,
    pool=st.integers(1, 50),
    round=short,
    table=texts(max_size=32),
)
tube_adds = st.builds(
    TubeAdd,
    id=event_ids,
    unit=unit_ids,
    seq=seq,
    ts=clock,
    tube=short,
    code=texts(min_size=1, max_size=300),
    override=st.one_of(
        st.none(), st.builds(Override, staff=short, why=texts(min_size=1, max_size=100))
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(scans, tube_opens, tube_adds))
def test_events_round_trip(event):
    assert decode_event(encode(event)) == event


@settings(max_examples=100, deadline=None)
@given(st.one_of(scans, tube_opens, tube_adds), st.data())
def test_a_nul_in_any_text_is_refused(event, data):
    """One NUL would make the event unstorable on PostgreSQL (its batch failing forever):
    refused at decoding, wherever it is."""
    field = data.draw(st.sampled_from([f for f in ("code", "tube", "round", "table")
                                       if isinstance(getattr(event, f, None), str)]))  # fmt: skip
    text = getattr(event, field)
    at = data.draw(st.integers(0, len(text)))
    bad = msgspec.structs.replace(event, **{field: text[:at] + "\x00" + text[at:]})
    with pytest.raises(ProtocolError, match="NUL"):
        decode_event(encode(bad))


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Result,
        id=event_ids,
        ok=st.booleans(),
        verdict=st.sampled_from([None, "PASS", "FAIL"]),
        reasons=st.lists(st.builds(Reason, short, short, short), max_size=3),
        flags=st.lists(short, max_size=3),
        policy=texts(max_size=12),
        at=clock,
        dup=st.booleans(),
    )
)
def test_results_round_trip(res):
    assert decode_result(encode(res)) == res


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_protocol_error(data):
    try:
        decode_event(data)
    except ProtocolError as exc:
        assert exc.reason in {
            "not_json",
            "not_object",
            "invalid",
            "unknown_version",
            "unknown_kind",
        }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "kind", "id", "unit", "seq", "ts", "code", "temps"]), json_values
    )
)
def test_wrong_types_are_rejected_not_crashing(obj):
    data = msgspec.json.encode(obj)
    try:
        decode_event(data)
    except ProtocolError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.integers().filter(lambda v: v != 1), scans)
def test_unknown_versions_get_a_clear_rejection(version, scan):
    obj = msgspec.to_builtins(scan)
    obj["v"] = version
    with pytest.raises(ProtocolError) as info:
        decode_event(msgspec.json.encode(obj))
    assert info.value.reason == "unknown_version"
    assert "not supported" in info.value.detail


def test_rejections_name_the_problem():
    with pytest.raises(ProtocolError, match="too_large"):
        decode_event(b"{" + b" " * (MAX_PAYLOAD + 1) + b"}")
    with pytest.raises(ProtocolError, match="unknown_kind"):
        decode_event(b'{"v":1,"kind":"teleport"}')
    with pytest.raises(ProtocolError, match=r"invalid.*\$\.unit"):
        decode_event(
            encode(Scan(id=uuid7(), unit="u1", seq=1, ts=1.0, code="x")).replace(b'"u1"', b'"U_1"')
        )
    with pytest.raises(ProtocolError, match="invalid"):
        decode_event(
            b'{"v":1,"kind":"scan","id":"not-a-uuid","unit":"u1","seq":1,"ts":1,"code":"x"}'
        )
    with pytest.raises(ProtocolError, match="unknown_version"):
        decode_unit_status(b'{"v":3,"unit":"u1","state":"online","session":1}')
    empty_tube = encode(TubeOpen(id=uuid7(), unit="u1", seq=1, ts=1.0, tube="T1", pool=5,
                                 round="r")).replace(b'"T1"', b'""')  # fmt: skip
    with pytest.raises(ProtocolError, match=r"invalid.*\$\.tube"):
        decode_event(empty_tube)  # container codes are never empty
    with pytest.raises(ProtocolError, match="NUL"):  # PostgreSQL text cannot hold one
        decode_event(empty_tube.replace(b'""', b'"T\\u0000"'))


def test_every_event_kind_is_registered():
    assert set(EVENT_TYPES) == {
        *("scan", "temp", "vehicle_open", "vehicle_close", "vehicle_turn_back"),
        *("tube_open", "tube_add", "tube_close", "box_open", "box_add", "box_seal"),
        *("handover", "undo", "override", "vehicle_step", "box_check"),
    }


def test_status_and_commands():
    st_ = UnitStatus(unit="gate-7", state="online", session=3, station="gate")
    assert decode_unit_status(encode(st_)) == st_
    hs = HubStatus(state="offline", session=12)
    assert decode_hub_status(encode(hs)) == hs
    Command(req=uuid7(), cmd="rebirth")


def test_uuid7_is_time_ordered_and_valid():
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_uuid7(i) for i in ids)
    assert abs(uuid7_time(ids[0]) - time.time()) < 5
    assert not is_uuid7("01a207bc-f726-419c-b7a0-157ff846aae1")  # v4 layout


@given(st.text(max_size=40))
def test_unit_ids(text):
    import re

    assert is_unit_id(text) == bool(re.fullmatch(r"[a-z0-9-]{1,32}", text))


def test_topics():
    t = Topics()
    assert t.events("cp-01") == "checkpost/v1/units/cp-01/events"
    assert t.shared_events("hub") == "$share/hub/checkpost/v1/units/+/events"
    assert t.parse_unit("checkpost/v1/units/cp-01/events", "events") == "cp-01"
    assert t.parse_unit("checkpost/v1/units/CP/events", "events") is None
    assert t.parse_unit("checkpost/v1/units/cp-01/events/x", "events") is None
    assert unit_of("other/units/a/events", "checkpost/v1", "events") is None
    with pytest.raises(ValueError):
        t.results("../x")
    with pytest.raises(ValueError):
        Topics("a/#")
