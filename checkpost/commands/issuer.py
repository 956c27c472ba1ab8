"""`checkpost issuer init DIR`: a test issuer for demos and tests (never for the field)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("issuer", help="create a test issuer (keys and a signed trust list)")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    init = s.add_parser(
        "init",
        help="create ES256 and Ed25519 issuer keys, a trust-list key and a signed trust list",
    )
    init.add_argument("dir", metavar="DIR")
    init.add_argument("--region", default="CN-DEMO", help="issuer region code (claim 1, iss)")
    init.add_argument("--force", action="store_true", help="replace an existing issuer in DIR")
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    from checkpost.issuer import TestIssuer

    try:
        issuer = TestIssuer.create(args.dir, region=args.region, force=args.force)
    except OSError as exc:
        print(f"checkpost issuer init: {exc}", file=sys.stderr)
        return 2
    store = issuer.trust_store()
    print(f"test issuer in {issuer.folder} (region {issuer.region})")
    for e in store.entries():
        print(f"  key {e.kid.hex()}  {e.alg:<6} kinds {','.join(sorted(e.kinds))}  demo")
    print(f"  trust list   {issuer.trust_list_path}  (version {store.version})")
    print(f"  signing key  {issuer.trust_signer_path}")
    print("Demo keys are refused unless a verifier is configured with accept_demo = true.")
    return 0
