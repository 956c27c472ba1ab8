"""Policy parameters: every threshold the rules are written against, validated from TOML.

`default.toml` is DESIGN.md §4. The rules themselves (`rules/*.json`) say what each
threshold means; `bundle.py` joins both into the versioned, signed policy bundle.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from checkpost.config import ConfigError, load_toml, loads_toml

Hours = Annotated[float, msgspec.Meta(gt=0, le=24 * 365, description="hours")]
Days = Annotated[int, msgspec.Meta(ge=0, le=3650, description="days")]
Celsius = Annotated[float, msgspec.Meta(ge=20, le=50, description="degrees Celsius")]


class Clock(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    skew_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 60.0


class Checkpoint(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    test_max_age_hours: Hours = 48.0
    pending_result: Literal["fail", "review"] = "fail"
    yellow: Literal["review", "fail"] = "review"
    risk_travel: Literal["review", "fail", "ignore"] = "review"
    require_test: bool = True
    hp1_max_age_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 180.0
    # Plate region prefixes (e.g. "鄂A") whose transit vehicles are flagged for turning back.
    risk_regions: list[str] = msgspec.field(default_factory=list)


class Temperature(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    fever_celsius: Celsius = 37.3
    sensor_min_celsius: Celsius = 34.0
    sensor_max_celsius: Celsius = 43.0
    # Readings at/above the threshold needed before the verdict turns RED.
    readings_for_fever: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2


class Hc1(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """EU certificates as the checkpoint accepts them (test, vaccination or recovery)."""

    test_max_age_hours: Annotated[int, msgspec.Meta(gt=0, le=24 * 365)] = 72
    # LOINC test types: LP6464-4 nucleic acid amplification, LP217198-3 rapid antigen.
    test_types: list[str] = msgspec.field(default_factory=lambda: ["LP6464-4", "LP217198-3"])
    vaccination_min_days: Days = 14
    vaccination_max_days: Days = 0  # 0 = no upper limit
    # A country code whose EU business rules (from the bundle) replace our HC1 rules; "" = ours.
    accept_country: Annotated[str, msgspec.Meta(pattern=r"^([A-Z]{2})?$")] = ""


class Sampling(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pool_sizes: list[Annotated[int, msgspec.Meta(ge=1, le=50)]] = msgspec.field(
        default_factory=lambda: [1, 5, 10, 20]
    )
    default_pool_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    once_per_round: bool = True
    registration_max_age_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30


class Codes(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Plain-text code patterns (full match), configurable per deployment."""

    tube_patterns: list[str] = msgspec.field(default_factory=lambda: [r"\d{10,14}"])
    box_patterns: list[str] = msgspec.field(default_factory=lambda: [r"BOX\d{6,10}"])


class Parameters(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The thresholds rules are written against (`${section.key}` in a rule's text)."""

    name: str = "default"
    # Extra folders of rule files (EU gateway format), relative to the parameters file.
    rule_dirs: list[str] = msgspec.field(default_factory=list)
    clock: Clock = Clock()
    checkpoint: Checkpoint = Checkpoint()
    temperature: Temperature = Temperature()
    hc1: Hc1 = Hc1()
    sampling: Sampling = Sampling()
    codes: Codes = Codes()


def default_policy_text() -> str:
    return resources.files("checkpost.policy").joinpath("default.toml").read_text("utf-8")


def load_parameters(path: str | Path | None = None) -> Parameters:
    """Parameters from a TOML file, or the built-in defaults (DESIGN.md §4) when None."""
    params = (
        loads_toml(default_policy_text(), Parameters, source="default.toml")
        if path is None
        else load_toml(path, Parameters)
    )
    problems = []
    for pattern in (*params.codes.tube_patterns, *params.codes.box_patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"codes: bad pattern {pattern!r}: {exc}")
    if params.sampling.default_pool_size not in params.sampling.pool_sizes:
        problems.append("sampling.default_pool_size: must be one of sampling.pool_sizes")
    if problems:
        raise ConfigError(str(path or "default.toml"), problems)
    return params
