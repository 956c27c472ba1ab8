"""CertLogic 1.3.3: validate an expression once, compile it to closures once, evaluate often.

Why our own evaluator instead of ``panzi-json-logic`` (the one maintained Python
implementation): it has no validator at all (an invalid expression is only discovered when
a certificate happens to reach the bad branch), it lacks ``dccDateOfBirth`` and partial
dates (25 of 218 assertions of the CertLogic test suite fail), it is JsonLogic-lenient
(``1 === true``, ``"1" < 2``) and it re-interprets the JSON tree on every call. Compiling
gives us the validation pass the spec asks for and removes the per-node dispatch: see
``checkpost.rules.bench`` for figures measured in the same run.

Semantics follow the specification (``shared/certlogic/README.md``) and its reference
implementation (certlogic-js):

* truthy/falsy are CertLogic's restricted notions; a value that is neither (a date-time, a
  non-integral number, ...) where truthiness is needed is an *evaluation failure*;
* the spec says a type mismatch "is an error". The compiled closures raise a private
  exception for it, and :meth:`Expression.evaluate` turns it (and anything unforeseen)
  into a :class:`Failure` value: a validated expression never raises at evaluation.
  A :class:`Failure` is falsy, so a careless ``if expr.evaluate(data):`` fails closed;
* date-times are :class:`DateTime` values (epoch milliseconds, UTC), produced only by
  ``plusTime`` and ``dccDateOfBirth``; parsing is cached because rule sets parse the same
  ``validationClock`` and payload dates over and over;
* ``reduce`` passes ``{"current", "accumulator", "data"}`` to its lambda: ``data`` is the
  optional extension the spec announces (its "patched reduce" suite then passes too).

``or`` and ``!==`` are not part of CertLogic 1.3.3; they are accepted only when compiling
with ``extensions=True`` (for our own policy rules), so EU rules stay portable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

__all__ = [
    "INTERNAL_ERROR",
    "MAX_DEPTH",
    "TIME_UNITS",
    "CertLogicError",
    "DateTime",
    "Expression",
    "Failure",
    "ValidationIssue",
    "clear_caches",
    "compile_expression",
    "evaluate",
    "is_falsy",
    "is_truthy",
    "iter_var_paths",
    "parse_ms",
    "to_json",
    "validate",
]

Fn = Callable[[Any], Any]

MAX_DEPTH: Final = 128
"""Deeper expressions are rejected at validation: compiled closures recurse per level, and
real rules stay below 20 levels; 128 leaves room under the interpreter's recursion limit."""

TIME_UNITS: Final = ("year", "month", "day", "hour")
INTERNAL_ERROR: Final = "internal error: "
"""Prefix of a Failure caused by an unforeseen exception (a bug here, not in the rule)."""
_COMPARISONS: Final = ("<", ">", "<=", ">=")
_DATE_COMPARISONS: Final = ("before", "after", "not-after", "not-before")
_BINARY: Final = ("===", "in", "+")
_INFIX: Final = ("and", *_BINARY, *_COMPARISONS, *_DATE_COMPARISONS)
_EXTENSION_OPS: Final = ("or", "!==")
_PATH_FRAGMENT = re.compile(r"[A-Za-z0-9_\-]+", re.ASCII)


# --------------------------------------------------------------------------- values


class DateTime:
    """A CertLogic date-time: a UTC instant with millisecond precision.

    Deliberately not an ``int`` subclass, so that integer comparisons reject it and date-time
    comparisons reject integers, as the spec requires. Instances are immutable and shared
    through the parse cache.
    """

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __eq__(self, other: object) -> bool:
        return type(other) is DateTime and other.ms == self.ms

    def __hash__(self) -> int:
        return hash(("DateTime", self.ms))

    def __repr__(self) -> str:
        return f"DateTime({self.isoformat()!r})"

    def isoformat(self) -> str:
        """ISO 8601 in UTC with milliseconds, the form certlogic-js prints (``toISOString``)."""
        days, tod = divmod(self.ms, 86_400_000)
        try:
            d = date.fromordinal(days + _EPOCH_ORDINAL)
        except (ValueError, OverflowError):  # plusTime hours can leave years 1..9999
            return f"<date-time {self.ms} ms from 1970-01-01T00:00:00Z>"
        h, rest = divmod(tod, 3_600_000)
        m, rest = divmod(rest, 60_000)
        s, ms = divmod(rest, 1000)
        return f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"


@dataclass(frozen=True, slots=True)
class Failure:
    """The result of evaluating an expression that hit a case the spec calls an error.

    Returned, never raised. Falsy on purpose: code that only checks truthiness fails closed.
    """

    message: str

    def __bool__(self) -> bool:
        return False


class _Mismatch(Exception):
    """Internal: a type mismatch detected while evaluating (turned into a Failure)."""


def _is_int(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and v.is_integer())


def is_truthy(value: Any) -> bool:
    """CertLogic truthy: true, non-empty string/array/object, non-zero integer."""
    if value is True:
        return True
    t = type(value)
    if t is str or t is list or t is dict:
        return len(value) > 0
    if t is int or (t is float and value.is_integer()):
        return bool(value != 0)
    return False


def is_falsy(value: Any) -> bool:
    """CertLogic falsy: false, null, "", 0, [], {}; never truthy, but some values are neither."""
    if value is False or value is None:
        return True
    t = type(value)
    if t is str or t is list or t is dict:
        return len(value) == 0
    if t is int or (t is float and value.is_integer()):
        return bool(value == 0)
    return False


def _truth(value: Any) -> bool:
    """Truthy -> True, falsy -> False, neither -> evaluation failure (spec: an error)."""
    t = type(value)
    if t is str or t is list or t is dict:
        return len(value) > 0
    if t is int or (t is float and value.is_integer()):
        return bool(value != 0)
    if t is bool:  # callers test `is True` / `is False` first; this keeps _truth total
        return bool(value)
    if value is None:
        return False
    raise _Mismatch(f"value is neither truthy nor falsy: {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strict_eq(a: Any, b: Any) -> bool:
    """``===``: no coercion (``1 === true`` is false), integers equal across int/float."""
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return bool(a == b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    return False


def _strict_in(needle: Any, haystack: list[Any]) -> bool:
    """Array membership with ``===`` semantics (JS ``indexOf``)."""
    t = type(needle)
    if t is str:
        return needle in haystack  # str.__eq__ only ever matches str
    if needle is None:
        return None in haystack  # None == x is False for every other x: already strict
    return any(_strict_eq(needle, item) for item in haystack)


def to_json(value: Any) -> Any:
    """A result as plain JSON data: date-times become ISO strings, failures ``None``."""
    if type(value) is DateTime:
        return value.isoformat()
    if type(value) is list:
        return [to_json(v) for v in value]
    if type(value) is dict:
        return {k: to_json(v) for k, v in value.items()}
    if type(value) is Failure:
        return None
    return value


# --------------------------------------------------------------------------- date-times

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{1,2}):?(\d{2})?)?)?",
    re.ASCII,
)
_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?", re.ASCII)
_DOB = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)


def _days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a valid calendar date (ValueError otherwise)."""
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


def _last_day(year: int, month: int) -> int:
    if month == 12:
        return 31
    return date(year, month + 1, 1).toordinal() - date(year, month, 1).toordinal()


def _dob_ms(year: int, month: int | None, day: int | None) -> int:
    """``dccDateOfBirth``: the last instant-date consistent with a partial date."""
    if month is None:
        month, day = 12, 31
    elif day is None:
        day = _last_day(year, month)
    return _days(year, month, day) * 86_400_000


def _parse_ms(text: str) -> int:
    """A CertLogic date(-time) string to epoch milliseconds (ValueError when not allowed)."""
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        p = _PARTIAL_DATE.fullmatch(text)
        if p is None:
            raise ValueError(f"not a CertLogic date(-time): {text!r}")
        return _dob_ms(int(p[1]), int(p[2]) if p[2] else None, None)
    year, month, day, hour, minute, second, frac, _zone, sign, off_h, off_m = m.groups()
    ms = _days(int(year), int(month), int(day)) * 86_400_000
    if hour is None:
        return ms
    h, mi, sec = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or sec > 59:
        raise ValueError(f"time out of range: {text!r}")
    ms += (h * 3600 + mi * 60 + sec) * 1000
    if frac:
        ms += int((frac + "00")[:3])  # truncate, never round, beyond milliseconds
    if sign:
        oh = int(off_h)
        om = int(off_m) if off_m else 0
        if oh > 23 or om > 59:
            raise ValueError(f"timezone offset out of range: {text!r}")
        offset = (oh * 60 + om) * 60_000
        ms -= offset if sign == "+" else -offset
    return ms


@functools.lru_cache(maxsize=16384)
def parse_ms(text: str) -> int:
    """Cached :func:`_parse_ms`: one scan parses its validation clock in every rule."""
    return _parse_ms(text)


def clear_caches() -> None:
    """Forget every parsed date (benchmarks use it to measure the cold path)."""
    parse_ms.cache_clear()
    _plus_time.cache_clear()
    _dcc_dob.cache_clear()


@functools.lru_cache(maxsize=16384)
def _plus_time(text: str, amount: int, unit: str) -> DateTime:
    """``plusTime`` with JS ``Date.setUTC*`` semantics (overflowing days roll forward)."""
    ms = parse_ms(text)
    if amount == 0:
        return DateTime(ms)
    if unit == "hour":
        return DateTime(ms + amount * 3_600_000)
    if unit == "day":
        return DateTime(ms + amount * 86_400_000)
    days, tod = divmod(ms, 86_400_000)
    d = date.fromordinal(days + _EPOCH_ORDINAL)
    if unit == "year":
        year, month = d.year + amount, d.month
    else:
        year, month0 = divmod(d.year * 12 + d.month - 1 + amount, 12)
        month = month0 + 1
    # 2020-02-29 + 1 year = "2021-02-29" = 2021-03-01, as setUTCFullYear does.
    return DateTime((_days(year, month, 1) + d.day - 1) * 86_400_000 + tod)


@functools.lru_cache(maxsize=4096)
def _dcc_dob(text: str) -> DateTime:
    m = _DOB.fullmatch(text)
    if m is None:
        raise ValueError(f"not a DCC date of birth: {text!r}")
    return DateTime(_dob_ms(int(m[1]), int(m[2]) if m[2] else None, int(m[3]) if m[3] else None))


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem of an expression: where (JSON Pointer into it), which node, what."""

    path: str
    expr: Any
    message: str

    def __str__(self) -> str:
        return f"at {self.path or '(root)'}: {self.message}"


class CertLogicError(ValueError):
    """An expression is not valid CertLogic; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"invalid CertLogic expression {issues[0]}{more}")


def _ptr(path: str, key: str | int) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def validate(expr: Any, *, extensions: bool = False) -> list[ValidationIssue]:
    """Every issue of ``expr`` (empty when valid). Never raises, whatever ``expr`` is.

    Messages for the cases of the CertLogic validation test suite are the reference
    implementation's, word for word; each issue also carries the JSON Pointer of its node.
    """
    issues: list[ValidationIssue] = []
    _validate(expr, "", 0, extensions, issues)
    return issues


def _validate(expr: Any, path: str, depth: int, ext: bool, out: list[ValidationIssue]) -> None:
    def issue(message: str, node: Any = expr, at: str = path) -> None:
        out.append(ValidationIssue(at, node, message))

    if depth > MAX_DEPTH:
        issue(f"expression nested deeper than {MAX_DEPTH} levels")
        return
    t = type(expr)
    if t is str or t is bool or t is int:
        return
    if t is float:
        if not expr.is_integer():
            issue(f"{expr} is a non-integer number")
        return
    if t is list:
        for i, item in enumerate(expr):
            _validate(item, _ptr(path, i), depth + 1, ext, out)
        return
    if t is not dict:
        issue("invalid CertLogic expression")
        return
    if len(expr) != 1:
        issue(f"expression object must have exactly one key, but it has {len(expr)}")
        return
    op, values = next(iter(expr.items()))
    here = _ptr(path, op) if type(op) is str else path
    if op == "var":
        if type(values) is not str:
            issue('not of the form { "var": "<path>" }')
        elif values != "" and not all(_PATH_FRAGMENT.fullmatch(f) for f in values.split(".")):
            issue(f"data access path doesn't have a valid format: {values}")
        return
    if type(values) is not list:
        issue('operation not of the form { "<operator>": [ <values...> ] }')
        return
    n = len(values)

    def operands(*indices: int) -> None:
        for i in indices if indices else range(n):
            if i < n:
                _validate(values[i], _ptr(here, i), depth + 1, ext, out)

    if op == "if":
        if n != 3:
            issue(f"an if-operation must have exactly 3 operands (guard, then, else), not {n}")
        operands()
    elif op in _INFIX or (ext and op in _EXTENSION_OPS):
        if op in ("and", "or"):
            if n < 2:
                issue(f'an "{op}" operation must have at least 2 operands')
        elif op in _COMPARISONS or op in _DATE_COMPARISONS:
            if n not in (2, 3):
                issue(f'an operation with operator "{op}" must have 2 or 3 operands')
        elif n != 2:
            issue(f'an operation with operator "{op}" must have 2 operands')
        operands()
    elif op == "!":
        if n != 1:
            issue("a not-operation must have exactly 1 operand")
        operands()
    elif op == "plusTime":
        if n != 3:
            issue(f'a "plusTime" operation must have exactly 3 operands, not {n}')
        if n > 1 and not _is_int(values[1]):
            issue(
                '"amount" argument (#2) of "plusTime" must be an integer',
                values[1],
                _ptr(here, 1),
            )
        if n > 2 and values[2] not in TIME_UNITS:
            issue(
                '"unit" argument (#3) of "plusTime" must be a string with one of the time '
                f"units: {', '.join(TIME_UNITS)}",
                values[2],
                _ptr(here, 2),
            )
        operands(0)
    elif op == "reduce":
        if n != 3:
            issue(f'a "reduce" operation must have exactly 3 operands, not {n}')
        operands()
    elif op == "extractFromUVCI":
        if n != 2:
            issue(f'an "extractFromUVCI" operation must have exactly 2 operands, not {n}')
        if n > 1 and not _is_int(values[1]):
            issue(
                '"index" argument (#2) of "extractFromUVCI" must be an integer',
                values[1],
                _ptr(here, 1),
            )
        operands(0)
    elif op == "dccDateOfBirth":
        if n != 1:
            issue('a "dccDateOfBirth" operation must have exactly 1 operand')
        operands()
    else:
        issue(f'unrecognised operator: "{op}"')


# --------------------------------------------------------------------------- compilation


class Expression:
    """A validated, compiled CertLogic expression. Build with :func:`compile_expression`.

    Thread-safe and reusable: it holds no per-evaluation state.
    """

    __slots__ = ("_fn", "source")

    def __init__(self, source: Any, fn: Fn) -> None:
        self.source = source
        self._fn = fn

    def evaluate(self, data: Any) -> Any:
        """The expression's value on ``data``; a :class:`Failure` where the spec errs.

        Never raises: a type mismatch, an unparsable date or anything unforeseen becomes a
        Failure carrying the reason.
        """
        try:
            return self._fn(data)
        except _Mismatch as exc:
            return Failure(str(exc))
        except Exception as exc:  # the promise is "never raises"; keep the reason
            return Failure(f"{INTERNAL_ERROR}{type(exc).__name__}: {exc}")

    __call__ = evaluate

    def __repr__(self) -> str:
        return f"Expression({_short(self.source)})"


def compile_expression(expr: Any, *, extensions: bool = False) -> Expression:
    """Validate ``expr`` and compile it to closures; raises :class:`CertLogicError` if invalid.

    Do this once per rule (set); the returned :class:`Expression` is then evaluated per scan.
    """
    issues = validate(expr, extensions=extensions)
    if issues:
        raise CertLogicError(issues)
    return Expression(expr, _compile(expr))


def evaluate(expr: Any, data: Any) -> Any:
    """Validate, compile and evaluate in one go (convenience; compile once when it matters)."""
    return compile_expression(expr).evaluate(data)


def _const(value: Any) -> Fn:
    return lambda _d: value


def _compile(expr: Any) -> Fn:
    t = type(expr)
    if t is float:
        return _const(int(expr))
    if t is not list and t is not dict:
        return _const(expr)
    if t is list:
        items = [_compile(item) for item in expr]
        return lambda d: [f(d) for f in items]
    op, values = next(iter(expr.items()))
    if op == "var":
        return _compile_var(values)
    return _COMPILERS[op](values)


def _compile_var(path: str) -> Fn:
    """Data access, unrolled into straight-line code for the path (compiled once).

    ``var`` is the most frequent node of real rules (a third of all nodes); a generic loop
    over the fragments costs twice the unrolled code. The generated source only embeds
    ``repr`` of fragments that validation restricted to ``[A-Za-z0-9_-]+``.
    """
    if path == "":
        return lambda d: d
    keys = tuple((frag, int(frag) if frag.isdigit() else -1) for frag in path.split("."))

    def slow(d: Any) -> Any:
        for key, index in keys:
            if isinstance(d, dict):  # also mappings from other decoders
                d = d.get(key)
            elif type(d) is list and 0 <= index < len(d):
                d = d[index]
            else:
                return None
        return d

    lines = ["def var(d0):", "    d = d0"]
    for key, index in keys:
        lines.append(f"    if type(d) is dict: d = d.get({key!r})")
        if index >= 0:
            lines.append(f"    elif type(d) is list: d = d[{index}] if len(d) > {index} else None")
        lines.append("    elif d is None: return None")
        lines.append("    else: return slow(d0)")
    lines.append("    return d")
    namespace: dict[str, Any] = {"slow": slow}
    exec("\n".join(lines), namespace)  # source built from validated fragments only
    fn: Fn = namespace["var"]
    return fn


def _compile_if(values: list[Any]) -> Fn:
    guard, then, else_ = (_compile(v) for v in values)

    def if_(d: Any) -> Any:
        g = guard(d)
        if g is True:
            return then(d)
        if g is False or g is None:
            return else_(d)
        return then(d) if _truth(g) else else_(d)

    return if_


def _compile_and(values: list[Any]) -> Fn:
    fns = [_compile(v) for v in values]
    if len(fns) == 2:
        first, second = fns

        def and2(d: Any) -> Any:
            v = first(d)
            if v is True:
                return second(d)
            if v is False or v is None:
                return v
            return second(d) if _truth(v) else v

        return and2
    head, last = fns[:-1], fns[-1]

    def and_(d: Any) -> Any:
        for f in head:
            v = f(d)
            if v is True:
                continue
            if v is False or v is None or not _truth(v):
                return v
        return last(d)

    return and_


def _compile_or(values: list[Any]) -> Fn:
    """Extension (not CertLogic 1.3.3): first truthy operand, else the last operand."""
    fns = [_compile(v) for v in values]
    head, last = fns[:-1], fns[-1]

    def or_(d: Any) -> Any:
        for f in head:
            v = f(d)
            if v is True or (v is not False and v is not None and _truth(v)):
                return v
        return last(d)

    return or_


def _compile_not(values: list[Any]) -> Fn:
    (operand,) = (_compile(v) for v in values)

    def not_(d: Any) -> bool:
        v = operand(d)
        if v is True:
            return False
        if v is False or v is None:
            return True
        return not _truth(v)

    return not_


def _compile_eq(values: list[Any]) -> Fn:
    a, b = (_compile(v) for v in values)
    return lambda d: _strict_eq(a(d), b(d))


def _compile_neq(values: list[Any]) -> Fn:
    """Extension (not CertLogic 1.3.3): negation of ``===``."""
    a, b = (_compile(v) for v in values)
    return lambda d: not _strict_eq(a(d), b(d))


def _compile_in(values: list[Any]) -> Fn:
    needle = _compile(values[0])
    literal = values[1]
    if type(literal) is list and all(type(x) in (str, int, bool) for x in literal):
        # A literal array of scalars (vaccine lists in real rules): build it once, not per
        # scan. Strings match only strings, so a set is exact for a string needle.
        items = list(literal)
        strings = frozenset(x for x in items if type(x) is str)

        def in_literal(d: Any) -> bool:
            x = needle(d)
            if type(x) is str:
                return x in strings
            return _strict_in(x, items)

        return in_literal
    haystack = _compile(literal)

    def in_(d: Any) -> bool:
        x = needle(d)
        seq = haystack(d)
        if type(seq) is not list:
            raise _Mismatch(f'right-hand side of an "in" operation must be an array: {_short(seq)}')
        return _strict_in(x, seq)

    return in_


def _compile_plus(values: list[Any]) -> Fn:
    a, b = (_compile(v) for v in values)

    def plus(d: Any) -> Any:
        x = a(d)
        y = b(d)
        if (type(x) is int and type(y) is int) or (_is_int(x) and _is_int(y)):
            return x + y
        raise _Mismatch(f'operands of "+" must both be integers: {_short(x)}, {_short(y)}')

    return plus


_INT_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y,
    ">": lambda x, y: x > y,
    "<=": lambda x, y: x <= y,
    ">=": lambda x, y: x >= y,
}
_DATE_TO_INT: dict[str, str] = {"before": "<", "after": ">", "not-after": "<=", "not-before": ">="}


def _compile_comparison(op: str) -> Callable[[list[Any]], Fn]:
    test = _INT_TESTS[op]

    def build(values: list[Any]) -> Fn:
        fns = [_compile(v) for v in values]

        def ints(d: Any) -> list[Any]:
            args = [f(d) for f in fns]  # all operands evaluated, as the reference does
            for x in args:
                if type(x) is not int and not _is_int(x):
                    raise _Mismatch(f'operands of "{op}" must be integers: {_short(x)}')
            return args

        if len(fns) == 2:

            def cmp2(d: Any) -> bool:
                x, y = ints(d)
                return test(x, y)

            return cmp2

        def cmp3(d: Any) -> bool:
            x, y, z = ints(d)
            return test(x, y) and test(y, z)

        return cmp3

    return build


def _compile_date_comparison(op: str) -> Callable[[list[Any]], Fn]:
    test = _INT_TESTS[_DATE_TO_INT[op]]

    def build(values: list[Any]) -> Fn:
        fns = [_compile(v) for v in values]

        def mismatch(x: Any) -> _Mismatch:
            return _Mismatch(f'operands of "{op}" must be date-times: {_short(x)}')

        if len(fns) == 2:
            fa, fb = fns

            def cmp2(d: Any) -> bool:
                x = fa(d)
                y = fb(d)
                if type(x) is not DateTime:
                    raise mismatch(x)
                if type(y) is not DateTime:
                    raise mismatch(y)
                return test(x.ms, y.ms)

            return cmp2

        def cmp3(d: Any) -> bool:
            args = [f(d) for f in fns]
            for x in args:
                if type(x) is not DateTime:
                    raise mismatch(x)
            x, y, z = args
            return test(x.ms, y.ms) and test(y.ms, z.ms)

        return cmp3

    return build


def _compile_plus_time(values: list[Any]) -> Fn:
    operand = _compile(values[0])
    amount = int(values[1])
    unit: str = values[2]

    def plus_time(d: Any) -> DateTime:
        s = operand(d)
        if type(s) is not str:
            raise _Mismatch(f'date argument of "plusTime" must be a string: {_short(s)}')
        try:
            return _plus_time(s, amount, unit)
        except (ValueError, OverflowError) as exc:
            raise _Mismatch(str(exc)) from None

    return plus_time


def _compile_dob(values: list[Any]) -> Fn:
    (operand,) = (_compile(v) for v in values)

    def dob(d: Any) -> DateTime:
        s = operand(d)
        if type(s) is not str:
            raise _Mismatch(f'operand of "dccDateOfBirth" must be a string: {_short(s)}')
        try:
            return _dcc_dob(s)
        except (ValueError, OverflowError) as exc:
            raise _Mismatch(str(exc)) from None

    return dob


_UVCI_SPLIT = re.compile(r"[/#:]")


def _compile_extract_uvci(values: list[Any]) -> Fn:
    operand = _compile(values[0])
    index = int(values[1])

    def extract(d: Any) -> str | None:
        s = operand(d)
        if s is None:
            return None
        if type(s) is not str:
            raise _Mismatch(f'operand of "extractFromUVCI" must be a string or null: {_short(s)}')
        if index < 0:
            return None
        if s.startswith("URN:UVCI:"):
            s = s[9:]
        fragments = _UVCI_SPLIT.split(s)
        return fragments[index] if index < len(fragments) else None

    return extract


def _compile_reduce(values: list[Any]) -> Fn:
    operand, lambda_, initial = (_compile(v) for v in values)

    def reduce(d: Any) -> Any:
        items = operand(d)
        if items is None:
            return initial(d)
        if type(items) is not list:
            raise _Mismatch(f'operand of "reduce" must be an array or null: {_short(items)}')
        acc = initial(d)
        for current in items:
            acc = lambda_({"current": current, "accumulator": acc, "data": d})
        return acc

    return reduce


_COMPILERS: dict[str, Callable[[list[Any]], Fn]] = {
    "if": _compile_if,
    "and": _compile_and,
    "or": _compile_or,
    "!": _compile_not,
    "===": _compile_eq,
    "!==": _compile_neq,
    "in": _compile_in,
    "+": _compile_plus,
    **{op: _compile_comparison(op) for op in _COMPARISONS},
    **{op: _compile_date_comparison(op) for op in _DATE_COMPARISONS},
    "plusTime": _compile_plus_time,
    "dccDateOfBirth": _compile_dob,
    "extractFromUVCI": _compile_extract_uvci,
    "reduce": _compile_reduce,
}


def iter_var_paths(expr: Any) -> Iterator[str]:
    """Every ``var`` path an expression reads (for AffectedFields checks and tooling)."""
    if type(expr) is list:
        for item in expr:
            yield from iter_var_paths(item)
    elif type(expr) is dict:
        for op, values in expr.items():
            if op == "var" and type(values) is str:
                yield values
            else:
                yield from iter_var_paths(values)
