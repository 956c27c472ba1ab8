"""``checkpost rules test|show|eval``: business rules from the command line.

Only ``argparse`` is imported at module level; the engine is imported when a subcommand
runs, so ``checkpost --help`` and unrelated commands do not pay for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rules",
        help="CertLogic business rules: test rule folders",
        description="EU DCC business rules (CertLogic) in the gateway format.",
    )
    rules_sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rules_sub.required = True

    p = rules_sub.add_parser(
        "test",
        help="run rule folders against their tests/*.json",
        description="Run every rule.json under DIR against the tests/*.json beside it. Prints "
        "one line per failing test, then a JSON line {rules, tests, passed, failed}. "
        "Exit status 1 when a test failed.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="rule folder, country folder or root")
    p.set_defaults(func=_test)

    p = rules_sub.add_parser("show", help="list the rules under DIR (validated and compiled)")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--country", help="only this country")
    p.add_argument("--lang", default="en", help="description language (default en)")
    p.add_argument("--json", action="store_true", help="one JSON object per rule")
    p.set_defaults(func=_show)

    p = rules_sub.add_parser(
        "eval",
        help="check one DCC payload against a country's rules",
        description="Select the rules of COUNTRY that apply to the payload at the clock and "
        "print every result as JSON. Exit status 0 when all passed, 1 otherwise.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--payload", required=True, help="JSON file: a DCC payload, or a rule test")
    p.add_argument("--country", required=True, help="country of acceptance (e.g. DE)")
    p.add_argument("--clock", help="validation clock, ISO 8601 (default: the test's, or now)")
    p.add_argument("--value-sets", help="valueSets.json (default: the test's external)")
    p.add_argument("--lang", action="append", help="description language(s) to print")
    p.set_defaults(func=_eval)


def _test(args: argparse.Namespace) -> int:
    from checkpost.rules.ruletests import run_dirs

    summary = run_dirs(args.dirs, report=print)
    print(json.dumps(summary.as_dict()), flush=True)
    return 1 if summary.failed or summary.load_errors or summary.rules == 0 else 0


def _show(args: argparse.Namespace) -> int:
    from checkpost.rules.eu import RuleError, RuleSet

    try:
        rules = RuleSet.from_dirs(*args.dirs)
    except RuleError as exc:
        print(f"checkpost rules show: {exc}", file=sys.stderr)
        return 2
    for rule in rules:
        if args.country and rule.country != args.country.upper():
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "identifier": rule.identifier,
                        "version": rule.version,
                        "type": rule.type,
                        "country": rule.country,
                        "certificate_type": rule.certificate_type,
                        "valid_from": rule.valid_from,
                        "valid_to": rule.valid_to,
                        "affected_fields": list(rule.affected_fields),
                        "description": dict(rule.descriptions),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(
                f"{rule.identifier:<12} {rule.version:<7} {rule.certificate_type:<11} "
                f"{rule.valid_from} .. {rule.valid_to}  {rule.description(args.lang)}"
            )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from checkpost.rules.eu import RuleError, RuleSet, load_value_sets, now_utc

    try:
        rules = RuleSet.from_dirs(*args.dirs)
        with open(args.payload, encoding="utf-8") as fh:
            doc: Any = json.load(fh)
    except (RuleError, OSError, ValueError) as exc:
        print(f"checkpost rules eval: {exc}", file=sys.stderr)
        return 2
    external: dict[str, Any] = {}
    payload = doc
    if isinstance(doc, dict) and "payload" in doc:
        payload = doc["payload"]
        external = doc.get("external") or {}
    clock = args.clock or external.get("validationClock") or now_utc()
    value_sets = external.get("valueSets") or {}
    if args.value_sets:
        value_sets = load_value_sets(args.value_sets)
    report = rules.check(payload, country=args.country, clock=clock, value_sets=value_sets)
    for result in report.results:
        print(json.dumps(result.as_dict(args.lang), ensure_ascii=False))
    print(
        json.dumps(
            {
                "outcome": report.outcome,
                "rules": len(report.results),
                "failed": [r.identifier for r in report.failed],
                "open": [r.identifier for r in report.open],
            }
        )
    )
    return 0 if report.ok else 1
