"""`checkpost issue hp1|sr1|tube|box`: mint codes with the test issuer, optionally as PNG."""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("issue", help="mint HP1/SR1/tube/box codes with the test issuer")
    s = p.add_subparsers(dest="kind", metavar="KIND")
    s.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--png", metavar="FILE", help="also write a printable PNG")

    def signed(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--issuer",
            metavar="DIR",
            default="demo-issuer",
            help="test issuer folder (default: ./demo-issuer)",
        )
        q.add_argument(
            "--id",
            dest="id_number",
            default="110101199001011234",
            help="ID number (hashed into sid; never encoded)",
        )
        q.add_argument("--sid", help="pseudonymous subject id (hex), instead of --id")
        q.add_argument("--iat", metavar="ISO8601", help="issue time (default: now)")
        q.add_argument("--lifetime", type=float, metavar="SECONDS", help="validity after issue")
        q.add_argument("--alg", choices=("ES256", "EdDSA"), default="ES256")
        common(q)

    hp1 = s.add_parser("hp1", help="a health pass")
    signed(hp1)
    hp1.add_argument("--name", default="张*三", help="masked name")
    hp1.add_argument("--colour", "--color", choices=("G", "Y", "R"), default="G")
    hp1.add_argument(
        "--test-age", type=float, default=20.0, metavar="HOURS", help="hours since the last sample"
    )
    hp1.add_argument("--no-test", action="store_true", help="no nucleic-acid test on record")
    hp1.add_argument("--result", choices=("neg", "pos", "pending"), default="neg")
    hp1.add_argument("--doses", type=int, default=3)
    hp1.add_argument("--trip", action="store_true", help="itinerary through a risk area")
    hp1.set_defaults(func=run_hp1)

    sr1 = s.add_parser("sr1", help="a sampling pre-registration")
    signed(sr1)
    sr1.add_argument("--name", default="李*四")
    sr1.add_argument("--phone", default="138****1234", help="masked phone")
    sr1.add_argument("--reg", help="registration id (default: random)")
    sr1.set_defaults(func=run_sr1)

    for kind, help_text in (
        ("tube", "a tube label (Code 128 + QR)"),
        ("box", "a transfer-box label"),
    ):
        q = s.add_parser(kind, help=help_text)
        q.add_argument("--code", help="the code (default: random valid code)")
        common(q)
        q.set_defaults(func=run_plain)


def _iat(text: str | None) -> float | None:
    if text is None:
        return None
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _load(folder: str):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from checkpost.issuer import TestIssuer

    if not (Path(folder) / "issuer.json").exists():
        raise SystemExit(
            f"checkpost issue: no test issuer in {folder} (run: checkpost issuer init {folder})"
        )
    return TestIssuer.load(folder)


def _emit(text: str, png: str | None, plain: bool = False) -> int:
    print(text)
    if png:
        from checkpost.issuer.render import save_label, save_qr

        (save_label if plain else save_qr)(text, png)
        print(f"wrote {png}", file=sys.stderr)
    return 0


def run_hp1(args: argparse.Namespace) -> int:
    issuer = _load(args.issuer)
    text = issuer.hp1(
        sid=args.sid,
        id_number=args.id_number,
        name=args.name,
        colour=args.colour,
        test_age_hours=None if args.no_test else args.test_age,
        result=args.result,
        doses=args.doses,
        trip=args.trip,
        iat=_iat(args.iat),
        alg=args.alg,
        **({"lifetime": args.lifetime} if args.lifetime else {}),
    )
    return _emit(text, args.png)


def run_sr1(args: argparse.Namespace) -> int:
    issuer = _load(args.issuer)
    text = issuer.sr1(
        sid=args.sid,
        id_number=args.id_number,
        name=args.name,
        phone=args.phone,
        registration=args.reg,
        iat=_iat(args.iat),
        alg=args.alg,
        **({"lifetime": args.lifetime} if args.lifetime else {}),
    )
    return _emit(text, args.png)


def random_tube_code() -> str:
    return f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"


def random_box_code() -> str:
    return f"BOX{secrets.randbelow(10**8):08d}"


def run_plain(args: argparse.Namespace) -> int:
    code = args.code or (random_tube_code() if args.kind == "tube" else random_box_code())
    return _emit(code, args.png, plain=True)
