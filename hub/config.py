"""The hub's configuration file (TOML), validated with file/line/path errors.

Every field has a working default: `checkpost hub run` with no file and no flags runs an
embedded hub (SQLite under the data dir, broker on 127.0.0.1:1883, API on 127.0.0.1:8080).
Core settings (trust list, policy, DCC schemas) are the same sections every part uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from checkpost.settings import Hc1Settings, PolicySettings, TrustSettings


def default_data_dir() -> str:
    env = os.environ.get("CHECKPOST_HUB_DATA")
    if env:
        return env
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "checkpost" / "hub")


class HubSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    broker: str = "mqtt://127.0.0.1:1883"
    db: str = ""  # "" = sqlite file hub.db in data_dir; or sqlite:///path or postgresql://...
    data_dir: str = ""  # "" = $CHECKPOST_HUB_DATA or ~/.local/state/checkpost/hub
    http: str = "127.0.0.1:8080"
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    topic_root: str = "checkpost/v1"
    share_group: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,32}$")] = "checkpost-hub"
    # Largest group commit; a batch is whatever arrived while the previous commit ran.
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 2000
    # Unacknowledged deliveries the broker may have in flight to one worker (MQTT 5
    # receive maximum): bounds memory and the work a killed worker leaves for redelivery.
    inflight: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1000
    # Where a batch is committed. "inline": on the loop thread, which blocks the loop for
    # the durable flush. "split" (what "auto" picks on both stores): statements on the
    # loop, the flush (COMMIT) on a store thread, with the interpreter's thread switch
    # interval cut to 0.5 ms so the loop gets the GIL back at once. "thread": everything on
    # a store thread. Measured here (`checkpost bench hub`): split beat inline under load
    # (SQLite p99 102-202 ms vs 317-484 ms with other jobs on the machine; 5-8 ms vs
    # ~20 ms at half rate on a quiet one); "thread" is far worse everywhere. On PostgreSQL
    # a batch of scans alone is one statement (Store.at_once), sent from the store thread
    # in "split" and "thread" modes, from the loop in "inline".
    commit_mode: Literal["auto", "split", "thread", "inline"] = "auto"
    # Checkpoint SQLite's WAL from a background thread (see SqliteStore.start_checkpointer).
    sqlite_checkpointer: bool = False
    result_qos: Annotated[int, msgspec.Meta(ge=0, le=1)] = 1
    # The API process looks at the trust-list and policy files this often (and on SIGHUP)
    # and publishes a changed, verified document retained on hub/trust, hub/policy.
    documents_poll_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 3.0
    # A signed sealed-building list (`checkpost hub sealed`) the API process publishes,
    # retained on hub/sealed, and again whenever the file changes; "" = none.
    sealed_file: str = ""
    # Test issuer folder whose keys to trust (demos, benchmarks); never in production.
    issuer_dir: str | None = None


class HubConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    hub: HubSection = HubSection()
    trust: TrustSettings = TrustSettings()
    policy: PolicySettings = PolicySettings()
    hc1: Hc1Settings = Hc1Settings()

    def data_dir(self) -> Path:
        return Path(self.hub.data_dir or default_data_dir()).expanduser()

    def db_url(self) -> str:
        return self.hub.db or str(self.data_dir() / "hub.db")


def load_config(path: str | None) -> HubConfig:
    if path is None:
        return HubConfig()
    from checkpost.config import load_toml

    return load_toml(path, HubConfig)
