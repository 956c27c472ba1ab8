"""The hub accepts and stores the checkpoint steps, hand-entered people and box checks
(issue 6 §2-3), over a real broker, on SQLite and PostgreSQL; older messages still decode
and an unknown protocol version is still refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from checkpost.edge.workflows.sampling import manual_id_hash
from checkpost.hub.loop import Worker
from checkpost.hub.store import open_store

from checkpost.protocol import (
    BoxAdd,
    BoxOpen,
    BoxSeal,
    Override,
    ProtocolError,
    TubeAdd,
    TubeClose,
    TubeOpen,
    VehicleOpen,
    VehicleTurnBack,
    decode_event,
    encode,
    uuid7,
)
from checkpost.protocol.messages import BoxCheck, ManualPerson, VehicleStep

from .conftest import arun
from .test_loop import T, Units, hub_config


def person(id_number: str, name: str = "王*明") -> ManualPerson:
    return ManualPerson(name=name, id_hash=manual_id_hash(id_number), phone="138****1234")


def codes(result: Any) -> list[str]:
    return [r.code for r in result.reasons]


def test_checkpoint_steps_manual_people_and_box_checks(broker, issuer, db_url) -> None:
    cfg = hub_config(broker, issuer, db_url)

    async def main() -> dict[str, Any]:
        worker = Worker(cfg)
        await worker.start()
        got: dict[str, Any] = {}
        try:
            async with Units(broker.url, ["cp-v2", "table-v2", "xfer-v2"]) as u:

                async def send(ev: Any) -> Any:
                    u.send(ev)
                    await u.wait([ev.id])
                    return u.results[ev.id][0]

                # checkpoint: direction, advice and disinfection with the unit's timestamps
                vo = u.event(VehicleOpen, "cp-v2", plate="京A12345", direction="出城")
                advice = u.event(VehicleStep, "cp-v2", vehicle=vo.id, step="advice")
                disinfect = u.event(VehicleStep, "cp-v2", vehicle=vo.id, step="disinfect")
                for ev in (vo, advice, disinfect):
                    assert (await send(ev)).ok
                got["vehicle"] = (vo.id, advice.ts, disinfect.ts)
                # a step that reached the hub before its vehicle_open (another worker)
                vo2 = u.event(VehicleOpen, "cp-v2", plate="京B54321", direction="in")
                early = u.event(VehicleStep, "cp-v2", vehicle=vo2.id, step="advice")
                assert (await send(early)).ok and (await send(vo2)).ok
                got["early"] = (vo2.id, early.ts)
                # referred to a testing point, and (older unit, no outcome) turned back
                refer = u.event(VehicleTurnBack, "cp-v2", vehicle=vo.id, why="fever",
                                outcome="referred")  # fmt: skip
                back = {"kind": "vehicle_turn_back", "v": 1, "id": uuid7(), "unit": "cp-v2",
                        "seq": 98, "ts": 1.7e9, "vehicle": vo2.id, "why": "red code"}  # fmt: skip
                assert (await send(refer)).ok
                u.raw(T.events("cp-v2"), json.dumps(back).encode())
                await u.wait([back["id"]])
                # an older unit's vehicle_open (no direction) is still accepted
                old = {"kind": "vehicle_open", "v": 1, "id": uuid7(), "unit": "cp-v2",
                       "seq": 99, "ts": 1.7e9, "plate": "京C11111"}  # fmt: skip
                u.raw(T.events("cp-v2"), json.dumps(old).encode())
                await u.wait([old["id"]])
                assert u.results[old["id"]][0].ok

                # sampling: a person entered by hand is stored and matched on the hash
                t1 = u.event(TubeOpen, "table-v2", tube="100000000071", pool=5, round="r-v2")
                t2 = u.event(TubeOpen, "table-v2", tube="100000000072", pool=5, round="r-v2")
                assert (await send(t1)).ok and (await send(t2)).ok
                a = await send(u.event(TubeAdd, "table-v2", tube=t1.tube, person=person("110101X")))
                assert a.ok and "manual" in a.flags
                twice = await send(
                    u.event(TubeAdd, "table-v2", tube=t1.tube, person=person("110101x "))
                )
                assert not twice.ok and codes(twice) == ["already_sampled"]
                other = await send(
                    u.event(TubeAdd, "table-v2", tube=t2.tube, person=person("110101X", "王*"))
                )
                assert not other.ok and codes(other) == ["already_sampled"]
                ov = Override(staff="s1", why="sample spilled")
                again = await send(
                    u.event(
                        TubeAdd, "table-v2", tube=t2.tube, person=person("110101X"), override=ov
                    )
                )
                assert again.ok and "override" in again.flags
                neither = await send(u.event(TubeAdd, "table-v2", tube=t2.tube))
                assert not neither.ok and codes(neither) == ["malformed"]
                both = await send(
                    u.event(TubeAdd, "table-v2", tube=t2.tube, code="x", person=person("9"))
                )
                assert not both.ok
                for tube, n in ((t1.tube, 1), (t2.tube, 1)):
                    assert (await send(u.event(TubeClose, "table-v2", tube=tube, count=n))).ok

                # transfer: what the hub knows of a box, in the result's flags
                unknown = await send(u.event(BoxCheck, "xfer-v2", box="BOX0000071"))
                assert not unknown.ok and codes(unknown) == ["box_not_open"]
                assert (await send(u.event(BoxOpen, "table-v2", box="BOX0000071"))).ok
                for tube in (t1.tube, t2.tube):
                    add = u.event(BoxAdd, "table-v2", box="BOX0000071", tube=tube)
                    assert (await send(add)).ok
                unsealed = await send(u.event(BoxCheck, "xfer-v2", box="BOX0000071"))
                assert not unsealed.ok and codes(unsealed) == ["box_not_sealed"]
                assert "known:2/2" in unsealed.flags
                assert (await send(u.event(BoxSeal, "table-v2", box="BOX0000071", tubes=2))).ok
                check = u.event(BoxCheck, "xfer-v2", box="BOX0000071")
                sealed = await send(check)
                assert sealed.ok and "sealed" in sealed.flags and "known:2/2" in sealed.flags
                assert {f for f in sealed.flags if f.startswith("tube:")} == {
                    "tube:100000000071",
                    "tube:100000000072",
                }
                u.send(check)  # a resend is answered from the store, same flags
                await u.wait([check.id], count=2)
                dup = u.results[check.id][1]
                assert dup.dup and dup.flags == sealed.flags
        finally:
            await worker.stop()
        return got

    got = arun(main())
    store = open_store(db_url)
    try:
        vid, advice_ts, disinfect_ts = got["vehicle"]
        row = store.one(
            "SELECT plate, direction, advice_ts, disinfected_ts FROM vehicles WHERE id = ?",
            (vid,),
        )
        assert row[0] == "京A12345" and row[1] == "出城"
        assert row[2] == pytest.approx(advice_ts) and row[3] == pytest.approx(disinfect_ts)
        vid2, early_ts = got["early"]
        row = store.one("SELECT plate, direction, advice_ts FROM vehicles WHERE id = ?", (vid2,))
        assert row[0] == "京B54321" and row[1] == "in" and row[2] == pytest.approx(early_ts)
        outcomes = store.all(
            "SELECT id, turned_back, why, outcome FROM vehicles WHERE id IN (?, ?)", (vid, vid2)
        )
        assert sorted(tuple(r) for r in outcomes) == sorted(
            [(vid, 1, "fever", "referred"), (vid2, 1, "red code", "turned_back")]
        )
        members = store.tube("100000000071")["members"]
        assert [m["sid"] for m in members] == ["manual:" + manual_id_hash("110101X")[:32]]
        body = store.one(
            "SELECT body FROM events WHERE kind = 'tube_add' AND ok = 1 AND subject = ?",
            ("100000000071",),
        )[0]
        assert "110101X" not in body and "王小明" not in body and '"name":"王*明"' in body
    finally:
        store.close()


def test_unknown_version_of_new_events_refused_and_old_shapes_decode() -> None:
    ev = VehicleStep(id=uuid7(), unit="cp-1", seq=1, ts=1.7e9, vehicle=uuid7(), step="advice")
    assert decode_event(encode(ev)) == ev
    doc = json.loads(encode(ev))
    doc["v"] = 2
    with pytest.raises(ProtocolError) as err:
        decode_event(json.dumps(doc).encode())
    assert err.value.reason == "unknown_version"
    doc = json.loads(encode(ev))
    doc["step"] = "dance"
    with pytest.raises(ProtocolError) as err:
        decode_event(json.dumps(doc).encode())
    assert err.value.reason == "invalid"
    # a tube_add of an older unit (SR1 code, no person field) decodes as before
    old = {"kind": "tube_add", "v": 1, "id": uuid7(), "unit": "t-1", "seq": 3, "ts": 1.7e9,
           "tube": "100000000001", "code": "SR1:abc"}  # fmt: skip
    e = decode_event(json.dumps(old).encode())
    assert e.code == "SR1:abc" and e.person is None
    bad = dict(old, code=None, person={"name": "王*明", "id_hash": "not-a-hash"})
    with pytest.raises(ProtocolError):
        decode_event(json.dumps(bad).encode())
