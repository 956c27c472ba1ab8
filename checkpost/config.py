"""One loader for every TOML file checkpost reads (station and hub config, policies).

Files are parsed with `tomllib` and converted into msgspec structs that forbid unknown keys.
An error names the file, the line, the key path and the offending value, and every
top-level section is checked so that one run reports all broken sections at once — a unit
that refuses to start at 3 a.m. must say exactly which line to fix.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_PATH_IN_MSG = re.compile(r"at `\$((?:\.[A-Za-z0-9_-]+|\[\d+\])*)`")


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; `problems` lists every finding."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _line_of(text: str, path: list[str]) -> int | None:
    """Best-effort line number of a dotted key path in TOML text (tables and keys)."""
    if not path:
        return None
    lines = text.splitlines()
    start = 0
    keys = [p for p in path if not p.startswith("[")]
    # Find the deepest table header that matches a prefix of the path, then the key below it.
    for depth in range(len(keys) - 1, 0, -1):
        header = re.compile(
            r"^\s*\[+\s*" + r"\s*\.\s*".join(map(re.escape, keys[:depth])) + r"\s*\]+"
        )
        for i, line in enumerate(lines):
            if header.match(line):
                start = i
                keys = keys[depth:]
                break
        else:
            continue
        break
    key = re.compile(r"^\s*(\[+\s*)?" + re.escape(keys[0]) + r"\s*(=|\.|\])")
    for i in range(start, len(lines)):
        if key.match(lines[i]):
            return i + 1
    return start + 1 if start else None


def _split_path(dotted: str) -> list[str]:
    return [p for p in re.split(r"\.|(\[\d+\])", dotted) if p]


def convert(data: dict[str, Any], cls: type[T], *, source: str = "<config>", text: str = "") -> T:
    """Validate `data` against `cls`, reporting every broken top-level section."""
    problems: list[str] = []
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            line = _line_of(text, [key])
            where = f"line {line}: " if line else ""
            problems.append(
                f"{where}{key}: unknown key (expected one of {', '.join(sorted(fields))})"
            )
    for name, f in fields.items():
        if name not in data:
            continue
        try:
            msgspec.convert(data[name], f.type, strict=True)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            m = _PATH_IN_MSG.search(msg)
            sub = _split_path(m.group(1)) if m else []
            path = [name, *sub]
            unknown = re.search(r"unknown field `([^`]+)`", msg)
            if unknown:
                path.append(unknown.group(1))
            line = _line_of(text, path)
            where = f"line {line}: " if line else ""
            detail = _PATH_IN_MSG.sub("", msg).rstrip(" -")
            value = _lookup(data, path)
            shown = f" (got {value!r})" if value is not _MISSING else ""
            problems.append(f"{where}{'.'.join(path)}: {detail}{shown}")
    if problems:
        raise ConfigError(source, problems)
    try:
        return msgspec.convert(data, cls, strict=True)
    except msgspec.ValidationError as exc:  # cross-field problems msgspec finds at the top
        raise ConfigError(source, [str(exc)]) from None


_MISSING = object()


def _lookup(data: Any, path: list[str]) -> Any:
    for p in path:
        if p.startswith("[") and isinstance(data, list):
            i = int(p[1:-1])
            data = data[i] if i < len(data) else _MISSING
        elif isinstance(data, dict) and p in data:
            data = data[p]
        else:
            return _MISSING
        if data is _MISSING:
            return data
    return data


def load_toml(path: str | Path, cls: type[T]) -> T:
    """Read and validate a TOML file into `cls`; raise ConfigError with precise findings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    return loads_toml(text, cls, source=str(path))


def loads_toml(text: str, cls: type[T], *, source: str = "<config>") -> T:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return convert(data, cls, source=source, text=text)
