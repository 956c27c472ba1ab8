"""Typed messages of the unit <-> hub protocol, encoded as JSON with msgspec.

JSON rather than CBOR or protobuf: a message is a few hundred bytes, msgspec decodes one
into a typed struct in about a microsecond, and an operator can read traffic with
`mosquitto_sub`. Every message carries `v` (the protocol version). Fields may be added
within a version (decoders ignore fields they do not know); anything else bumps `v`, and a
decoder rejects a version it does not know with `ProtocolError("unknown_version", ...)`
instead of a confusing field error.

Events are a tagged union on `kind`. Every event carries its id (UUIDv7 made on the unit),
the unit id (which must equal the topic's), a per-unit sequence number and the unit's clock.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from checkpost.protocol.ids import UUID7_PATTERN
from checkpost.reasons import Reason

PROTOCOL_VERSION = 1
# Largest payload any decoder looks at. A scan's code is at most 8 kB (the pipeline's
# MAX_TEXT); anything bigger is hostile or broken and is rejected before parsing.
MAX_PAYLOAD = 64 * 1024

EventId = Annotated[str, msgspec.Meta(pattern=UUID7_PATTERN, description="UUIDv7, lowercase")]
UnitId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,32}$")]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Clock = Annotated[float, msgspec.Meta(ge=0, le=1e11, description="unit clock, epoch s")]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Celsius = Annotated[float, msgspec.Meta(ge=-50, le=150)]
Count = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
Verdict = Literal["PASS", "REVIEW", "REMEASURE", "FAIL"]
Version = Literal[1]
Label = Annotated[str, msgspec.Meta(max_length=64)]  # may be empty, unlike Short
Text300 = Annotated[str, msgspec.Meta(max_length=300)]


class ProtocolError(ValueError):
    """A message that cannot be accepted; `reason` is a stable code for metrics and logs."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


# -- events (unit -> hub) -------------------------------------------------------------------


class _Event(msgspec.Struct, tag_field="kind", frozen=True, kw_only=True):
    v: Version = 1
    id: EventId
    unit: UnitId
    seq: Seq
    ts: Clock


class Scan(_Event, tag="scan", frozen=True, kw_only=True):
    """A code scanned at a checkpoint or gate, as the unit decided it locally."""

    code: Code
    station: Literal["checkpoint", "gate"] = "checkpoint"
    fmt: Annotated[str, msgspec.Meta(max_length=8)] = ""  # format as the unit read it
    local: Verdict | None = None  # the unit's own (provisional) verdict
    # Readings used, in order; None when no thermometer takes part (gate without one).
    temps: list[Celsius] | None = None
    readings: list[EventId] = msgspec.field(default_factory=list)  # their Temperature ids
    vehicle: EventId | None = None  # the VehicleOpen this occupant belongs to
    frame_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] | None = None  # frame->read


class Temperature(_Event, tag="temp", frozen=True, kw_only=True):
    celsius: Celsius
    sensor: Annotated[str, msgspec.Meta(max_length=64)] = ""


class VehicleOpen(_Event, tag="vehicle_open", frozen=True, kw_only=True):
    """A vehicle (one group of occupants). Its event id names the vehicle afterwards."""

    plate: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    # "in"/"out" or the road's named direction from the unit's config; "" from older units.
    direction: Annotated[str, msgspec.Meta(max_length=32)] = ""


class VehicleStep(_Event, tag="vehicle_step", frozen=True, kw_only=True):
    """One of the checkpoint's one-tap steps for a vehicle, timestamped by `ts` (unit clock):
    health advice given, or the vehicle disinfected."""

    vehicle: EventId
    step: Literal["advice", "disinfect"]


class VehicleClose(_Event, tag="vehicle_close", frozen=True, kw_only=True):
    vehicle: EventId
    occupants: Count = 0


class VehicleTurnBack(_Event, tag="vehicle_turn_back", frozen=True, kw_only=True):
    """The vehicle does not pass: sent back, or referred (to a medical or testing point).
    Older units send no `outcome`: a turn-back."""

    vehicle: EventId
    why: Text = ""
    outcome: Literal["turned_back", "referred"] = "turned_back"


class TubeOpen(_Event, tag="tube_open", frozen=True, kw_only=True):
    """A sampling tube opened at a table; a tube code opens once, ever, city-wide."""

    tube: Short
    pool: Annotated[int, msgspec.Meta(ge=1, le=50)]
    round: Short  # campaign + date, e.g. "2022-04-02-a"; a person is sampled once per round
    table: Annotated[str, msgspec.Meta(max_length=32)] = ""


class Override(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Staff lifting a rule for one action, with a reason that is stored."""

    staff: Short
    why: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ManualPerson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A person with no registration code, entered by hand at the table. Only masked forms
    and a keyed hash of the ID number travel; the hash is what "once per round" matches."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]  # masked, e.g. "王*明"
    id_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]  # HMAC-SHA256, hex
    phone: Annotated[str, msgspec.Meta(max_length=16)] = ""  # masked, e.g. "138****1234"


class TubeAdd(_Event, tag="tube_add", frozen=True, kw_only=True):
    """A person sampled into an open tube: their SR1 registration code as scanned, or (no
    code) `person` entered by hand. Exactly one of the two is set."""

    tube: Short
    code: Code | None = None  # SR1 text as scanned
    override: Override | None = None  # sample again in this round
    person: ManualPerson | None = None


class TubeClose(_Event, tag="tube_close", frozen=True, kw_only=True):
    tube: Short
    count: Count  # people in the tube as the unit counted them


class BoxOpen(_Event, tag="box_open", frozen=True, kw_only=True):
    box: Short


class BoxAdd(_Event, tag="box_add", frozen=True, kw_only=True):
    box: Short
    tube: Short


class BoxSeal(_Event, tag="box_seal", frozen=True, kw_only=True):
    box: Short
    tubes: Count


class Handover(_Event, tag="handover", frozen=True, kw_only=True):
    """A sealed box changes hands; counts are checked against what the hub knows."""

    box: Short
    tubes: Count
    samples: Count
    handler: Short
    place: Literal["site", "transfer", "lab"] = "site"
    seal_intact: bool = True


class BoxCheck(_Event, tag="box_check", frozen=True, kw_only=True):
    """A transfer point asking what the hub knows of an arriving box. The Result answers in
    its flags: `sealed`, `known:<tubes>/<samples>` and one `tube:<code>` per tube (ok is
    false, with the reason, for a box the hub does not know or that was never sealed)."""

    box: Short


class Undo(_Event, tag="undo", frozen=True, kw_only=True):
    target: EventId
    why: Text = ""


class StaffOverride(_Event, tag="override", frozen=True, kw_only=True):
    """Staff overriding the verdict of an earlier event (kept for audit)."""

    target: EventId
    verdict: Verdict
    staff: Short
    why: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


Event = (
    Scan
    | Temperature
    | VehicleOpen
    | VehicleClose
    | VehicleTurnBack
    | VehicleStep
    | TubeOpen
    | TubeAdd
    | TubeClose
    | BoxOpen
    | BoxAdd
    | BoxSeal
    | Handover
    | BoxCheck
    | Undo
    | StaffOverride
)
EVENT_TYPES: dict[str, type[Any]] = {
    t.__struct_config__.tag: t  # type: ignore[attr-defined]
    for t in (
        Scan,
        Temperature,
        VehicleOpen,
        VehicleClose,
        VehicleTurnBack,
        VehicleStep,
        TubeOpen,
        TubeAdd,
        TubeClose,
        BoxOpen,
        BoxAdd,
        BoxSeal,
        Handover,
        BoxCheck,
        Undo,
        StaffOverride,
    )
}


# -- hub -> unit ----------------------------------------------------------------------------


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """The hub's answer to one event, sent only after the event is durably stored.

    `ok` says whether the event was accepted into city-wide state; `verdict` is set for
    scans. `dup` is true when the event id was stored before and this is the stored answer
    again. `flags` carry extra findings (e.g. "replay").
    """

    v: Version = 1
    id: EventId
    ok: bool
    verdict: Verdict | None = None
    reasons: list[Reason] = msgspec.field(default_factory=list)
    flags: list[str] = msgspec.field(default_factory=list)
    policy: str = ""
    at: float = 0.0  # hub clock when decided
    dup: bool = False


# Commands a unit implements (`checkpost hub command`, `POST /api/v1/units/{unit}/commands`):
#   reload         re-read the configured trust list and policy (and the cached pushed ones)
#   set_log_level  args {"level": "DEBUG"|"INFO"|"WARNING"|"ERROR"}
#   resend_status  publish the retained status and a telemetry message now
#   sync_now       resend the outbox from its oldest event and re-read the retained documents
# and older names kept as aliases: rebirth (= resend_status), flush_outbox (= sync_now),
# reload_policy / reload_trust (= reload), set_list (gate: sealed list; transfer: manifest).
# A unit answers a command it does not know with a refusing CommandAck, never silence.
COMMANDS = ("reload", "set_log_level", "resend_status", "sync_now")
CommandName = Literal[
    "reload",
    "set_log_level",
    "resend_status",
    "sync_now",
    "rebirth",
    "reload_policy",
    "reload_trust",
    "flush_outbox",
    "set_list",
]


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """A request to one unit; the unit answers with a CommandAck carrying the same `req`."""

    v: Version = 1
    req: EventId
    cmd: CommandName
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    at: float = 0.0  # hub clock when sent


class CommandAck(msgspec.Struct, frozen=True, kw_only=True):
    """`ok` false with `error` saying why (unknown command, bad argument, reload failed).
    `cmd` echoes the command; `detail` carries what it did (e.g. versions after reload)."""

    v: Version = 1
    req: EventId
    unit: UnitId
    ok: bool
    error: Text = ""
    cmd: Annotated[str, msgspec.Meta(max_length=64)] = ""
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
    at: float = 0.0  # unit clock when answered


# -- presence and fleet ---------------------------------------------------------------------


class UnitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Retained on `units/<unit>/status`. The last will carries the same `session`, so a
    late "offline" from an earlier session is never mistaken for the current one."""

    v: Version = 1
    unit: UnitId
    state: Literal["online", "offline", "alert"]
    session: Annotated[int, msgspec.Meta(ge=0)]
    station: Literal["checkpoint", "gate", "sampling", "transfer"] | None = None
    ts: Clock = 0.0
    policy: str = ""
    trust: str = ""
    agent: str = ""


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    v: Version = 1
    unit: UnitId
    ts: Clock
    queue_depth: Count = 0  # events waiting in the unit's outbox
    queue_oldest_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cpu_temp: float | None = None
    undervolt: bool = False
    camera_ok: bool | None = None
    thermometer_ok: bool | None = None
    verdict_p99_ms: float | None = None
    # The unit's documents: age of what it applied, and why the last push was refused.
    trust_age_h: float | None = None
    trust_stale: bool = False
    trust_error: Text300 = ""
    policy_age_h: float | None = None
    policy_error: Text300 = ""
    # What an operator needs to see a unit going wrong (edge/telemetry.py collects it).
    station: Label = ""
    agent: Annotated[str, msgspec.Meta(max_length=128)] = ""
    throttled: bool = False
    throttle_flags: Label = ""  # vcgencmd get_throttled, raw hex
    load1: float | None = None
    mem_available_mb: float | None = None
    disk_free_mb: float | None = None
    camera_fps: float | None = None
    camera_frame_age_s: float | None = None
    decode_per_s: float | None = None
    decode_p50_ms: float | None = None
    thermometer: Label | None = None  # ok | no data | garbage | sensor error | unplugged
    thermometer_reading_age_s: float | None = None
    scanner: Label | None = None
    queue_alarm: Label = ""
    clock_offset_s: float | None = None  # hub clock minus unit clock
    hub_online: bool = False
    trust_version: Label = ""
    policy_version: Label = ""
    verdict_p50_ms: float | None = None
    refused: Annotated[int, msgspec.Meta(ge=0)] = 0  # work refused (outbox full)


class HubStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Retained on `hub/status` (birth "online", will "offline", same session number).
    Units republish their status and resend their outbox when the hub comes back."""

    v: Version = 1
    state: Literal["online", "offline"]
    session: Annotated[int, msgspec.Meta(ge=0)]
    ts: float = 0.0
    policy: str = ""
    trust: str = ""


# `hub/policy` and `hub/trust` carry the signed document itself (the JSON written by
# `checkpost policy build` / `checkpost trust build`: {"policy"|"trust_list": body,
# "signature": ...}, body with `version` and `issued_at`), retained. Documents may be larger
# than other messages (EU rule sets), up to MAX_DOCUMENT. A hub without a signed document
# (built-in or TOML policy) retains a bare announcement instead (below): units show it as
# "update pending" when it names a version they do not hold.
MAX_DOCUMENT = 4 * 1024 * 1024


class PolicyAnnounce(msgspec.Struct, frozen=True, kw_only=True):
    v: Version = 1
    version: str
    name: str = ""


class TrustAnnounce(msgspec.Struct, frozen=True, kw_only=True):
    v: Version = 1
    version: str
    entries: Count = 0


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """Something a human must look at, e.g. a unit publishing as another unit."""

    v: Version = 1
    code: Short
    unit: str = ""
    detail: Text = ""
    at: float = 0.0


# -- codecs ---------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


class _Header(msgspec.Struct):
    """Just enough to classify a message that failed to decode."""

    v: Any = None
    kind: Any = None


_header = msgspec.json.Decoder(_Header)


NUL_ESCAPE, NUL_ESCAPE_TEXT = b"\\u0000", "\\u0000"


def _make(cls: Any) -> Any:
    decoder = msgspec.json.Decoder(cls)

    def decode(data: bytes | bytearray | memoryview | str) -> Any:
        if len(data) > MAX_PAYLOAD:
            raise ProtocolError("too_large", f"{len(data)} bytes > {MAX_PAYLOAD}")
        # JSON carries a NUL only escaped. No field of ours has a use for one, and
        # PostgreSQL text cannot hold it: one such event would fail its batch forever.
        # (A literal backslash before "u0000" is refused too: none of our texts has one.)
        raw = data.tobytes() if isinstance(data, memoryview) else data
        if (NUL_ESCAPE_TEXT if isinstance(raw, str) else NUL_ESCAPE) in raw:
            raise ProtocolError("invalid", "a text field holds a NUL character (\\u0000)")
        try:
            return decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise _classify(data, exc) from None
        except msgspec.DecodeError as exc:
            raise ProtocolError("not_json", str(exc)[:200]) from None

    return decode


def _classify(data: Any, exc: msgspec.ValidationError) -> ProtocolError:
    try:
        head = _header.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ProtocolError("not_object", str(exc)[:200])
    if head.v is not None and head.v != PROTOCOL_VERSION:
        return ProtocolError(
            "unknown_version", f"protocol version {head.v!r} not supported (this hub speaks 1)"
        )
    kind = head.kind
    if "kind" in str(exc) and isinstance(kind, str) and kind not in EVENT_TYPES:
        return ProtocolError("unknown_kind", f"unknown event kind {kind[:40]!r}")
    return ProtocolError("invalid", str(exc)[:200])


decode_event = _make(Event)
decode_result = _make(Result)
decode_command = _make(Command)
decode_command_ack = _make(CommandAck)
decode_unit_status = _make(UnitStatus)
decode_telemetry = _make(Telemetry)
decode_hub_status = _make(HubStatus)
