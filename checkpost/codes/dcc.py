"""EU Digital COVID Certificate (HC1) specifics: JSON schemas per release and key usage.

Schemas are read from a configured folder laid out as the EU publishes them
(`<semver>/DCC.combined-schema.json`, older releases `DGC.*`), never fetched: a unit in a
tunnel has no internet. Each release is compiled once, on first use, with jsonschema-rs
(Rust; 0.7 µs to validate a test certificate here, against 14-18 µs for fastjsonschema's
generated Python, whose `oneOf` raises and formats an exception per branch that does not
match: `checkpost bench verify` is where that shows). It runs offline: sibling schema files
are served from the same folder, and nothing is ever fetched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class SchemaStore:
    """DCC JSON schemas by release, compiled lazily and cached."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = [Path(f) for f in folders if Path(f).is_dir()]
        self._versions: dict[tuple[int, int, int], Path] = {}
        for folder in self.folders:
            for sub in folder.iterdir():
                m = _SEMVER.match(sub.name)
                if m and sub.is_dir():
                    self._versions.setdefault((int(m[1]), int(m[2]), int(m[3])), sub)
        self._compiled: dict[tuple[int, int, int], Any] = {}
        self._picked: dict[str, tuple[int, int, int] | None] = {}

    @property
    def available(self) -> bool:
        return bool(self._versions)

    def versions(self) -> list[str]:
        return [_name(v) for v in sorted(self._versions)]

    def pick(self, ver: Any) -> tuple[int, int, int] | None:
        """The release to validate `ver` against: exact, else newest of the same major.minor,
        else newest of the same major (later patch releases only loosen constraints)."""
        if isinstance(ver, str) and ver in self._picked:
            return self._picked[ver]
        picked = self._pick(ver)
        if isinstance(ver, str) and len(self._picked) < 256:  # a handful of releases exist
            self._picked[ver] = picked
        return picked

    def _pick(self, ver: Any) -> tuple[int, int, int] | None:
        m = _SEMVER.match(ver) if isinstance(ver, str) else None
        if not m:
            return None
        want = (int(m[1]), int(m[2]), int(m[3]))
        if want in self._versions:
            return want
        same_minor = [v for v in self._versions if v[:2] == want[:2]]
        if same_minor:
            return max(same_minor)
        same_major = [v for v in self._versions if v[0] == want[0] and v <= want]
        return max(same_major) if same_major else None

    def validate(self, dcc: Any) -> str | None:
        """None when valid, else a one-line reason."""
        if not isinstance(dcc, dict):
            return "payload is not a map"
        if not self._versions:
            return "no DCC schemas configured"
        version = self.pick(dcc.get("ver"))
        if version is None:
            return f"unknown schema version {dcc.get('ver')!r}"
        validator = self._compiled.get(version)
        if validator is None:
            try:
                validator = self._compile(self._versions[version])
            except Exception as exc:  # unreadable, malformed or not a valid schema
                # A broken release folder (the EU's own 0.1.0 has a malformed file) fails
                # the schema step of the codes that name it, with the reason; never a crash.
                validator = _Unusable(f"schema release {_name(version)} cannot be used: {exc}")
            self._compiled[version] = validator
        if isinstance(validator, _Unusable):
            return validator.problem[:200]
        try:
            if validator.is_valid(dcc):
                return None
            error = next(iter(validator.iter_errors(dcc)))
        except (ValueError, TypeError, OverflowError) as exc:  # not JSON data at all
            return f"payload is not JSON data: {exc}"[:200]
        where = "/".join(str(p) for p in error.instance_path)
        return f"{where or 'payload'}: {error.message}"[:200]

    @staticmethod
    def _compile(folder: Path) -> Any:
        import jsonschema_rs

        combined = sorted(folder.glob("D?C.combined-schema.json"))
        main = combined[0] if combined else next(iter(sorted(folder.glob("D?C.schema.json"))))
        docs = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}

        def local(uri: str) -> Any:
            # Older releases reference their sibling files by absolute URL: serve them locally.
            name = uri.rsplit("/", 1)[-1].split("#", 1)[0]
            if name in docs:
                return docs[name]
            raise ValueError(f"schema reference {uri} not found in {folder}")

        # JSON Schema 2020-12 makes `format` an annotation, not an assertion: the EU reference
        # validators accept e.g. a partial "dob" of "1963-00" under format "date".
        return jsonschema_rs.validator_for(docs[main.name], validate_formats=False, retriever=local)


class _Unusable:
    """A release whose schema files could not be loaded or compiled."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _name(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def dcc_type(dcc: Any) -> str | None:
    """'v', 't' or 'r': which kind of statement the certificate holds (exactly one)."""
    if not isinstance(dcc, dict):
        return None
    kinds = [k for k in ("v", "t", "r") if dcc.get(k)]
    return kinds[0] if len(kinds) == 1 else None


def certificate_ids(dcc: Any) -> list[str]:
    """The unique certificate identifiers (`ci`) of every entry, for revocation checks."""
    out: list[str] = []
    if isinstance(dcc, dict):
        for k in ("v", "t", "r"):
            for entry in dcc.get(k) or ():
                if isinstance(entry, dict) and isinstance(entry.get("ci"), str):
                    out.append(entry["ci"])
    return out
