"""Property tests: a valid compiled expression never raises, junk never crashes validation.

Three sources of expressions: every real EU rule (the ones that matter), a generator of
arbitrary *valid* CertLogic trees, and a generator of junk built from operator names and
arbitrary JSON-ish values. Data is arbitrary JSON, plus DCC-shaped data with plausible and
implausible dates so that the date paths are reached, not only the null guards.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from _rules_shared import EU_RULES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpost.rules.certlogic import (
    INTERNAL_ERROR,
    TIME_UNITS,
    CertLogicError,
    Expression,
    Failure,
    compile_expression,
    validate,
)

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DATES = st.sampled_from(
    [
        "2021-06-01",
        "2021-06-01T10:00:00Z",
        "2021-06-01T10:00:00.123+02:00",
        "2021-13-45",
        "2020-02-29",
        "1978",
        "1978-02",
        "",
        "0000-01-01",
        "9999-12-31T23:59:59Z",
        "URN:UVCI:01:NL:187/37512422923",
        "2021-06-01T10:00:00+99:99",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    DATES,
)
KEYS = st.sampled_from(["v", "t", "r", "0", "1", "dt", "dn", "sd", "mp", "fr", "x", "current"])
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=25,
)
CERT = st.fixed_dictionaries(
    {
        k: st.one_of(DATES, st.integers(-2, 5), st.none(), JSON)
        for k in (
            "dt",
            "dn",
            "sd",
            "mp",
            "fr",
            "df",
            "du",
            "sc",
            "tt",
            "tr",
            "ci",
            "co",
            "ma",
            "tg",
        )
    }
)
DCC_DATA = st.fixed_dictionaries(
    {
        "payload": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"dob": st.one_of(DATES, JSON)},
                optional={k: st.one_of(st.lists(CERT, max_size=2), JSON) for k in ("v", "t", "r")},
            ),
            JSON,
        ),
        "external": st.one_of(
            st.fixed_dictionaries(
                {
                    "validationClock": st.one_of(DATES, JSON),
                    "valueSets": st.one_of(
                        st.dictionaries(
                            st.text(max_size=30), st.lists(st.text(max_size=4)), max_size=3
                        ),
                        JSON,
                    ),
                }
            ),
            JSON,
        ),
    }
)
DATA = st.one_of(JSON, DCC_DATA)


def _no_internal_error(value: Any) -> None:
    """Spec errors are fine (Failure); an unforeseen exception caught as one is a bug."""
    if type(value) is Failure:
        assert not value.message.startswith(INTERNAL_ERROR), value.message


def _eu_rules() -> list[Expression]:
    out = []
    for path in sorted(EU_RULES.glob("*/*/rule.json")):
        out.append(compile_expression(json.loads(path.read_text(encoding="utf-8"))["Logic"]))
    return out


EU_EXPRESSIONS = _eu_rules()
PATHS = st.sampled_from(
    [
        "",
        "x",
        "payload.v.0.dt",
        "payload.dob",
        "external.validationClock",
        "current",
        "accumulator",
        "data.x",
        "0",
        "v.1",
    ]
)


def _op(name: str, operands: list[Any]) -> dict[str, Any]:
    return {name: operands}


def _valid(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def op(name: str, n: int) -> st.SearchStrategy[Any]:
        return st.lists(inner, min_size=n, max_size=n).map(lambda xs: {name: xs})

    return st.one_of(
        op("if", 3),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: {"and": xs}),
        op("!", 1),
        *(op(o, 2) for o in ("===", "in", "+")),
        *(
            st.lists(inner, min_size=2, max_size=3).map(functools.partial(_op, o))
            for o in ("<", ">", "<=", ">=", "before", "after", "not-before", "not-after")
        ),
        st.tuples(inner, st.integers(-1000, 1000), st.sampled_from(TIME_UNITS)).map(
            lambda t: {"plusTime": list(t)}
        ),
        op("dccDateOfBirth", 1),
        st.tuples(inner, st.integers(-2, 6)).map(lambda t: {"extractFromUVCI": list(t)}),
        op("reduce", 3),
        st.lists(inner, max_size=3),
    )


VALID = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-5, 5),
        st.text(max_size=4),
        DATES,
        PATHS.map(lambda p: {"var": p}),
    ),
    _valid,
    max_leaves=20,
)
OPS = st.sampled_from(
    [
        "if",
        "and",
        "!",
        "===",
        "in",
        "+",
        "<",
        "after",
        "plusTime",
        "reduce",
        "var",
        "extractFromUVCI",
        "dccDateOfBirth",
        "or",
        "all",
        "",
    ]
)
JUNK = st.recursive(
    st.one_of(SCALARS, st.floats(), st.just(()), st.binary(max_size=2)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(OPS, st.one_of(inner, st.lists(inner, max_size=4)), min_size=1, max_size=2),
        st.builds(lambda o, xs: {o: xs}, OPS, st.lists(inner, max_size=4)),
    ),
    max_leaves=20,
)


@SETTINGS
@given(st.sampled_from(range(len(EU_EXPRESSIONS))) if EU_EXPRESSIONS else st.nothing(), DATA)
def test_eu_rules_never_raise(index: int, data: Any) -> None:
    _no_internal_error(EU_EXPRESSIONS[index].evaluate(data))


@SETTINGS
@given(VALID, DATA)
def test_valid_expressions_never_raise(expr: Any, data: Any) -> None:
    assert validate(expr) == [], expr
    _no_internal_error(compile_expression(expr).evaluate(data))


@SETTINGS
@given(JUNK, DATA)
def test_junk_gets_a_validation_error_or_compiles(expr: Any, data: Any) -> None:
    issues = validate(expr)
    try:
        compiled = compile_expression(expr)
    except CertLogicError as exc:
        assert issues and exc.issues == issues
        assert all(isinstance(i.path, str) and i.message for i in issues)
        return
    assert issues == []
    _no_internal_error(compiled.evaluate(data))


def test_eu_rules_were_found() -> None:
    from _rules_shared import require

    require(EU_RULES)
    assert len(EU_EXPRESSIONS) == 145
