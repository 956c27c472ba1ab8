"""`checkpost demo`: what a new user runs first (`make demo`).

It creates a demo issuer, mints a set of example codes — valid, expired, a screenshot kept
too long, a forged signature, yellow and red colours, a stale test, risk travel, a fever, an
SR1 registration, a tube and a box label, and a foreign QR code — renders each as a PNG,
reads each back **from its image** with the stations' decoder, verifies it, and prints a
table and a last line `N verdicts: P pass, R review, F fail` (REMEASURE counts as review:
staff act on the unit, nobody is turned away yet).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the demonstration")
    p.add_argument(
        "--out",
        default="demo-out",
        help="folder for the issuer and the images (default: ./demo-out)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per case, then the summary")
    p.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to run the whole-system part (hub + stations); Ctrl-C ends it early",
    )
    p.add_argument("--codes-only", action="store_true", help="only the code table, no system")
    p.set_defaults(func=run)


@dataclass
class Case:
    name: str
    text: str
    temps: list[float] | None
    station: str | None = None


def _cases(issuer: Any, now: float) -> list[Case]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from checkpost.codes.trust import key_id
    from checkpost.issuer import mint
    from checkpost.issuer.issuer import HP1_LIFETIME

    forger = ec.generate_private_key(ec.SECP256R1())
    real_kid = key_id(issuer.keys["ES256"].public_key())
    sid = issuer.sid("110101199001011234")
    forged_claims = {
        1: issuer.region,
        6: int(now),
        4: int(now + HP1_LIFETIME),
        -270: {
            "v": 1,
            "sid": sid,
            "nm": "王*五",
            "c": "G",
            "vx": 3,
            "trip": False,
            "nat": {"t": int(now - 3600 * 10), "r": "neg"},
        },
    }
    return [
        Case("valid pass (ES256)", issuer.hp1(iat=now, name="张*三"), [36.5]),
        Case("valid pass (Ed25519)", issuer.hp1(iat=now, alg="EdDSA", name="赵*六"), [36.4]),
        Case("expired pass", issuer.hp1(iat=now - 3600, name="钱*七"), [36.6]),
        Case(
            "screenshot kept 5 min", issuer.hp1(iat=now - 300, lifetime=3600, name="孙*八"), [36.6]
        ),
        Case("forged signature", mint("HP1", forged_claims, forger, real_kid), [36.5]),
        Case("yellow code", issuer.hp1(iat=now, colour="Y", name="周*九"), [36.5]),
        Case("red code", issuer.hp1(iat=now, colour="R", name="吴*十"), [36.5]),
        Case("stale test (60 h)", issuer.hp1(iat=now, test_age_hours=60, name="郑*一"), [36.5]),
        Case("risk-area travel", issuer.hp1(iat=now, trip=True, name="冯*二"), [36.5]),
        Case("fever, first reading", issuer.hp1(iat=now, name="陈*三"), [37.9]),
        Case("fever, second reading", issuer.hp1(iat=now, name="陈*三"), [37.9, 38.1]),
        Case("sampling registration", issuer.sr1(iat=now, name="褚*四"), None, "sampling"),
        Case("tube label", "100000123456", None, "sampling"),
        Case("box label", "BOX00012345", None, "sampling"),
        Case("foreign QR (a web link)", "https://example.com/pay?id=42", [36.5]),
    ]


def run(args: argparse.Namespace) -> int:
    import msgspec

    from checkpost.codes.trust import TrustListError
    from checkpost.hardware.decode import decode_image_file
    from checkpost.issuer import TestIssuer
    from checkpost.issuer.render import save_label, save_qr
    from checkpost.policy import decide
    from checkpost.runtime import build_context

    out = Path(args.out)
    images = out / "codes"
    images.mkdir(parents=True, exist_ok=True)
    issuer = TestIssuer.create(out / "issuer")
    try:
        ctx = build_context(
            trust_file=str(issuer.trust_list_path),
            trust_keys=[str(issuer.trust_signer_path)],
            accept_demo=True,
        )
    except TrustListError as exc:
        print(f"checkpost demo: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    cases = _cases(issuer, now)
    colour = sys.stdout.isatty() and not args.json and os.environ.get("NO_COLOR") is None
    paint = {"PASS": "32", "REVIEW": "33", "REMEASURE": "35", "FAIL": "31"}
    if not args.json:
        print(
            f"checkpost demo — issuer and images in {out}/; trust list v{ctx.trust.version}, "
            f"policy {ctx.policy.name} {ctx.policy.version}"
        )
        print(f"{'#':>2}  {'case':<24} {'read':<5} {'format':<7} {'verdict':<9} reason")
    counts = {"PASS": 0, "REVIEW": 0, "REMEASURE": 0, "FAIL": 0}
    for n, case in enumerate(cases, 1):
        png = images / f"{n:02d}-{case.name.split(' (')[0].replace(' ', '-').replace(',', '')}.png"
        plain = case.station == "sampling" and not case.text.startswith("SR1:")
        (save_label if plain else save_qr)(case.text, png)
        reads = decode_image_file(str(png), station="sampling" if plain else "checkpoint")
        text = reads[0].text if reads else ""
        decoded = ctx.verifier.verify(text, now)
        verdict = decide(decoded, case.temps, case.station, now, ctx.policy)
        counts[verdict.verdict] += 1
        reason = "; ".join(f"{r.en} / {r.zh}" for r in verdict.reasons) or "—"
        if args.json:
            print(
                msgspec.json.encode(
                    {
                        "case": case.name,
                        "image": str(png),
                        "read_back": text == case.text,
                        "format": decoded.format,
                        "temperatures": case.temps,
                        "verdict": verdict.verdict,
                        "reasons": verdict.reasons,
                    }
                ).decode()
            )
        else:
            v = f"{verdict.verdict:<9}"
            v = f"\033[1;{paint[verdict.verdict]}m{v}\033[0m" if colour else v
            ok = "yes" if text == case.text else "NO"
            print(f"{n:>2}  {case.name:<24} {ok:<5} {decoded.format:<7} {v} {reason}")
    review = counts["REVIEW"] + counts["REMEASURE"]
    total = sum(counts.values())
    if not args.json:
        print(
            f"images: {images}/  ·  try: "
            f"checkpost verify --issuer {out}/issuer {images}/01-valid-pass.png"
        )
    print(f"{total} verdicts: {counts['PASS']} pass, {review} review, {counts['FAIL']} fail")
    if args.codes_only:
        return 0
    return _system(out, args.duration)


def _system(out: Path, duration: float) -> int:
    """The whole system on embedded defaults: a hub, checkpoints, a gate, sampling tables
    and a transfer point with replay cameras, simulated thermometers and mock GPIO."""
    import threading

    from checkpost.edge.demo import run_system_demo, summary_line

    print(f"\nwhole system: hub + simulated stations for {duration:g} s (Ctrl-C to stop early)")
    stop = threading.Event()
    try:
        totals = run_system_demo(out / "system", duration, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(summary_line(totals))
    return 0 if totals["lost"] == 0 and totals["duplicated"] == 0 else 1
