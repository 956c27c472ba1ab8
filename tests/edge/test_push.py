"""Documents and commands, hub → unit, end to end (issue 7 §3, issue 6 §5-6).

One real `checkpost hub run` (its own process group: API + a loop worker, SQLite) and one
running gate unit over a private Mosquitto, on a topic root of their own. The operator's
side is what an operator types: `checkpost policy build` writes the bundle the hub is
configured with, `checkpost hub command` sends commands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from checkpost.edge.agent import Unit
from checkpost.edge.config import load_config
from checkpost.edge.workflows import CodeRead
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from checkpost.cli import main as cli
from checkpost.codes.trust import build_trust_list
from checkpost.protocol import Command, Result, Topics, encode, uuid7

from .conftest import REPO, free_port
from .helpers import wait_for

UNIT = "gate-push"


def _write_key(folder: Path, name: str) -> tuple[Path, Path, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder / f"{name}.key.pem", folder / f"{name}.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub, key


def _params(folder: Path, hours: int) -> Path:
    """The default parameters with the checkpoint test age changed (what an operator edits)."""
    text = (REPO / "checkpost" / "policy" / "default.toml").read_text(encoding="utf-8")
    text, n = re.subn(
        r"(?m)^test_max_age_hours = 48\b", f"test_max_age_hours = {hours}", text, count=1
    )
    assert n == 1
    path = folder / f"policy-{hours}h.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _build_policy(params: Path, key: Path, out: Path) -> str:
    """`checkpost policy build`; returns the version it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli(
            ["policy", "build", "--params", str(params), "--sign", str(key), "--out", str(out)]
        )
    printed = buf.getvalue()
    assert code == 0, printed
    m = re.search(r"version ([0-9a-f]{12})", printed)
    assert m, printed
    return m.group(1)


def _write_trust(issuer: Any, path: Path, version: int) -> None:
    doc = build_trust_list(issuer.entries(), issuer.trust_key, version=version, issuer="bureau")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class System:
    """The hub process, the unit, and what the unit heard back from the hub."""

    def __init__(self, tmp: Path, issuer: Any, broker: Any) -> None:
        self.tmp, self.issuer, self.broker = tmp, issuer, broker
        self.root = f"push-{uuid7()[-8:]}/v1"
        self.topics = Topics(self.root)
        self.policy_key, self.policy_pub, _ = _write_key(tmp, "policy-signer")
        self.policy_file = tmp / "policy.json"
        self.trust_file = tmp / "trustlist.json"
        self.v48 = _build_policy(_params(tmp, 48), self.policy_key, self.policy_file)
        _write_trust(issuer, self.trust_file, 2)
        self.http = free_port()
        self.api = f"http://127.0.0.1:{self.http}"
        self.hub_conf = tmp / "hub.toml"
        self.hub_conf.write_text(
            f'[hub]\ntopic_root = "{self.root}"\ndocuments_poll_s = 0.25\n'
            f'[trust]\nfile = "{self.trust_file}"\n'
            f'signer_keys = ["{issuer.trust_signer_path}"]\naccept_demo = true\n'
            f'[policy]\nfile = "{self.policy_file}"\nsigner_keys = ["{self.policy_pub}"]\n',
            encoding="utf-8",
        )
        self.hub_log = tmp / "hub.log"
        self.hub: subprocess.Popen[bytes] | None = None
        self.unit: Unit | None = None
        self.results: list[Result] = []

    def start(self) -> System:
        with open(self.hub_log, "ab") as log:
            self.hub = subprocess.Popen(
                [
                    sys.executable, "-m", "checkpost", "hub", "run",
                    "--config", str(self.hub_conf),
                    "--broker", self.broker.url,
                    "--data-dir", str(self.tmp / "hub"),
                    "--http", f"127.0.0.1:{self.http}",
                    "--workers", "1",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stopped with its workers
            )  # fmt: skip
        unit_conf = self.tmp / "unit.toml"
        unit_conf.write_text(
            f'[unit]\nid = "{UNIT}"\nstation = "gate"\ndata_dir = "{self.tmp / UNIT}"\n'
            f'[link]\nbroker = "{self.broker.url}"\nroot = "{self.root}"\n'
            f'[http]\nlisten = "none"\n[telemetry]\ninterval_s = 0.5\n'
            f'[policy]\nsigner_keys = ["{self.policy_pub}"]\n',
            encoding="utf-8",
        )
        cfg = load_config(unit_conf, {"issuer_dir": str(self.issuer.folder)})
        self.unit = Unit(cfg)
        self.unit.result_listeners.append(self.results.append)
        self.unit.start(devices=False)
        wait_for(lambda: self.unit.link.online, 30, "the unit sees the hub online")
        return self

    def stop(self) -> None:
        if self.unit is not None:
            self.unit.stop()
        p = self.hub
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)

    def scan(self, code: str) -> tuple[Any, Result]:
        """Scan at the unit; (the unit's view once the hub confirmed it, the hub's result)."""
        unit = self.unit
        assert unit is not None
        n = len(self.results)
        unit.submit(CodeRead(code))
        wait_for(lambda: len(self.results) > n, 20, "the hub's result")
        view = wait_for(
            lambda: unit.workflow.view if unit.workflow.view.confirmed else None, 10, "confirmed"
        )
        return view, self.results[-1]

    def hub_json(self, path: str) -> Any:
        return httpx.get(self.api + path, timeout=5).json()

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.api + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(autouse=True)
def _log_level() -> Iterator[None]:
    """`set_log_level` changes this process's "checkpost" logger (the unit runs in it)."""
    logger = logging.getLogger("checkpost")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, issuer: Any, broker: Any) -> Iterator[System]:
    s = System(tmp_path_factory.mktemp("push"), issuer, broker)
    try:
        yield s.start()
    finally:
        s.stop()
        log = s.hub_log.read_text(errors="replace") if s.hub_log.exists() else ""
        print(f"--- hub log ({s.hub_log}) ---\n{log[-4000:]}")


def test_policy_push_switches_the_verdict(system: System) -> None:
    """48 h → 72 h is a bundle, not a release: a pass whose test is 60 h old is STOP under
    the 48 h bundle; the operator builds a 72 h one, the hub publishes it, unit and hub
    worker switch within seconds, the unit's retained status says so, and it PASSes."""
    unit, issuer = system.unit, system.issuer
    assert unit is not None
    docs = wait_for(lambda: system.hub_json("/api/v1/documents"), 10, "documents view")
    assert docs["policy"]["published"]["version"] == system.v48
    assert docs["policy"]["published"]["signed"] and docs["policy"]["published"]["issued_at"]

    view, result = system.scan(issuer.hp1(test_age_hours=60))
    assert view.verdict == "FAIL" and result.verdict == "FAIL"
    assert any("48" in r.en for r in view.reasons), view.reasons
    assert result.policy == system.v48 == unit.documents.policy.version

    # bundles are stamped to the second: the next one must be issued after this one
    issued = json.loads(system.policy_file.read_text())["policy"]["issued_at"]
    t48 = dt.datetime.fromisoformat(issued.replace("Z", "+00:00")).timestamp()
    wait_for(lambda: time.time() >= t48 + 1, 3, "the next second")
    t0 = time.monotonic()
    v72 = _build_policy(_params(system.tmp, 72), system.policy_key, system.policy_file)
    assert v72 != system.v48
    wait_for(lambda: unit.documents.policy.version == v72, 10, "the unit applied the 72 h bundle")
    print(f"72 h bundle applied on the unit {time.monotonic() - t0:.2f} s after it was built")
    assert unit.workflow.policy.checkpoint.test_max_age_hours == 72
    # the retained status (as the hub's fleet view reads it) and the telemetry report it
    wait_for(
        lambda: any(
            u["id"] == UNIT and u["policy"] == v72 for u in system.hub_json("/api/v1/units")
        ),
        10,
        "the unit's status reports the new version",
    )
    assert unit.status_info()["policy"] == v72
    telemetry = wait_for(lambda: unit.last_telemetry, 5, "telemetry")
    wait_for(lambda: unit.last_telemetry.policy_version == v72, 5, "telemetry version")
    assert telemetry is not None
    assert system.hub_json("/api/v1/documents")["policy"]["published"]["version"] == v72
    state = unit.push_screen(time.time())
    assert state["health"]["documents"]["policy"]["version"] == v72
    assert state["health"]["documents"]["policy"]["age_h"] is not None

    # the same person, the same 60 h old test: now PASS, locally and at the hub's worker
    wait_for(
        lambda: system.metric("checkpost_hub_documents_applied_total", kind="policy"),
        10,
        "worker switched",
    )
    view, result = system.scan(issuer.hp1(test_age_hours=60))
    assert view.verdict == "PASS", view.reasons
    assert result.verdict == "PASS" and result.policy == v72


def test_forged_bundle_is_refused_and_the_current_one_kept(system: System) -> None:
    unit = system.unit
    assert unit is not None
    held = unit.documents.policy.version
    published = system.hub_json("/api/v1/documents")["policy"]["published"]["version"]
    assert held == published
    doc = json.loads(system.policy_file.read_text())
    mallory = ec.generate_private_key(ec.SECP256R1())
    from checkpost.policy.bundle import policy_from_body, sign_policy

    body = dict(doc["policy"])
    body["parameters"]["checkpoint"]["test_max_age_hours"] = 1000
    body.pop("version")
    forged = sign_policy(policy_from_body(body), mallory)

    # 1. the operator's file is replaced by a bundle signed with another key: the hub
    #    refuses to publish it (clear reason, metric) and keeps publishing the old one
    before = system.metric(
        "checkpost_hub_documents_refused_total",
        kind="policy",
        where="publisher",
        reason="signature",
    )
    tmp = system.policy_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(forged))
    os.replace(tmp, system.policy_file)
    refused = wait_for(
        lambda: system.hub_json("/api/v1/documents")["policy"]["refused"], 10, "hub refusal"
    )
    assert refused["reason"] == "signature" and "signature" in refused["error"]
    assert system.hub_json("/api/v1/documents")["policy"]["published"]["version"] == published
    assert (
        system.metric(
            "checkpost_hub_documents_refused_total",
            kind="policy",
            where="publisher",
            reason="signature",
        )
        > before
    )

    # 2. someone publishes it on the retained topic anyway: the unit (and the hub's worker)
    #    refuse it with the reason and keep deciding with the current bundle
    rogue = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"rogue-{uuid7()[-6:]}")
    rogue.connect("127.0.0.1", system.broker.port)
    rogue.loop_start()
    try:
        rogue.publish(
            system.topics.hub_policy, json.dumps(forged).encode(), qos=1, retain=True
        ).wait_for_publish(5)
        rogue.publish(system.topics.hub_trust, b"{not json", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: unit.documents.policy.last_error, 10, "the unit refused the bundle")
        wait_for(lambda: unit.documents.trust.last_error, 10, "the unit refused the junk")
    finally:
        rogue.disconnect()
        rogue.loop_stop()
    assert "signature" in unit.documents.policy.last_error
    assert "not JSON" in unit.documents.trust.last_error
    assert unit.documents.policy.version == held == unit.documents.context.policy.version
    assert unit.outbox.journal_entries("document_refused")
    summary = unit.push_screen(time.time())["health"]["documents"]["policy"]
    assert summary["version"] == held and "signature" in summary["error"]
    wait_for(
        lambda: system.metric(
            "checkpost_hub_documents_refused_total", kind="policy", where="worker"
        ),
        10,
        "the worker refused it too",
    )
    _, result = system.scan(system.issuer.hp1(test_age_hours=60))
    assert result.policy == held  # the hub's worker still decides with the current one


def test_trust_list_pushed_and_applied(system: System) -> None:
    unit = system.unit
    assert unit is not None
    # the hub published trustlist.json (version 2) at start; the unit replaced its own v1
    wait_for(lambda: unit.documents.trust.version == "2", 10, "trust v2 applied")
    _write_trust(system.issuer, system.trust_file, 3)
    wait_for(lambda: unit.documents.trust.version == "3", 10, "trust v3 applied")
    assert unit.documents.context.trust.version == 3
    assert unit.documents.trust_cache.exists()
    assert system.hub_json("/api/v1/documents")["trust"]["published"]["version"] == "3"
    wait_for(
        lambda: any(
            u["id"] == UNIT and u["trust"] == "3" for u in system.hub_json("/api/v1/units")
        ),
        10,
        "status reports trust v3",
    )
    state = unit.push_screen(time.time())
    assert state["health"]["documents"]["trust"]["version"] == "3"
    assert state["stale"] is None  # a fresh list: no hard warning
    view, result = system.scan(system.issuer.hp1())
    assert view.verdict == "PASS" and result.verdict == "PASS"


@pytest.mark.parametrize(
    ("argv", "detail_key"),
    [
        (["reload"], "policy"),
        (["set-log-level", "INFO"], "level"),
        (["resend-status"], "session"),
        (["sync-now"], "outbox"),
    ],
)
def test_commands_from_the_cli_are_acknowledged(
    system: System, capsys: Any, argv: list[str], detail_key: str
) -> None:
    capsys.readouterr()
    where = ["--config", str(system.hub_conf), "--broker", system.broker.url]
    code = cli(["hub", "command", UNIT, *argv, "--json", "--timeout", "10", *where])
    ack = json.loads(capsys.readouterr().out)
    assert code == 0, ack
    assert ack["ok"] and ack["unit"] == UNIT and ack["error"] == "" and not ack["timeout"]
    assert ack["cmd"] == argv[0].replace("-", "_") and detail_key in ack["detail"]
    assert re.fullmatch(r"[0-9a-f-]{36}", ack["req"])
    # the plain output names the command and the outcome
    code = cli(
        [
            "hub",
            "command",
            UNIT,
            *argv,
            "--config",
            str(system.hub_conf),
            "--broker",
            system.broker.url,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and f"{UNIT}: {argv[0].replace('-', '_')} ok" in out


def test_commands_refused_or_unanswered_exit_1(system: System, capsys: Any) -> None:
    base = ["--config", str(system.hub_conf), "--broker", system.broker.url, "--json"]
    assert cli(["hub", "command", UNIT, "set-log-level", "LOUD", *base]) == 2  # usage
    capsys.readouterr()
    assert cli(["hub", "command", "no-such-unit", "sync-now", "--timeout", "0.5", *base]) == 1
    ack = json.loads(capsys.readouterr().out)
    assert ack["timeout"] and not ack["ok"] and "no acknowledgement" in ack["error"]


def test_command_api_and_unknown_command(system: System) -> None:
    url = f"{system.api}/api/v1/units/{UNIT}/commands"
    r = httpx.post(url, json={"cmd": "set_log_level", "args": {"level": "DEBUG"}}, timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] and r.json()["detail"] == {"level": "DEBUG"}
    r = httpx.post(url, json={"cmd": "set_log_level", "args": {"level": "LOUD"}}, timeout=15)
    assert r.status_code == 409 and "unknown log level" in r.json()["error"]
    r = httpx.post(url, json={"cmd": "resend_status"}, timeout=15)
    assert r.status_code == 200 and r.json()["detail"]["policy"]
    r = httpx.post(url, json={"cmd": "explode"}, timeout=15)
    assert r.status_code == 422  # the API sends only commands units implement
    r = httpx.post(
        f"{system.api}/api/v1/units/offline-unit/commands",
        json={"cmd": "sync_now", "timeout": 0.5},
        timeout=15,
    )
    assert r.status_code == 504 and r.json()["timeout"]
    # a command the unit does not know (an older/newer hub): a refusing ack, not silence
    acks: list[bytes] = []
    subscribed: list[int] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"op-{uuid7()[-6:]}")
    c.on_message = lambda cl, u, m: acks.append(m.payload)
    c.on_subscribe = lambda cl, u, mid, rc, p: subscribed.append(mid)
    c.connect("127.0.0.1", system.broker.port)
    c.subscribe(system.topics.acks(UNIT), 1)
    c.loop_start()
    try:
        wait_for(lambda: subscribed, 10, "SUBACK")
        req = uuid7()
        raw = {"v": 1, "req": req, "cmd": "explode", "args": {}}
        c.publish(system.topics.commands(UNIT), json.dumps(raw).encode(), qos=1).wait_for_publish(5)
        c.publish(
            system.topics.commands(UNIT), encode(Command(req=uuid7(), cmd="reload")), qos=1
        ).wait_for_publish(5)
        wait_for(lambda: len(acks) >= 2, 10, "two acks")
    finally:
        c.disconnect()
        c.loop_stop()
    by_req = {a["req"]: a for a in map(json.loads, acks)}
    assert by_req[req]["ok"] is False and "unknown command 'explode'" in by_req[req]["error"]
    assert by_req[req]["cmd"] == "explode"


def test_unit_command_answers_without_a_broker(tmp_path: Path, issuer: Any) -> None:
    """The unit's side of the commands: a failing reload is a refusing answer that keeps
    the documents in use; bad arguments and unknown commands are refused with a reason."""
    import msgspec

    from checkpost.settings import PolicySettings

    from .helpers import make_unit

    unit = make_unit(tmp_path, issuer, unit="cp-reload")
    try:
        ok = unit._on_command("reload", {})
        unit.process(unit.queue.get_nowait())  # what the worker thread does
        error, detail = ok.result(timeout=5)
        assert error == "" and detail["policy"] == unit.documents.policy.version
        before = unit.documents.policy.version
        missing = PolicySettings(file=str(tmp_path / "missing.json"), signer_keys=[])
        unit.cfg = msgspec.structs.replace(unit.cfg, policy=missing)
        bad = unit._on_command("reload", {})
        unit.process(unit.queue.get_nowait())
        error, detail = bad.result(timeout=5)
        assert error.startswith("reload failed") and "missing.json" in error and detail == {}
        assert unit.documents.policy.version == before
        assert unit._on_command("set_log_level", {"level": "LOUD"}).startswith("unknown log level")
        assert unit._on_command("set_log_level", {"level": "info"}) == ("", {"level": "INFO"})
        assert "unknown command 'explode'" in unit._on_command("explode", {})
        assert unit._on_command("sync_now", {}) == ("", {"outbox": 0})
    finally:
        unit.outbox.close()
