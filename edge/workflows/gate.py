"""Compound gate ("please scan to enter"): pedestrians one by one, each scan its own decision.

The turnstile or door relay pulses on PASS only. Residents of a sealed building — a list
of pseudonymous ids the hub pushes, retained and signed, on ``<root>/hub/sealed``
(``checkpost.protocol.lists``) — are refused *exit* with the reason; entering stays allowed.
The unit checks the list's signature and version (never goes back to an older one), applies
it between two scans, and shows its version and age. That refusal is a local rule the hub's
verification does not know, so a hub result can never lift it (it is the verdict's floor).
The older command ``set_list name=sealed`` still works (source "command").
"""

from __future__ import annotations

from typing import Any

from checkpost.edge.workflows.common import (
    CodeRead,
    Output,
    Reading,
    Step,
    VerdictView,
    Workflow,
    masked_name,
    subject_id,
    verdict_outputs,
    worse,
)

from checkpost.policy import decide
from checkpost.protocol import Scan, Temperature
from checkpost.protocol.lists import verify_sealed
from checkpost.reasons import reason
from checkpost.signed import SignatureError


class GateWorkflow(Workflow):
    station = "gate"

    def __init__(
        self,
        unit: str,
        verifier: Any,
        policy: Any,
        *,
        direction: str = "both",
        thermometer: bool = False,
        window_s: float = 10.0,
        relay_ms: int = 800,
        **kw: Any,
    ) -> None:
        super().__init__(unit, verifier, policy, **kw)
        if direction not in ("in", "out", "both"):
            raise ValueError(f"gate direction must be in, out or both, not {direction!r}")
        self.direction = direction  # "both": staff toggle the direction on the screen
        self.current_direction = "in" if direction == "both" else direction
        self.thermometer = thermometer
        self.window_s = window_s
        self.relay_ms = relay_ms
        self.sealed: frozenset[str] = frozenset()
        self.sealed_version = ""
        self.sealed_issued_at: float | None = None
        self.sealed_applied_at: float | None = None
        self.sealed_source = ""  # "hub" (signed, pushed), "command", or "" (none yet)
        self.sealed_scope = ""
        self.readings: list[tuple[float, float, str]] = []
        self.counts = {"in": 0, "out": 0, "pass": 0, "review": 0, "fail": 0, "sealed_refused": 0}

    def set_sealed(
        self,
        sids: list[str],
        version: str = "",
        *,
        issued_at: float | None = None,
        applied_at: float | None = None,
        source: str = "command",
        scope: str = "",
    ) -> None:
        self.sealed = frozenset(sids)
        self.sealed_version = version
        self.sealed_issued_at = issued_at
        self.sealed_applied_at = applied_at
        self.sealed_source = source
        self.sealed_scope = scope

    def on_sealed_document(self, payload: bytes, keys: list[Any], now: float) -> Step:
        """The hub's signed sealed list arrived (retained topic, or the unit's cache)."""
        step = Step()
        try:
            lst = verify_sealed(payload, keys)
        except SignatureError as exc:
            step.journal.append(("sealed_list_refused", "sealed", {"why": str(exc)}))
            return step
        if self.sealed_source == "hub" and self.sealed_version.isdigit():
            held = int(self.sealed_version)
            if lst.version < held:
                why = f"version {lst.version} older than {held}"
                step.journal.append(("sealed_list_refused", "sealed", {"why": why}))
                return step
            if lst.version == held:
                return step  # the same list again (a reconnect re-delivers the retained one)
        self.set_sealed(
            sorted(lst.sids),
            str(lst.version),
            issued_at=lst.issued_at,
            applied_at=now,
            source="hub",
            scope=lst.scope,
        )
        step.info("sealed_list_applied", version=lst.version)
        step.journal.append(
            ("sealed_list_applied", "sealed", {"version": lst.version, "entries": len(lst.sids)})
        )
        return step

    def _tap_direction(self, args: dict[str, Any], now: float) -> Step:
        want = str(args.get("direction", "out" if self.current_direction == "in" else "in"))
        if self.direction != "both" and want != self.direction:
            return Step().error("release_blocked", why=f"this gate is {self.direction} only")
        if want not in ("in", "out"):
            raise ValueError(f"direction {want!r}")
        self.current_direction = want
        return Step()

    def _on_reading(self, inp: Reading, now: float) -> Step:
        ev = self.event(
            Temperature, now, celsius=max(-50.0, min(150.0, inp.celsius)), sensor=inp.sensor[:64]
        )
        self.readings.append((now, ev.celsius, ev.id))
        del self.readings[:-4]
        return Step(events=[ev])

    def _on_code(self, inp: CodeRead, now: float) -> Step:
        step = Step()
        decoded = self.verifier.verify(inp.text, now)
        temps: list[float] | None = None
        reading_ids: list[str] = []
        if self.thermometer:
            fresh = [r for r in self.readings if now - r[0] <= self.window_s]
            temps = [fresh[-1][1]] if fresh else []
            reading_ids = [fresh[-1][2]] if fresh else []
            self.readings.clear()
        verdict = decide(decoded, temps, "gate", now, self.policy)
        level, reasons = verdict.verdict, list(verdict.reasons)
        floor = None
        sid = subject_id(decoded) if decoded.valid else None
        if self.current_direction == "out" and sid is not None and sid in self.sealed:
            floor = "FAIL"
            level = worse(level, "FAIL")
            reasons.insert(0, reason("sealed_building"))
            self.counts["sealed_refused"] += 1
        ev = self.event(
            Scan,
            now,
            code=inp.text[:8192] or "?",
            station="gate",
            fmt=decoded.format[:8],
            local=level,
            temps=temps,
            readings=reading_ids,
            frame_ms=None if inp.frame_ms is None else min(inp.frame_ms, 600_000.0),
        )
        step.events.append(ev)
        self.expect(ev.id, kind="verdict", verdict=level, floor=floor)
        self.show(
            VerdictView(
                event=ev.id,
                verdict=level,
                reasons=reasons,
                name=masked_name(decoded),
                at=now,
                subject=self.current_direction,
            )
        )
        step.outputs.extend(verdict_outputs(level))
        if level == "PASS":
            step.outputs.append(Output("relay", "pulse", self.relay_ms))
            self.counts[self.current_direction] += 1
        self.counts[{"PASS": "pass", "FAIL": "fail"}.get(level, "review")] += 1
        return step

    def counters(self, now: float) -> dict[str, int]:
        return dict(self.counts)

    def state_view(self, now: float) -> dict[str, Any]:
        return {
            "direction": self.current_direction,
            "mode": self.direction,
            "sealed_list": len(self.sealed),
            "sealed_version": self.sealed_version,
            "sealed_source": self.sealed_source,
            "sealed_scope": self.sealed_scope,
            "sealed_age_s": None
            if self.sealed_issued_at is None
            else max(0, round(now - self.sealed_issued_at)),
        }

    def buttons(self) -> list[str]:
        return ["direction"] if self.direction == "both" else []
