"""Hypothesis drives the workflows with arbitrary input sequences; invariants must hold.

Sampling (a state machine against the rules of DESIGN.md §4): a tube never holds more than
its pool, nobody twice; a person is in one tube per round unless overridden; a tube belongs
to one box; a sealed box never changes; the events replayed give the same tubes and boxes.
Checkpoint and gate: never crash, every event is a valid protocol message, the barrier relay
opens only on a released vehicle whose occupants all passed.
"""

from __future__ import annotations

from typing import Any

from checkpost.edge.workflows import CodeRead, DeviceState, Reading, Tap, Tick, make_workflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from checkpost.protocol import decode_event, encode

from .conftest import T0

TUBES = [f"1000000000{i:02d}" for i in range(6)]
BOXES = ["BOX0000001", "BOX0000002"]


def sampling_machine(ctx: Any, issuer: Any) -> type[RuleBasedStateMachine]:
    codes = [issuer.sr1(iat=T0, id_number=f"P{i}", name=f"张*{i}") for i in range(6)]

    class Sampling(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.wf = make_workflow("sampling", "t-1", ctx.verifier, ctx.policy, pool=5)
            self.now = T0
            self.events: list[Any] = []
            self.sealed_seen: dict[str, list[str]] = {}

        def _do(self, inp: Any) -> None:
            self.now += 1
            step = self.wf.handle(inp, self.now)
            for e in step.events:
                assert decode_event(encode(e)) == e
            self.events.extend(step.events)

        @rule(tube=st.sampled_from(TUBES))
        def scan_tube(self, tube: str) -> None:
            self._do(CodeRead(tube))

        @rule(i=st.integers(0, 5))
        def scan_person(self, i: int) -> None:
            self._do(CodeRead(codes[i]))

        @rule(name=st.sampled_from(["王小明", "李雷"]))
        def manual(self, name: str) -> None:
            self._do(Tap("manual", {"name": name, "phone": "13900001111"}))

        @rule(box=st.sampled_from(BOXES))
        def scan_box(self, box: str) -> None:
            self._do(CodeRead(box))

        @rule(action=st.sampled_from(["close_tube", "seal_box", "undo"]))
        def tap(self, action: str) -> None:
            self._do(Tap(action, {"why": "test"}))

        @rule()
        def override(self) -> None:
            self._do(Tap("override", {"why": "spilled", "staff": "s"}))

        @rule(pool=st.sampled_from([1, 5, 7, 10]))
        def set_pool(self, pool: int) -> None:
            self._do(Tap("set_pool", {"pool": pool}))

        @rule(i=st.integers(0, 5), tube=st.sampled_from(TUBES))
        def refused_by_the_outbox(self, i: int, tube: str) -> None:
            """The agent restores the snapshot when the outbox refuses: no trace is left."""
            before = self.wf.screen(self.now)
            snap = self.wf.snapshot()
            self.wf.handle(CodeRead(codes[i]), self.now + 0.5)
            self.wf.handle(CodeRead(tube), self.now + 0.5)
            self.wf.handle(Tap("undo", {"why": "x"}), self.now + 0.5)
            self.wf.restore(snap)
            assert self.wf.screen(self.now) == before

        @rule()
        def handover(self) -> None:
            self._do(Tap("handover", {"handler": "h"}))

        @invariant()
        def rules_hold(self) -> None:
            wf = self.wf
            per_round: dict[tuple[str, str], int] = {}
            for t in wf.tubes.values():
                keys = [m.key for m in t.members]
                assert len(keys) <= t.pool
                assert len(keys) == len(set(keys))
                for k in keys:
                    per_round[(t.round, k)] = per_round.get((t.round, k), 0) + 1
            overrides = sum(1 for e in self.events if getattr(e, "override", None) is not None)
            assert sum(n - 1 for n in per_round.values()) <= overrides
            in_boxes = [t for b in wf.boxes.values() for t in b.tubes]
            assert len(in_boxes) == len(set(in_boxes))
            for b in wf.boxes.values():
                for t in b.tubes:
                    assert wf.tubes[t].closed and wf.tubes[t].box == b.code
                if b.sealed:
                    if b.code in self.sealed_seen:
                        assert b.tubes == self.sealed_seen[b.code]
                    self.sealed_seen[b.code] = list(b.tubes)
            if wf.tube is not None:
                assert not wf.tube.closed

        @invariant()
        def events_replay_to_the_same_state(self) -> None:
            undone = {e.target for e in self.events if e.__struct_config__.tag == "undo"}
            members: dict[str, int] = {}
            for e in self.events:
                if e.__struct_config__.tag == "tube_add" and e.id not in undone:
                    members[e.tube] = members.get(e.tube, 0) + 1
            assert members == {c: len(t.members) for c, t in self.wf.tubes.items() if t.members}

    return Sampling


def test_sampling_state_machine(ctx: Any, issuer: Any) -> None:
    run_state_machine_as_test(
        sampling_machine(ctx, issuer),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def _checkpoint_inputs(issuer: Any) -> st.SearchStrategy[Any]:
    passes = [issuer.hp1(iat=T0, id_number=f"C{i}", colour=c) for i, c in enumerate("GGYR")]
    return st.one_of(
        st.sampled_from([*passes, "garbage", "HP1:AAAA"]).map(CodeRead),
        st.floats(30, 45).map(lambda c: Reading(round(c, 1))),
        st.sampled_from([Tap("plate", {"plate": p}) for p in ("京A12345", "鄂A99999", "bad")]),
        st.sampled_from(
            [
                Tap(a, {"why": "w", "allow": al})
                for a in ("release", "turn_back", "refer", "decide", "advice", "disinfect", "skip")
                for al in (True, False)
            ]
        ),
        st.floats(34, 40).map(lambda c: Tap("temp", {"celsius": round(c, 1)})),
        st.booleans().map(lambda ok: DeviceState("thermometer", ok)),
        st.just(Tick()),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_checkpoint_random_inputs(ctx: Any, issuer: Any, data: st.DataObject) -> None:
    wf = make_workflow("checkpoint", "cp-9", ctx.verifier, ctx.policy, window_s=5)
    inputs = data.draw(st.lists(_checkpoint_inputs(issuer), max_size=40))
    now = T0
    open_vehicle: str | None = None
    steps_done: set[tuple[str, str]] = set()
    for inp in inputs:
        now += data.draw(st.sampled_from([0.5, 3, 8]))
        before = wf.vehicle
        occupants_ok = before is not None and all(o.verdict == "PASS" for o in before.occupants)
        step = wf.handle(inp, now)
        for e in step.events:
            assert decode_event(encode(e)) == e
            tag = e.__struct_config__.tag
            if tag == "vehicle_open":
                open_vehicle = e.id
                assert e.direction in ("in", "out")
            if tag == "scan":
                assert e.vehicle == open_vehicle
            if tag == "vehicle_step":  # one tap each, for the open vehicle, at the tap's time
                assert e.vehicle == open_vehicle and e.ts == now
                assert (e.vehicle, e.step) not in steps_done
                steps_done.add((e.vehicle, e.step))
        if any(o.device == "relay" for o in step.outputs):
            assert isinstance(inp, Tap) and inp.action == "release" and occupants_ok
            assert wf.vehicle is None
        wf.screen(now)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_gate_and_transfer_random_inputs(ctx: Any, issuer: Any, data: st.DataObject) -> None:
    passes = [issuer.hp1(iat=T0, id_number=f"G{i}", colour=c) for i, c in enumerate("GYR")]
    gate = make_workflow("gate", "g-1", ctx.verifier, ctx.policy)
    gate.set_sealed([issuer.sid("G0")])
    xfer = make_workflow("transfer", "x-1", ctx.verifier, ctx.policy)
    xfer.set_manifest({"BOX0000001": {"tubes": 1, "samples": 5}})
    texts = st.sampled_from([*passes, *TUBES, *BOXES, "x"])
    taps = st.sampled_from(
        [
            Tap("direction"),
            Tap("register", {"handler": "h"}),
            Tap("seal_broken"),
            Tap("end_shipment"),
            Tap("handler", {}),
        ]
    )
    for inp in data.draw(st.lists(st.one_of(texts.map(CodeRead), taps), max_size=30)):
        for wf in (gate, xfer):
            step = wf.handle(inp, T0 + 1)
            for e in step.events:
                assert decode_event(encode(e)) == e
            relay = any(o.device == "relay" for o in step.outputs)
            if wf is gate and relay:
                assert step.events[0].local == "PASS"
            wf.screen(T0 + 1)
