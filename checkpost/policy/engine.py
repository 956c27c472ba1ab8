"""The policy engine: one pure function from a decoded code and readings to a verdict.

    decide(decoded, temperatures, station, now, policy) -> Verdict

The same function runs offline on every unit and on the hub, so a unit's provisional verdict
and the hub's confirmation can only differ when their inputs differ (trust list, policy
version, city-wide state the hub adds on top). Nothing here reads a clock, a file or the
network, and no threshold lives here: every policy decision is a rule of the bundle
(`checkpost.policy.bundle`), compiled once and evaluated per scan. What stays in code is
structural: a code that failed a pipeline step fails, and a station only takes the formats it
serves. Verdicts rank FAIL > REMEASURE > REVIEW > PASS; every failed rule adds its reason and
the worst verdict wins. A rule that cannot be evaluated (bad data) counts as failed, FAIL.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from checkpost.codes.claims import CLAIM_OF_FORMAT
from checkpost.codes.pipeline import Decoded
from checkpost.policy.bundle import Policy, PolicyRule
from checkpost.reasons import Reason, reason
from checkpost.rules.certlogic import Failure, is_falsy

VerdictName = Literal["PASS", "REVIEW", "REMEASURE", "FAIL"]
Station = Literal["checkpoint", "gate", "sampling", "transfer"]
RANK: dict[str, int] = {"PASS": 0, "REVIEW": 1, "REMEASURE": 2, "FAIL": 3}
# Which formats each kind of station takes.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("HP1", "HC1"),
    "gate": ("HP1", "HC1"),
    "sampling": ("SR1", "tube", "box"),
    "transfer": ("box", "tube"),
}
STATION_NAMES_ZH = {
    "checkpoint": "检查站",
    "gate": "小区门岗",
    "sampling": "采样点",
    "transfer": "转运点",
}
_DCC_TYPES = (("v", "Vaccination"), ("t", "Test"), ("r", "Recovery"))
_CLAIM = CLAIM_OF_FORMAT


class Verdict(msgspec.Struct, frozen=True):
    verdict: VerdictName
    reasons: list[Reason]

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


class _Acc:
    """Collects (verdict, reason) pairs; the worst verdict wins."""

    __slots__ = ("level", "reasons")

    def __init__(self) -> None:
        self.level: VerdictName = "PASS"
        self.reasons: list[Reason] = []

    def add(self, level: str, why: Reason) -> None:
        if RANK[level] > RANK[self.level]:
            self.level = level  # type: ignore[assignment]
        self.reasons.append(why)

    def verdict(self) -> Verdict:
        return Verdict(self.level, self.reasons)


def station_for(fmt: str) -> Station:
    """The station kind a code belongs to, when the caller does not say (e.g. `verify`)."""
    return "sampling" if fmt in ("SR1", "tube", "box") else "checkpoint"


def _report(
    acc: _Acc | None,
    rules: Sequence[PolicyRule],
    misses: Sequence[tuple[int, Any]],
    temps: Sequence[float] | None,
) -> _Acc:
    """Every rule that missed adds its reason to `acc` (made here when None). A value that
    is falsy fails with the rule's verdict; one that is neither truthy nor falsy, or a spec
    error, means the rule could not be decided: FAIL (fail closed)."""
    if acc is None:
        acc = _Acc()
    temp = f"{temps[-1]:.1f}" if temps else ""
    for index, value in misses:
        pr = rules[index]
        en = pr.en.replace("{temp}", temp)
        zh = pr.zh.replace("{temp}", temp)
        if type(value) is not Failure and is_falsy(value):
            acc.add(pr.verdict, Reason(pr.reason, en, zh))
        else:
            detail = value.message if type(value) is Failure else f"value {value!r}"
            en = f"{en} (rule {pr.rule.identifier} could not be evaluated: {detail})"
            acc.add("FAIL", Reason(pr.reason, en, zh))
    return acc


# The rule kinds our own formats run, without and with a thermometer reading.
_KINDS = {
    (fmt, measured): (fmt, "Temperature") if measured else (fmt,)
    for fmt in ("HP1", "SR1")
    for measured in (False, True)
}


def decide(
    decoded: Decoded,
    temperatures: Sequence[float] | None,
    station: Station | None,
    now: float,
    policy: Policy,
) -> Verdict:
    """The verdict for one scan.

    `temperatures` is None when this decision does not involve a thermometer (a code check
    only); an empty sequence means the station measures but has no reading, which asks for
    a measurement.
    """
    fmt = decoded.format
    if decoded.reasons or False in decoded.steps.values():  # not decoded.valid, inlined
        acc = _Acc()
        for why in decoded.reasons or [reason("unreadable")]:
            acc.add("FAIL", why)
        return acc.verdict()
    station = station or station_for(fmt)
    if fmt not in ACCEPTS.get(station, ()):
        acc = _Acc()
        zh_station = STATION_NAMES_ZH.get(station, station)
        why = reason("wrong_station", kind=fmt, station=station)
        acc.add("FAIL", Reason(why.code, why.en, why.zh.replace(station, zh_station, 1)))
        return acc.verdict()
    measured = temperatures is not None and (station == "checkpoint" or station == "gate")
    acc: _Acc | None = None
    data: dict[str, Any]
    kinds: tuple[str, ...]
    if fmt == "HP1" or fmt == "SR1":
        claims = decoded.claims or {}
        external = {"now": int(now), "iat": int(decoded.iat or 0), "exp": int(decoded.exp or 0)}
        data = {"payload": claims.get(_CLAIM[fmt]), "external": external}
        kinds = _KINDS[fmt, measured]
    else:
        if fmt == "HC1":
            acc = _Acc()
            found = _eu_certificate(acc, decoded, now, policy)
            data, kinds = found or ({"external": {}}, ())
        else:  # tube and box codes: their pattern matched, no rule reads them
            data, kinds = {"external": {}}, ()
        if measured:
            kinds += ("Temperature",)
    if measured:
        # Rules see readings newest first, in tenths of a degree (CertLogic compares integers).
        readings = [round(t * 10) for t in temperatures[::-1]]  # type: ignore[index]
        external = data["external"]
        external["readings"] = readings
        external["readingCount"] = len(readings)
    if kinds:
        # The policy's rules of `kinds`, fused into one function; a scan that passes them
        # all never builds an accumulator.
        fused, rules = policy.combined(kinds)
        misses = fused.misses(data)
        if misses:
            acc = _report(acc, rules, misses, temperatures)
    return Verdict("PASS", []) if acc is None else acc.verdict()


@functools.lru_cache(maxsize=8)
def _iso(second: int) -> str:
    """RFC 3339 text of a whole second. Cached: a station decides many certificates within
    the same second, and formatting a datetime costs more than the rules that read it."""
    return dt.datetime.fromtimestamp(second, dt.UTC).isoformat().replace("+00:00", "Z")


def _eu_certificate(
    acc: _Acc, decoded: Decoded, now: float, policy: Policy
) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """Judge an EU certificate. With a country of acceptance and its EU rules configured,
    those rules decide here and now (None is returned); otherwise the rule data and the kinds
    of our own HC1 rules to run (General + the certificate's type) are returned."""
    dcc = decoded.content
    clock = _iso(int(now))
    kinds = [name for key, name in _DCC_TYPES if isinstance(dcc, dict) and dcc.get(key)]
    if len(kinds) != 1:
        acc.add("FAIL", reason("hc1_no_entry"))
        return None
    country = policy.hc1.accept_country
    if country and policy.eu_rules is not None:
        report = policy.eu_rules.check(
            dcc,
            country=country,
            clock=clock,
            value_sets=policy.value_sets,
            exp=decoded.exp,
            iat=decoded.iat,
        )
        for result in (*report.failed, *report.open):
            rule = result.rule
            text_zh = rule.descriptions.get("zh") or rule.description("en")
            acc.add(
                "FAIL",
                Reason(
                    "hc1_rule",
                    f"{rule.identifier}: {rule.description('en')}",
                    f"{rule.identifier}：{text_zh}",
                ),
            )
        return None
    external = {
        "validationClock": clock,
        # The latest instant another clock may show: what "in the future" is measured from.
        "validationClockLatest": _iso(int(now + policy.clock.skew_seconds)),
        "now": int(now),
        "iat": int(decoded.iat or 0),
        "exp": int(decoded.exp or 0),
        "valueSets": policy.value_sets,
    }
    return {"payload": dcc, "external": external}, ("General", kinds[0])
