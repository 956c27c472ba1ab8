"""Station configuration: one TOML file, every key typed and described, unknown keys refused.

Sections `[trust]`, `[policy]` and `[hc1]` are the core's (`checkpost.settings`), so a
deployment writes them once for its units and its hub. Command-line flags override the
file (`checkpost edge run --station gate --broker mqtt://...`); the merged result is
validated before anything opens, and every problem is reported at once with the file,
line, key and value (`checkpost.config`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from checkpost.hardware.decode.pipeline import DEFAULT_BUDGET_MS

from checkpost.config import ConfigError, convert
from checkpost.settings import CoreSettings, Hc1Settings, PolicySettings, TrustSettings

UnitId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,32}$", description="[a-z0-9-]")]
Station = Literal["checkpoint", "gate", "sampling", "transfer"]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]


class UnitSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: UnitId = "unit-1"
    station: Station = "checkpoint"
    data_dir: str = "./edge-data"  # outbox, session number, cached trust list and policy
    staff: str = "staff"  # default staff name recorded with decisions
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


class LinkSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    broker: str = "none"  # mqtt://host:port, mqtts://user:pass@host:port, or none (offline)
    root: str = "checkpost/v1"
    window: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256  # events in flight
    resend_after_s: Seconds = 10.0  # no result by then: replay from the oldest


class CameraSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    source: str = "none"  # v4l2:0 | picamera | replay:DIR | none
    fps: Annotated[float, msgspec.Meta(ge=0, le=120)] = 15.0
    decode_budget_ms: Annotated[float, msgspec.Meta(gt=0, le=1000)] = DEFAULT_BUDGET_MS
    debounce_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 3.0
    loop: bool = False  # replay: start again at the end (demos)
    hold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3  # replay: frames per image
    gap: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 10  # replay: empty frames between


class ScannerSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    source: str = "none"  # serial:/dev/ttyACM0 | hid:/dev/input/eventN | none


class ThermometerSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    source: str = "none"  # PROFILE:DEVICE (ascii|modbus|binary) | sim | none
    window_s: Seconds = 15.0  # a reading binds to a scan within this window
    max_age_s: Seconds = 3.0
    offset_c: Annotated[float, msgspec.Meta(ge=-5, le=5)] = 0.0
    remeasure_gap_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0


class GpioSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    backend: Literal["real", "mock", "none"] = "none"
    pins: dict[str, int | bool | None] = msgspec.field(default_factory=dict)


class HttpSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    listen: str = "127.0.0.1:8000"  # "" or "none": no station page


class OutboxSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_events: Annotated[int, msgspec.Meta(ge=10, le=10_000_000)] = 50_000
    max_mb: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 64.0


class TelemetrySection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    interval_s: Seconds = 30.0


class CheckpointSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    shift_hours: Annotated[float, msgspec.Meta(gt=0, le=24)] = 8.0
    # the directions a vehicle is recorded with: "in"/"out", or the road's own names
    directions: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=32)]],
        msgspec.Meta(min_length=1, max_length=8),
    ] = msgspec.field(default_factory=lambda: ["in", "out"])


class GateSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    direction: Literal["in", "out", "both"] = "both"
    relay_ms: Annotated[int, msgspec.Meta(ge=100, le=3000)] = 800


class SamplingSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    table: str = ""
    round: str = ""  # "" = one round per local day
    pool: int | None = None  # None: the policy's default pool size
    auto_close: bool = True
    tube_labels: int | None = None  # pre-printed labels at the table (None: not tracked)
    box_labels: int | None = None
    utc_offset_h: Annotated[float, msgspec.Meta(ge=-14, le=14)] = 8.0
    # key of the ID-number hash of people entered by hand: the same on every unit
    manual_key: Annotated[str, msgspec.Meta(min_length=8, max_length=128)] = "checkpost-manual-1"


class EdgeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    unit: UnitSection = UnitSection()
    link: LinkSection = LinkSection()
    camera: CameraSection = CameraSection()
    scanner: ScannerSection = ScannerSection()
    thermometer: ThermometerSection = ThermometerSection()
    gpio: GpioSection = GpioSection()
    http: HttpSection = HttpSection()
    outbox: OutboxSection = OutboxSection()
    telemetry: TelemetrySection = TelemetrySection()
    checkpoint: CheckpointSection = CheckpointSection()
    gate: GateSection = GateSection()
    sampling: SamplingSection = SamplingSection()
    trust: TrustSettings = TrustSettings()
    policy: PolicySettings = PolicySettings()
    hc1: Hc1Settings = Hc1Settings()
    issuer_dir: str | None = None  # demos only: trust a test issuer's keys

    @property
    def core(self) -> CoreSettings:
        return CoreSettings(trust=self.trust, policy=self.policy, hc1=self.hc1)


# flag -> (section, key)
FLAGS: dict[str, tuple[str, str]] = {
    "unit": ("unit", "id"),
    "station": ("unit", "station"),
    "data_dir": ("unit", "data_dir"),
    "log_level": ("unit", "log_level"),
    "broker": ("link", "broker"),
    "camera": ("camera", "source"),
    "scanner": ("scanner", "source"),
    "thermometer": ("thermometer", "source"),
    "gpio": ("gpio", "backend"),
    "http": ("http", "listen"),
}


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """The file (or the defaults), with flag overrides applied, then validated as a whole."""
    import tomllib

    data: dict[str, Any] = {}
    text = ""
    source = "<flags>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [f"cannot read: {exc.strerror or exc}"]) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    for flag, value in (overrides or {}).items():
        if value is None:
            continue
        if flag == "issuer_dir":
            data["issuer_dir"] = value
            continue
        section, key = FLAGS[flag]
        sect = data.setdefault(section, {})
        if isinstance(sect, dict):
            sect[key] = value
    cfg = convert(data, EdgeConfig, source=source, text=text)
    problems = check(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def check(cfg: EdgeConfig) -> list[str]:
    """Cross-field and format checks msgspec cannot express; every problem, at once."""
    problems: list[str] = []
    cam = cfg.camera.source
    if not (cam in ("none", "picamera", "picamera2") or re.fullmatch(r"v4l2:\S*|replay:.+", cam)):
        problems.append(
            f"camera.source: expected v4l2:N, picamera, replay:DIR or none (got {cam!r})"
        )
    if cam.startswith("replay:") and not Path(cam[7:]).exists():
        problems.append(f"camera.source: replay folder {cam[7:]!r} does not exist")
    sc = cfg.scanner.source
    if not (sc == "none" or re.fullmatch(r"(serial|hid):\S+", sc)):
        problems.append(f"scanner.source: expected serial:DEV, hid:DEV or none (got {sc!r})")
    th = cfg.thermometer.source
    if not (th in ("none", "sim") or re.fullmatch(r"(ascii|modbus|binary):\S+", th)):
        problems.append(
            f"thermometer.source: expected PROFILE:DEVICE (ascii|modbus|binary), sim or none "
            f"(got {th!r})"
        )
    b = cfg.link.broker
    if b != "none":
        from checkpost.edge.link import BrokerAddress

        try:
            BrokerAddress.parse(b)
        except ValueError as exc:
            problems.append(f"link.broker: {exc}")
    h = cfg.http.listen
    if h not in ("", "none") and not re.fullmatch(r"[\w.:-]+:\d{1,5}", h):
        problems.append(f"http.listen: expected HOST:PORT or none (got {h!r})")
    dirs = cfg.checkpoint.directions
    if len(set(dirs)) != len(dirs):
        problems.append(f"checkpoint.directions: names must be distinct (got {dirs!r})")
    if cfg.sampling.pool is not None and not 1 <= cfg.sampling.pool <= 50:
        problems.append(f"sampling.pool: 1-50 (got {cfg.sampling.pool})")
    if cfg.gpio.pins:
        from checkpost.hardware.gpio import PinMap, PinMapError

        try:
            PinMap.from_dict(dict(cfg.gpio.pins)).validate()
        except (PinMapError, ValueError, TypeError) as exc:
            problems.append(f"gpio.pins: {exc}")
    return problems


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="station TOML config")
    p.add_argument("--unit", metavar="ID", help="unit id ([a-z0-9-], also the MQTT identity)")
    p.add_argument("--station", choices=("checkpoint", "gate", "sampling", "transfer"))
    p.add_argument("--broker", metavar="URL", help="mqtt://host:port, or none to stay offline")
    p.add_argument("--data-dir", metavar="DIR", help="outbox and cached documents")
    p.add_argument("--camera", metavar="SRC", help="v4l2:0 | picamera | replay:DIR | none")
    p.add_argument(
        "--scanner", metavar="SRC", help="serial:/dev/ttyACM0 | hid:/dev/input/eventN | none"
    )
    p.add_argument(
        "--thermometer", metavar="SRC", help="PROFILE:DEVICE (ascii|modbus|binary) | sim | none"
    )
    p.add_argument("--gpio", choices=("real", "mock", "none"))
    p.add_argument("--http", metavar="HOST:PORT", help="station page address, or none")
    p.add_argument(
        "--issuer-dir", metavar="DIR", help="trust a test issuer's demo keys (demos only)"
    )
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--validate-config", action="store_true", help="check the config and exit")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    keys = [*FLAGS, "issuer_dir"]
    return {k: getattr(args, k, None) for k in keys}
