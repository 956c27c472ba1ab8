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
