"""The policy engine, rule by rule (DESIGN.md §4), and the policy file's validation and version."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from checkpost import cli
from checkpost.codes.claims import (
    CLAIM_EXP,
    CLAIM_HP1,
    CLAIM_IAT,
    CLAIM_ISS,
    CLAIM_SR1,
    HealthPass,
    SamplingRegistration,
)
from checkpost.codes.pipeline import Decoded
from checkpost.config import ConfigError, loads_toml
from checkpost.policy import Parameters, Policy, decide, load_policy, station_for
from checkpost.policy.bundle import default_rule_docs
from checkpost.policy.model import default_policy_text
from checkpost.reasons import CATALOGUE, reason

from .conftest import require_shared

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
DEFAULT = load_policy()
HOUR = 3600


def policy_with(**sections: dict[str, Any]) -> Policy:
    """The default policy (built-in rules) with some parameters changed."""
    data = msgspec.to_builtins(DEFAULT.params)
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return Policy(msgspec.convert(data, Parameters), default_rule_docs())


def made(text: str, fmt: str, **attrs: Any) -> Decoded:
    """A Decoded built by hand, as the pipeline would leave it."""
    decoded = Decoded(text, fmt)
    for name, value in attrs.items():
        setattr(decoded, name, value)
    return decoded


def signed(fmt: str, body: dict[str, Any], *, iat: float = NOW - 10, life: float = 180) -> Decoded:
    """A Decoded as the pipeline leaves a genuine code: every step passed."""
    key = CLAIM_HP1 if fmt == "HP1" else CLAIM_SR1
    claims = {CLAIM_ISS: "CN-DEMO", CLAIM_IAT: int(iat), CLAIM_EXP: int(iat + life), key: body}
    struct = HealthPass if fmt == "HP1" else SamplingRegistration
    steps = dict.fromkeys(("unprefix", "base45", "zlib", "cose", "cbor", "signature"), True)
    steps.update(expiry=True, schema=True, key_usage=True, revocation=True)
    return made(
        f"{fmt}:…",
        fmt,
        steps=steps,
        claims=claims,
        content=msgspec.convert(body, struct),
        iat=int(iat),
        exp=int(iat + life),
    )


def hp1(
    colour: str = "G",
    *,
    test_age: float | None = 20 * HOUR,
    result: str = "neg",
    trip: bool = False,
) -> Decoded:
    body: dict[str, Any] = {"v": 1, "sid": "ab" * 16, "nm": "张*三", "c": colour, "vx": 3}
    body["trip"] = trip
    if test_age is not None:
        body["nat"] = {"t": int(NOW - test_age), "r": result}
    return signed("HP1", body)


def verdict_of(decoded: Decoded, temps=(36.6,), station=None, policy=DEFAULT):
    v = decide(decoded, None if temps is None else list(temps), station, NOW, policy)
    return v.verdict, [r.code for r in v.reasons]


# -- checkpoint: HP1 ----------------------------------------------------------------------


def test_green_negative_recent_test_and_normal_temperature_passes() -> None:
    assert verdict_of(hp1()) == ("PASS", [])


@pytest.mark.parametrize(
    ("colour", "want"),
    [("G", ("PASS", [])), ("Y", ("REVIEW", ["colour_yellow"])), ("R", ("FAIL", ["colour_red"]))],
)
def test_colours(colour: str, want) -> None:
    assert verdict_of(hp1(colour)) == want


def test_yellow_can_be_configured_to_fail() -> None:
    strict = policy_with(checkpoint={"yellow": "fail"})
    assert verdict_of(hp1("Y"), policy=strict) == ("FAIL", ["colour_yellow"])


def test_pending_result_fails_by_default_and_can_be_reviewed() -> None:
    assert verdict_of(hp1(result="pending")) == ("FAIL", ["test_pending"])
    lenient = policy_with(checkpoint={"pending_result": "review"})
    assert verdict_of(hp1(result="pending"), policy=lenient) == ("REVIEW", ["test_pending"])


def test_positive_test_fails() -> None:
    assert verdict_of(hp1(result="pos")) == ("FAIL", ["test_positive"])


def test_missing_test_fails_unless_not_required() -> None:
    assert verdict_of(hp1(test_age=None)) == ("FAIL", ["test_missing"])
    relaxed = policy_with(checkpoint={"require_test": False})
    assert verdict_of(hp1(test_age=None), policy=relaxed) == ("PASS", [])


def test_test_age_boundary_is_48_hours() -> None:
    assert verdict_of(hp1(test_age=48 * HOUR)) == ("PASS", [])
    verdict, codes = verdict_of(hp1(test_age=48 * HOUR + 1))
    assert (verdict, codes) == ("FAIL", ["test_too_old"])
    v = decide(hp1(test_age=49 * HOUR), None, None, NOW, DEFAULT)
    assert "48" in v.reasons[0].en and "48" in v.reasons[0].zh


def test_test_age_follows_the_policy() -> None:
    p = policy_with(checkpoint={"test_max_age_hours": 24})
    assert verdict_of(hp1(test_age=25 * HOUR), policy=p) == ("FAIL", ["test_too_old"])
    assert verdict_of(hp1(test_age=23 * HOUR), policy=p) == ("PASS", [])


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        ("review", ("REVIEW", ["risk_travel"])),
        ("fail", ("FAIL", ["risk_travel"])),
        ("ignore", ("PASS", [])),
    ],
)
def test_risk_travel(mode: str, want) -> None:
    assert verdict_of(hp1(trip=True), policy=policy_with(checkpoint={"risk_travel": mode})) == want


def test_default_risk_travel_is_review() -> None:
    assert verdict_of(hp1(trip=True)) == ("REVIEW", ["risk_travel"])


def test_worst_verdict_wins_and_every_reason_is_kept() -> None:
    verdict, codes = verdict_of(hp1("Y", trip=True, result="pos"), temps=(37.3,))
    assert verdict == "FAIL"
    assert codes == ["colour_yellow", "test_positive", "risk_travel", "temp_high"]


# -- temperature --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("temps", "want"),
    [
        (None, ("PASS", [])),  # a code check without a thermometer
        ((), ("REMEASURE", ["temp_missing"])),
        ((36.6,), ("PASS", [])),
        ((37.2,), ("PASS", [])),
        ((37.3,), ("REMEASURE", ["temp_high"])),
        ((37.3, 37.3), ("FAIL", ["fever"])),
        ((38.0, 39.1), ("FAIL", ["fever"])),
        ((37.5, 36.8), ("PASS", [])),  # first high, then normal
        ((45.0,), ("REMEASURE", ["temp_sensor"])),
        ((33.9,), ("REMEASURE", ["temp_sensor"])),
        ((34.0,), ("PASS", [])),  # the sensor range is inclusive
        ((43.0,), ("REMEASURE", ["temp_high"])),  # in the sensor range, and high
        ((45.0, 36.5), ("PASS", [])),  # a sensor error, then a good reading
    ],
)
def test_temperature_rules(temps, want) -> None:
    assert verdict_of(hp1(), temps=temps) == want


def test_a_sensor_error_is_not_a_second_fever() -> None:
    verdict, codes = verdict_of(hp1(), temps=(37.5, 45.0))
    assert verdict == "REMEASURE"
    assert set(codes) <= {"temp_high", "temp_sensor"} and codes


def test_temperature_reason_texts_carry_the_reading() -> None:
    v = decide(hp1(), [37.3, 38.25], None, NOW, DEFAULT)
    assert v.reasons[0].code == "fever"
    assert "38.2" in v.reasons[0].en or "38.3" in v.reasons[0].en
    v = decide(hp1(), [45.0], None, NOW, DEFAULT)
    assert "45.0" in v.reasons[0].en and "45.0" in v.reasons[0].zh


def test_fever_threshold_and_readings_follow_the_policy() -> None:
    p = policy_with(temperature={"fever_celsius": 38.0, "readings_for_fever": 1})
    assert verdict_of(hp1(), temps=(37.9,), policy=p) == ("PASS", [])
    assert verdict_of(hp1(), temps=(38.0,), policy=p) == ("FAIL", ["fever"])


def test_temperature_is_not_asked_at_a_sampling_station() -> None:
    body = {"v": 1, "sid": "ab" * 16, "nm": "李*四", "ph": "138****1234", "reg": "R1"}
    sr1 = signed("SR1", body, iat=NOW - 86400, life=30 * 86400)
    assert verdict_of(sr1, temps=(), station="sampling") == ("PASS", [])


# -- stations -----------------------------------------------------------------------------


def test_wrong_station() -> None:
    verdict, codes = verdict_of(hp1(), station="sampling")
    assert (verdict, codes) == ("FAIL", ["wrong_station"])
    v = decide(hp1(), None, "sampling", NOW, DEFAULT)
    assert "采样点" in v.reasons[0].zh and "HP1" in v.reasons[0].en
    tube = made("1234567890", "tube")
    assert verdict_of(tube, temps=None, station="checkpoint") == ("FAIL", ["wrong_station"])
    assert verdict_of(tube, temps=None, station="transfer") == ("PASS", [])
    assert verdict_of(tube, temps=None) == ("PASS", [])  # station chosen by format


def test_station_for_format() -> None:
    assert {f: station_for(f) for f in ("HP1", "HC1", "SR1", "tube", "box")} == {
        "HP1": "checkpoint",
        "HC1": "checkpoint",
        "SR1": "sampling",
        "tube": "sampling",
        "box": "sampling",
    }


def test_a_code_with_a_failed_step_fails_with_the_pipelines_reasons() -> None:
    d = hp1()
    d.fail("signature", reason("bad_signature"))
    assert verdict_of(d) == ("FAIL", ["bad_signature"])
    unreadable = made("???", "unknown", steps={"unprefix": False})
    assert verdict_of(unreadable) == ("FAIL", ["unreadable"])


# -- HC1: EU rules as configured ----------------------------------------------------------


def iso(seconds_before_now: float) -> str:
    return dt.datetime.fromtimestamp(NOW - seconds_before_now, dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def day(days_before_now: int) -> str:
    return (
        dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=days_before_now)
    ).isoformat()


def hc1(**entries: list[dict[str, Any]]) -> Decoded:
    dcc = {"ver": "1.3.0", "nam": {"fnt": "MUSTERMANN"}, "dob": "1964-08-12", **entries}
    iat = NOW - 3600
    claims = {CLAIM_ISS: "DE", CLAIM_IAT: int(iat), CLAIM_EXP: int(NOW + 86400), -260: {1: dcc}}
    return made(
        "HC1:…",
        "HC1",
        steps={"signature": True, "expiry": True, "schema": True},
        claims=claims,
        content=dcc,
        iat=int(iat),
        exp=int(NOW + 86400),
    )


def test_entry(**fields: Any) -> dict[str, Any]:
    entry = {"tg": "840539006", "tt": "LP6464-4", "sc": iso(10 * HOUR), "tr": "260415000"}
    return {**entry, **fields}


test_entry.__test__ = False  # a helper, not a test


def vacc(dn: int, sd: int, days_ago: int) -> dict[str, Any]:
    return {"tg": "840539006", "dn": dn, "sd": sd, "dt": day(days_ago)}


@pytest.mark.parametrize(
    ("entry", "want"),
    [
        (test_entry(), ("PASS", [])),
        (test_entry(tt="LP217198-3"), ("PASS", [])),
        (test_entry(sc=iso(72 * HOUR)), ("PASS", [])),
        (test_entry(sc=iso(72 * HOUR + 1)), ("FAIL", ["hc1_test_too_old"])),
        (test_entry(tr="260373001"), ("FAIL", ["hc1_test_positive"])),
        (test_entry(tt="LP0000-0"), ("FAIL", ["hc1_test_type"])),
        (test_entry(sc=iso(-120)), ("FAIL", ["hc1_test_future"])),
        (test_entry(sc=iso(-30)), ("PASS", [])),  # within the clock skew
    ],
)
def test_hc1_test_rules(entry, want) -> None:
    assert verdict_of(hc1(t=[entry]), temps=None) == want


@pytest.mark.parametrize(
    ("entry", "want"),
    [
        (vacc(2, 2, 14), ("PASS", [])),
        (vacc(2, 2, 13), ("FAIL", ["hc1_vacc_too_recent"])),
        (vacc(1, 2, 100), ("FAIL", ["hc1_vacc_incomplete"])),
        (vacc(3, 2, 1), ("PASS", [])),  # a booster counts at once
        (vacc(1, 1, 400), ("PASS", [])),  # no upper limit by default
    ],
)
def test_hc1_vaccination_rules(entry, want) -> None:
    assert verdict_of(hc1(v=[entry]), temps=None) == want


def test_hc1_vaccination_upper_limit_when_configured() -> None:
    p = policy_with(hc1={"vaccination_max_days": 270})
    assert verdict_of(hc1(v=[vacc(2, 2, 271)]), temps=None, policy=p) == (
        "FAIL",
        ["hc1_vacc_too_old"],
    )
    assert verdict_of(hc1(v=[vacc(2, 2, 270)]), temps=None, policy=p) == ("PASS", [])


@pytest.mark.parametrize(
    ("df", "du", "want"),
    [
        (30, -150, ("PASS", [])),
        (0, 0, ("PASS", [])),  # both dates inclusive
        (-1, -100, ("FAIL", ["hc1_recovery_invalid"])),  # not yet valid
        (200, 1, ("FAIL", ["hc1_recovery_invalid"])),  # no longer valid
    ],
)
def test_hc1_recovery_window(df: int, du: int, want) -> None:
    entry = {"tg": "840539006", "fr": day(df + 11), "df": day(df), "du": day(du)}
    assert verdict_of(hc1(r=[entry]), temps=None) == want


def test_hc1_without_exactly_one_statement_fails() -> None:
    assert verdict_of(hc1(), temps=None) == ("FAIL", ["hc1_no_entry"])
    both = hc1(t=[test_entry()], v=[vacc(2, 2, 30)])
    assert verdict_of(both, temps=None) == ("FAIL", ["hc1_no_entry"])


def test_hc1_entry_missing_a_field_fails_without_raising() -> None:
    entry = test_entry()
    del entry["sc"]
    for decoded in (hc1(t=[entry]), hc1(v=[{"dn": "x", "sd": 1, "dt": "2021"}])):
        verdict, codes = verdict_of(decoded, temps=None)
        assert verdict == "FAIL" and codes


def test_hc1_test_age_follows_the_policy() -> None:
    p = policy_with(hc1={"test_max_age_hours": 24})
    assert verdict_of(hc1(t=[test_entry(sc=iso(25 * HOUR))]), temps=None, policy=p) == (
        "FAIL",
        ["hc1_test_too_old"],
    )


def test_hc1_gets_the_temperature_rules_too() -> None:
    assert verdict_of(hc1(t=[test_entry()]), temps=(37.4, 37.6)) == ("FAIL", ["fever"])


# -- reasons ------------------------------------------------------------------------------


def test_every_reason_has_short_english_and_chinese_text() -> None:
    for code, (en, zh) in CATALOGUE.items():
        assert en and zh, code
        assert len(en) <= 60 and len(zh) <= 30, (code, en, zh)
        words = re.sub(r"\{[a-z]+\}", "", zh)
        if any(ch.isalpha() for ch in words):
            assert any("\u4e00" <= ch <= "\u9fff" for ch in words), (code, zh)


# -- the policy file ----------------------------------------------------------------------


def test_default_file_is_design_section_4() -> None:
    p = load_policy()
    assert p.clock.skew_seconds == 60
    cp = p.checkpoint
    assert (cp.test_max_age_hours, cp.yellow, cp.hp1_max_age_seconds) == (48, "review", 180)
    t = p.temperature
    assert (t.fever_celsius, t.sensor_min_celsius, t.sensor_max_celsius) == (37.3, 34, 43)
    assert t.readings_for_fever == 2
    assert p.hc1.test_max_age_hours == 72
    # The file and the built-in defaults of the parameters agree.
    assert p.version == Policy(Parameters(), default_rule_docs()).version


def test_version_is_a_content_hash() -> None:
    text = default_policy_text()

    def version(toml: str) -> str:
        return Policy(loads_toml(toml, Parameters), default_rule_docs()).version

    base = load_policy()
    assert version(text) == base.version
    assert len(base.version) == 12 and int(base.version, 16) >= 0
    # Comments and layout are not content.
    reformatted = "\n".join(line.split("#")[0].rstrip() for line in text.splitlines())
    assert version(reformatted + "\n\n") == base.version
    changed = text.replace("fever_celsius = 37.3", "fever_celsius = 37.5")
    assert changed != text
    assert version(changed) != base.version
    assert policy_with(checkpoint={"test_max_age_hours": 47}).version != base.version


def _error(text: str, source: str = "bureau.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads_toml(text, Parameters, source=source)
    return info.value


def test_bad_value_names_file_line_key_and_value() -> None:
    err = _error('name = "x"\n\n[checkpoint]\nyellow = "review"\ntest_max_age_hours = -1\n')
    assert err.source == "bureau.toml"
    assert len(err.problems) == 1
    problem = err.problems[0]
    assert problem.startswith("line 5: checkpoint.test_max_age_hours:")
    assert "(got -1)" in problem
    assert str(err).startswith("bureau.toml: line 5: checkpoint.test_max_age_hours")


def test_same_key_in_another_section_gets_its_own_line() -> None:
    text = "[checkpoint]\ntest_max_age_hours = 48\n\n[hc1]\ntest_max_age_hours = 0\n"
    assert _error(text).problems[0].startswith("line 5: hc1.test_max_age_hours:")


def test_unknown_keys_are_errors() -> None:
    err = _error('name = "x"\n[temperature]\nfever = 37.0\n')
    assert err.problems[0].startswith("line 3: temperature.fever:")
    err = _error("colour = 1\n")
    assert err.problems[0].startswith("line 1: colour: unknown key")


def test_every_broken_section_is_reported_at_once() -> None:
    text = '[checkpoint]\nyellow = "maybe"\n[temperature]\nreadings_for_fever = 9\n'
    problems = _error(text).problems
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 4"]
    assert "checkpoint.yellow" in problems[0] and "temperature.readings_for_fever" in problems[1]


def test_list_item_error_names_its_index() -> None:
    problem = _error('[hc1]\ntest_types = ["LP6464-4", 3]\n').problems[0]
    assert problem.startswith("line 2: hc1.test_types")
    assert "[1]" in problem and "(got 3)" in problem


def test_invalid_toml_names_the_line() -> None:
    err = _error("[clock\nskew_seconds = 1\n")
    assert "line 1" in str(err) and str(err).startswith("bureau.toml: not valid TOML")


def test_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[temperature]\nsensor_max_celsius = 99\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: line 2: temperature.sensor_max_celsius")
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_bad_code_pattern_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[codes]\ntube_patterns = ['(']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad pattern"):
        load_policy(path)


def test_policy_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('name = "north"\n[checkpoint]\nrisk_travel = "fail"\n', encoding="utf-8")
    p = load_policy(path)
    assert (p.name, p.checkpoint.risk_travel, p.checkpoint.yellow) == ("north", "fail", "review")
    assert verdict_of(hp1(trip=True), policy=p) == ("FAIL", ["risk_travel"])


EU_CASES = [("DE/2", "t"), ("common/CO28", "v"), ("DE/3", "r")]


@pytest.mark.parametrize(("case", "statement"), EU_CASES)
def test_real_eu_certificates_pass_at_their_validation_clock(case: str, statement: str) -> None:
    """Genuine EU test data: a negative test, a completed vaccination, a recovery — PASS."""
    country, stem = case.split("/")
    path = require_shared("dcc-testdata", country, "2DCode", "raw") / f"{stem}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    ctx = data["TESTCTX"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        argv = ["verify", "--json", "--at", ctx["VALIDATIONCLOCK"], "--cert", ctx["CERTIFICATE"]]
        rc = cli.main([*argv, data["PREFIX"]])
    rec = json.loads(out.getvalue())
    assert statement in rec["payload"]["hcert"]["1"]
    assert all(rec["steps"].values()), rec["steps"]
    assert (rc, rec["verdict"], rec["reasons"]) == (0, "PASS", [])
