"""CertLogic semantics the suites do not pin down, and the evaluator's own promises."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from checkpost.rules.certlogic import (
    INTERNAL_ERROR,
    MAX_DEPTH,
    CertLogicError,
    DateTime,
    Failure,
    clear_caches,
    compile_expression,
    evaluate,
    is_falsy,
    is_truthy,
    iter_var_paths,
    to_json,
    validate,
)


def iso(expr: Any, data: Any = None) -> str:
    value = evaluate(expr, data)
    assert type(value) is DateTime, value
    return value.isoformat()


@pytest.mark.parametrize(
    ("date", "amount", "unit", "expected"),
    [  # the spec's leap-day table, and JS Date.setUTC* overflow
        ("2020-02-29", 1, "day", "2020-03-01T00:00:00.000Z"),
        ("2020-02-29", 1, "month", "2020-03-29T00:00:00.000Z"),
        ("2020-02-29", 1, "year", "2021-03-01T00:00:00.000Z"),
        ("2021-01-31", 1, "month", "2021-03-03T00:00:00.000Z"),
        ("2021-03-31", -13, "month", "2020-03-02T00:00:00.000Z"),
        ("2021-06-01T00:00:00Z", 40, "hour", "2021-06-02T16:00:00.000Z"),
        ("2021-06-01T00:00:00Z", -180, "day", "2020-12-03T00:00:00.000Z"),
        ("2004", 0, "day", "2004-12-31T00:00:00.000Z"),
        ("2004-02", 0, "day", "2004-02-29T00:00:00.000Z"),
        ("2004-02", 18, "year", "2022-03-01T00:00:00.000Z"),
    ],
)
def test_plus_time(date: str, amount: int, unit: str, expected: str) -> None:
    assert iso({"plusTime": [date, amount, unit]}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2021-06-01T02:00:00+02:00",
        "2021-06-01T02:00:00+2",
        "2021-06-01T02:00:00+02",
        "2021-06-01T02:00:00+200",
        "2021-06-01T02:00:00+0200",
        "2021-06-01T02:00:00+2:00",
        "2021-06-01T01:30:00+1:30",
        "2021-05-31T21:00:00-3",
        "2021-05-31T21:00:00-03:00",
        "2021-06-01T00:00:00Z",
        "2021-06-01T00:00:00",
        "2021-06-01",
        "2021-06-01T00:00:00.0009Z",
        "2021-06-01T02:00:00.000999+02:00",
    ],
)
def test_timezone_offsets_and_fractions(text: str) -> None:
    assert iso({"plusTime": [text, 0, "hour"]}) == "2021-06-01T00:00:00.000Z"


def test_fractions_are_truncated_to_milliseconds() -> None:
    assert iso({"plusTime": ["2021-06-01T00:00:00.123999Z", 0, "hour"]}).endswith(".123Z")
    assert iso({"plusTime": ["2021-06-01T00:00:00.5Z", 0, "hour"]}).endswith(".500Z")


@pytest.mark.parametrize(
    ("dob", "expected"),
    [
        ("1978", "1978-12-31T00:00:00.000Z"),
        ("1978-02", "1978-02-28T00:00:00.000Z"),
        ("1980-02", "1980-02-29T00:00:00.000Z"),
        ("1978-06-15", "1978-06-15T00:00:00.000Z"),
    ],
)
def test_dcc_date_of_birth(dob: str, expected: str) -> None:
    assert iso({"dccDateOfBirth": [{"var": "dob"}]}, {"dob": dob}) == expected


@pytest.mark.parametrize(
    ("expr", "data"),
    [
        ({"plusTime": [{"var": "d"}, 1, "day"]}, {"d": None}),
        ({"plusTime": [{"var": "d"}, 1, "day"]}, {"d": "2021-02-30"}),
        ({"plusTime": [{"var": "d"}, 1, "day"]}, {"d": "yesterday"}),
        ({"plusTime": [{"var": "d"}, 1, "day"]}, {"d": "2021-06-01T25:00:00Z"}),
        ({"plusTime": [{"var": "d"}, 9000, "year"]}, {"d": "2021-06-01"}),
        ({"dccDateOfBirth": [{"var": "d"}]}, {"d": "1978-01-01T00:00:00"}),
        ({"in": ["a", {"var": "x"}]}, {"x": None}),
        ({"in": ["a", {"var": "x"}]}, {"x": "abc"}),
        ({"<": [{"var": "x"}, 3]}, {"x": "2"}),
        ({"<": [{"var": "x"}, 3]}, {"x": True}),
        ({"+": [{"var": "x"}, 3]}, {"x": 1.5}),
        ({"after": [{"var": "x"}, {"plusTime": ["2021", 0, "day"]}]}, {"x": 5}),
        ({"if": [{"var": "x"}, 1, 2]}, {"x": 1.5}),
        ({"!": [{"plusTime": ["2021", 0, "day"]}]}, {}),
        ({"and": [{"var": "x"}, 1]}, {"x": 0.5}),
        ({"reduce": [{"var": "x"}, 1, 0]}, {"x": "abc"}),
        ({"extractFromUVCI": [{"var": "x"}, 1]}, {"x": 42}),
    ],
)
def test_spec_errors_are_returned_as_falsy_failures(expr: Any, data: Any) -> None:
    value = compile_expression(expr).evaluate(data)
    assert type(value) is Failure and not value and value.message


def test_strict_equality_and_membership() -> None:
    assert evaluate({"===": [1, True]}, None) is False
    assert evaluate({"===": [1, {"var": "x"}]}, {"x": 1.0}) is True
    assert evaluate({"in": [1, {"var": "x"}]}, {"x": [True]}) is False
    assert evaluate({"in": [True, {"var": "x"}]}, {"x": [1]}) is False
    assert evaluate({"in": [{"var": "n"}, {"var": "x"}]}, {"x": [0, None]}) is True
    assert evaluate({"in": ["a", ["b", "a"]]}, None) is True


def test_integral_floats_are_integers() -> None:
    """JSON decoders may give 2.0 for 2; JS cannot tell them apart, neither do we."""
    assert evaluate({">=": [{"var": "dn"}, 2]}, {"dn": 2.0}) is True
    assert evaluate({"+": [1.0, 2]}, None) == 3
    assert validate(2.0) == []


def test_var_paths() -> None:
    data = {"a": [{"b": "x"}, {"b": "y"}], "0": "zero", "m": OrderedDict(k=1)}
    assert evaluate({"var": "a.1.b"}, data) == "y"
    assert evaluate({"var": "a.2.b"}, data) is None
    assert evaluate({"var": "a.b"}, data) is None
    assert evaluate({"var": "0"}, data) == "zero"
    assert evaluate({"var": "m.k"}, data) == 1  # dict subclasses from other decoders
    assert evaluate({"var": "a.0.b.c"}, data) is None
    assert evaluate({"var": ""}, data) is data
    assert sorted(iter_var_paths({"if": [{"var": "a"}, {"var": "b.0"}, 1]})) == ["a", "b.0"]


def test_reduce_and_data_extension() -> None:
    expr = {"reduce": [{"var": "xs"}, {"+": [{"var": "accumulator"}, {"var": "current"}]}, 0]}
    assert evaluate(expr, {"xs": [1, 2, 3]}) == 6
    assert evaluate(expr, {"xs": None}) == 0
    assert evaluate(expr, {}) == 0
    expr = {"reduce": [{"var": "xs"}, {"var": "data.k"}, 0]}
    assert evaluate(expr, {"xs": [1], "k": 7}) == 7


def test_truthiness_is_restricted() -> None:
    truthy: list[Any] = [True, "a", 1, -1, [0], {"a": None}]
    falsy: list[Any] = [False, None, "", 0, [], {}]
    neither: list[Any] = [1.5, DateTime(0), b"x"]
    assert all(is_truthy(v) and not is_falsy(v) for v in truthy)
    assert all(is_falsy(v) and not is_truthy(v) for v in falsy)
    assert not any(is_truthy(v) or is_falsy(v) for v in neither)


def test_validation_names_the_json_path() -> None:
    expr = {"and": [{"var": "ok"}, {"if": [True, {"plusTime": [{"var": "d"}, "1", "week"]}, 0]}]}
    issues = validate(expr)
    assert [(i.path, i.message.split(" ")[0]) for i in issues] == [
        ("/and/1/if/1/plusTime/1", '"amount"'),
        ("/and/1/if/1/plusTime/2", '"unit"'),
    ]
    with pytest.raises(CertLogicError, match=r"at /and/1/if/1/plusTime/1: .*\(\+1 more\)"):
        compile_expression(expr)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ({"if": [True, 1]}, "exactly 3 operands"),
        ({"and": [True]}, "at least 2 operands"),
        ({"<": [1]}, "2 or 3 operands"),
        ({"===": [1, 2, 3]}, "must have 2 operands"),
        ({"!": [1, 2]}, "exactly 1 operand"),
        ({"reduce": [[], 0]}, "exactly 3 operands"),
        ({"extractFromUVCI": [{"var": "x"}, "1"]}, '"index" argument'),
        ({"dccDateOfBirth": []}, "exactly 1 operand"),
        ({"var": "a..b"}, "valid format"),
        ({"var": "a b"}, "valid format"),
        ({"or": [True, False]}, "unrecognised operator"),
        ({"!==": [1, 2]}, "unrecognised operator"),
        ({1: [2]}, "unrecognised operator"),
        ((1, 2), "invalid CertLogic expression"),
        (float("nan"), "non-integer number"),
    ],
)
def test_invalid_expressions(expr: Any, fragment: str) -> None:
    issues = validate(expr)
    assert issues and fragment in issues[0].message
    with pytest.raises(CertLogicError):
        compile_expression(expr)


def test_extensions_are_opt_in() -> None:
    expr = {"or": [{"var": "a"}, {"!==": [{"var": "b"}, 2]}]}
    compiled = compile_expression(expr, extensions=True)
    assert compiled.evaluate({"a": 0, "b": 2}) is False
    assert compiled.evaluate({"a": 0, "b": 3}) is True
    assert compiled.evaluate({"a": "x", "b": 2}) == "x"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda e: {"!": [e]},
        lambda e: [e],
        lambda e: {"reduce": [[1], e, 0]},
        lambda e: {"and": [True, e]},
    ],
)
def test_depth_limit(wrap: Any) -> None:
    """At the limit an expression evaluates cleanly; beyond it, a validation error."""
    expr: Any = True
    for _ in range(MAX_DEPTH - 2):  # JSON levels: reduce's [1] sits 2 below its wrapper
        expr = wrap(expr)
    value = compile_expression(expr).evaluate({})
    assert not (type(value) is Failure and value.message.startswith(INTERNAL_ERROR))
    for _ in range(10):
        expr = wrap(expr)
    assert "nested deeper" in validate(expr)[0].message


def test_results_are_json_ready() -> None:
    assert to_json([DateTime(0), Failure("x"), {"a": 1}]) == [
        "1970-01-01T00:00:00.000Z",
        None,
        {"a": 1},
    ]


def test_caches_do_not_change_results() -> None:
    expr = compile_expression({"plusTime": [{"var": "d"}, 1, "month"]})
    first = expr.evaluate({"d": "2021-01-31"})
    clear_caches()
    assert expr.evaluate({"d": "2021-01-31"}) == first
