"""EU business rules: every rule test under shared/eu-rules, and rule selection."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _rules_shared import EU_RULES, MISSING, require

from checkpost.rules.eu import (
    Rule,
    RuleError,
    RuleSet,
    certificate_types,
    load_rule,
    load_value_sets,
    make_external,
)
from checkpost.rules.ruletests import KNOWN_DATA_DEFECTS, run_dirs, run_rule


def _rule_dirs() -> list[Any]:
    dirs = sorted(p.parent for p in EU_RULES.glob("*/*/rule.json"))
    return [pytest.param(d, id=f"{d.parent.name}/{d.name}") for d in dirs] or [
        pytest.param(None, id=MISSING)
    ]


@pytest.mark.parametrize("rule_dir", _rule_dirs())
def test_eu_rule_tests(rule_dir: Path | None) -> None:
    require(EU_RULES)
    assert rule_dir is not None
    rule = load_rule(rule_dir)
    outcomes = list(run_rule(rule, rule_dir))
    assert outcomes, f"{rule_dir} has no tests"
    failures = [o.line() for o in outcomes if not o.passed and not o.known_defect]
    assert not failures, "\n".join(failures)


def test_all_eu_rule_tests_counted() -> None:
    summary = run_dirs([require(EU_RULES)])
    assert summary.as_dict() == {"rules": 145, "tests": 1022, "passed": 1022, "failed": 0}
    assert KNOWN_DATA_DEFECTS == {}  # the data has no defect that changes a result


# ----------------------------------------------------------------------------- selection

BASE: dict[str, Any] = {
    "Identifier": "VR-XX-0001",
    "Type": "Acceptance",
    "Country": "XX",
    "Version": "1.0.0",
    "SchemaVersion": "1.0.0",
    "Engine": "CERTLOGIC",
    "EngineVersion": "1.0.0",
    "CertificateType": "Vaccination",
    "Description": [{"lang": "en", "desc": "Complete"}, {"lang": "zh", "desc": "全程接种"}],
    "ValidFrom": "2021-07-01T00:00:00Z",
    "ValidTo": "2030-06-01T00:00:00Z",
    "AffectedFields": ["v.0.dn", "v.0.sd"],
    "Logic": {
        "if": [
            {"var": "payload.v.0"},
            {">=": [{"var": "payload.v.0.dn"}, {"var": "payload.v.0.sd"}]},
            True,
        ]
    },
}


def rule(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


VAX = {"v": [{"dn": 1, "sd": 2, "dt": "2021-06-01"}], "dob": "1980-01-01"}
VALUE_SETS: dict[str, list[str]] = {}


def test_selection_by_country_type_validity_and_version() -> None:
    rules = RuleSet.from_documents(
        [
            rule(),
            rule(Identifier="VR-XX-0002", Version="1.0.0", ValidTo="2022-01-01T00:00:00Z"),
            rule(Identifier="VR-XX-0002", Version="1.1.0", ValidFrom="2022-01-01T00:00:00Z"),
            rule(Identifier="VR-XX-0002", Version="1.10.0", ValidFrom="2023-01-01T00:00:00Z"),
            rule(Identifier="TR-XX-0001", CertificateType="Test"),
            rule(Identifier="GR-XX-0001", CertificateType="General", Logic=True),
            rule(Identifier="VR-YY-0001", Country="YY"),
        ]
    )

    def chosen(clock: str, types: tuple[str, ...] = ("General", "Vaccination")) -> list[str]:
        return [
            f"{r.identifier}@{r.version}"
            for r in rules.select(country="xx", clock=clock, types=types)
        ]

    assert chosen("2021-12-31T23:59:59Z") == [
        "GR-XX-0001@1.0.0",
        "VR-XX-0001@1.0.0",
        "VR-XX-0002@1.0.0",
    ]
    assert chosen("2022-01-01T00:00:00Z")[-1] == "VR-XX-0002@1.1.0"  # ValidTo is exclusive
    assert chosen("2024-01-01T00:00:00+01:00")[-1] == "VR-XX-0002@1.10.0"  # semver, not text
    assert chosen("2021-06-30T23:59:59Z") == []  # before every ValidFrom
    assert chosen("2030-06-01T00:00:00Z") == []
    assert "TR-XX-0001@1.0.0" in chosen("2022-06-01T00:00:00Z", ("General", "Test"))


def test_check_reports_failed_rules_with_descriptions() -> None:
    rules = RuleSet.from_documents(
        [rule(), rule(Identifier="RR-XX-0001", CertificateType="Recovery")]
    )
    report = rules.check(VAX, country="XX", clock="2022-01-01T00:00:00Z", value_sets=VALUE_SETS)
    assert [r.identifier for r in report.results] == ["VR-XX-0001"]
    assert report.outcome == "failed" and not report.ok
    (failed,) = report.failed
    assert failed.rule.description("zh") == "全程接种"
    assert failed.rule.description("fr") == "Complete"  # falls back to English
    assert failed.as_dict(["en", "zh"]) == {
        "identifier": "VR-XX-0001",
        "version": "1.0.0",
        "outcome": "failed",
        "description": {"en": "Complete", "zh": "全程接种"},
        "affected_fields": ["v.0.dn", "v.0.sd"],
    }
    assert report.as_dict(["zh"])["failed"][0]["description"] == {"zh": "全程接种"}
    ok = rules.check(
        {"v": [{"dn": 2, "sd": 2}]}, country="XX", clock="2022-01-01T00:00:00Z", value_sets={}
    )
    assert ok.ok and ok.outcome == "passed"


def test_undecidable_rule_is_open_not_passed() -> None:
    logic = {"not-before": [{"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
                            {"plusTime": [{"var": "payload.v.0.dt"}, 14, "day"]}]}  # fmt: skip
    rules = RuleSet.from_documents([rule(Logic=logic)])
    report = rules.check(
        {"v": [{"dt": "soon"}]}, country="XX", clock="2022-01-01T00:00:00Z", value_sets={}
    )
    (result,) = report.open
    assert report.outcome == "open" and not report.ok
    assert "soon" in (result.reason or "")


def test_external_is_what_eu_rules_read() -> None:
    ext = make_external(
        clock="2022-01-01T00:00:00Z", value_sets={"a": ["b"]}, country="DE", exp=0, iat=0
    )
    assert ext == {
        "validationClock": "2022-01-01T00:00:00Z",
        "valueSets": {"a": ["b"]},
        "countryCode": "DE",
        "exp": "1970-01-01T00:00:00.000Z",
        "iat": "1970-01-01T00:00:00.000Z",
    }
    logic = {"===": [{"var": "external.countryCode"}, "XX"]}
    rules = RuleSet.from_documents([rule(Logic=logic, CertificateType="General")])
    assert rules.check({}, country="XX", clock=1_700_000_000, value_sets={}).ok


def test_certificate_types() -> None:
    assert certificate_types({"t": [{}]}) == ("General", "Test")
    assert certificate_types({"v": []}) == ("General",)
    assert certificate_types(None) == ("General",)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"Logic": {"and": [True, {"plusTime": [{"var": "x"}, 1, "week"]}]}},
            "Logic/and/1/plusTime/2",
        ),
        ({"CertificateType": "Vaccine"}, "CertificateType"),
        ({"ValidFrom": "yesterday"}, "ValidFrom"),
        ({"Identifier": ""}, "Identifier"),
        ({"Logic": {"or": [True, False]}}, "unrecognised operator"),
    ],
)
def test_bad_rules_are_refused_at_load(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RuleError, match=r"VR-XX-0001|Identifier") as err:
        Rule.from_json(rule(**changes))
    assert fragment in str(err.value)


def test_missing_fields_are_named() -> None:
    doc = rule()
    del doc["Logic"], doc["ValidTo"]
    with pytest.raises(RuleError, match="ValidTo, Logic"):
        Rule.from_json(doc)


def test_policy_rules_may_use_extensions_and_own_types() -> None:
    logic = {"or": [{"var": "payload.ok"}, {"!==": [{"var": "payload.c"}, "R"]}]}
    doc = rule(Logic=logic, CertificateType="HP1", Country="CN")
    with pytest.raises(RuleError):
        RuleSet.from_documents([doc], extensions=True)
    rules = RuleSet.from_documents([doc], extensions=True, certificate_types=("General", "HP1"))
    assert rules.run({"payload": {"ok": False, "c": "G"}}).ok
    assert not rules.run({"payload": {"ok": False, "c": "R"}}).ok
    chosen = rules.select(country="CN", clock="2022-01-01T00:00:00Z", types=("General", "HP1"))
    assert [r.identifier for r in chosen] == ["VR-XX-0001"]


def test_value_sets(tmp_path: Path) -> None:
    sets = load_value_sets(require(EU_RULES / "valuesets"))
    assert "EU/1/20/1528" in sets["vaccines-covid-19-names"]
    gateway = {"valueSetId": "covid-19-lab-result", "valueSetDate": "2021-04-27",
               "valueSetValues": {"260415000": {"display": "Not detected"}}}  # fmt: skip
    (tmp_path / "lab.json").write_text(json.dumps(gateway), encoding="utf-8")
    assert load_value_sets(tmp_path) == {"covid-19-lab-result": ["260415000"]}


def test_real_country_rule_set() -> None:
    rules = RuleSet.from_dirs(require(EU_RULES))
    sets = load_value_sets(EU_RULES / "valuesets")
    payload: dict[str, Any] = {
        "ver": "1.3.0",
        "dob": "1980-05-04",
        "v": [{"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215",
               "dn": 2, "sd": 2, "dt": "2021-06-01", "co": "DE", "is": "RKI",
               "ci": "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W"}],
    }  # fmt: skip
    clock = "2021-11-01T12:00:00Z"
    good = rules.check(payload, country="DE", clock=clock, value_sets=sets)
    assert good.ok, [r.as_dict() for r in good.failed + good.open]
    assert {r.identifier for r in good.results} == {f"VR-DE-000{i}" for i in range(1, 5)}
    # VR-DE-0003 is valid from 2021-10-03 only
    before = rules.check(payload, country="DE", clock="2021-08-01T12:00:00Z", value_sets=sets)
    assert "VR-DE-0003" not in {r.identifier for r in before.results}
    payload["v"][0]["dt"] = "2021-10-25"
    early = rules.check(payload, country="DE", clock=clock, value_sets=sets)
    assert [r.identifier for r in early.failed] == ["VR-DE-0003"]  # 14 days not yet elapsed
    ch = rules.check(payload, country="CH", clock=clock, value_sets=sets)
    assert ch.results == ()  # no rules loaded for CH
