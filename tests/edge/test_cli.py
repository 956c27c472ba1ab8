"""`checkpost edge run`: config file + flags, validated at start with every problem named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from checkpost.edge.config import load_config

from checkpost.cli import main
from checkpost.config import ConfigError

from .conftest import free_port
from .helpers import wait_for


def test_flags_override_the_file(tmp_path: Path) -> None:
    f = tmp_path / "unit.toml"
    f.write_text('[unit]\nid = "cp-7"\nstation = "sampling"\n[sampling]\npool = 5\n')
    cfg = load_config(f, {"station": "gate", "broker": "mqtt://127.0.0.1:1999"})
    assert (cfg.unit.id, cfg.unit.station, cfg.link.broker) == (
        "cp-7",
        "gate",
        "mqtt://127.0.0.1:1999",
    )
    assert cfg.sampling.pool == 5


def test_every_problem_reported_at_once_with_lines(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        '[unit]\nid = "CP 1"\nstation = "bridge"\n'
        '[camera]\nsource = "webcam"\n'
        '[thermometr]\nsource = "sim"\n'
        '[link]\nbroker = "http://x"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = str(err.value)
    assert "thermometr: unknown key" in text and "line 6" in text
    assert "unit.id" in text and "'CP 1'" in text and "line 2" in text  # first per section
    f.write_text(
        '[camera]\nsource = "webcam"\n[link]\nbroker = "http://x"\n[thermometer]\nsource = "usb"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(f)
    problems = err.value.problems
    assert len(problems) == 3 and any("camera.source" in p for p in problems)
    assert any("link.broker" in p for p in problems)
    assert any("thermometer.source" in p for p in problems)


def test_validate_config_cli(tmp_path: Path, capsys: Any) -> None:
    f = tmp_path / "unit.toml"
    f.write_text('[unit]\nid = "gate-3"\nstation = "gate"\n')
    assert main(["edge", "run", "--config", str(f), "--validate-config"]) == 0
    assert "gate unit gate-3" in capsys.readouterr().out
    assert main(["edge", "run", "--config", str(f), "--camera", "bogus", "--validate-config"]) == 2
    assert "camera.source" in capsys.readouterr().err
    assert main(["edge", "run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_edge_run_serves_the_page_and_stops_on_sigterm(tmp_path: Path, issuer: Any) -> None:
    port = free_port()
    replay = tmp_path / "frames"
    replay.mkdir()
    from checkpost.issuer.render import save_qr

    save_qr(issuer.hp1(lifetime=3600), replay / "01.png")
    conf = tmp_path / "unit.toml"
    conf.write_text("[camera]\nloop = true\nfps = 20\nhold = 2\ngap = 20\ndebounce_s = 0.5\n")
    import socket

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(20)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "checkpost",
            "edge",
            "run",
            "--config",
            str(conf),
            "--unit",
            "cp-cli",
            "--station",
            "checkpoint",
            "--data-dir",
            str(tmp_path / "data"),
            "--http",
            f"127.0.0.1:{port}",
            "--camera",
            f"replay:{replay}",
            "--thermometer",
            "sim",
            "--gpio",
            "mock",
            "--issuer-dir",
            str(issuer.folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(
            os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000"
        ),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "checkpoint unit cp-cli running" in line, line + (
            proc.stderr.read() if proc.poll() else ""
        )
        base = f"http://127.0.0.1:{port}"
        state = wait_for(
            lambda: json.loads(urllib.request.urlopen(base + "/api/state").read()), what="state"
        )
        assert state["station"] == "checkpoint" and state["unit"] == "cp-cli"
        assert state["health"]["camera"] is not None
        req = urllib.request.Request(
            base + "/api/tap",
            data=json.dumps({"action": "plate", "args": {"plate": "京A12345"}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req)
        wait_for(
            lambda: json.loads(urllib.request.urlopen(base + "/api/state").read())["workflow"][
                "vehicle"
            ],
            what="vehicle open",
        )
        # the replayed frame is decoded and decided with the simulated thermometer
        wait_for(
            lambda: (
                (
                    json.loads(urllib.request.urlopen(base + "/api/state").read())["verdict"] or {}
                ).get("verdict")
                == "PASS"
            ),
            what="verdict from the camera",
        )
        # systemd integration: READY once running, then WATCHDOG while the worker progresses
        got = {notify.recv(256).decode().split("\n")[0] for _ in range(3)}
        assert "READY=1" in got and "WATCHDOG=1" in got
    finally:
        notify.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_example_config_is_valid() -> None:
    import tomllib

    from checkpost.edge.config import EdgeConfig, check

    from checkpost.config import convert

    path = Path(__file__).resolve().parents[2] / "edge" / "station.example.toml"
    cfg = convert(tomllib.loads(path.read_text("utf-8")), EdgeConfig, source=str(path))
    assert check(cfg) == [] and cfg.unit.station == "checkpoint"
