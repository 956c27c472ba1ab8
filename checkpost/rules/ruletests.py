"""Run rule folders against their own tests (``<rule>/tests/*.json``), as the EU tooling does.

Each test file holds ``payload``, ``external`` and ``expected``; the rule's ``Logic`` is
evaluated on ``{"payload": payload, "external": external}`` and must produce exactly
``expected`` (``===``: ``1`` is not ``true``). A test whose ``payload`` is absent evaluates
with ``payload: null`` (JSON has no ``undefined``). Shared by ``checkpost rules test`` and
the test suite, so both judge the data the same way.

Known defects of the *data* (not of the engine) are listed in :data:`KNOWN_DATA_DEFECTS`,
the one place to name them. With the EU rules under ``shared/eu-rules`` it is empty: all
1022 tests pass as written. Oddities that do not change any result are in
:data:`DATA_NOTES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from checkpost.rules.certlogic import Failure, _strict_eq, to_json
from checkpost.rules.eu import Rule, RuleError, find_rule_files, load_rule

# (rule identifier, test file name) -> reason. A listed test is reported as "known defect"
# and not counted as failed; the CLI still prints it, so the defect stays visible.
KNOWN_DATA_DEFECTS: Final[dict[tuple[str, str], str]] = {}

# Deviations from the test schema that change no outcome (kept for the record).
DATA_NOTES: Final[dict[tuple[str, str], str]] = {
    ("GR-NL-0002", "test001.json"): "external holds the value sets flat (no 'valueSets' key)",
    ("GR-NL-0002", "test002.json"): "external holds the value sets flat (no 'valueSets' key)",
    ("GR-NL-0002", "test003.json"): "external holds the value sets flat (no 'valueSets' key)",
    ("GR-NL-0002", "test004.json"): "no 'payload' (schema requires it; read as null) and "
    "value sets held flat",
}


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One test of one rule."""

    __test__ = False  # not a pytest class

    rule_id: str
    rule_dir: Path
    test_file: Path
    name: str
    expected: Any
    got: Any
    passed: bool
    known_defect: str | None = None

    def line(self) -> str:
        got = f"open ({self.got.message})" if type(self.got) is Failure else _dump(self.got)
        where = f"{self.rule_dir.name}/tests/{self.test_file.name}"
        text = f"FAIL {where} [{self.rule_id}] {self.name!r}: expected "
        text += f"{_dump(self.expected)}, got {got}"
        if self.known_defect:
            text = "KNOWN DATA DEFECT " + text[5:] + f" -- {self.known_defect}"
        return text


def _dump(value: Any) -> str:
    text = json.dumps(to_json(value), ensure_ascii=False, default=repr)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class Summary:
    """Counts in the shape of the CLI's last line."""

    rules: int = 0
    tests: int = 0
    passed: int = 0
    failed: int = 0
    known_defects: int = 0
    load_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        out = {"rules": self.rules, "tests": self.tests, "passed": self.passed}
        out["failed"] = self.failed
        if self.known_defects:
            out["known_defects"] = self.known_defects
        if self.load_errors:
            out["load_errors"] = self.load_errors
        return out


def run_rule(rule: Rule, rule_dir: Path) -> Iterator[TestOutcome]:
    """Run one loaded rule against every ``tests/*.json`` beside it."""
    for test_file in sorted((rule_dir / "tests").glob("*.json")):
        try:
            test = json.loads(test_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            yield TestOutcome(
                rule.identifier, rule_dir, test_file, "<unreadable>", None,
                Failure(f"cannot read test: {exc}"), False,
            )  # fmt: skip
            continue
        if not isinstance(test, dict):
            test = {}
        data = {"payload": test.get("payload"), "external": test.get("external")}
        got = rule.expression.evaluate(data)
        expected = test.get("expected")
        passed = type(got) is not Failure and "expected" in test and _same(got, expected)
        defect = KNOWN_DATA_DEFECTS.get((rule.identifier, test_file.name))
        yield TestOutcome(
            rule.identifier, rule_dir, test_file, str(test.get("name", "")),
            expected, got, passed, None if passed else defect,
        )  # fmt: skip


def _same(got: Any, expected: Any) -> bool:
    got = to_json(got)
    if type(got) is list and type(expected) is list:
        return len(got) == len(expected) and all(map(_same, got, expected))
    return _strict_eq(got, expected)


def run_dirs(paths: Iterable[str | Path], report: Callable[[str], object] | None = None) -> Summary:
    """Run every rule found under ``paths``; ``report(line)`` gets one line per failure."""
    summary = Summary()
    rule_files: list[Path] = []
    for raw in paths:
        found = find_rule_files(raw)
        if not found:
            summary.load_errors += 1
            if report:
                report(f"FAIL {raw}: no rule.json found")
        rule_files.extend(found)
    for rule_file in rule_files:
        rule_dir = rule_file.parent
        summary.rules += 1
        try:
            rule = load_rule(rule_file)
        except RuleError as exc:
            n = len(list((rule_dir / "tests").glob("*.json")))
            summary.load_errors += 1
            summary.tests += n
            summary.failed += n
            if report:
                report(f"FAIL {rule_dir.name}: rule does not load: {exc}")
            continue
        for outcome in run_rule(rule, rule_dir):
            summary.tests += 1
            if outcome.passed:
                summary.passed += 1
                continue
            if outcome.known_defect:
                summary.known_defects += 1
            else:
                summary.failed += 1
            if report:
                report(outcome.line())
    return summary
