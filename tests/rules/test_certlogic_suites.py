"""The CertLogic specification's own test suites, one pytest case per assertion.

``testSuite/``: every assertion must evaluate to exactly its ``expected`` value. Assertions
marked ``"directive": "skip"`` are run too: the four "in on null" ones are errors by the
spec (right-hand side not an array), which we return as a falsy :class:`Failure` (never
raised); the file-level skipped "patched reduce" passes because we provide ``data`` to the
lambda. ``validation-testSuite/``: our issues must match the expected ones, expression
and message, in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _rules_shared import CERTLOGIC, MISSING, require

from checkpost.rules.certlogic import (
    CertLogicError,
    Failure,
    _strict_eq,
    compile_expression,
    to_json,
    validate,
)


def _load(folder: str) -> list[tuple[str, dict[str, Any]]]:
    root = CERTLOGIC / folder
    if not root.is_dir():
        return []
    return [
        (p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(root.glob("*.json"))
    ]


def _eval_cases() -> list[Any]:
    params = []
    for name, suite in _load("testSuite"):
        for ci, case in enumerate(suite["cases"]):
            for ai, assertion in enumerate(case["assertions"]):
                expr = assertion.get("certLogicExpression", case.get("certLogicExpression"))
                skip = "skip" in (
                    suite.get("directive"),
                    case.get("directive"),
                    assertion.get("directive"),
                )
                params.append(
                    pytest.param(
                        expr, assertion["data"], assertion["expected"], skip,
                        id=f"{Path(name).stem}-{ci}-{ai}",
                    )
                )  # fmt: skip
    return params or [pytest.param(None, None, None, False, id=MISSING)]


def _validation_cases() -> list[Any]:
    params = []
    for name, suite in _load("validation-testSuite"):
        for ci, case in enumerate(suite["cases"]):
            params.append(
                pytest.param(
                    case["certLogicExpression"], case["issues"], id=f"{Path(name).stem}-{ci}"
                )
            )
    return params or [pytest.param(None, None, id=MISSING)]


def _same(got: Any, expected: Any) -> bool:
    got = to_json(got)
    if type(got) is list and type(expected) is list:
        return len(got) == len(expected) and all(map(_same, got, expected))
    if type(got) is dict and type(expected) is dict:
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return _strict_eq(got, expected)


@pytest.mark.parametrize(("expr", "data", "expected", "skipped"), _eval_cases())
def test_evaluation_suite(expr: Any, data: Any, expected: Any, skipped: bool) -> None:
    require(CERTLOGIC / "testSuite")
    got = compile_expression(expr).evaluate(data)
    if skipped and type(got) is Failure:
        assert not got  # an error by the spec: returned, falsy, never raised
        return
    assert _same(got, expected), f"{json.dumps(expr)} on {json.dumps(data)}: {got!r}"


@pytest.mark.parametrize(("expr", "issues"), _validation_cases())
def test_validation_suite(expr: Any, issues: list[dict[str, Any]]) -> None:
    require(CERTLOGIC / "validation-testSuite")
    got = validate(expr)
    assert [(i.expr, i.message) for i in got] == [(i["expr"], i["message"]) for i in issues]
    if issues:
        with pytest.raises(CertLogicError) as err:
            compile_expression(expr)
        assert err.value.issues == got
    else:
        compile_expression(expr)


def test_suite_counts() -> None:
    """Guard against a silently shrinking suite (e.g. a renamed folder)."""
    require(CERTLOGIC)
    assert len(_eval_cases()) == 232
    assert len(_validation_cases()) == 23
