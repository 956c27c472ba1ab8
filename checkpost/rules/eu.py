"""Business rules in the EU DCC gateway format, compiled once and run per certificate.

A rule is a JSON document (``Identifier``, ``Type``, ``Country``, ``Version``,
``CertificateType``, ``ValidFrom``, ``ValidTo``, ``AffectedFields``, ``Logic``,
``Description`` per language). :class:`Rule` validates and compiles its ``Logic`` when it is
loaded, so a bad rule is refused at load time with the JSON path of the offending node, and
nothing is parsed per scan. :class:`RuleSet` indexes the rules once and answers two
questions:

* :meth:`RuleSet.check` -- the EU question: for a DCC payload, a country of acceptance and
  a validation clock, which rules apply (country, certificate type, ``ValidFrom <= clock <
  ValidTo``, highest version per identifier) and which of them fail or cannot be decided;
* :meth:`RuleSet.run` -- the generic one our own policy bundles use: evaluate (some of) the
  rules against any data dict.

Either way the answer is a :class:`Report` listing every rule with outcome ``passed``,
``failed`` or ``open`` (the rule could not be evaluated: the spec's "error" case, e.g. a
date that does not parse), with identifier, descriptions in every language and affected
fields. Verifiers treat ``open`` as not passed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from checkpost.rules.certlogic import (
    CertLogicError,
    DateTime,
    Expression,
    Failure,
    _parse_ms,
    compile_expression,
    is_falsy,
    is_truthy,
    parse_ms,
)

__all__ = [
    "CERTIFICATE_TYPES",
    "Report",
    "Rule",
    "RuleError",
    "RuleResult",
    "RuleSet",
    "certificate_types",
    "clock_ms",
    "find_rule_files",
    "load_rule",
    "load_value_sets",
    "make_external",
]

CERTIFICATE_TYPES: Final = ("General", "Vaccination", "Test", "Recovery")
RULE_TYPES: Final = ("Acceptance", "Invalidation")
_PAYLOAD_KEYS: Final = (("v", "Vaccination"), ("t", "Test"), ("r", "Recovery"))
_REQUIRED: Final = (
    "Identifier",
    "Type",
    "Country",
    "Version",
    "CertificateType",
    "ValidFrom",
    "ValidTo",
    "Logic",
)

Outcome = Literal["passed", "failed", "open"]
Clock = datetime | str | int | float


class RuleError(ValueError):
    """A rule document that cannot be used; the message names the rule and the field."""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.\-+]", version))


def clock_ms(clock: Clock) -> int:
    """A validation clock as epoch milliseconds: aware datetime, ISO string or epoch seconds."""
    if isinstance(clock, datetime):
        if clock.tzinfo is None:
            raise ValueError("validation clock must be timezone-aware")
        return int(clock.timestamp() * 1000)
    if isinstance(clock, str):
        return parse_ms(clock)
    return int(clock * 1000)


def _iso(clock: Clock) -> str:
    """The ISO 8601 text CertLogic's ``plusTime`` reads (e.g. ``external.validationClock``)."""
    if isinstance(clock, str):
        return clock
    if isinstance(clock, datetime):
        return clock.isoformat()
    return DateTime(int(clock * 1000)).isoformat()


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One validated, compiled rule. Immutable; share it freely between threads."""

    identifier: str
    type: str
    country: str
    version: str
    certificate_type: str
    valid_from: str
    valid_to: str
    affected_fields: tuple[str, ...]
    descriptions: Mapping[str, str]
    logic: Any
    expression: Expression
    region: str | None = None
    engine: str = "CERTLOGIC"
    engine_version: str = ""
    schema_version: str = ""
    source: str | None = None
    version_key: tuple[int, ...] = field(default=(), repr=False)
    valid_from_ms: int = field(default=0, repr=False)
    valid_to_ms: int = field(default=0, repr=False)

    @classmethod
    def from_json(
        cls,
        doc: Mapping[str, Any],
        *,
        source: str | None = None,
        extensions: bool = False,
        certificate_types: Collection[str] = CERTIFICATE_TYPES,
    ) -> Rule:
        """Check and compile a gateway rule document; :class:`RuleError` says what is wrong.

        ``extensions=True`` admits the non-CertLogic operators ``or`` / ``!==``, and
        ``certificate_types`` other kinds than the EU's four (e.g. ``HP1``): both for our
        own policy rules only, EU rules must stay portable.
        """
        if not isinstance(doc, Mapping):
            raise RuleError(f"{source or '<rule>'}: a rule must be a JSON object")
        where = source or str(doc.get("Identifier", "<rule>"))
        missing = [k for k in _REQUIRED if k not in doc]
        if missing:
            raise RuleError(f"{where}: missing field(s) {', '.join(missing)}")
        for key in ("Identifier", "Type", "Country", "Version", "CertificateType"):
            if not isinstance(doc[key], str) or not doc[key]:
                raise RuleError(f"{where}: {key} must be a non-empty string")
        if doc["CertificateType"] not in certificate_types:
            raise RuleError(
                f"{where}: CertificateType {doc['CertificateType']!r} is not one of "
                f"{', '.join(certificate_types)}"
            )
        try:
            valid_from = _parse_ms(doc["ValidFrom"])
            valid_to = _parse_ms(doc["ValidTo"])
        except (TypeError, ValueError) as exc:
            raise RuleError(f"{where}: ValidFrom/ValidTo: {exc}") from None
        descriptions: dict[str, str] = {}
        for item in doc.get("Description") or ():
            if isinstance(item, Mapping) and isinstance(item.get("lang"), str):
                descriptions[item["lang"]] = str(item.get("desc", ""))
        try:
            expression = compile_expression(doc["Logic"], extensions=extensions)
        except CertLogicError as exc:
            first = exc.issues[0]
            more = f" (+{len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
            raise RuleError(f"{where}: Logic{first.path}: {first.message}{more}") from exc
        affected = doc.get("AffectedFields") or ()
        return cls(
            identifier=doc["Identifier"],
            type=doc["Type"],
            country=doc["Country"].upper(),
            version=doc["Version"],
            certificate_type=doc["CertificateType"],
            valid_from=doc["ValidFrom"],
            valid_to=doc["ValidTo"],
            affected_fields=tuple(str(f) for f in affected),
            descriptions=descriptions,
            logic=doc["Logic"],
            expression=expression,
            region=doc.get("Region"),
            engine=str(doc.get("Engine", "CERTLOGIC")),
            engine_version=str(doc.get("EngineVersion", "")),
            schema_version=str(doc.get("SchemaVersion", "")),
            source=source,
            version_key=_version_key(doc["Version"]),
            valid_from_ms=valid_from,
            valid_to_ms=valid_to,
        )

    def description(self, lang: str = "en") -> str:
        """The description in ``lang``, else English, else any; "" when the rule has none."""
        return (
            self.descriptions.get(lang)
            or self.descriptions.get("en")
            or next(iter(self.descriptions.values()), "")
        )

    def valid_at(self, ms: int) -> bool:
        return self.valid_from_ms <= ms < self.valid_to_ms


@dataclass(slots=True)
class RuleResult:
    """What one rule said: ``passed``, ``failed``, or ``open`` (not decidable; see reason).

    Not frozen: a frozen dataclass's ``__init__`` costs a microsecond, a tenth of a rule.
    """

    rule: Rule
    outcome: Outcome
    value: Any = None
    reason: str | None = None

    @property
    def identifier(self) -> str:
        return self.rule.identifier

    def as_dict(self, langs: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready form (for logs, MQTT and the CLI)."""
        desc = dict(self.rule.descriptions)
        if langs is not None:
            desc = {lang: self.rule.description(lang) for lang in langs}
        out: dict[str, Any] = {
            "identifier": self.rule.identifier,
            "version": self.rule.version,
            "outcome": self.outcome,
            "description": desc,
            "affected_fields": list(self.rule.affected_fields),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Report:
    """Every applicable rule's result, in rule order; ``ok`` only when all passed."""

    results: tuple[RuleResult, ...]

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def open(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "open"]

    @property
    def passed(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "passed"]

    @property
    def ok(self) -> bool:
        return all(r.outcome == "passed" for r in self.results)

    @property
    def outcome(self) -> Outcome:
        """``failed`` if any rule failed, else ``open`` if any is open, else ``passed``."""
        outcomes = {r.outcome for r in self.results}
        if "failed" in outcomes:
            return "failed"
        return "open" if "open" in outcomes else "passed"

    def as_dict(self, langs: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready summary: the outcome, and every rule that did not pass."""
        return {
            "outcome": self.outcome,
            "rules": len(self.results),
            "failed": [r.as_dict(langs) for r in self.failed],
            "open": [r.as_dict(langs) for r in self.open],
        }


def judge(rule: Rule, value: Any) -> RuleResult:
    """Map an evaluated value to an outcome: truthy passes, falsy fails, the rest is open."""
    if value is True:
        return RuleResult(rule, "passed", True)
    if value is False:
        return RuleResult(rule, "failed", False)
    if type(value) is Failure:
        return RuleResult(rule, "open", None, value.message)
    if is_truthy(value):
        return RuleResult(rule, "passed", value)
    if is_falsy(value):
        return RuleResult(rule, "failed", value)
    return RuleResult(rule, "open", value, f"rule evaluated to a non-boolean value: {value!r}")


def certificate_types(payload: Any) -> tuple[str, ...]:
    """The CertificateTypes a DCC payload is: General plus one per non-empty v / t / r."""
    if not isinstance(payload, Mapping):
        return ("General",)
    return ("General", *(kind for key, kind in _PAYLOAD_KEYS if payload.get(key)))


def make_external(
    *,
    clock: Clock,
    value_sets: Mapping[str, Any],
    country: str,
    exp: Clock | None = None,
    iat: Clock | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``external`` object EU rules read: validationClock, valueSets, countryCode, exp, iat."""
    external: dict[str, Any] = {
        "validationClock": _iso(clock),
        "valueSets": value_sets,
        "countryCode": country,
        "exp": _iso(exp) if exp is not None else None,
        "iat": _iso(iat) if iat is not None else None,
    }
    external.update(extra)
    return external


class RuleSet:
    """A collection of compiled rules, indexed once for fast per-certificate selection."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        # (rule type, country, certificate type) -> identifier groups, newest version first
        index: dict[tuple[str, str, str], dict[str, list[Rule]]] = {}
        for rule in self.rules:
            key = (rule.type, rule.country, rule.certificate_type)
            index.setdefault(key, {}).setdefault(rule.identifier, []).append(rule)
        self._index: dict[tuple[str, str, str], tuple[tuple[Rule, ...], ...]] = {
            key: tuple(
                tuple(sorted(versions, key=lambda r: r.version_key, reverse=True))
                for _, versions in sorted(groups.items())
            )
            for key, groups in index.items()
        }

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    @classmethod
    def from_dirs(cls, *dirs: str | Path, extensions: bool = False) -> RuleSet:
        """Load every ``rule.json`` under the given folders (or rule files)."""
        return cls(load_rule(p, extensions=extensions) for p in find_rule_files(*dirs))

    @classmethod
    def from_documents(
        cls,
        docs: Iterable[Mapping[str, Any]],
        *,
        extensions: bool = False,
        certificate_types: Collection[str] = CERTIFICATE_TYPES,
    ) -> RuleSet:
        """Compile rule documents already in memory (e.g. from a signed policy bundle).

        All rules are compiled before the set exists, so a bundle with one bad rule is
        refused as a whole (:class:`RuleError`), never half-applied.
        """
        return cls(
            Rule.from_json(doc, extensions=extensions, certificate_types=certificate_types)
            for doc in docs
        )

    def countries(self) -> list[str]:
        return sorted({r.country for r in self.rules})

    def select(
        self,
        *,
        country: str,
        clock: Clock,
        types: Iterable[str] = CERTIFICATE_TYPES,
        rule_type: str = "Acceptance",
    ) -> list[Rule]:
        """Rules that apply: this country and rule type, one of ``types``, valid at ``clock``
        (``ValidFrom <= clock < ValidTo``), and per identifier only the highest version
        among those valid."""
        ms = clock_ms(clock)
        country = country.upper()
        selected: list[Rule] = []
        for cert_type in types:
            for versions in self._index.get((rule_type, country, cert_type), ()):
                for rule in versions:
                    if rule.valid_from_ms <= ms < rule.valid_to_ms:
                        selected.append(rule)
                        break
        return selected

    def run(self, data: Any, rules: Iterable[Rule] | None = None) -> Report:
        """Evaluate ``rules`` (default: all) against ``data``; never raises."""
        chosen = self.rules if rules is None else rules
        return Report(tuple(judge(rule, rule.expression.evaluate(data)) for rule in chosen))

    def check(
        self,
        payload: Any,
        *,
        country: str,
        clock: Clock,
        value_sets: Mapping[str, Any],
        exp: Clock | None = None,
        iat: Clock | None = None,
        issuer_country: str | None = None,
        external: Mapping[str, Any] | None = None,
    ) -> Report:
        """The EU validation step for one DCC payload (``hcert`` claim, key ``1``).

        Acceptance rules of ``country`` and, when ``issuer_country`` is given, Invalidation
        rules of the issuing country, for the payload's certificate type(s), valid at
        ``clock``. ``external`` adds or overrides fields of the ``external`` object.
        """
        types = certificate_types(payload)
        rules = self.select(country=country, clock=clock, types=types)
        if issuer_country:
            rules += self.select(
                country=issuer_country, clock=clock, types=types, rule_type="Invalidation"
            )
        ext = make_external(clock=clock, value_sets=value_sets, country=country, exp=exp, iat=iat)
        if external:
            ext.update(external)
        return self.run({"payload": payload, "external": ext}, rules)


# --------------------------------------------------------------------------- files


def find_rule_files(*paths: str | Path) -> list[Path]:
    """``rule.json`` files: a path may be a rule file, a rule folder or any folder above."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif (path / "rule.json").is_file():
            found.append(path / "rule.json")
        else:
            found.extend(sorted(path.rglob("rule.json")))
    return found


def load_rule(path: str | Path, *, extensions: bool = False) -> Rule:
    """Load and compile one rule (a ``rule.json`` or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "rule.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuleError(f"{path}: cannot read rule: {exc}") from None
    return Rule.from_json(doc, source=str(path), extensions=extensions)


def load_value_sets(path: str | Path) -> dict[str, list[str]]:
    """Value sets as ``{id: [codes]}``.

    Accepts the compressed form the EU rule tooling produces (``valueSets.json``: a JSON
    object of id -> array of codes), a gateway value-set document (``valueSetId`` plus
    ``valueSetValues``), or a folder of either.
    """
    path = Path(path)
    if path.is_dir():
        merged: dict[str, list[str]] = {}
        for child in sorted(path.glob("*.json")):
            merged.update(load_value_sets(child))
        return merged
    doc = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and "valueSetId" in doc:
        return {str(doc["valueSetId"]): list(doc.get("valueSetValues") or {})}
    if isinstance(doc, dict) and all(isinstance(v, list) for v in doc.values()):
        return {str(k): [str(c) for c in v] for k, v in doc.items()}
    return {}


def now_utc() -> datetime:
    return datetime.now(UTC)
