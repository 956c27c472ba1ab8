"""`checkpost hub run` as an operator starts it, and its configuration file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from checkpost.hub.broker import free_port
from checkpost.hub.config import HubConfig, load_config

from checkpost.config import ConfigError


def test_hub_run_serves_and_stops_cleanly(broker, issuer, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "checkpost", "hub", "run",
            "--broker", broker.url,
            "--data-dir", str(tmp_path / "data"),
            "--http", f"127.0.0.1:{port}",
            "--workers", "2",
            "--issuer-dir", str(issuer.folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        health = None
        for _ in range(150):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health == {"status": "ok", "store": True, "broker": True}
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/stats").json()["events"] == 0
        assert (tmp_path / "data" / "hub.db").exists()  # embedded default store
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()


def test_defaults_need_no_file():
    cfg = load_config(None)
    assert cfg.hub.broker == "mqtt://127.0.0.1:1883" and cfg.hub.workers == 1
    assert cfg.db_url().endswith("hub.db")


def test_config_errors_name_file_line_and_key(tmp_path: Path):
    bad = tmp_path / "hub.toml"
    bad.write_text('[hub]\nbroker = "mqtt://x:1"\nworkers = 0\nsurprise = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(bad))
    text = str(info.value)
    # The core loader reports the first problem of each top-level section.
    assert "hub.toml" in text and "line 3" in text and "hub.workers" in text and "(got 0)" in text
    assert isinstance(HubConfig(), HubConfig)


def _policy_bundle(tmp: Path, key: object, hours: int) -> str:
    """A signed bundle of the default parameters with the checkpoint test age changed,
    written to tmp/policy.json (atomically, as `checkpost policy build` does)."""
    import json

    import msgspec

    from checkpost.policy import Policy, load_policy
    from checkpost.policy.bundle import sign_policy

    base = load_policy()
    cp = msgspec.structs.replace(base.params.checkpoint, test_max_age_hours=float(hours))
    policy = Policy(msgspec.structs.replace(base.params, checkpoint=cp), base.rule_docs)
    tmp_file = tmp / "policy.json.tmp"
    tmp_file.write_text(json.dumps(sign_policy(policy, key)))
    tmp_file.replace(tmp / "policy.json")
    return policy.version


def test_sighup_republishes_the_policy_file_at_once(broker, tmp_path):
    """With a poll interval of an hour, only SIGHUP (sent to the supervisor, forwarded to
    the API process) makes the hub read the changed policy file; nobody dies of it."""
    import datetime as dt
    import json
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "policy-signer.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    v48 = _policy_bundle(tmp_path, key, 48)
    conf = tmp_path / "hub.toml"
    conf.write_text(
        f'[hub]\ntopic_root = "sighup-{os.getpid()}/v1"\ndocuments_poll_s = 3600\n'
        f'[policy]\nfile = "{tmp_path / "policy.json"}"\nsigner_keys = ["{pub}"]\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "checkpost", "hub", "run", "--config", str(conf),
            "--broker", broker.url, "--data-dir", str(tmp_path / "data"),
            "--http", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/v1/documents"

    def published() -> str | None:
        try:
            doc = httpx.get(api, timeout=1).json()["policy"]["published"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        return doc["version"] if doc else None

    def wait(pred, what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        wait(lambda: published() == v48, "the 48 h bundle published at start")
        issued = json.loads((tmp_path / "policy.json").read_text())["policy"]["issued_at"]
        t48 = dt.datetime.fromisoformat(issued.replace("Z", "+00:00")).timestamp()
        wait(lambda: time.time() >= t48 + 1, "the next second")
        v72 = _policy_bundle(tmp_path, key, 72)
        assert published() == v48  # an hour to the next look: nothing happens by itself
        proc.send_signal(signal.SIGHUP)
        wait(lambda: published() == v72, "the 72 h bundle published after SIGHUP")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert b"SIGHUP" in out, out.decode()


def test_restart_delay_backs_off_a_crash_loop_and_resets():
    from checkpost.hub.service import restart_delay

    delays, d = [], 0.5
    for _ in range(8):  # dies right after each start
        d = restart_delay(d, lived=0.3)
        delays.append(d)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(60, lived=3600) == 1  # it ran for an hour: a fresh death
