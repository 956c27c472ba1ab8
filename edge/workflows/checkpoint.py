"""Road checkpoint: one vehicle at a time, every occupant screened (DESIGN.md §1).

The six steps staff follow — stop, check, measure, register, advise, disinfect — map to:

- **plate** (keypad or a recent plate) opens the vehicle; a plate whose region prefix is
  on the policy's risk list flags the vehicle for turning back (transit vehicles);
- each **occupant**: code scan → temperature bound from the thermometer within its window
  (a reading taken up to ``window_s`` before the scan, or the next one after it) → the
  policy's verdict. REMEASURE waits for a second reading; REVIEW waits for staff, whose
  decision and reason are recorded (a StaffOverride event). The same person twice in one
  vehicle is caught (pseudonymous id), and a thermometer unplugged mid-vehicle turns the
  waiting occupant into "measure by hand" (a manual reading is a tap);
- **direction**: every vehicle is recorded with the direction it travels — "in"/"out", or
  the road's named directions from the config (``[checkpoint] directions``); the screen
  keeps the last one chosen, since a lane mostly faces one way;
- **advice** and **disinfection** are one tap each, timestamped: each is a VehicleStep
  event (its ``ts`` is the tap), counted per shift, shown ticked with its time;
- **outcome**: released (the barrier relay opens — only then), turned back or referred,
  counted per shift.

A person scanned before the plate is refused with "enter the plate first": a verdict that
belongs to no vehicle would be lost to the vehicle's record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from checkpost.edge.workflows.common import (
    CodeRead,
    DeviceState,
    Notice,
    Output,
    Reading,
    Step,
    VerdictView,
    Workflow,
    masked_name,
    subject_id,
    verdict_outputs,
)

from checkpost.policy import decide
from checkpost.protocol import (
    Scan,
    StaffOverride,
    Temperature,
    VehicleClose,
    VehicleOpen,
    VehicleTurnBack,
)
from checkpost.protocol.messages import VehicleStep
from checkpost.reasons import reason

PLATE = re.compile(r"^[\u4e00-\u9fa5A-Z]{1,2}[A-Z0-9·•-]{4,8}$")
OUTCOMES = ("released", "turned_back", "referred")


@dataclass(slots=True)
class Occupant:
    scan_text: str
    sid: str | None
    name: str
    stage: str  # "measuring" | "remeasure" | "review" | "done"
    scanned_at: float
    frame_ms: float | None = None
    readings: list[tuple[float, str]] = field(default_factory=list)  # (celsius, event id)
    verdict: str = ""
    event: str = ""  # the latest Scan event id for this occupant
    decided_by: str = ""  # staff who decided a REVIEW


@dataclass(slots=True)
class Vehicle:
    id: str
    plate: str
    direction: str
    opened_at: float
    risk_region: str = ""
    occupants: list[Occupant] = field(default_factory=list)
    advice_at: float | None = None
    disinfected_at: float | None = None
    override: str = ""  # why a flagged vehicle was released anyway


class CheckpointWorkflow(Workflow):
    station = "checkpoint"

    def __init__(
        self,
        unit: str,
        verifier: Any,
        policy: Any,
        *,
        thermometer: bool = True,
        window_s: float = 15.0,
        shift_hours: float = 8.0,
        staff: str = "staff",
        directions: tuple[str, ...] | list[str] = ("in", "out"),
        **kw: Any,
    ) -> None:
        super().__init__(unit, verifier, policy, **kw)
        self.directions = tuple(str(d)[:32] for d in directions)
        if not self.directions or len(set(self.directions)) != len(self.directions):
            raise ValueError(f"checkpoint directions must be distinct names, not {directions!r}")
        self.direction = self.directions[0]  # preselected for the next vehicle
        self.thermometer = thermometer
        self.devices["thermometer"] = thermometer
        self.window_s = window_s
        self.shift_hours = shift_hours
        self.staff = staff
        self.vehicle: Vehicle | None = None
        self.current: Occupant | None = None
        self.readings: list[tuple[float, float, str]] = []  # unbound (at, celsius, event id)
        self.recent_plates: list[str] = []
        self.shift = -1
        self.counts: dict[str, int] = {}
        self._decoded: Any = None  # the code of the occupant being screened

    # -- shift counters ---------------------------------------------------------------------

    def _count(self, key: str, now: float, n: int = 1) -> None:
        shift = int(now // (self.shift_hours * 3600))
        if shift != self.shift:
            self.shift = shift
            self.counts = {}
        self.counts[key] = self.counts.get(key, 0) + n

    def counters(self, now: float) -> dict[str, int]:
        shift = int(now // (self.shift_hours * 3600))
        base = {
            "vehicles": 0,
            "occupants": 0,
            "pass": 0,
            "review": 0,
            "fail": 0,
            "released": 0,
            "turned_back": 0,
            "referred": 0,
            "advice": 0,
            "disinfected": 0,
        }
        base.update({f"dir:{d}": 0 for d in self.directions})
        if shift == self.shift:
            base.update(self.counts)
        return base

    # -- plate and vehicle ------------------------------------------------------------------

    def _tap_plate(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        plate = str(args["plate"]).strip().upper().replace(" ", "")
        direction = str(args.get("direction") or self.direction)
        if self.vehicle is not None:
            return step.error("vehicle_open")
        if not PLATE.match(plate):
            return step.error("bad_plate", plate=plate[:16])
        if direction not in self.directions:
            return step.error("bad_direction", direction=direction[:32])
        ev = self.event(VehicleOpen, now, plate=plate, direction=direction)
        step.events.append(ev)
        self.vehicle = Vehicle(ev.id, plate, direction, now)
        self.direction = direction
        self.recent_plates = [plate, *[p for p in self.recent_plates if p != plate]][:8]
        self._count("vehicles", now)
        self._count(f"dir:{direction}", now)
        for region in self.policy.checkpoint.risk_regions:
            if plate.startswith(region):
                self.vehicle.risk_region = region
                step.warn("risk_plate", region=region)
                step.outputs.append(Output("led", "red", 1500))
                step.outputs.append(Output("buzzer", "attention", 400))
                break
        if not self.vehicle.risk_region:
            self.notice = None
        self.view = None
        step.journal.append(("vehicle", ev.id, {"direction": direction, "plate": plate}))
        return step

    def _tap_direction(self, args: dict[str, Any], now: float) -> Step:
        """Choose the direction (the next one in the list when none is given). With a vehicle
        open and not yet recorded otherwise, only the preselection for the next changes."""
        want = args.get("direction")
        if want is None:
            i = self.directions.index(self.direction)
            want = self.directions[(i + 1) % len(self.directions)]
        if str(want) not in self.directions:
            return Step().error("bad_direction", direction=str(want)[:32])
        self.direction = str(want)
        return Step()

    def _tap_advice(self, args: dict[str, Any], now: float) -> Step:
        return self._vehicle_step("advice", now)

    def _tap_disinfect(self, args: dict[str, Any], now: float) -> Step:
        return self._vehicle_step("disinfect", now)

    def _vehicle_step(self, what: str, now: float) -> Step:
        step = Step()
        v = self.vehicle
        if v is None:
            return step.error("no_vehicle")
        done = v.advice_at if what == "advice" else v.disinfected_at
        if done is not None:  # one tap records it; a second tap changes nothing
            return step.info(f"{what}_done", at=_hhmm(done))
        ev = self.event(VehicleStep, now, vehicle=v.id, step=what)
        step.events.append(ev)
        if what == "advice":
            v.advice_at = now
            self._count("advice", now)
        else:
            v.disinfected_at = now
            self._count("disinfected", now)
        step.outputs.append(Output("buzzer", "ok", 100))
        step.journal.append((what, v.id, {"at": now, "event": ev.id}))
        return step

    def _tap_release(self, args: dict[str, Any], now: float) -> Step:
        step = Step()
        v = self.vehicle
        if v is None:
            return step.error("no_vehicle")
        if self.current is not None:
            return step.error("decide_first")
        bad = [o for o in v.occupants if o.verdict != "PASS"]
        if bad:
            return step.error("release_blocked", why=f"{len(bad)} not passed")
        if v.risk_region:
            why = str(args.get("why", "")).strip()
            if not why:
                return step.error("release_blocked", why=f"risk region {v.risk_region}")
            v.override = why
            step.events.append(
                self.event(
                    StaffOverride,
                    now,
                    target=v.id,
                    verdict="PASS",
                    staff=str(args.get("staff") or self.staff)[:64],
                    why=why[:500],
                )
            )
        step.events.append(self.event(VehicleClose, now, vehicle=v.id, occupants=len(v.occupants)))
        step.outputs.append(Output("relay", "pulse", 3000))  # the barrier opens only here
        step.outputs.append(Output("led", "green", 1500))
        return self._close(v, "released", now, step)

    def _tap_turn_back(self, args: dict[str, Any], now: float) -> Step:
        return self._refuse(args, now, "turned_back")

    def _tap_refer(self, args: dict[str, Any], now: float) -> Step:
        return self._refuse(args, now, "referred")

    def _refuse(self, args: dict[str, Any], now: float, outcome: str) -> Step:
        step = Step()
        v = self.vehicle
        if v is None:
            return step.error("no_vehicle")
        why = str(args.get("why") or (f"risk region {v.risk_region}" if v.risk_region else outcome))
        if self.current is not None:  # nobody is left half-screened: close them as they are
            self.current = None
        step.events.append(
            self.event(VehicleTurnBack, now, vehicle=v.id, why=why[:500], outcome=outcome)
        )
        step.events.append(self.event(VehicleClose, now, vehicle=v.id, occupants=len(v.occupants)))
        step.outputs.append(Output("led", "red", 1500))
        return self._close(v, outcome, now, step)

    def _close(self, v: Vehicle, outcome: str, now: float, step: Step) -> Step:
        self._count(outcome, now)
        step.journal.append(
            (
                "vehicle_outcome",
                v.id,
                {
                    "outcome": outcome,
                    "plate": v.plate,
                    "direction": v.direction,
                    "occupants": len(v.occupants),
                    "advice_at": v.advice_at,
                    "disinfected_at": v.disinfected_at,
                    "override": v.override,
                },
            )
        )
        self.vehicle = None
        self.current = None
        self.readings.clear()
        return step

    # -- occupants --------------------------------------------------------------------------

    def _on_code(self, inp: CodeRead, now: float) -> Step:
        step = Step()
        if self.vehicle is None:
            return step.error("plate_first")
        if self.current is not None and self.current.stage != "done":
            if inp.text == self.current.scan_text:
                return step  # the same code seen again while we wait: nothing new
            return step.error(
                "measure_first"
                if self.current.stage in ("measuring", "remeasure")
                else "decide_first"
            )
        decoded = self.verifier.verify(inp.text, now)
        sid = subject_id(decoded) if decoded.valid else None
        if sid is not None and any(o.sid == sid for o in self.vehicle.occupants):
            return step.error("same_person")
        occ = Occupant(inp.text, sid, masked_name(decoded), "measuring", now, inp.frame_ms)
        self.current = occ
        self._count("occupants", now)
        # A reading taken within the window before the scan belongs to this person.
        fresh = [r for r in self.readings if now - r[0] <= self.window_s]
        if fresh:
            _at, c, eid = fresh[-1]
            occ.readings.append((c, eid))
            self.readings.clear()
            return self._decide(decoded, now, step)
        self.readings.clear()
        if not self.thermometer or not self.devices.get("thermometer", True):
            # No thermometer (or unplugged): decide now; the policy asks for a measurement.
            step = self._decide(decoded, now, step)
            if self.thermometer:
                step.notice = Notice("error", reason("thermometer_unplugged"))
            return step
        # Show what the code says at once, and wait for the thermometer.
        verdict = decide(decoded, [], "checkpoint", now, self.policy)
        if decoded.valid and verdict.verdict == "REMEASURE":
            self.show(
                VerdictView(
                    event="",
                    verdict="REMEASURE",
                    reasons=verdict.reasons,
                    name=occ.name,
                    at=now,
                    subject=self.vehicle.plate,
                )
            )
            self._decoded = decoded
            return step
        # The code alone already fails (or passes without temperature): decide now.
        return self._decide(decoded, now, step)

    def _decide(self, decoded: Any, now: float, step: Step) -> Step:
        occ, v = self.current, self.vehicle
        assert occ is not None and v is not None
        temps = [c for c, _ in occ.readings]
        verdict = decide(
            decoded, temps if self.thermometer else None, "checkpoint", now, self.policy
        )
        ev = self.event(
            Scan,
            now,
            code=occ.scan_text,
            station="checkpoint",
            fmt=decoded.format[:8],
            local=verdict.verdict,
            temps=temps if self.thermometer else None,
            readings=[e for _, e in occ.readings],
            vehicle=v.id,
            frame_ms=None if occ.frame_ms is None else min(occ.frame_ms, 600_000.0),
        )
        step.events.append(ev)
        occ.verdict, occ.event = verdict.verdict, ev.id
        self._decoded = decoded
        self.show(
            VerdictView(
                event=ev.id,
                verdict=verdict.verdict,
                reasons=verdict.reasons,
                name=occ.name,
                at=now,
                subject=v.plate,
            )
        )
        self.expect(ev.id, kind="verdict", verdict=verdict.verdict)
        step.outputs.extend(verdict_outputs(verdict.verdict))
        if verdict.verdict == "REMEASURE" and decoded.valid:
            occ.stage = "remeasure"
        elif verdict.verdict == "REVIEW":
            occ.stage = "review"
        else:
            self._done(occ, now)
        return step

    def _done(self, occ: Occupant, now: float) -> None:
        occ.stage = "done"
        assert self.vehicle is not None
        self.vehicle.occupants.append(occ)
        key = {"PASS": "pass", "FAIL": "fail"}.get(occ.verdict, "review")
        self._count(key, now)
        self.current = None

    def _on_reading(self, inp: Reading, now: float) -> Step:
        step = Step()
        ev = self.event(
            Temperature, now, celsius=max(-50.0, min(150.0, inp.celsius)), sensor=inp.sensor[:64]
        )
        step.events.append(ev)
        occ = self.current
        if occ is not None and occ.stage in ("measuring", "remeasure") and self.vehicle is not None:
            occ.readings.append((ev.celsius, ev.id))
            return self._decide(self._decoded, now, step)
        self.readings.append((now, ev.celsius, ev.id))
        del self.readings[:-4]
        return step

    def _tap_temp(self, args: dict[str, Any], now: float) -> Step:
        """A reading typed in by hand (hand-held thermometer while the serial one is out)."""
        return self._on_reading(Reading(float(args["celsius"]), "manual"), now)

    def _on_device(self, inp: DeviceState, now: float) -> Step:
        step = Step()
        if inp.device != "thermometer":
            return step
        if inp.ok:
            step.notice = Notice("info", reason("thermometer_back"))
        else:
            step.notice = Notice("error", reason("thermometer_unplugged"))
            # A reading the sensor sent before it went away belongs to no one we can name:
            # the next person is measured again (by hand until it is back), never bound to it.
            self.readings.clear()
            occ = self.current
            if occ is not None and occ.stage == "measuring" and self.vehicle is not None:
                # Waiting for a reading that will not come: decide without one (REMEASURE),
                # and let staff type a hand-held reading.
                self._decide(self._decoded, now, step)
                step.notice = Notice("error", reason("thermometer_unplugged"))
        return step

    def _on_tick(self, now: float) -> Step:
        occ = self.current
        if occ is not None and occ.stage == "measuring" and now - occ.scanned_at > self.window_s:
            return self._decide(self._decoded, now, Step())
        return Step()

    def _tap_decide(self, args: dict[str, Any], now: float) -> Step:
        """Staff decide a REVIEW (yellow code, risk travel): allow or refuse, with a reason."""
        step = Step()
        occ = self.current
        if occ is None or occ.stage != "review":
            return step.error("nothing_to_decide")
        why = str(args.get("why", "")).strip()
        if not why:
            return step.error("override_needed")
        verdict = "PASS" if args.get("allow") else "FAIL"
        staff = str(args.get("staff") or self.staff)[:64]
        step.events.append(
            self.event(
                StaffOverride, now, target=occ.event, verdict=verdict, staff=staff, why=why[:500]
            )
        )
        step.journal.append(
            ("review_decision", occ.event, {"verdict": verdict, "staff": staff, "why": why})
        )
        occ.verdict, occ.decided_by = verdict, staff
        if self.view is not None and self.view.event == occ.event:
            self.view.verdict = verdict
        step.outputs.extend(verdict_outputs(verdict))
        self._done(occ, now)
        return step

    def _tap_skip(self, args: dict[str, Any], now: float) -> Step:
        """Give up on the waiting occupant (left the vehicle to be seen elsewhere)."""
        if self.current is None:
            return Step().error("nothing_to_decide")
        occ = self.current
        occ.verdict = "FAIL"  # not screened to the end: never counts as passed
        self._done(occ, now)
        return Step(journal=[("skip", occ.event, {"why": str(args.get("why", ""))})])

    def _on_correction(self, event_id: str, local: str, final: str, now: float) -> None:
        v = self.vehicle
        if v is None:
            return
        for o in [*v.occupants, *([self.current] if self.current else [])]:
            if o.event == event_id:
                o.verdict = final

    # -- screen -----------------------------------------------------------------------------

    def state_view(self, now: float) -> dict[str, Any]:
        v = self.vehicle
        cur = self.current
        return {
            "vehicle": None
            if v is None
            else {
                "id": v.id,
                "plate": v.plate,
                "direction": v.direction,
                "risk_region": v.risk_region,
                "advice": v.advice_at is not None,
                "disinfected": v.disinfected_at is not None,
                "advice_at": v.advice_at,
                "disinfected_at": v.disinfected_at,
                "occupants": [{"name": o.name, "verdict": o.verdict} for o in v.occupants],
            },
            "current": None
            if cur is None
            else {
                "name": cur.name,
                "stage": cur.stage,
                "temps": [c for c, _ in cur.readings],
            },
            "recent_plates": list(self.recent_plates),
            "directions": list(self.directions),
            "direction": self.direction,
            "thermometer": self.devices.get("thermometer", False),
        }

    def buttons(self) -> list[str]:
        if self.vehicle is None:
            return ["plate", "direction"]
        v = self.vehicle
        out = [
            *(["advice"] if v.advice_at is None else []),
            *(["disinfect"] if v.disinfected_at is None else []),
            "turn_back",
            "refer",
        ]
        if self.current is not None and self.current.stage == "review":
            out += ["allow", "refuse"]
        elif self.current is not None:
            out += ["temp", "skip"]
        else:
            out.append("release")
        return out


def _hhmm(ts: float) -> str:
    """Local time of the unit, hours and minutes (what staff read on the screen)."""
    import time

    return time.strftime("%H:%M", time.localtime(ts))
