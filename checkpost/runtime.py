"""Builds a ready Verifier and Policy from settings and command-line overrides.

One place turns configuration into the objects that decide: `checkpost verify`, the demo,
the benchmarks, the stations and the hub all go through `build_context`, so they cannot
disagree on how a trust list is checked or which schemas apply.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from checkpost.codes import CodePatterns, Verifier
from checkpost.codes.dcc import SchemaStore
from checkpost.codes.trust import (
    TrustEntry,
    TrustListError,
    TrustStore,
    load_public_key,
    load_trust_list,
)
from checkpost.policy import Policy, load_policy
from checkpost.settings import CoreSettings, dev_schema_dirs


@dataclass(slots=True)
class Context:
    verifier: Verifier
    policy: Policy
    trust: TrustStore


def build_context(
    settings: CoreSettings | None = None,
    *,
    trust_file: str | None = None,
    trust_keys: list[str] | None = None,
    accept_demo: bool | None = None,
    certs_b64: list[str] | None = None,
    policy_file: str | None = None,
    policy_keys: list[str] | None = None,
    issuer_dir: str | None = None,
    base: Path | None = None,
) -> Context:
    """Raise ValueError (TrustListError, ConfigError, PolicyError) with a clear message."""
    s = settings or CoreSettings()
    base = base or Path.cwd()

    def rel(p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else base / path

    policy_path = policy_file or (str(rel(s.policy.file)) if s.policy.file else None)
    signer_paths = list(policy_keys or []) or [str(rel(k)) for k in s.policy.signer_keys]
    policy = load_policy(policy_path, signer_keys=[load_public_key(k) for k in signer_paths])
    demo = s.trust.accept_demo if accept_demo is None else accept_demo

    store = TrustStore(accept_demo=demo)
    if issuer_dir is not None:
        from checkpost.issuer import TestIssuer

        store = TestIssuer.load(issuer_dir).trust_store(accept_demo=True)
    list_path = trust_file or (str(rel(s.trust.file)) if s.trust.file else None)
    if list_path is not None:
        key_paths = trust_keys if trust_keys else [str(rel(k)) for k in s.trust.signer_keys]
        if not key_paths:
            raise TrustListError(
                f"{list_path}: no trust-list signing key configured "
                "(set [trust] signer_keys or pass --trust-key PEM)"
            )
        keys = [load_public_key(k) for k in key_paths]
        store = store.merged(load_trust_list(list_path, keys, accept_demo=demo))
    for i, b64 in enumerate(certs_b64 or []):
        try:
            der = base64.b64decode(b64, validate=False)
        except ValueError as exc:
            raise TrustListError(f"--cert #{i + 1}: not base64: {exc}") from None
        store.add(TrustEntry.from_certificate(der))

    schema_dirs = [rel(d) for d in s.hc1.schema_dirs] or dev_schema_dirs()
    verifier = Verifier(
        store,
        schemas=SchemaStore(schema_dirs),
        patterns=CodePatterns(tuple(policy.codes.tube_patterns), tuple(policy.codes.box_patterns)),
        skew=policy.clock.skew_seconds,
        hp1_max_age=policy.checkpoint.hp1_max_age_seconds,
    )
    return Context(verifier, policy, store)
