"""A rule list fused into one generated Python function: policy rules at a fraction of a µs.

The closure compiler (`certlogic.compile_expression`) costs a Python call per node; our
checkpoint bundle evaluated that way took ~14 µs per scan — more than the whole envelope
around the signature check. Here every rule of a list becomes one Python *expression*, all
of them inside one function that returns the rules that did not pass:

- each distinct `var` path the rules read is looked up once, inline at the top, into a
  local (shared prefixes walked once);
- the hot operations (`===`, `!`, `if`, `and`, `in` on a literal array, integer comparisons,
  `+`) are inlined with exactly the strict semantics of `certlogic` (its own helpers are
  called where an inline form would not be exact);
- every other node (`reduce`, date-times, `extractFromUVCI`, …) is delegated to the closure
  compiler's function for that subtree, so nothing is re-implemented twice.

Each rule runs in its own try block: a spec error becomes a `Failure` for that rule only.
Equivalence with the closure compiler is tested on every EU rule and random data
(`tests/rules/test_fused.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from checkpost.rules import certlogic as cl

# Outcome of one rule that did not pass: (index in the list, value it evaluated to).
Miss = tuple[int, Any]


def _is_name(src: str) -> bool:
    return src.isidentifier()


_METHODS = {
    "===": "op_eq",
    "!": "op_not",
    "if": "op_if",
    "and": "op_and",
    "in": "op_in",
    "<": "op_cmp",
    ">": "op_cmp",
    "<=": "op_cmp",
    ">=": "op_cmp",
    "+": "op_plus",
}
_TRUTH = "({n} is True or ({n} is not False and {n} is not None and _truth({n})))"


def _raise(exc: Exception) -> None:
    raise exc


def _step(value: Any, key: str, index: int) -> Any:
    """One fragment of a `var` path on anything but a plain dict (`certlogic` semantics: a
    mapping gives its key, a list its index when the fragment is one, all else null)."""
    if isinstance(value, dict):
        return value.get(key)
    if type(value) is list and 0 <= index < len(value):
        return value[index]
    return None


def _var_lines(paths: dict[str, str]) -> list[str]:
    """Every `var` the rules read, looked up inline at the top of the function: a shared
    prefix ("payload" of "payload.t.0.tt" and "payload.t.0.sc") is walked once, and a plain
    dict costs one `.get` rather than a call. Fragments are `[A-Za-z0-9_-]+` (validated),
    embedded with `repr`."""
    lines: list[str] = []
    seen: dict[str, str] = {"": "d"}
    for path, name in paths.items():
        src = "d"
        frags = path.split(".") if path else []
        for i in range(len(frags)):
            prefix = ".".join(frags[: i + 1])
            if prefix not in seen:
                local = name if i == len(frags) - 1 else f"_p{len(seen)}"
                frag = frags[i]
                index = int(frag) if frag.isdigit() else -1
                lines.append(
                    f"    {local} = {src}.get({frag!r}) if type({src}) is dict "
                    f"else _step({src}, {frag!r}, {index})"
                )
                seen[prefix] = local
            src = seen[prefix]
        if src != name:
            lines.append(f"    {name} = {src}")
    return lines


class _Gen:
    """Translates CertLogic nodes to Python expression source."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {
            "_eq": cl._strict_eq,
            "_truth": cl._truth,
            "_is_int": cl._is_int,
            "_in": cl._strict_in,
            "_raise": _raise,
            "_Mismatch": cl._Mismatch,
        }
        self.vars: dict[str, str] = {}  # path -> local name
        self.bools: set[str] = set()  # generated sources that always evaluate to a bool
        self._n = 0

    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, value: Any, prefix: str = "K") -> str:
        name = self.fresh(prefix)
        self.consts[name] = value
        return name

    def expr(self, node: Any) -> str:
        t = type(node)
        if t is float:
            return repr(int(node))
        if t is bool:
            self.bools.add(repr(node))
            return repr(node)
        if t in (int, str) or node is None:
            return repr(node)
        if t is list:
            return "[" + ", ".join(self.expr(x) for x in node) + "]"
        op, values = next(iter(node.items()))
        if op == "var":
            return self.var(values)
        method = _METHODS.get(op)
        if method is None:
            return self.delegate(node)
        src = str(getattr(self, method)(op, values))
        if method in ("op_eq", "op_not", "op_in", "op_cmp"):
            self.bools.add(src)
        return src

    def var(self, path: str) -> str:
        if path not in self.vars:
            self.vars[path] = self.fresh("v")
        return self.vars[path]

    def delegate(self, node: Any) -> str:
        return f"{self.const(cl._compile(node), 'C')}(d)"

    def bind(self, src: str) -> tuple[str, str]:
        """(name, prefix): evaluate `src` once into a name usable several times; prefix is
        tuple items to put before the expression that uses the name."""
        if _is_name(src):
            return src, ""
        name = self.fresh("t")
        return name, f"({name} := {src}), "

    def truth(self, src: str) -> str:
        if src in self.bools:
            return src
        name, pre = self.bind(src)
        test = _TRUTH.format(n=name)
        return f"({pre}{test})[-1]" if pre else test

    # -- operations ----------------------------------------------------------------------

    def op_eq(self, op: str, values: list[Any]) -> str:
        a, b = values
        lit, other = (a, b) if type(a) in (str, int) else (b, a)
        if type(lit) in (str, int) and type(other) not in (str, int, bool, float):
            name, pre = self.bind(self.expr(other))
            if type(lit) is str:
                test = f"(type({name}) is str and {name} == {lit!r})"
            else:
                test = f"((type({name}) is int or type({name}) is float) and {name} == {lit!r})"
            return f"({pre}{test})[-1]" if pre else test
        return f"_eq({self.expr(a)}, {self.expr(b)})"

    def op_not(self, op: str, values: list[Any]) -> str:
        return f"(not {self.truth(self.expr(values[0]))})"

    def op_if(self, op: str, values: list[Any]) -> str:
        guard, then, else_ = (self.expr(v) for v in values)
        src = f"({then} if {self.truth(guard)} else {else_})"
        if then in self.bools and else_ in self.bools:
            self.bools.add(src)
        return src

    def op_and(self, op: str, values: list[Any]) -> str:
        parts = [self.expr(v) for v in values]
        if all(src in self.bools for src in parts):
            src = "(" + " and ".join(parts) + ")"
            self.bools.add(src)
            return src
        out = parts[-1]
        for src in reversed(parts[:-1]):
            name = self.fresh("a")
            out = f"({out} if (({name} := {src}), {_TRUTH.format(n=name)})[-1] else {name})"
        return out

    def op_in(self, op: str, values: list[Any]) -> str:
        needle, literal = values
        if type(literal) is list and literal and all(type(x) is str for x in literal):
            strings = self.const(frozenset(literal), "S")
            name, pre = self.bind(self.expr(needle))
            test = f"(type({name}) is str and {name} in {strings})"
            return f"({pre}{test})[-1]" if pre else test
        return self.delegate({"in": values})

    def _int_operands(self, op: str, values: list[Any]) -> tuple[list[str], str]:
        """Operands bound to names or int literals, and the prefix that checks they are
        integers (raising the same mismatch as the closure compiler)."""
        names, pres, checks = [], [], []
        for v in values:
            if type(v) is int:
                names.append(repr(v))
                continue
            name, pre = self.bind(self.expr(v))
            names.append(name)
            pres.append(pre)
            checks.append(f"(type({name}) is int or _is_int({name}))")
        error = self.const(cl._Mismatch(f'operands of "{op}" must be integers'), "E")
        guard = f"(None if {' and '.join(checks)} else _raise({error})), " if checks else ""
        return names, "".join(pres) + guard

    def op_cmp(self, op: str, values: list[Any]) -> str:
        names, pre = self._int_operands(op, values)
        chain = f" {op} ".join(names)
        return f"({pre}{chain})[-1]" if pre else f"({chain})"

    def op_plus(self, op: str, values: list[Any]) -> str:
        names, pre = self._int_operands(op, values)
        return f"({pre}{names[0]} + {names[1]})[-1]" if pre else f"({names[0]} + {names[1]})"


class FusedRules:
    """All rules of one list evaluated by a single generated function.

    `misses(data)` returns `[(index, value), …]` for every rule whose value is not truthy
    (falsy, a `Failure`, or neither), in list order.
    """

    def __init__(self, expressions: Sequence[Any]) -> None:
        gen = _Gen()
        bodies = []
        for i, expr in enumerate(expressions):
            src = gen.expr(expr)
            bodies.append(
                f"    try:\n        r = {src}\n"
                "    except _Mismatch as e:\n        r = _Failure(str(e))\n"
                "    except Exception as e:\n"
                "        r = _Failure(_INTERNAL + type(e).__name__ + ': ' + str(e))\n"
                f"    if r is not True and not _truthy(r):\n        out.append(({i}, r))"
            )
        head = _var_lines(gen.vars)
        source = "def misses(d):\n    out = []\n" + "\n".join(head + bodies) + "\n    return out\n"
        namespace: dict[str, Any] = dict(gen.consts)
        namespace.update(
            _Failure=cl.Failure, _INTERNAL=cl.INTERNAL_ERROR, _truthy=cl.is_truthy, _step=_step
        )
        exec(compile(source, "<fused rules>", "exec"), namespace)  # our own generated source
        self.source = source
        self.misses: Callable[[Any], list[Miss]] = namespace["misses"]
        self.size = len(expressions)
