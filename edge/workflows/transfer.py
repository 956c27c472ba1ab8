"""Transfer point: receive fast, register fast, forward fast — and stop every mismatch.

Scan an arriving box, scan its tubes (or confirm the count), note a broken seal, name the
handler, register. Scanning the box asks the hub what it knows of it (a ``box_check``
event; the Result says whether the box was sealed, its tube and sample counts and its tube
codes), so the box is checked against the hub's own record, not a copy. Offline, or for
boxes announced ahead, the unit falls back to a manifest (``set_list name=manifest``: box ->
tubes, samples, tube codes). On registering, the Handover event goes to the hub, which
compares again. Every mismatch — box unknown or never sealed, missing box, extra tube,
missing tube, tube or sample count, broken seal — holds the box before it moves on; a hub
answer that arrives after registering still holds it. "Missing box" is found at the end of
a shipment: every manifest box not received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checkpost.edge.workflows.common import (
    CodeRead,
    Notice,
    Output,
    Step,
    VerdictView,
    Workflow,
)

from checkpost.policy import decide
from checkpost.protocol import Handover
from checkpost.protocol.messages import BoxCheck
from checkpost.reasons import Reason, reason


@dataclass(frozen=True, slots=True)
class Expected:
    tubes: int
    samples: int
    tube_codes: tuple[str, ...] = ()
    source: str = "manifest"  # "manifest" (pushed ahead) or "hub" (answer to box_check)


def _extra_tubes(scanned: list[str], exp: Expected) -> list[Reason]:
    """Tubes on the table that the expected record does not list (when it lists tubes)."""
    if not exp.tube_codes:
        return []
    return [reason("extra_tube", tube=t) for t in scanned if t not in exp.tube_codes]


def expected_from_flags(flags: list[str]) -> Expected | None:
    """The hub's answer to a box_check: ``known:<tubes>/<samples>`` and ``tube:<code>``."""
    known = next((f[6:] for f in flags if f.startswith("known:")), None)
    if known is None or "/" not in known:
        return None
    tubes, _, samples = known.partition("/")
    if not (tubes.isdigit() and samples.isdigit()):
        return None
    codes = tuple(f[5:] for f in flags if f.startswith("tube:"))
    return Expected(int(tubes), int(samples), codes, "hub")


@dataclass(slots=True)
class Receiving:
    box: str
    started: float
    tubes: list[str] = field(default_factory=list)
    seal_intact: bool = True
    findings: list[Reason] = field(default_factory=list)  # box-level: unknown, not sealed
    check: str = ""  # the box_check event id ("" offline-only)
    checked: str = ""  # "" not asked, "pending", "ok", "refused"


@dataclass(slots=True)
class Received:
    box: str
    event: str
    tubes: int
    samples: int
    handler: str
    at: float
    status: str  # "ok" | "held" | "pending"
    findings: list[Reason] = field(default_factory=list)


class TransferWorkflow(Workflow):
    station = "transfer"

    def __init__(
        self, unit: str, verifier: Any, policy: Any, *, staff: str = "staff", **kw: Any
    ) -> None:
        super().__init__(unit, verifier, policy, **kw)
        self.staff = staff
        self.manifest: dict[str, Expected] = {}
        self.manifest_version = ""
        self.current: Receiving | None = None
        self.received: dict[str, Received] = {}
        self.known: dict[str, Expected] = {}  # the hub's answers, by box
        # box_check answers still due for boxes registered before they came
        self._late: dict[str, tuple[str, list[str], bool]] = {}
        self.handler = ""
        self.counts = {"boxes": 0, "tubes": 0, "samples": 0, "held": 0, "missing": 0}

    def set_manifest(self, items: dict[str, Any], version: str = "") -> None:
        """Replace the manifest (hub command ``set_list name=manifest``)."""
        self.manifest = {}
        self.add_manifest(items)
        self.manifest_version = version

    def add_manifest(self, items: dict[str, Any]) -> None:
        """Announce more boxes (a box sealed at a site while the shipment is under way)."""
        for box, v in items.items():
            self.manifest[box] = Expected(
                int(v.get("tubes", 0)), int(v.get("samples", 0)), tuple(v.get("tube_codes", ()))
            )

    def _on_code(self, inp: CodeRead, now: float) -> Step:
        step = Step()
        decoded = self.verifier.verify(inp.text, now)
        if decoded.format == "box" and decoded.valid:
            return self._box(decoded.text, now, step)
        if decoded.format == "tube" and decoded.valid:
            return self._tube(decoded.text, now, step)
        verdict = decide(decoded, None, "transfer", now, self.policy)
        self.show(VerdictView(event="", verdict="FAIL", reasons=list(verdict.reasons), at=now))
        step.outputs.append(Output("buzzer", "error", 300))
        return step

    def _box(self, code: str, now: float, step: Step) -> Step:
        cur = self.current
        if cur is not None:
            if cur.box == code:
                return step
            step.error("box_open", box=cur.box)
            return step
        if code in self.received:
            step.error("box_sealed", box=code)
            return step
        self.current = Receiving(code, now)
        ev = self.event(BoxCheck, now, box=code)
        step.events.append(ev)
        self.current.check, self.current.checked = ev.id, "pending"
        self.expect(ev.id, kind="box_check", box=code)
        if self.manifest and code not in self.manifest:
            self.current.findings.append(reason("box_expected", box=code))
            step.warn("box_expected", box=code)
        self.show(
            VerdictView(
                event="",
                verdict="REVIEW",
                reasons=list(self.current.findings),
                at=now,
                subject=code,
            )
        )
        return step

    def _tube(self, code: str, now: float, step: Step) -> Step:
        cur = self.current
        if cur is None:
            return step.error("no_open_box")
        if code in cur.tubes:
            return step.error("tube_twice", tube=code)
        cur.tubes.append(code)
        exp = self.expected(cur.box)
        if exp is not None and exp.tube_codes and code not in exp.tube_codes:
            step.warn("extra_tube", tube=code)
        return step

    def expected(self, box: str) -> Expected | None:
        """What this box should hold: the hub's answer, else the pushed manifest."""
        return self.known.get(box) or self.manifest.get(box)

    @staticmethod
    def compare(
        box_findings: list[Reason],
        scanned: list[str],
        tubes: int,
        samples: int,
        seal_intact: bool,
        exp: Expected | None,
    ) -> list[Reason]:
        """Every mismatch between what arrived and what is expected, one reason each."""
        findings = list(box_findings)
        if not seal_intact:
            findings.append(reason("seal_broken"))
        if exp is None:
            return findings
        findings += _extra_tubes(scanned, exp)
        if exp.tube_codes and scanned:
            findings += [reason("missing_tube", tube=t) for t in exp.tube_codes if t not in scanned]
        if tubes != exp.tubes:
            findings.append(reason("count_mismatch", what="tubes", got=tubes, want=exp.tubes))
        if samples != exp.samples:
            findings.append(reason("count_mismatch", what="samples", got=samples, want=exp.samples))
        return findings

    def _tap_seal_broken(self, args: dict[str, Any], now: float) -> Step:
        if self.current is None:
            return Step().error("no_open_box")
        self.current.seal_intact = bool(args.get("intact", False))  # tap again to undo
        return Step()

    def _tap_handler(self, args: dict[str, Any], now: float) -> Step:
        self.handler = str(args["handler"]).strip()[:64]
        return Step()

    def _tap_register(self, args: dict[str, Any], now: float) -> Step:
        """Register the box: the Handover event goes to the hub; local findings hold it."""
        step = Step()
        cur = self.current
        if cur is None:
            return step.error("no_open_box")
        handler = str(args.get("handler") or self.handler).strip()
        if not handler:
            return step.error("no_handler")
        exp = self.expected(cur.box)
        tubes = int(args["tubes"]) if "tubes" in args else len(cur.tubes)
        if "samples" in args:
            samples = int(args["samples"])
        else:
            samples = exp.samples if exp is not None else 0
        findings = self.compare(cur.findings, cur.tubes, tubes, samples, cur.seal_intact, exp)
        ev = self.event(
            Handover,
            now,
            box=cur.box,
            tubes=tubes,
            samples=samples,
            handler=handler,
            place="transfer",
            seal_intact=cur.seal_intact,
        )
        step.events.append(ev)
        status = "held" if findings else "pending"
        self.received[cur.box] = Received(
            cur.box, ev.id, tubes, samples, handler, now, status, findings
        )
        if cur.checked == "pending":  # the hub's answer, when it comes, is compared then
            self._late[cur.check] = (cur.box, list(cur.tubes), cur.seal_intact)
        self.expect(ev.id, kind="handover", box=cur.box)
        self.counts["boxes"] += 1
        self.counts["tubes"] += tubes
        self.counts["samples"] += samples
        if findings:
            self.counts["held"] += 1
            step.error("box_held")
        verdict = "FAIL" if findings else "PASS"
        self.show(
            VerdictView(
                event=ev.id,
                verdict=verdict,
                reasons=findings,
                at=now,
                subject=f"{cur.box}: {tubes} tubes, {samples} samples",
            )
        )
        step.journal.append(
            (
                "transfer",
                ev.id,
                {
                    "box": cur.box,
                    "tubes": tubes,
                    "samples": samples,
                    "handler": handler,
                    "seal_intact": cur.seal_intact,
                    "findings": [f.code for f in findings],
                },
            )
        )
        self.current = None
        return step

    def _tap_end_shipment(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        missing = [b for b in self.manifest if b not in self.received]
        for b in missing:
            step.journal.append(("missing_box", b, {"manifest": self.manifest_version}))
        self.counts["missing"] += len(missing)
        if missing:
            reasons = [reason("missing_box", box=b) for b in missing[:6]]
            step.error(
                "missing_box", box=", ".join(missing[:3]) + ("…" if len(missing) > 3 else "")
            )
            self.show(
                VerdictView(event="", verdict="FAIL", reasons=reasons, at=now, subject="shipment")
            )
        return step

    def _tap_release_held(self, args: dict[str, Any], now: float) -> Step:
        box = self.received.get(str(args["box"]))
        why = str(args.get("why", "")).strip()
        if box is None or box.status != "held":
            return Step().error("nothing_to_decide")
        if not why:
            return Step().error("override_needed")
        box.status = "ok"
        return Step(
            journal=[
                (
                    "release_held",
                    box.event,
                    {"box": box.box, "why": why, "staff": args.get("staff", self.staff)},
                )
            ]
        )

    def _on_box_check(self, result: Any, box: str, now: float, step: Step) -> Step:
        """The hub's record of a box arrived: compare it with what is on the table."""
        cur = self.current
        exp = expected_from_flags(list(result.flags)) if result.ok else None
        problem: list[Reason] = []
        if not result.ok:
            codes = {r.code for r in result.reasons}
            if "box_not_sealed" in codes:
                problem = [reason("box_not_sealed", box=box)]
                exp = expected_from_flags(list(result.flags))
            else:
                problem = [reason("box_unknown", box=box)]
        if exp is not None:
            self.known[box] = exp
        if cur is not None and cur.box == box and cur.check == result.id:
            cur.checked = "refused" if problem else "ok"
            cur.findings = [f for f in cur.findings if f.code != "box_expected"] + problem
            if self.manifest and box not in self.manifest and exp is None and not problem:
                cur.findings.append(reason("box_expected", box=box))
            # Counts are compared when the box is registered; tubes already scanned that
            # the hub never put in this box are worth saying now.
            found = list(cur.findings)
            if exp is not None:
                found += _extra_tubes(cur.tubes, exp)
            if found:
                step.notice = Notice("error", found[0])
                step.outputs.append(Output("buzzer", "error", 300))
            self.show(
                VerdictView(
                    event="",
                    verdict="FAIL" if found else "REVIEW",
                    reasons=found,
                    at=now,
                    subject=box
                    if exp is None
                    else f"{box}: {exp.tubes} tubes, {exp.samples} samples expected",
                )
            )
            self.notice = step.notice
            return step
        late = self._late.pop(result.id, None)
        rec = self.received.get(box)
        if late is not None and rec is not None:
            _box, scanned, intact = late
            findings = self.compare(problem, scanned, rec.tubes, rec.samples, intact, exp)
            new = [f for f in findings if f not in rec.findings]
            if new:
                if rec.status != "held":
                    self.counts["held"] += 1
                rec.status = "held"
                rec.findings.extend(new)
                step.notice = Notice("error", reason("box_held"))
                step.outputs.append(Output("buzzer", "error", 300))
                step.journal.append(("box_held", rec.event, {"findings": [f.code for f in new]}))
                self.notice = step.notice
        return step

    def _on_result(self, result: Any, info: dict[str, Any], now: float, step: Step) -> Step:
        if info.get("kind") == "box_check":
            return self._on_box_check(result, str(info.get("box")), now, step)
        rec = self.received.get(str(info.get("box")))
        if rec is not None and rec.event == result.id:
            if result.ok and rec.status == "pending":
                rec.status = "ok"
            elif not result.ok:
                if rec.status != "held":
                    self.counts["held"] += 1
                rec.status = "held"
                rec.findings.extend(result.reasons)
            view = next((v for v in reversed(self.history) if v.event == result.id), None)
            if view is not None:
                view.provisional, view.confirmed = False, True
                if not result.ok:
                    view.verdict = "FAIL"
                    view.reasons = list(rec.findings)
        return super()._on_result(result, info, now, step)

    def counters(self, now: float) -> dict[str, int]:
        return dict(self.counts)

    def state_view(self, now: float) -> dict[str, Any]:
        cur = self.current
        return {
            "receiving": None
            if cur is None
            else {
                "box": cur.box,
                "tubes": len(cur.tubes),
                "seal_intact": cur.seal_intact,
                "expected": None
                if (exp := self.expected(cur.box)) is None
                else {"tubes": exp.tubes, "samples": exp.samples, "source": exp.source},
                "checked": cur.checked,
                "findings": [f.en for f in cur.findings],
            },
            "handler": self.handler,
            "manifest": len(self.manifest),
            "held": [b.box for b in self.received.values() if b.status == "held"],
            "received": len(self.received),
        }

    def buttons(self) -> list[str]:
        out = ["handler", "end_shipment"]
        if self.current is not None:
            out += ["seal_broken", "register"]
        return out
