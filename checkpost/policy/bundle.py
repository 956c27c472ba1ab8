"""The policy bundle: parameters + rule sets + value sets, versioned by content and signed.

Rules change weekly (48 h becomes 72 h, a district adds a second test); a change is a new
bundle that the hub pushes and every unit applies atomically, not a software release. A
bundle is built from a parameters file (`default.toml`) and rule files in the EU gateway
format (`rules/*.json`, CertLogic `Logic`), plus two fields of ours per rule:

- `Verdict`: what failing the rule means — `FAIL`, `REVIEW` or `REMEASURE` (or `IGNORE`,
  which switches the rule off);
- `Reason`: the stable reason code reported with the rule's `Description` (en, zh);
- optionally `Enabled`.

Rule text may name parameters as `${section.key}` or `${section.key|filter}`; they are
substituted when the bundle is compiled — CertLogic wants literals in places such as
`plusTime`'s amount, and a literal costs nothing per scan. Filters convert units, because
CertLogic compares integers only: `int`, `x10` (°C → tenths), `h2s` (hours → seconds),
`d2s` (days → seconds), `inclusive` (a day count whose last day still counts: n + 1).
Descriptions may also hold `{temp}`, filled with the reading at decision time.

A bundle's version is the SHA-256 of its canonical JSON (parameters, rules, value sets):
two units showing the same version decide alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from checkpost.config import ConfigError
from checkpost.policy.model import Parameters, load_parameters
from checkpost.rules.fused import FusedRules
from checkpost.signed import SignatureError, canonical, sign_document, verify_document

FORMAT = "checkpost-policy/1"
POLICY_TYPES = ("HP1", "SR1", "Temperature", "General", "Vaccination", "Test", "Recovery")
VERDICTS = ("FAIL", "REVIEW", "REMEASURE")
_PARAM = re.compile(r"\$\{([a-z_][a-z0-9_.]*)(?:\|([a-z0-9_]+))?\}")
_FILTERS = {
    "int": lambda v: round(v),
    "x10": lambda v: round(v * 10),
    "h2s": lambda v: round(v * 3600),
    "d2s": lambda v: round(v * 86400),
    "inclusive": lambda v: round(v) + 1,
}


class PolicyError(ValueError):
    """A policy bundle or one of its rules is invalid; the message names what and where."""


def _lookup(params: Mapping[str, Any], path: str) -> Any:
    value: Any = params
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise PolicyError(f"unknown parameter ${{{path}}}")
        value = value[part]
    return value


def _value(params: Mapping[str, Any], path: str, flt: str | None) -> Any:
    value = _lookup(params, path)
    if flt is None:
        return value
    if flt not in _FILTERS:
        raise PolicyError(f"unknown filter |{flt} in ${{{path}|{flt}}}")
    return _FILTERS[flt](value)


def substitute(node: Any, params: Mapping[str, Any]) -> Any:
    """Replace `${…}` in a rule document: a whole-string reference becomes the typed value."""
    if isinstance(node, dict):
        return {k: substitute(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, params) for v in node]
    if isinstance(node, str) and "${" in node:
        whole = _PARAM.fullmatch(node)
        if whole:
            return _value(params, whole[1], whole[2])

        def text(m: re.Match[str]) -> str:
            v = _value(params, m[1], m[2])
            return f"{v:g}" if isinstance(v, float) else str(v)

        return _PARAM.sub(text, node)
    return node


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A compiled rule and what its failure means."""

    rule: Any  # checkpost.rules.eu.Rule
    verdict: str
    reason: str
    en: str
    zh: str


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "ignore")
    return bool(value)


def compile_rules(docs: Iterable[Mapping[str, Any]], params: Mapping[str, Any]) -> list[PolicyRule]:
    from checkpost.rules.eu import Rule, RuleError

    out: list[PolicyRule] = []
    for doc in docs:
        ident = str(doc.get("Identifier", "<rule>"))
        try:
            resolved = substitute(dict(doc), params)
        except PolicyError as exc:
            raise PolicyError(f"rule {ident}: {exc}") from None
        if not _enabled(resolved.get("Enabled", True)):
            continue
        verdict = str(resolved.get("Verdict", "FAIL")).upper()
        if verdict == "IGNORE":
            continue
        if verdict not in VERDICTS:
            raise PolicyError(
                f"rule {ident}: Verdict {verdict!r} is not one of {VERDICTS} or IGNORE"
            )
        try:
            rule = Rule.from_json(resolved, extensions=True, certificate_types=POLICY_TYPES)
        except RuleError as exc:
            raise PolicyError(str(exc)) from None
        out.append(
            PolicyRule(
                rule=rule,
                verdict=verdict,
                reason=str(resolved.get("Reason") or ident),
                en=rule.description("en"),
                zh=rule.description("zh"),
            )
        )
    return out


def default_rule_docs() -> list[dict[str, Any]]:
    folder = resources.files("checkpost.policy").joinpath("rules")
    docs: list[dict[str, Any]] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            loaded = json.loads(item.read_text("utf-8"))
            docs.extend(loaded if isinstance(loaded, list) else [loaded])
    return docs


def read_rule_docs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rule documents from files or folders: a file may hold one rule or a list of rules;
    folders are searched for `*.json` except `tests/` (the EU layout keeps tests beside)."""
    docs: list[dict[str, Any]] = []
    for path in map(Path, paths):
        files = (
            [path]
            if path.is_file()
            else sorted(
                p for p in path.rglob("*.json") if "tests" not in p.parts[len(path.parts) :]
            )
        )
        for f in files:
            try:
                loaded = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise PolicyError(f"{f}: cannot read rule file: {exc}") from None
            items = loaded if isinstance(loaded, list) else [loaded]
            docs.extend(i for i in items if isinstance(i, dict) and "Logic" in i)
    return docs


def _read_eu_rule_docs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """EU gateway layout: one `rule.json` per rule folder (other files there are not rules)."""
    from checkpost.rules.eu import find_rule_files

    paths = list(paths)
    return read_rule_docs(find_rule_files(*paths)) if paths else []


class Policy:
    """A compiled policy bundle. Immutable once built; share it between threads.

    Section attributes (`clock`, `checkpoint`, `temperature`, `hc1`, `sampling`, `codes`)
    are the parameters', so callers read `policy.sampling.pool_sizes` directly.
    """

    def __init__(
        self,
        params: Parameters,
        rule_docs: list[dict[str, Any]],
        value_sets: dict[str, Any] | None = None,
        eu_rule_docs: list[dict[str, Any]] | None = None,
        issued_at: str = "",
    ) -> None:
        self.params = params
        self.rule_docs = rule_docs
        self.value_sets = value_sets or {}
        self.eu_rule_docs = eu_rule_docs or []
        self.issued_at = issued_at
        self.name = params.name
        builtins = msgspec.to_builtins(params)
        self.rules: dict[str, list[PolicyRule]] = {}
        for pr in compile_rules(rule_docs, builtins):
            self.rules.setdefault(pr.rule.certificate_type, []).append(pr)
        # Per certificate type, all rules fused into one generated function (rules/fused.py).
        self.fused: dict[str, FusedRules] = {
            kind: FusedRules([pr.rule.logic for pr in rules]) for kind, rules in self.rules.items()
        }
        self._combined: dict[tuple[str, ...], tuple[FusedRules, list[PolicyRule]]] = {}
        self.eu_rules: Any = None
        if self.eu_rule_docs:
            from checkpost.rules.eu import RuleError, RuleSet

            try:
                self.eu_rules = RuleSet.from_documents(self.eu_rule_docs)
            except RuleError as exc:
                raise PolicyError(f"EU rules: {exc}") from None
        self.version = hashlib.sha256(canonical(self.content())).hexdigest()[:12]

    def content(self) -> dict[str, Any]:
        """What the version hashes and the signature covers (issue time aside)."""
        return {
            "format": FORMAT,
            "parameters": msgspec.to_builtins(self.params),
            "rules": self.rule_docs,
            "eu_rules": self.eu_rule_docs,
            "value_sets": self.value_sets,
        }

    def __getattr__(self, name: str) -> Any:
        if name in ("clock", "checkpoint", "temperature", "hc1", "sampling", "codes"):
            return getattr(self.params, name)
        raise AttributeError(name)

    def combined(self, kinds: tuple[str, ...]) -> tuple[FusedRules, list[PolicyRule]]:
        """The rules of several certificate types fused into one function, for a scan that
        all of them judge at once (an HP1 pass and the temperature taken with it): one call
        instead of one per type. Built on first use per combination, then reused."""
        hit = self._combined.get(kinds)
        if hit is None:
            rules = [pr for kind in kinds for pr in self.rules.get(kind, ())]
            hit = self._combined[kinds] = (FusedRules([pr.rule.logic for pr in rules]), rules)
        return hit

    def rules_for(self, certificate_type: str) -> list[PolicyRule]:
        return self.rules.get(certificate_type, [])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "issued_at": self.issued_at,
            "rules": {k: [r.rule.identifier for r in v] for k, v in sorted(self.rules.items())},
            "eu_rules": len(self.eu_rule_docs),
            "value_sets": sorted(self.value_sets),
        }


def build_policy(
    params_path: str | Path | None = None,
    *,
    rule_paths: Iterable[str | Path] = (),
    eu_rule_paths: Iterable[str | Path] = (),
    value_sets_path: str | Path | None = None,
    with_default_rules: bool = True,
) -> Policy:
    params = load_parameters(params_path)
    base = Path(params_path).parent if params_path else Path.cwd()
    docs = default_rule_docs() if with_default_rules else []
    extra = [base / d for d in params.rule_dirs] + [Path(p) for p in rule_paths]
    docs += read_rule_docs(extra)
    eu_docs = _read_eu_rule_docs(eu_rule_paths)
    value_sets: dict[str, Any] = {}
    if value_sets_path:
        from checkpost.rules.eu import load_value_sets

        value_sets = load_value_sets(value_sets_path)
    if params.hc1.accept_country and not any(
        str(d.get("Country", "")).upper() == params.hc1.accept_country for d in eu_docs
    ):
        raise PolicyError(
            f"hc1.accept_country = {params.hc1.accept_country!r} but the bundle holds no EU "
            "rules of that country (pass --eu-rules)"
        )
    return Policy(params, docs, value_sets, eu_docs)


def sign_policy(policy: Policy, signer: Any) -> dict[str, Any]:
    body = dict(policy.content())
    body["issued_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["name"] = policy.name
    body["version"] = policy.version
    return sign_document(body, signer, body_key="policy")


def policy_from_body(body: Mapping[str, Any]) -> Policy:
    from checkpost.config import convert

    params = convert(dict(body.get("parameters") or {}), Parameters, source="bundle parameters")
    policy = Policy(
        params,
        list(body.get("rules") or []),
        dict(body.get("value_sets") or {}),
        list(body.get("eu_rules") or []),
        str(body.get("issued_at", "")),
    )
    claimed = body.get("version")
    if claimed and claimed != policy.version:
        raise PolicyError(
            f"bundle claims version {claimed} but its content hashes to {policy.version}"
        )
    return policy


def verify_policy_document(doc: Any, signer_keys: Iterable[Any]) -> Policy:
    try:
        body = verify_document(
            doc, signer_keys, body_key="policy", format=FORMAT, what="policy bundle"
        )
    except SignatureError as exc:
        raise PolicyError(str(exc)) from None
    return policy_from_body(body)


def load_policy(
    path: str | Path | None = None, *, signer_keys: Iterable[Any] | None = None
) -> Policy:
    """A policy from a parameters TOML file (with the built-in rules), from a signed bundle
    (JSON; checked against `signer_keys`), or the built-in default when `path` is None."""
    if path is None or not str(path).endswith(".json"):
        return build_policy(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), [f"cannot read policy bundle: {exc}"]) from None
    if not signer_keys:
        raise PolicyError(
            f"{path}: a policy bundle is only accepted with its signing key "
            "(set [policy] signer_keys or pass --policy-key PEM)"
        )
    return verify_policy_document(doc, signer_keys)
