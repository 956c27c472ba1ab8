"""Policy bundles: parameters + rules, versioned by content, signed, and applied as data.

The headline behaviour of issue 5 §3 at the core: changing 48 h to 72 h is a new bundle,
not a release — the same code, given the new bundle, changes its verdict.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from checkpost.cli import main
from checkpost.issuer import TestIssuer
from checkpost.policy import PolicyError, build_policy, decide, load_policy
from checkpost.policy.bundle import (
    default_rule_docs,
    sign_policy,
    substitute,
    verify_policy_document,
)
from checkpost.runtime import build_context

DEFAULT_TOML = Path(__file__).resolve().parents[2] / "checkpost" / "policy" / "default.toml"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    return TestIssuer.create(tmp_path_factory.mktemp("issuer"))


def _params(tmp_path: Path, **replace: str) -> Path:
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_changing_48h_to_72h_is_a_bundle_not_a_release(issuer: TestIssuer, tmp_path: Path) -> None:
    now = time.time()
    ctx = build_context(issuer_dir=str(issuer.folder))
    code = issuer.hp1(iat=now, test_age_hours=60)
    before = decide(ctx.verifier.verify(code, now), [36.5], "checkpoint", now, ctx.policy)
    assert before.verdict == "FAIL"
    assert [r.code for r in before.reasons] == ["test_too_old"]
    assert "48 h" in before.reasons[0].en

    params = _params(tmp_path, **{"test_max_age_hours = 48 ": "test_max_age_hours = 72 "})
    bundle = sign_policy(build_policy(params), issuer.trust_key)
    (tmp_path / "p72.json").write_text(json.dumps(bundle), encoding="utf-8")
    policy = load_policy(tmp_path / "p72.json", signer_keys=[issuer.trust_key.public_key()])
    assert policy.version != ctx.policy.version
    after = decide(ctx.verifier.verify(code, now), [36.5], "checkpoint", now, policy)
    assert after.verdict == "PASS"
    older = issuer.hp1(iat=now, test_age_hours=73)
    assert decide(ctx.verifier.verify(older, now), [36.5], None, now, policy).reasons[0].en == (
        "Test older than 72 h"
    )


def test_bundle_signature_and_content_are_checked(issuer: TestIssuer) -> None:
    policy = load_policy()
    doc = sign_policy(policy, issuer.trust_key)
    key = issuer.trust_key.public_key()
    assert verify_policy_document(doc, [key]).version == policy.version

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(PolicyError, match="does not verify"):
        verify_policy_document(doc, [other])

    tampered = json.loads(json.dumps(doc))
    tampered["policy"]["parameters"]["checkpoint"]["test_max_age_hours"] = 999
    with pytest.raises(PolicyError, match="does not verify"):
        verify_policy_document(tampered, [key])

    with pytest.raises(PolicyError, match="signing key"):
        verify_policy_document(doc, [])


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    same = load_policy(
        _params(tmp_path, **{"# checkpost default": "# a comment changed; checkpost default"})
    )
    assert same.version == load_policy().version
    changed = load_policy(_params(tmp_path, **{"fever_celsius = 37.3": "fever_celsius = 37.5"}))
    assert changed.version != load_policy().version


def test_parameters_reach_the_rules(tmp_path: Path, issuer: TestIssuer) -> None:
    now = time.time()
    strict = load_policy(_params(tmp_path, **{'yellow = "review"': 'yellow = "fail"'}))
    ctx = build_context(issuer_dir=str(issuer.folder))
    yellow = ctx.verifier.verify(issuer.hp1(iat=now, colour="Y"), now)
    assert decide(yellow, None, None, now, ctx.policy).verdict == "REVIEW"
    assert decide(yellow, None, None, now, strict).verdict == "FAIL"

    ignore = load_policy(_params(tmp_path, **{'risk_travel = "review"': 'risk_travel = "ignore"'}))
    trip = ctx.verifier.verify(issuer.hp1(iat=now, trip=True), now)
    assert decide(trip, None, None, now, ctx.policy).verdict == "REVIEW"
    assert decide(trip, None, None, now, ignore).verdict == "PASS"
    assert "CP-HP1-0007" not in [pr.rule.identifier for pr in ignore.rules["HP1"]]


def test_every_default_rule_has_both_languages_and_a_reason() -> None:
    policy = load_policy()
    for rules in policy.rules.values():
        for pr in rules:
            assert pr.en and pr.zh and pr.reason, pr.rule.identifier
            assert "${" not in pr.en + pr.zh, pr.rule.identifier
    assert {d["Identifier"] for d in default_rule_docs()} >= {"CP-HP1-0001", "CP-TMP-0004"}


def test_bad_rules_and_parameters_are_refused_with_their_name(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="unknown parameter"):
        substitute({"x": "${checkpoint.nope}"}, {"checkpoint": {}})
    bad = dict(default_rule_docs()[0], Identifier="CP-BAD-0001", Logic={"nonsense": [1]})
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bad.json").write_text(json.dumps([bad]), encoding="utf-8")
    with pytest.raises(PolicyError, match="CP-BAD-0001"):
        build_policy(None, rule_paths=[folder])
    wrong = dict(default_rule_docs()[0], Identifier="CP-BAD-0002", Verdict="MAYBE")
    (folder / "bad.json").write_text(json.dumps([wrong]), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"CP-BAD-0002.*Verdict"):
        build_policy(None, rule_paths=[folder])


def test_policy_cli_build_show_diff(
    issuer: TestIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, **{"test_max_age_hours = 48 ": "test_max_age_hours = 72 "})
    key_pem = str(issuer.folder / "trust-signer.key.pem")
    pub_pem = str(issuer.trust_signer_path)
    out = str(tmp_path / "bundle.json")
    assert main(["policy", "build", "--params", str(params), "--sign", key_pem, "--out", out]) == 0
    assert main(["policy", "show", out, "--policy-key", pub_pem, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["signature_checked"] is True
    assert shown["parameters"]["checkpoint"]["test_max_age_hours"] == 72
    assert main(["policy", "diff", str(DEFAULT_TOML), out, "--policy-key", pub_pem, "--json"]) == 1
    diff = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "parameter checkpoint.test_max_age_hours: 48.0 -> 72.0" in diff["changes"]
    code = issuer.hp1(test_age_hours=60)
    assert main(["verify", "--issuer", str(issuer.folder), code]) == 1
    assert (
        main(
            [
                "verify",
                "--issuer",
                str(issuer.folder),
                "--policy",
                out,
                "--policy-key",
                pub_pem,
                code,
            ]
        )
        == 0
    )
    # A bundle without its key is refused: a usage error, not a silent default.
    assert main(["verify", "--issuer", str(issuer.folder), "--policy", out, code]) == 2
