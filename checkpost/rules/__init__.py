"""Business rules as data: a compiled CertLogic evaluator and the EU DCC rule format.

Shared by the edge units and the hub. Rules are validated and compiled once (when a rule
set or policy bundle is loaded) and then evaluated per scan without re-parsing:

    from checkpost.rules import RuleSet, load_value_sets
    rules = RuleSet.from_dirs("shared/eu-rules")                  # compile once
    report = rules.check(payload, country="DE", clock=now, value_sets=sets)
    for r in report.failed: print(r.identifier, r.rule.description("de"))

    rules.run({"hp1": {...}, "params": {...}})                    # any data, any rule set

Modules: :mod:`.certlogic` (validate / compile / evaluate expressions), :mod:`.eu` (rules,
selection, reports), :mod:`.ruletests` (rule folders with their tests), :mod:`.bench`
(cost per certificate vs a bare ES256 verify), :mod:`.commands` (``checkpost rules``).

Names are re-exported lazily so that importing the package (the CLI does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CertLogicError": "certlogic",
    "DateTime": "certlogic",
    "Expression": "certlogic",
    "Failure": "certlogic",
    "ValidationIssue": "certlogic",
    "compile_expression": "certlogic",
    "evaluate": "certlogic",
    "validate": "certlogic",
    "Report": "eu",
    "Rule": "eu",
    "RuleError": "eu",
    "RuleResult": "eu",
    "RuleSet": "eu",
    "certificate_types": "eu",
    "load_rule": "eu",
    "load_value_sets": "eu",
    "make_external": "eu",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'checkpost.rules' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"checkpost.rules.{module}"), name)
    globals()[name] = value
    return value
