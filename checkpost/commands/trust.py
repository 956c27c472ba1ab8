"""`checkpost trust build|show`: signed trust lists for units and the hub.

    checkpost trust build --sign SIGNER.pem --version N --out FILE
        [--key PEM[:KINDS]]... [--cert CERT[:KINDS]]... [--revoke-kid B64]... [--revoke-id ID]...
    checkpost trust show FILE [--trust-key PEM]... [--json]

A unit accepts only a list signed by its configured trust-list key; `show` checks that
signature when given the key and says so plainly when it was not checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trust", help="build and show signed trust lists")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    b = s.add_parser("build", help="build and sign a trust list")
    b.add_argument(
        "--sign", required=True, metavar="PEM", help="trust-list signing private key (PEM)"
    )
    b.add_argument("--version", required=True, type=int, help="list version (monotonic)")
    b.add_argument("--issuer-name", default="checkpost", help="who publishes the list")
    b.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PEM[:KINDS]",
        help="public key; KINDS e.g. HP1,SR1",
    )
    b.add_argument(
        "--cert",
        action="append",
        default=[],
        metavar="CERT[:KINDS]",
        help="signer certificate (PEM or DER)",
    )
    b.add_argument("--demo", action="store_true", help="mark the --key entries as demo keys")
    b.add_argument("--revoke-kid", action="append", default=[], metavar="B64")
    b.add_argument(
        "--revoke-id",
        action="append",
        default=[],
        metavar="ID",
        help="certificate id or sid; stored hashed",
    )
    b.add_argument("--out", required=True, metavar="FILE")
    b.set_defaults(func=run_build)
    sh = s.add_parser("show", help="show a trust list (and check its signature)")
    sh.add_argument("file")
    sh.add_argument("--trust-key", action="append", default=[], metavar="PEM")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=run_show)


def _split(spec: str) -> tuple[str, list[str]]:
    path, _, kinds = spec.partition(":")
    return path, [k.strip().upper() for k in kinds.split(",") if k.strip()]


def run_build(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from checkpost.codes.trust import (
        KINDS,
        TrustEntry,
        TrustListError,
        alg_of,
        build_trust_list,
        hashed_id,
        key_id,
        load_public_key,
        unb64,
    )

    try:
        signer = serialization.load_pem_private_key(Path(args.sign).read_bytes(), password=None)
        entries: list[TrustEntry] = []
        for spec in args.key:
            path, kinds = _split(spec)
            key = load_public_key(path)
            entries.append(
                TrustEntry(
                    key_id(key),
                    alg_of(key),
                    key,
                    issuer=args.issuer_name,
                    kinds=frozenset(kinds or KINDS),
                    demo=args.demo,
                )
            )
        for spec in args.cert:
            path, kinds = _split(spec)
            data = Path(path).read_bytes()
            der = (
                x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
                if b"BEGIN CERTIFICATE" in data
                else data
            )
            entries.append(TrustEntry.from_certificate(der, kinds=kinds or ("HC1",)))
        doc = build_trust_list(
            entries,
            signer,
            version=args.version,
            issuer=args.issuer_name,
            revoked_kids=[unb64(k) for k in args.revoke_kid],
            revoked_ids=[hashed_id(i) for i in args.revoke_id],
        )
    except (OSError, ValueError, TrustListError) as exc:
        print(f"checkpost trust build: {exc}", file=sys.stderr)
        return 2
    Path(args.out).write_text(
        json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(
        f"wrote {args.out}: version {args.version}, {len(entries)} keys, "
        f"{len(args.revoke_kid)} revoked kids, {len(args.revoke_id)} revoked ids"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from checkpost.codes.trust import (
        TrustListError,
        load_public_key,
        store_from_body,
        verify_trust_document,
    )

    try:
        doc = json.loads(Path(args.file).read_text(encoding="utf-8"))
        if args.trust_key:
            body = verify_trust_document(doc, [load_public_key(k) for k in args.trust_key])
            checked = "signature verified"
        else:
            body = doc["trust_list"]
            checked = "signature NOT checked (pass --trust-key)"
        store = store_from_body(body, accept_demo=True)
    except (OSError, ValueError, KeyError, TypeError, TrustListError) as exc:
        print(f"checkpost trust show: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, TrustListError) else 1
    entries = [
        {
            "kid": e.kid.hex(),
            "alg": e.alg,
            "issuer": e.issuer,
            "kinds": sorted(e.kinds),
            "demo": e.demo,
        }
        for e in store.entries()
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "version": store.version,
                    "issued_at": store.issued_at,
                    "issuer": store.issuer,
                    "signature": checked,
                    "keys": entries,
                    "revoked_kids": [k.hex() for k in store.revoked_kids],
                    "revoked_ids": len(store.revoked_ids),
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(
        f"trust list {args.file}: version {store.version}, "
        f"issued {store.issued_at} by {store.issuer}; {checked}"
    )
    for e in entries:
        print(
            f"  {e['kid']}  {e['alg']:<6} {','.join(e['kinds']):<12} "
            f"{'demo ' if e['demo'] else ''}{e['issuer']}"
        )
    print(f"  revoked: {len(store.revoked_kids)} kids, {len(store.revoked_ids)} hashed ids")
    return 0
