"""Core settings every part shares: where the trust list, policy and DCC schemas come from.

Stations and the hub embed this struct in their own config files (section names are the
same everywhere), so a deployment describes trust and policy once. `checkpost verify`
reads it from `--config`, `$CHECKPOST_CONFIG` or `./checkpost.toml`, in that order.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


class TrustSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    file: str | None = None  # signed trust list (JSON) to load
    signer_keys: list[str] = msgspec.field(default_factory=list)  # PEM public keys/certs
    accept_demo: bool = False  # accept keys a test issuer marked `demo`
    max_age_hours: float = 72.0  # older lists turn into a hard warning on stations


class PolicySettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # A parameters TOML (built-in rules) or a signed bundle (.json); None: the built-in
    # default (DESIGN.md §4).
    file: str | None = None
    signer_keys: list[str] = msgspec.field(default_factory=list)  # may sign policy bundles


class Hc1Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    schema_dirs: list[str] = msgspec.field(default_factory=list)  # EU DCC schema releases
    rules_dir: str | None = None  # EU business rules (gateway format)
    country: str = "DE"  # country of acceptance for EU business rules


class CoreSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    trust: TrustSettings = TrustSettings()
    policy: PolicySettings = PolicySettings()
    hc1: Hc1Settings = Hc1Settings()


def default_config_path() -> Path | None:
    env = os.environ.get("CHECKPOST_CONFIG")
    if env:
        return Path(env)
    local = Path("checkpost.toml")
    return local if local.exists() else None


def dev_schema_dirs() -> list[Path]:
    """Schema folders found without configuration: `$CHECKPOST_DCC_SCHEMA`, or the
    `shared/dcc-schema` folder beside a development checkout. A user's clone has neither
    and must configure `[hc1] schema_dirs`."""
    out: list[Path] = []
    env = os.environ.get("CHECKPOST_DCC_SCHEMA")
    if env:
        out.append(Path(env))
    repo = Path(__file__).resolve().parents[1]
    out.append(repo.parent / "shared" / "dcc-schema")
    return [p for p in out if p.is_dir()]
