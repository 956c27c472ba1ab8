"""The hub's document publisher and command sender, in process (the end-to-end run over a
real hub and unit is tests/edge/test_push.py)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from checkpost.hub.command_sender import CommandSender, ack_view, command_args
from checkpost.hub.config import HubConfig, HubSection
from checkpost.hub.publisher import DocumentPublisher
from cryptography.hazmat.primitives.asymmetric import ec

from checkpost.codes.trust import build_trust_list
from checkpost.protocol import CommandAck, Topics, decode_command, encode
from checkpost.settings import PolicySettings, TrustSettings


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))


def _trust(issuer: Any, path: Path, version: int, key: Any = None) -> None:
    doc = build_trust_list(issuer.entries(), key or issuer.trust_key, version=version, issuer="b")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def _publisher(tmp: Path, issuer: Any) -> DocumentPublisher:
    cfg = HubConfig(
        hub=HubSection(topic_root="pub-test/v1", data_dir=str(tmp)),
        trust=TrustSettings(
            file=str(tmp / "trust.json"),
            signer_keys=[str(issuer.trust_signer_path)],
            accept_demo=True,
        ),
        policy=PolicySettings(),
    )
    return DocumentPublisher(cfg)


def test_publisher_publishes_verified_newer_documents_only(tmp_path: Path, issuer: Any) -> None:
    trust = tmp_path / "trust.json"
    pub = _publisher(tmp_path, issuer)
    # no file yet: refused as unreadable (said once), the built-in policy is announced
    assert pub.refresh(force=True) == ["policy"]
    assert pub.refused["trust"].reason == "unreadable"
    assert pub.refresh() == [] and pub.refresh() == []
    announced = json.loads(pub.current["policy"].payload)
    assert announced["version"] == pub.version("policy") and not pub.current["policy"].signed

    _trust(issuer, trust, 5)
    assert pub.refresh() == ["trust"]
    assert pub.version("trust") == "5" and "trust" not in pub.refused
    link = FakeLink()
    pub.publish(link)
    sent = {t: (p, q, r) for t, p, q, r in link.sent}
    payload, qos, retain = sent["pub-test/v1/hub/trust"]
    assert payload == trust.read_bytes() and qos == 1 and retain  # the file's exact bytes
    assert json.loads(payload)["trust_list"]["version"] == 5
    assert "pub-test/v1/hub/policy" in sent

    # the same document again (touched, or SIGHUP): nothing to publish
    os.utime(trust)
    assert pub.refresh() == [] and pub.refresh(force=True) == []
    # an older version: refused, the published one stays
    _trust(issuer, trust, 4)
    assert pub.refresh() == []
    assert pub.refused["trust"].reason == "not_newer" and pub.version("trust") == "5"
    # another signer: refused with the reason
    _trust(issuer, trust, 9, key=ec.generate_private_key(ec.SECP256R1()))
    assert pub.refresh() == []
    assert pub.refused["trust"].reason == "signature"
    assert "signature" in pub.view()["trust"]["refused"]["error"]
    # half a file (a copy in progress), then garbage: refused, never raised
    trust.write_text('{"trust_list": {"format"')
    assert pub.refresh() == [] and pub.refused["trust"].reason == "malformed"
    trust.write_bytes(b"\xff\x00" * 10)
    assert pub.refresh() == [] and pub.refused["trust"].reason == "malformed"
    # a newer, good one: published, the refusal cleared
    _trust(issuer, trust, 6)
    assert pub.refresh() == ["trust"] and pub.version("trust") == "6"
    view = pub.view()["trust"]
    assert view["refused"] is None and view["published"]["version"] == "6"
    assert view["age_h"] is not None and view["published"]["sha256"]


def test_command_args_from_the_cli() -> None:
    assert command_args("reload", None) == ("reload", {})
    assert command_args("set-log-level", "debug") == ("set_log_level", {"level": "DEBUG"})
    assert command_args("sync-now", None) == ("sync_now", {})
    for action, level in (("set-log-level", None), ("set-log-level", "LOUD"), ("reload", "x")):
        with pytest.raises(ValueError):
            command_args(action, level)


def test_sender_matches_acks_by_request_and_unit() -> None:
    async def main() -> None:
        link = FakeLink()
        sender = CommandSender(link, Topics("cmd-test/v1"))
        task = asyncio.ensure_future(sender.send("gate-1", "sync_now", {}, timeout=5))
        await asyncio.sleep(0)
        topic, payload, qos, retain = link.sent[-1]
        assert topic == "cmd-test/v1/units/gate-1/commands" and qos == 1 and not retain
        cmd = decode_command(payload)
        assert cmd.cmd == "sync_now" and cmd.at > 0
        sender.on_ack("gate-1", b"not json")  # counted, ignored
        # the right request id on another unit's topic, or naming another unit: ignored
        sender.on_ack("gate-2", encode(CommandAck(req=cmd.req, unit="gate-2", ok=True)))
        sender.on_ack("gate-1", encode(CommandAck(req=cmd.req, unit="gate-2", ok=True)))
        assert not task.done()
        ack = CommandAck(req=cmd.req, unit="gate-1", ok=False, error="nope", cmd="sync_now")
        sender.on_ack("gate-1", encode(ack))
        req, got = await task
        assert req == cmd.req and got == ack and sender.bad_acks == 1 and not sender.pending
        view = ack_view("gate-1", req, "sync_now", got, 5)
        assert view["ok"] is False and view["error"] == "nope" and not view["timeout"]
        # no answer: None after the timeout, and the shape says so
        req, got = await sender.send("gate-1", "reload", {}, timeout=0.05)
        assert got is None and not sender.pending
        assert ack_view("gate-1", req, "reload", None, 0.05)["timeout"]
        with pytest.raises(ValueError):
            await sender.send("Bad Unit", "reload")

    asyncio.run(main())


def test_sealed_list_built_by_the_cli_is_published_and_only_newer_ones(
    tmp_path: Path, issuer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from checkpost.cli import main
    from checkpost.protocol.lists import verify_sealed

    key_pem = tmp_path / "trust-signer.key.pem"
    key_pem.write_bytes(
        issuer.trust_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ids, out = tmp_path / "ids.txt", tmp_path / "sealed.json"
    ids.write_text("sid-a\n\nsid-b\nsid-a\n")

    def build(version: int) -> int:
        argv = ["hub", "sealed", "--ids", str(ids), "--version", str(version)]
        return main([*argv, "--scope", "compound 12", "--sign", str(key_pem), "--out", str(out)])

    assert build(3) == 0
    assert "version 3: 2 ids" in capsys.readouterr().out
    cfg = HubConfig(
        hub=HubSection(topic_root="pub-test/v1", data_dir=str(tmp_path), sealed_file=str(out)),
        trust=TrustSettings(signer_keys=[str(issuer.trust_signer_path)], accept_demo=True),
        policy=PolicySettings(),
    )
    pub = DocumentPublisher(cfg)
    assert "sealed" in pub.refresh(force=True)
    link = FakeLink()
    pub.publish(link, ["sealed"])
    (topic, payload, qos, retain) = link.sent[-1]
    assert topic == "pub-test/v1/hub/sealed" and qos == 1 and retain
    assert payload == out.read_bytes()  # the file's exact bytes
    sealed = verify_sealed(payload, [issuer.trust_key.public_key()])
    assert sealed.sids == {"sid-a", "sid-b"} and sealed.scope == "compound 12"
    assert pub.view()["sealed"]["published"]["version"] == "3"
    # an older list is refused and the current one stays
    assert build(2) == 0
    assert pub.refresh() == [] and pub.refused["sealed"].reason == "not_newer"
    assert pub.version("sealed") == "3"
    # a list signed by another key is refused
    other = ec.generate_private_key(ec.SECP256R1())
    key_pem.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert build(9) == 0
    assert pub.refresh() == [] and pub.refused["sealed"].reason == "signature"
    # a bad key file is a usage error, nothing written
    key_pem.write_text("not a key")
    assert build(10) == 2
    assert "checkpost hub sealed:" in capsys.readouterr().err
