"""The fused code generator must agree with the closure compiler on every input.

`FusedRules` exists only for speed; its results are checked against
`certlogic.compile_expression` — the evaluator the CertLogic suites validate — on every EU
rule with every rule test's data, on every CertLogic suite case, and on random data.
"""

from __future__ import annotations

import json
from typing import Any

from _rules_shared import CERTLOGIC, EU_RULES, require
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpost.rules import certlogic as cl
from checkpost.rules.eu import RuleSet
from checkpost.rules.fused import FusedRules


def _same(closure_value: Any, misses: dict[int, Any], index: int) -> bool:
    if cl.is_truthy(closure_value):
        return index not in misses
    if index not in misses:
        return False
    fused = misses[index]
    if type(closure_value) is cl.Failure or type(fused) is cl.Failure:
        return type(closure_value) is type(fused)
    return bool(cl.to_json(fused) == cl.to_json(closure_value))


def _eu_rules() -> list[Any]:
    return list(RuleSet.from_dirs(require(EU_RULES)))


def test_fused_agrees_on_every_eu_rule_and_rule_test() -> None:
    rules = _eu_rules()
    fused = FusedRules([r.logic for r in rules])
    compared = 0
    for path in sorted(require(EU_RULES).glob("*/*/tests/*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        data = {"payload": case.get("payload"), "external": case.get("external")}
        misses = dict(fused.misses(data))
        for i, rule in enumerate(rules):
            value = rule.expression.evaluate(data)
            assert _same(value, misses, i), (rule.identifier, path.name, value, misses.get(i))
            compared += 1
    assert compared > 100_000


def _suite_cases() -> list[tuple[str, Any, Any]]:
    cases = []
    for path in sorted(require(CERTLOGIC / "testSuite").glob("*.json")):
        if path.name.startswith("JsonLogic"):
            continue
        suite = json.loads(path.read_text(encoding="utf-8"))
        for case in suite.get("cases", []):
            expr = case.get("certLogicExpression")
            for assertion in case.get("assertions", []):
                e = assertion.get("certLogicExpression", expr)
                if not cl.validate(e):
                    cases.append((f"{path.stem}: {case.get('name')}", e, assertion.get("data")))
    return cases


def test_fused_agrees_on_the_certlogic_suite() -> None:
    cases = _suite_cases()
    assert len(cases) > 150
    for name, expr, data in cases:
        value = cl.compile_expression(expr).evaluate(data)
        misses = dict(FusedRules([expr]).misses(data))
        assert _same(value, misses, 0), (name, expr, data, value, misses)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "a", "R", "neg", "pos"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcr"), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(payload=_json, external=_json)
def test_fused_agrees_on_random_data(payload: Any, external: Any) -> None:
    from checkpost.policy import load_policy

    policy = load_policy()
    data = {"payload": payload, "external": external}
    for kind, rules in policy.rules.items():
        misses = dict(policy.fused[kind].misses(data))
        for i, pr in enumerate(rules):
            value = pr.rule.expression.evaluate(data)
            assert _same(value, misses, i), (pr.rule.identifier, data, value, misses.get(i))
