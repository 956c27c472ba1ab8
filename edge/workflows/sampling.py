"""Sampling table: tubes tied to the people in them, boxes tied to their tubes.

Scan a tube → it opens (pool size per round: 1, 5, 10 or 20) → scan each person's SR1
registration (phone or paper), or enter them by hand → the tube closes when the pool is
full, or by hand. Rules enforced here, before the hub ever hears of it (DESIGN.md §4):

- a tube code opens once, ever (the hub checks city-wide; offline the unit's own record
  is the check and a later conflict from the hub is shown to staff);
- a person is in a tube once, and in one tube per round unless staff override (reason
  recorded in the event);
- a full pool takes nobody else; a sealed box takes no tubes; a tube belongs to one box;
- the last step can be undone (an Undo event with the reason: the audit keeps both).

Boxes: scan a box code, scan closed tubes into it, seal (count shown; the hub tells the
transfer team at once), handover sheet (box, tubes, samples, handler, time). Counters for
the table's day, and a warning when pre-printed tube or box labels run low.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from checkpost.edge.workflows.common import (
    CodeRead,
    Notice,
    Output,
    Step,
    VerdictView,
    Workflow,
    masked_name,
    subject_id,
)

from checkpost.policy import decide
from checkpost.protocol import (
    BoxAdd,
    BoxOpen,
    BoxSeal,
    Handover,
    Override,
    TubeAdd,
    TubeClose,
    TubeOpen,
    Undo,
)
from checkpost.protocol.messages import ManualPerson
from checkpost.reasons import reason

# Key of the ID-number hash of people entered by hand. Every unit and the hub of one
# deployment must use the same key (``[sampling] manual_key``), or one person entered at two
# tables would not be recognised; a deployment sets its own so the hashes are not portable.
DEFAULT_MANUAL_KEY = "checkpost-manual-1"


def manual_id_hash(id_number: str, key: str = DEFAULT_MANUAL_KEY) -> str:
    """Keyed hash (HMAC-SHA256, hex) of an ID number as staff typed it, normalised."""
    norm = "".join(id_number.split()).upper()
    return hmac.new(key.encode(), norm.encode(), hashlib.sha256).hexdigest()


def mask_name(name: str) -> str:
    name = name.strip()
    if len(name) <= 1:
        return name + "*"
    return name[:1] + "*" * max(1, len(name) - 2) + (name[-1:] if len(name) > 2 else "")


def mask_phone(phone: str) -> str:
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 7:
        return "*" * min(len(digits), 16)
    return (digits[:3] + "*" * (len(digits) - 7) + digits[-4:])[:16]


@dataclass(frozen=True, slots=True)
class Member:
    key: str  # sid (SR1), or "manual:" + the hashed ID number of a person entered by hand
    name: str
    event: str
    manual: bool = False


@dataclass(slots=True)
class Tube:
    code: str
    event: str
    pool: int
    round: str
    opened_at: float
    members: list[Member] = field(default_factory=list)
    closed: bool = False
    box: str = ""


@dataclass(slots=True)
class Box:
    code: str
    event: str
    tubes: list[str] = field(default_factory=list)
    sealed: bool = False
    sealed_at: float | None = None
    handed_over: bool = False


class SamplingWorkflow(Workflow):
    station = "sampling"

    def __init__(
        self,
        unit: str,
        verifier: Any,
        policy: Any,
        *,
        table: str = "",
        round_name: str = "",
        pool: int | None = None,
        auto_close: bool = True,
        tube_labels: int | None = None,
        box_labels: int | None = None,
        labels_warn: tuple[int, int] = (20, 2),
        utc_offset_h: float = 8.0,
        staff: str = "staff",
        manual_key: str = DEFAULT_MANUAL_KEY,
        **kw: Any,
    ) -> None:
        super().__init__(unit, verifier, policy, **kw)
        self.manual_key = manual_key
        self.table = table[:32]
        self.round_name = round_name  # "": the local date (one round per day)
        self.pool = pool or policy.sampling.default_pool_size
        if self.pool not in policy.sampling.pool_sizes:
            raise ValueError(f"pool size {self.pool} not in policy {policy.sampling.pool_sizes}")
        self.auto_close = auto_close
        self.utc_offset_h = utc_offset_h
        self.staff = staff
        self.tube: Tube | None = None
        self.tubes: dict[str, Tube] = {}  # every tube opened at this table
        self.round_people: dict[tuple[str, str], str] = {}  # (round, person) -> tube
        self.box: Box | None = None
        self.boxes: dict[str, Box] = {}
        self.undo_stack: list[tuple[str, str, dict[str, Any]]] = []  # (kind, event, data)
        self.pending_override: dict[str, Any] | None = None
        self.tube_labels = tube_labels
        self.box_labels = box_labels
        self.labels_warn = labels_warn
        self.day = ""
        self.counts: dict[str, int] = {}
        self.sheets: list[dict[str, Any]] = []  # handover sheets, newest last

    # -- helpers ----------------------------------------------------------------------------

    def _local_date(self, now: float) -> str:
        return dt.datetime.fromtimestamp(now + self.utc_offset_h * 3600, dt.UTC).date().isoformat()

    def current_round(self, now: float) -> str:
        return self.round_name or self._local_date(now)

    def _count(self, key: str, now: float, n: int = 1) -> None:
        day = self._local_date(now)
        if day != self.day:
            self.day, self.counts = day, {}
        self.counts[key] = self.counts.get(key, 0) + n

    def counters(self, now: float) -> dict[str, int]:
        out = {"tubes": 0, "samples": 0, "boxes": 0, "manual": 0, "undone": 0, "overrides": 0}
        if self._local_date(now) == self.day:
            out.update(self.counts)
        if self.tube_labels is not None:
            out["tube_labels_left"] = self.tube_labels
        if self.box_labels is not None:
            out["box_labels_left"] = self.box_labels
        return out

    def _push_undo(self, kind: str, event: str, **data: Any) -> None:
        self.undo_stack.append((kind, event, data))
        del self.undo_stack[:-50]

    def _view(
        self,
        verdict: str,
        reasons: list[Any],
        now: float,
        event: str = "",
        name: str = "",
        subject: str = "",
    ) -> None:
        self.show(
            VerdictView(
                event=event, verdict=verdict, reasons=reasons, name=name, at=now, subject=subject
            )
        )

    def _fail(self, step: Step, code: str, now: float, subject: str = "", **params: Any) -> Step:
        step.error(code, **params)
        self._view("FAIL", [reason(code, **params)], now, subject=subject)
        return step

    # -- codes ------------------------------------------------------------------------------

    def _on_code(self, inp: CodeRead, now: float) -> Step:
        step = Step()
        decoded = self.verifier.verify(inp.text, now)
        fmt = decoded.format
        if fmt == "tube" and decoded.valid:
            return self._tube_code(decoded.text, now, step)
        if fmt == "box" and decoded.valid:
            return self._box_code(decoded.text, now, step)
        if fmt == "SR1":
            if not decoded.valid:
                verdict = decide(decoded, None, "sampling", now, self.policy)
                step.error("registration_invalid")
                self._view("FAIL", [reason("registration_invalid"), *verdict.reasons], now)
                return step
            sid = subject_id(decoded) or ""
            return self._add_person(sid, masked_name(decoded), decoded.text, None, now, step)
        verdict = decide(decoded, None, "sampling", now, self.policy)
        self._view("FAIL", list(verdict.reasons), now)
        step.outputs.append(Output("buzzer", "error", 300))
        return step

    def _tube_code(self, code: str, now: float, step: Step) -> Step:
        tube = self.tube
        if tube is not None:
            if code == tube.code:
                return step
            return self._fail(step, "tube_open", now, subject=code, tube=tube.code)
        known = self.tubes.get(code)
        if known is not None and known.closed and self.box is not None:
            return self._box_add(known, now, step)
        if known is not None:
            return self._fail(step, "tube_reopened", now, subject=code, tube=code)
        self.pending_override = None
        rnd = self.current_round(now)
        ev = self.event(TubeOpen, now, tube=code, pool=self.pool, round=rnd, table=self.table)
        step.events.append(ev)
        self.tube = Tube(code, ev.id, self.pool, rnd, now)
        self.tubes[code] = self.tube
        self._push_undo("tube_open", ev.id, tube=code)
        self.expect(ev.id, kind="tube_open", tube=code)
        self._count("tubes", now)
        self._view("PASS", [], now, event=ev.id, subject=code)
        step.outputs.append(Output("buzzer", "ok", 100))
        if self.tube_labels is not None:
            self.tube_labels = max(0, self.tube_labels - 1)
            if self.tube_labels <= self.labels_warn[0]:
                step.warn("labels_low", what="Tube", left=self.tube_labels)
        return step

    def _add_person(
        self,
        key: str,
        name: str,
        code: str | None,
        person: ManualPerson | None,
        now: float,
        step: Step,
        override: Any = None,
    ) -> Step:
        manual = person is not None
        tube = self.tube
        if tube is None:
            return self._fail(step, "no_open_tube", now)
        if len(tube.members) >= tube.pool:
            return self._fail(
                step, "pool_full", now, subject=tube.code, count=len(tube.members), pool=tube.pool
            )
        if any(m.key == key for m in tube.members):
            return self._fail(step, "person_in_tube", now, subject=tube.code)
        other = self.round_people.get((tube.round, key))
        if other is not None and override is None and self.policy.sampling.once_per_round:
            self.pending_override = {
                "key": key,
                "name": name,
                "code": code,
                "person": person,
                "tube": tube.code,
            }
            step.error("person_in_round", tube=other)
            self._view(
                "REVIEW",
                [reason("person_in_round", tube=other), reason("override_needed")],
                now,
                name=name,
                subject=tube.code,
            )
            return step
        self.pending_override = None
        ev = self.event(TubeAdd, now, tube=tube.code, code=code, override=override, person=person)
        step.events.append(ev)
        tube.members.append(Member(key, name, ev.id, manual))
        self.round_people.setdefault((tube.round, key), tube.code)
        self._push_undo("tube_add", ev.id, tube=tube.code, key=key)
        self.expect(ev.id, kind="manual" if manual else "tube_add", tube=tube.code, key=key)
        self._count("samples", now)
        if manual:
            self._count("manual", now)
        if override is not None:
            self._count("overrides", now)
        reasons = [reason("manual_entry")] if manual else []
        self._view("PASS", reasons, now, event=ev.id, name=name, subject=tube.code)
        step.outputs.append(Output("buzzer", "ok", 100))
        if self.auto_close and len(tube.members) >= tube.pool:
            self._close_tube(now, step)
        return step

    def _close_tube(self, now: float, step: Step) -> Step:
        tube = self.tube
        assert tube is not None
        ev = self.event(TubeClose, now, tube=tube.code, count=len(tube.members))
        step.events.append(ev)
        tube.closed = True
        self.tube = None
        self._push_undo("tube_close", ev.id, tube=tube.code)
        self.expect(ev.id, kind="tube_close", tube=tube.code)
        step.outputs.append(Output("buzzer", "done", 300))
        return step

    # -- boxes ------------------------------------------------------------------------------

    def _box_code(self, code: str, now: float, step: Step) -> Step:
        box = self.box
        if box is not None and code == box.code:
            return step
        known = self.boxes.get(code)
        if known is not None and known.sealed:
            return self._fail(step, "box_sealed", now, subject=code, box=code)
        if box is not None:
            return self._fail(step, "box_open", now, subject=code, box=box.code)
        if known is not None:  # opened before and not sealed: carry on filling it
            self.box = known
            return step
        ev = self.event(BoxOpen, now, box=code)
        step.events.append(ev)
        self.box = Box(code, ev.id)
        self.boxes[code] = self.box
        self.expect(ev.id, kind="box_open", box=code)
        self._view("PASS", [], now, event=ev.id, subject=code)
        if self.box_labels is not None:
            self.box_labels = max(0, self.box_labels - 1)
            if self.box_labels <= self.labels_warn[1]:
                step.warn("labels_low", what="Box", left=self.box_labels)
        return step

    def _box_add(self, tube: Tube, now: float, step: Step) -> Step:
        box = self.box
        assert box is not None
        if box.sealed:
            return self._fail(step, "box_sealed", now, subject=box.code, box=box.code)
        if tube.box:
            return self._fail(
                step, "tube_in_box", now, subject=tube.code, tube=tube.code, box=tube.box
            )
        if not tube.closed:
            return self._fail(step, "tube_not_closed", now, subject=tube.code, tube=tube.code)
        ev = self.event(BoxAdd, now, box=box.code, tube=tube.code)
        step.events.append(ev)
        box.tubes.append(tube.code)
        tube.box = box.code
        self._push_undo("box_add", ev.id, box=box.code, tube=tube.code)
        self.expect(ev.id, kind="box_add", box=box.code, tube=tube.code)
        self._view("PASS", [], now, event=ev.id, subject=f"{box.code} ← {tube.code}")
        step.outputs.append(Output("buzzer", "ok", 100))
        return step

    def _tap_add_tube(self, args: dict[str, Any], now: float) -> Step:
        """Put a closed tube into the open box by its code (typed, label unreadable)."""
        step = Step()
        if self.box is None:
            return self._fail(step, "no_open_box", now)
        tube = self.tubes.get(str(args["tube"]))
        if tube is None:
            return self._fail(step, "unknown_tube", now, tube=str(args["tube"])[:20])
        return self._box_add(tube, now, step)

    def _tap_seal_box(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        box = self.box
        if box is None:
            return self._fail(step, "no_open_box", now)
        if not box.tubes:
            return self._fail(step, "box_empty", now, subject=box.code)
        ev = self.event(BoxSeal, now, box=box.code, tubes=len(box.tubes))
        step.events.append(ev)
        box.sealed, box.sealed_at = True, now
        self.box = None
        self.undo_stack.clear()  # a sealed box is physically closed: no undo across it
        self.expect(ev.id, kind="box_seal", box=box.code)
        self._count("boxes", now)
        samples = self._samples(box)
        self._view(
            "PASS",
            [],
            now,
            event=ev.id,
            subject=f"{box.code}: {len(box.tubes)} tubes, {samples} samples",
        )
        step.journal.append(
            ("box_sealed", ev.id, {"box": box.code, "tubes": len(box.tubes), "samples": samples})
        )
        return step

    def _samples(self, box: Box) -> int:
        return sum(len(self.tubes[t].members) for t in box.tubes if t in self.tubes)

    def _tap_handover(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        handler = str(args.get("handler", "")).strip()
        if not handler:
            return self._fail(step, "no_handler", now)
        code = str(
            args.get("box")
            or next(
                (b.code for b in reversed(self.boxes.values()) if b.sealed and not b.handed_over),
                "",
            )
        )
        box = self.boxes.get(code)
        if box is None:
            return self._fail(step, "no_open_box", now)
        if not box.sealed:
            return self._fail(step, "box_open", now, box=box.code)
        samples = self._samples(box)
        ev = self.event(
            Handover,
            now,
            box=box.code,
            tubes=len(box.tubes),
            samples=samples,
            handler=handler[:64],
            place="site",
            seal_intact=True,
        )
        step.events.append(ev)
        box.handed_over = True
        sheet = {
            "box": box.code,
            "tubes": len(box.tubes),
            "samples": samples,
            "handler": handler,
            "at": now,
            "table": self.table,
            "unit": self.unit,
            "tube_codes": list(box.tubes),
            "event": ev.id,
        }
        self.sheets.append(sheet)
        del self.sheets[:-20]
        self.expect(ev.id, kind="handover", box=box.code)
        step.journal.append(("handover_sheet", ev.id, sheet))
        self._view("PASS", [], now, event=ev.id, subject=f"{box.code} → {handler}")
        return step

    # -- taps -------------------------------------------------------------------------------

    def _tap_manual(self, args: dict[str, Any], now: float) -> Step:
        """A person without any code, entered by hand: name, ID number and phone as staff
        typed them. Only masked forms and a keyed hash of the ID number leave this step (a
        TubeAdd with ``person``); the hash is what "once per tube / once per round" matches,
        here and at the hub. Without an ID number (a child, a forgotten card) name and phone
        stand in for it."""
        name = str(args["name"]).strip()
        phone = str(args.get("phone", "")).strip()
        id_number = str(args.get("id_number", "")).strip()
        if not name:
            raise ValueError("name is empty")
        id_hash = manual_id_hash(id_number or f"{name}|{phone}", self.manual_key)
        person = ManualPerson(name=mask_name(name)[:32], id_hash=id_hash, phone=mask_phone(phone))
        return self._add_person("manual:" + id_hash[:32], person.name, None, person, now, Step())

    def _tap_override(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        p = self.pending_override
        why = str(args.get("why", "")).strip()
        if p is None:
            return self._fail(step, "nothing_to_decide", now)
        if not why:
            return step.error("override_needed")
        staff = str(args.get("staff") or self.staff)[:64]
        step.journal.append(
            ("override", p["tube"], {"person": p["name"], "staff": staff, "why": why})
        )
        return self._add_person(
            p["key"],
            p["name"],
            p["code"],
            p["person"],
            now,
            step,
            override=Override(staff=staff, why=why[:500]),
        )

    def _tap_close_tube(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        if self.tube is None:
            return self._fail(step, "no_open_tube", now)
        if not self.tube.members:
            return self._fail(step, "tube_empty", now, subject=self.tube.code)
        return self._close_tube(now, step)

    def _tap_set_pool(self, args: dict[str, Any], now: float) -> Step:
        pool = int(args["pool"])
        if pool not in self.policy.sampling.pool_sizes:
            return Step().error("bad_pool", pool=pool)
        if self.tube is not None:
            return Step().error("tube_open", tube=self.tube.code)
        self.pool = pool
        return Step()

    def _tap_set_round(self, args: dict[str, Any], now: float) -> Step:
        self.round_name = str(args["round"]).strip()[:64]
        return Step()

    def _tap_undo(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        if not self.undo_stack:
            return step.error("nothing_to_undo")
        why = str(args.get("why") or "undo").strip()[:500]
        kind, target, data = self.undo_stack.pop()
        if kind == "tube_add":
            tube = self.tubes[data["tube"]]
            tube.members = [m for m in tube.members if m.event != target]
            if self.round_people.get((tube.round, data["key"])) == tube.code:
                del self.round_people[(tube.round, data["key"])]
            self._count("samples", now, -1)
        elif kind == "tube_close":
            tube = self.tubes[data["tube"]]
            if self.tube is not None:  # another tube was opened since: undo that first
                self.undo_stack.append((kind, target, data))
                return step.error("tube_open", tube=self.tube.code)
            tube.closed = False
            self.tube = tube
        elif kind == "tube_open":
            tube = self.tubes.pop(data["tube"])
            if self.tube is tube:
                self.tube = None
            self._count("tubes", now, -1)
            if self.tube_labels is not None:
                self.tube_labels += 1
        elif kind == "box_add":
            box, tube = self.boxes[data["box"]], self.tubes[data["tube"]]
            box.tubes.remove(tube.code)
            tube.box = ""
        ev = self.event(Undo, now, target=target, why=why)
        step.events.append(ev)
        self._count("undone", now)
        step.journal.append(("undo", target, {"kind": kind, "why": why, **data}))
        self._view("REVIEW", [], now, event=ev.id, subject=f"undone: {kind.replace('_', ' ')}")
        return step

    def _on_result(self, result: Any, info: dict[str, Any], now: float, step: Step) -> Step:
        step = super()._on_result(result, info, now, step)
        if result.ok and info.get("kind") == "box_seal":
            # the hub has the seal: it tells the transfer team at once; staff see that here
            step.notice = Notice("info", reason("transfer_notified", box=info.get("box", "")))
            self.notice = step.notice
        return step

    def _on_conflict(self, result: Any, info: dict[str, Any], now: float, step: Step) -> None:
        self._view(
            "FAIL",
            list(result.reasons) or [reason("hub_conflict", why="refused")],
            now,
            event=result.id,
            subject=str(info.get("tube") or info.get("box") or ""),
        )
        if self.view is not None:
            self.view.provisional = False
            self.view.confirmed = True

    # -- screen -----------------------------------------------------------------------------

    def state_view(self, now: float) -> dict[str, Any]:
        t, b = self.tube, self.box
        return {
            "round": self.current_round(now),
            "pool": self.pool,
            "tube": None
            if t is None
            else {
                "code": t.code,
                "pool": t.pool,
                "count": len(t.members),
                "members": [{"name": m.name, "manual": m.manual} for m in t.members],
            },
            "box": None
            if b is None
            else {"code": b.code, "tubes": len(b.tubes), "samples": self._samples(b)},
            "closed_unboxed": sum(1 for x in self.tubes.values() if x.closed and not x.box),
            "override_pending": self.pending_override is not None,
            "last_sheet": self.sheets[-1] if self.sheets else None,
            "can_undo": bool(self.undo_stack),
        }

    def buttons(self) -> list[str]:
        out = ["undo"] if self.undo_stack else []
        if self.tube is not None:
            out += ["manual", "close_tube"]
        else:
            out.append("set_pool")
        if self.pending_override is not None:
            out.append("override")
        if self.box is not None:
            out.append("seal_box")
        if any(b.sealed and not b.handed_over for b in self.boxes.values()):
            out.append("handover")
        return out
