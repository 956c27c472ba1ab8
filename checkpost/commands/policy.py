"""`checkpost policy check|build|show|diff`: policy parameters, rules and signed bundles.

    checkpost policy check [FILE]                      validate parameters (and the rules)
    checkpost policy build [--params TOML] [--rules DIR]... [--eu-rules DIR]...
                           [--value-sets PATH] --sign KEY.pem --out BUNDLE.json
    checkpost policy show [FILE] [--policy-key PEM] [--json]
    checkpost policy diff OLD NEW [--policy-key PEM]

FILE is a parameters TOML (with the built-in rules) or a signed bundle (JSON). Changing 48 h
to 72 h is a new bundle, not a release: build it, and the hub pushes it to every unit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="policy parameters, rules and signed bundles")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    c = s.add_parser("check", help="validate a parameters file and its rules")
    c.add_argument("file", nargs="?")
    c.add_argument("--policy-key", action="append", default=[], metavar="PEM")
    c.set_defaults(func=run_check)
    b = s.add_parser("build", help="build and sign a policy bundle")
    b.add_argument("--params", metavar="TOML", help="parameters (default: built-in)")
    b.add_argument("--rules", action="append", default=[], metavar="DIR", help="extra rule files")
    b.add_argument("--no-default-rules", action="store_true", help="only the given --rules")
    b.add_argument("--eu-rules", action="append", default=[], metavar="DIR", help="EU rules")
    b.add_argument("--value-sets", metavar="PATH", help="EU value sets (file or folder)")
    b.add_argument("--sign", required=True, metavar="PEM", help="policy signing private key")
    b.add_argument("--out", required=True, metavar="FILE")
    b.set_defaults(func=run_build)
    sh = s.add_parser("show", help="show a policy (default: the built-in one) and its version")
    sh.add_argument("file", nargs="?")
    sh.add_argument("--policy-key", action="append", default=[], metavar="PEM")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=run_show)
    d = s.add_parser("diff", help="what changed between two policies")
    d.add_argument("old")
    d.add_argument("new")
    d.add_argument("--policy-key", action="append", default=[], metavar="PEM")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_diff)


def _load(path: str | None, keys: list[str]) -> Any:
    """A Policy, or None after printing the error."""
    from checkpost.codes.trust import TrustListError, load_public_key
    from checkpost.config import ConfigError
    from checkpost.policy import PolicyError, load_policy
    from checkpost.policy.bundle import FORMAT, policy_from_body

    try:
        if path and path.endswith(".json") and not keys:
            # Showing without a key is allowed, and says the signature was not checked.
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            body = doc.get("policy") if isinstance(doc, dict) else None
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise PolicyError(f"{path}: not a checkpost policy bundle")
            policy = policy_from_body(body)
            policy.signature_checked = False
            return policy
        policy = load_policy(path, signer_keys=[load_public_key(k) for k in keys])
        policy.signature_checked = bool(path and path.endswith(".json"))
        return policy
    except (ConfigError, PolicyError, TrustListError, OSError, ValueError) as exc:
        print(f"checkpost policy: {exc}", file=sys.stderr)
        return None


def run_check(args: argparse.Namespace) -> int:
    policy = _load(args.file, args.policy_key)
    if policy is None:
        return 1
    count = sum(len(v) for v in policy.rules.values())
    print(
        f"{args.file or 'built-in policy'}: valid — policy {policy.name!r} version "
        f"{policy.version}, {count} rules"
    )
    return 0


def run_build(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from checkpost.config import ConfigError
    from checkpost.policy import PolicyError, build_policy
    from checkpost.policy.bundle import sign_policy

    try:
        policy = build_policy(
            args.params,
            rule_paths=args.rules,
            eu_rule_paths=args.eu_rules,
            value_sets_path=args.value_sets,
            with_default_rules=not args.no_default_rules,
        )
        signer = serialization.load_pem_private_key(Path(args.sign).read_bytes(), password=None)
        doc = sign_policy(policy, signer)
    except (ConfigError, PolicyError, OSError, ValueError, TypeError) as exc:
        print(f"checkpost policy build: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    count = sum(len(v) for v in policy.rules.values())
    print(
        f"wrote {out}: policy {policy.name!r} version {policy.version}, {count} rules, "
        f"{len(policy.eu_rule_docs)} EU rules, {len(policy.value_sets)} value sets"
    )
    return 0


def _describe(policy: Any) -> dict[str, Any]:
    import msgspec

    return {
        "name": policy.name,
        "version": policy.version,
        "issued_at": policy.issued_at,
        "signature_checked": getattr(policy, "signature_checked", False),
        "parameters": msgspec.to_builtins(policy.params),
        "rules": [
            {
                "id": pr.rule.identifier,
                "type": pr.rule.certificate_type,
                "verdict": pr.verdict,
                "reason": pr.reason,
                "en": pr.en,
                "zh": pr.zh,
            }
            for kind in sorted(policy.rules)
            for pr in policy.rules[kind]
        ],
        "eu_rules": len(policy.eu_rule_docs),
    }


def run_show(args: argparse.Namespace) -> int:
    policy = _load(args.file, args.policy_key)
    if policy is None:
        return 1
    info = _describe(policy)
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    signed = ""
    if args.file and args.file.endswith(".json"):
        signed = (
            ", signature verified"
            if info["signature_checked"]
            else (", signature NOT checked (pass --policy-key)")
        )
    print(f"policy {policy.name!r} version {policy.version}{signed}")
    for section, values in info["parameters"].items():
        if isinstance(values, dict):
            print(f"  [{section}] " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(f"  rules ({len(info['rules'])}):")
    for r in info["rules"]:
        print(f"    {r['id']:<12} {r['type']:<12} {r['verdict']:<9} {r['en']} / {r['zh']}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    old = _load(args.old, args.policy_key)
    new = _load(args.new, args.policy_key)
    if old is None or new is None:
        return 2
    a, b = _describe(old), _describe(new)
    changes: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y:
            changes.append(f"parameter {path}: {x!r} -> {y!r}")

    walk(a["parameters"], b["parameters"], "")
    ra = {r["id"]: r for r in a["rules"]}
    rb = {r["id"]: r for r in b["rules"]}
    for rid in sorted(set(ra) | set(rb)):
        if rid not in rb:
            changes.append(f"rule {rid} removed")
        elif rid not in ra:
            changes.append(f"rule {rid} added: {rb[rid]['en']}")
        elif ra[rid] != rb[rid]:
            fields = [k for k in rb[rid] if ra[rid].get(k) != rb[rid][k]]
            changes.append(f"rule {rid} changed ({', '.join(fields)}): {rb[rid]['en']}")
    logic_changed = [
        d["Identifier"]
        for d in new.rule_docs
        if d not in old.rule_docs and d.get("Identifier") in ra and d.get("Identifier") in rb
    ]
    changes += [
        f"rule {rid} logic changed"
        for rid in logic_changed
        if f"rule {rid} changed" not in " ".join(changes)
    ]
    if args.json:
        print(
            json.dumps(
                {"old": a["version"], "new": b["version"], "changes": changes}, ensure_ascii=False
            )
        )
    else:
        print(f"policy {a['version']} -> {b['version']}: {len(changes)} change(s)")
        for c in changes:
            print(f"  {c}")
    return 0 if not changes else 1
