"""What every station workflow shares: inputs, the step it returns, the verdict view.

Workflows are pure state machines: ``handle(input, now) -> Step``. They read no clock, no
file and no network, so tests drive them with exact times and Hypothesis can explore them.
The agent (``checkpost.edge.agent``) does the I/O around a step, in this order:

1. store ``step.events`` in the outbox (durable) — if that fails, the agent restores the
   workflow's snapshot and shows the refusal, so state never runs ahead of the disk;
2. drive ``step.outputs`` (LEDs, buzzer, relay);
3. write ``step.journal`` (local audit), push ``screen()`` to the station page, wake the link.

Hub results come back through ``on_result``: the unit confirms or corrects its local
verdict (a correction is shown and journalled). Events are protocol structs with ``seq=0``;
the outbox stamps the sequence number.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from checkpost.policy.engine import RANK
from checkpost.protocol import Result, uuid7
from checkpost.reasons import Reason, reason

StationKind = Literal["checkpoint", "gate", "sampling", "transfer"]

# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRead:
    """A code from the camera or a hand-held scanner (the workflow does not care which)."""

    text: str
    source: str = "camera"
    frame_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One thermometer reading (°C); `sensor` names the device or "manual"."""

    celsius: float
    sensor: str = ""


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device came or went (thermometer unplugged, scanner back ...)."""

    device: Literal["thermometer", "camera", "scanner"]
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Tap:
    """A touch on the station screen (or the button): an action name and its arguments."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes (timeouts: a reading that never came)."""


Input = CodeRead | Reading | DeviceState | Tap | Tick

# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """A device action: LED colour, buzzer pattern, relay pulse (ms)."""

    device: Literal["led", "buzzer", "relay"]
    value: str
    ms: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    level: Literal["info", "warn", "error"]
    reason: Reason


@dataclass(slots=True)
class Step:
    events: list[Any] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    journal: list[tuple[str, str, Any]] = field(default_factory=list)  # (kind, target, detail)
    notice: Notice | None = None

    def error(self, code: str, **params: Any) -> Step:
        self.notice = Notice("error", reason(code, **params))
        self.outputs.append(Output("buzzer", "error", 300))
        return self

    def warn(self, code: str, **params: Any) -> Step:
        self.notice = Notice("warn", reason(code, **params))
        return self

    def info(self, code: str, **params: Any) -> Step:
        self.notice = Notice("info", reason(code, **params))
        return self


# Shape and word travel with the colour: staff who cannot tell red from green read them.
VERDICT_LOOK: dict[str, tuple[str, str, str, str]] = {
    # verdict: (colour, shape, English word, Chinese word)
    "PASS": ("green", "circle", "PASS", "通过"),
    "REVIEW": ("amber", "triangle", "REVIEW", "核查"),
    "REMEASURE": ("purple", "diamond", "MEASURE AGAIN", "复测"),
    "FAIL": ("red", "cross", "STOP", "禁止"),
}


class VerdictView(msgspec.Struct, kw_only=True):
    """What the big area of the screen shows about the latest decision."""

    event: str
    verdict: str
    reasons: list[Reason]
    name: str = ""
    at: float = 0.0
    provisional: bool = True  # decided locally, the hub has not confirmed yet
    confirmed: bool = False
    corrected_from: str | None = None  # the local verdict the hub overturned
    offline: bool = False  # decided while the hub was unreachable
    subject: str = ""  # what was decided: a plate, a tube, a box

    def look(self) -> dict[str, str]:
        colour, shape, en, zh = VERDICT_LOOK[self.verdict]
        return {"colour": colour, "shape": shape, "word_en": en, "word_zh": zh}


def verdict_outputs(verdict: str) -> list[Output]:
    led = {"PASS": "green", "REVIEW": "amber", "REMEASURE": "amber", "FAIL": "red"}[verdict]
    beep = {"PASS": "ok", "REVIEW": "attention", "REMEASURE": "attention", "FAIL": "error"}[verdict]
    return [Output("led", led, 1500), Output("buzzer", beep, 150 if verdict == "PASS" else 400)]


def worse(a: str, b: str) -> str:
    return a if RANK[a] >= RANK[b] else b


class Workflow:
    """Base of the four station workflows. Subclasses implement the `_on_*` handlers."""

    station: StationKind = "checkpoint"
    AWAIT_CAP = 5000  # event ids whose hub result we still want to show (bounded memory)

    def __init__(
        self,
        unit: str,
        verifier: Any,
        policy: Any,
        *,
        ids: Callable[[float], str] = uuid7,
    ) -> None:
        self.unit = unit
        self.verifier = verifier
        self.policy = policy
        self.ids = ids
        self.online = False
        self.view: VerdictView | None = None
        self.notice: Notice | None = None
        self.awaiting: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.history: list[VerdictView] = []  # the last few decisions, newest last
        self.devices: dict[str, bool] = {}

    # -- snapshot for the outbox-first rule -------------------------------------------------

    _SHARED = ("verifier", "policy", "ids")
    # Held by reference in a snapshot: immutable after creation (a decoded code holds key
    # objects that cannot be copied, and never changes once verified).
    _BY_REFERENCE = ("_decoded",)

    def snapshot(self) -> dict[str, Any]:
        """State to restore if the outbox refuses this step's events.

        Taken before every input, so it must stay cheap when a table has a day of tubes
        behind it: a deepcopy took 22 ms there. Only our own mutable records (dataclasses,
        verdict views) and the containers holding them are copied, one level at a time;
        strings, numbers, tuples and frozen values are shared (they are never mutated)."""
        out: dict[str, Any] = {}
        memo: dict[int, Any] = {}
        for k, v in self.__dict__.items():
            if k in self._SHARED:
                continue
            if k in self._BY_REFERENCE:
                out[k] = v
            elif k == "awaiting":  # values are never mutated: one C-level copy
                out[k] = OrderedDict(v)
            else:
                out[k] = _copy_state(v, memo)
        return out

    def restore(self, snap: dict[str, Any]) -> None:
        self.__dict__.update(snap)

    def set_context(self, verifier: Any, policy: Any) -> None:
        """A new trust list or policy, applied between two inputs (atomically)."""
        self.verifier, self.policy = verifier, policy

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, inp: Input, now: float) -> Step:
        if isinstance(inp, CodeRead):
            step = self._on_code(inp, now)
        elif isinstance(inp, Reading):
            step = self._on_reading(inp, now)
        elif isinstance(inp, DeviceState):
            self.devices[inp.device] = inp.ok
            step = self._on_device(inp, now)
        elif isinstance(inp, Tap):
            handler = getattr(self, f"_tap_{inp.action}", None)
            if handler is None:
                step = Step()
                step.notice = Notice(
                    "error",
                    Reason(
                        "unknown_action", f"Unknown action {inp.action}", f"未知操作 {inp.action}"
                    ),
                )
            else:
                try:
                    step = handler(inp.args, now)
                except (KeyError, TypeError, ValueError) as exc:
                    step = Step()
                    step.notice = Notice(
                        "error", Reason("bad_input", f"Bad input: {exc}", f"输入错误：{exc}")
                    )
        else:
            step = self._on_tick(now)
        if step.notice is not None or step.events:
            self.notice = step.notice
        return step

    def _on_code(self, inp: CodeRead, now: float) -> Step:
        return Step()

    def _on_reading(self, inp: Reading, now: float) -> Step:
        return Step()

    def _on_device(self, inp: DeviceState, now: float) -> Step:
        return Step()

    def _on_tick(self, now: float) -> Step:
        return Step()

    # -- events -----------------------------------------------------------------------------

    def event(self, cls: type[Any], now: float, **fields: Any) -> Any:
        return cls(id=self.ids(now), unit=self.unit, seq=0, ts=now, **fields)

    def expect(self, event_id: str, **info: Any) -> None:
        """Remember an event whose hub result changes what the screen shows."""
        self.awaiting[event_id] = info
        while len(self.awaiting) > self.AWAIT_CAP:
            self.awaiting.popitem(last=False)

    def show(self, view: VerdictView) -> None:
        view.offline = not self.online
        self.view = view
        self.history.append(view)
        del self.history[:-8]

    # -- hub results ------------------------------------------------------------------------

    def on_result(self, result: Result, now: float) -> Step:
        """Confirm or correct a local decision. Results for events we no longer track (or
        never showed) change nothing: the outbox has already removed the event."""
        info = self.awaiting.pop(result.id, None)
        step = Step()
        if info is None:
            return step
        return self._on_result(result, info, now, step)

    def _on_result(self, result: Result, info: dict[str, Any], now: float, step: Step) -> Step:
        kind = info.get("kind")
        if kind == "verdict":
            return self._confirm_verdict(result, info, now, step)
        view = next((v for v in reversed(self.history) if v.event == result.id), None)
        if view is not None and result.ok:
            view.provisional, view.confirmed = False, True
        if not result.ok:
            why = "; ".join(r.en for r in result.reasons) or "refused"
            step.notice = Notice("error", reason("hub_conflict", why=why))
            step.journal.append(("conflict", result.id, {"info": info, "reasons": result.reasons}))
            self.notice = step.notice
            self._on_conflict(result, info, now, step)
        return step

    def _on_conflict(self, result: Result, info: dict[str, Any], now: float, step: Step) -> None:
        """A sampling/transfer event the hub refused (tube opened elsewhere, count mismatch)."""

    def _confirm_verdict(
        self, result: Result, info: dict[str, Any], now: float, step: Step
    ) -> Step:
        local = info["verdict"]
        hub = result.verdict or local
        floor = info.get("floor")  # a local-only rule (sealed list): the hub cannot lift it
        final = worse(hub, floor) if floor else hub
        view = next((v for v in reversed(self.history) if v.event == result.id), None)
        if final != local:
            reasons = list(result.reasons) if hub != local else (view.reasons if view else [])
            step.notice = Notice("warn", reason("hub_correction", verdict=final))
            step.journal.append(
                (
                    "correction",
                    result.id,
                    {
                        "local": local,
                        "hub": hub,
                        "final": final,
                        "reasons": reasons,
                        "flags": result.flags,
                    },
                )
            )
            if view is not None:
                view.corrected_from = local
                view.verdict = final
                view.reasons = reasons or view.reasons
            step.outputs.extend(verdict_outputs(final))
            self.notice = step.notice
            self._on_correction(result.id, local, final, now)
        if view is not None:
            view.provisional = False
            view.confirmed = True
        return step

    def _on_correction(self, event_id: str, local: str, final: str, now: float) -> None:
        """Subclasses update their own records (an occupant's verdict, counts)."""

    # -- screen -----------------------------------------------------------------------------

    def screen(self, now: float) -> dict[str, Any]:
        view = None
        if self.view is not None:
            view = msgspec.to_builtins(self.view)
            view.update(self.view.look())
        return {
            "station": self.station,
            "verdict": view,
            "notice": None
            if self.notice is None
            else {"level": self.notice.level, **msgspec.to_builtins(self.notice.reason)},
            "workflow": self.state_view(now),
            "counters": self.counters(now),
            "buttons": self.buttons(),
        }

    def state_view(self, now: float) -> dict[str, Any]:
        return {}

    def counters(self, now: float) -> dict[str, int]:
        return {}

    def buttons(self) -> list[str]:
        return []


def masked_name(decoded: Any) -> str:
    content = getattr(decoded, "content", None)
    name = getattr(content, "nm", None)
    if isinstance(name, str):
        return name
    if isinstance(content, dict):  # EU certificate: family name initial only
        nam = content.get("nam") or {}
        fn, gn = str(nam.get("fn", "")), str(nam.get("gn", ""))
        if fn or gn:
            return f"{fn[:1]}* {gn[:1]}*".strip()
    return ""


def subject_id(decoded: Any) -> str | None:
    """The pseudonymous id of a pass or registration (HP1/SR1 sid, DCC certificate id)."""
    content = getattr(decoded, "content", None)
    sid = getattr(content, "sid", None)
    if isinstance(sid, str):
        return sid
    if isinstance(content, dict):
        for kind in ("v", "t", "r"):
            entries = content.get(kind)
            if isinstance(entries, list) and entries and isinstance(entries[0], dict):
                ci = entries[0].get("ci")
                if isinstance(ci, str):
                    return ci
    return None


_LEAVES = (str, int, float, bool, tuple, frozenset, type(None))
_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _copy_state(v: Any, memo: dict[int, Any]) -> Any:
    """Copy what a workflow step may mutate: containers and our records, recursively, keeping
    identity (the open tube is both ``self.tube`` and an entry of ``self.tubes``); immutable
    leaves are shared."""
    if isinstance(v, _LEAVES):
        return v
    done = memo.get(id(v))
    if done is not None:
        return done
    if isinstance(v, OrderedDict):
        new: Any = OrderedDict()
        memo[id(v)] = new
        for k, x in v.items():
            new[k] = _copy_state(x, memo)
        return new
    if isinstance(v, dict):
        if v and isinstance(next(iter(v.values())), _LEAVES):
            new = dict(v)  # a flat map (e.g. person -> tube): one C-level copy
            memo[id(v)] = new
            return new
        new = {}
        memo[id(v)] = new
        for k, x in v.items():
            new[k] = _copy_state(x, memo)
        return new
    if isinstance(v, list):
        new = []
        memo[id(v)] = new
        new.extend(_copy_state(x, memo) for x in v)
        return new
    if isinstance(v, set):
        new = set(v)
        memo[id(v)] = new
        return new
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        if v.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            return v
        new = copy.copy(v)
        memo[id(v)] = new
        for name in _field_names(type(v)):
            value = getattr(v, name)
            if not isinstance(value, _LEAVES):
                setattr(new, name, _copy_state(value, memo))
        return new
    if isinstance(v, msgspec.Struct):
        new = copy.copy(v)  # VerdictView: flat fields; its lists are replaced, never mutated
        memo[id(v)] = new
        return new
    new = copy.deepcopy(v)
    memo[id(v)] = new
    return new
