"""`checkpost verify`: the contract later tools and checks depend on (issue 1 §3).

    checkpost verify [--json] [--at ISO8601] [--trust FILE] [--cert B64DER]... [--policy FILE]
                     [--temp CELSIUS]... INPUT...

INPUT is code text, a PNG/JPEG path (decoded with the stations' decoder) or `-` for one code
per line on stdin. Exit 0 when every input passed, 1 when any did not, 2 on a usage error.
OpenCV and the decoders are imported only when an image is given, so a text check starts
in a fraction of a second.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
COLOURS = {"PASS": "32", "REVIEW": "33", "REMEASURE": "35", "FAIL": "31"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="verify codes (text, images or stdin) and print verdicts",
        description="Verify codes and print a verdict for each. Exit 0: all passed; 1: any did "
        "not; 2: usage error.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="code text, image path, or - for stdin"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per input per line")
    p.add_argument("--at", metavar="ISO8601", help="verify as of this instant (default: now)")
    p.add_argument("--trust", metavar="FILE", help="signed trust list to use")
    p.add_argument("--trust-key", metavar="PEM", action="append", help="trust-list signing key")
    p.add_argument("--issuer", metavar="DIR", help="trust a test issuer's demo keys (demos only)")
    p.add_argument("--accept-demo", action="store_true", help="accept demo keys in the trust list")
    p.add_argument(
        "--cert",
        metavar="B64DER",
        action="append",
        default=[],
        help="trust this signer certificate for this run",
    )
    p.add_argument(
        "--policy", metavar="FILE", help="policy parameters (.toml) or signed bundle (.json)"
    )
    p.add_argument("--policy-key", metavar="PEM", action="append", help="policy signing key")
    p.add_argument(
        "--temp", metavar="CELSIUS", type=float, action="append", help="temperature reading(s)"
    )
    p.add_argument(
        "--station",
        choices=("checkpoint", "gate", "sampling", "transfer"),
        help="station kind (default: by format)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $CHECKPOST_CONFIG or ./checkpost.toml)",
    )
    p.set_defaults(func=run)


def _parse_at(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(_usage(f"--at: not an ISO 8601 date-time: {text!r}")) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _usage(message: str) -> int:
    print(f"checkpost verify: {message}", file=sys.stderr)
    return 2


def _inputs(args: list[str]) -> Iterator[tuple[str, str | None, bool]]:
    """(input as given, code text or None for an image, is_image)."""
    for item in args:
        if item == "-":
            for line in sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield line, line, False
        elif Path(item).suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(item):
            yield item, None, True
        else:
            yield item, item, False


def run(args: argparse.Namespace) -> int:
    from checkpost.codes.trust import TrustListError
    from checkpost.config import ConfigError, load_toml
    from checkpost.policy import PolicyError
    from checkpost.runtime import build_context
    from checkpost.settings import CoreSettings, default_config_path

    at = _parse_at(args.at)
    try:
        cfg_path = Path(args.config) if args.config else default_config_path()
        settings = load_toml(cfg_path, CoreSettings) if cfg_path else CoreSettings()
        ctx = build_context(
            settings,
            trust_file=args.trust,
            trust_keys=args.trust_key,
            accept_demo=True if args.accept_demo else None,
            certs_b64=args.cert,
            policy_file=args.policy,
            policy_keys=args.policy_key,
            issuer_dir=args.issuer,
            base=cfg_path.parent if cfg_path else None,
        )
    except (ConfigError, TrustListError, PolicyError, OSError, ValueError) as exc:
        return _usage(str(exc))

    import msgspec

    from checkpost.policy import decide

    encoder = msgspec.json.Encoder()
    out = sys.stdout
    colour = out.isatty() and not args.json and os.environ.get("NO_COLOR") is None
    verify, policy, station, temps = ctx.verifier.verify, ctx.policy, args.station, args.temp
    all_passed = True
    for given, text, is_image in _inputs(args.inputs):
        now = at if at is not None else time.time()
        picture: bool | None = None
        if is_image:
            text, picture, image_error = _read_image(given)
            if text is None:
                all_passed = False
                _emit_unreadable(out, encoder, args.json, given, image_error, colour)
                continue
        decoded = verify(text, now)
        if picture is not None:
            decoded.steps = {"picture": picture, **decoded.steps}
        verdict = decide(decoded, temps, station, now, policy)
        all_passed &= verdict.verdict == "PASS"
        if args.json:
            record = {
                "input": given,
                "text": decoded.text,
                "format": decoded.format,
                "steps": decoded.steps,
                "kid": base64.b64encode(decoded.kid).decode() if decoded.kid else None,
                "issuer": decoded.issuer,
                "payload": decoded.payload_json(),
                "verdict": verdict.verdict,
                "reasons": verdict.reasons,
            }
            out.write(encoder.encode(record).decode("utf-8"))
            out.write("\n")
        else:
            out.write(_human(given, decoded, verdict, colour, is_image) + "\n")
        out.flush()
    return 0 if all_passed else 1


def _read_image(path: str) -> tuple[str | None, bool, str]:
    """Decode the first code in an image with the stations' decoder."""
    try:
        from checkpost.hardware.decode import decode_image_file
    except ImportError as exc:
        return None, False, f"image decoding unavailable: {exc}"
    try:
        reads = decode_image_file(path)
    except Exception as exc:  # unreadable file, unsupported image
        return None, False, f"cannot read image: {exc}"
    if not reads:
        return None, False, "no code found in the picture"
    return reads[0].text, True, ""


def _emit_unreadable(
    out: Any, encoder: Any, as_json: bool, given: str, why: str, colour: bool
) -> None:
    from checkpost.reasons import Reason, reason

    r = (
        reason("no_code_in_image")
        if why == "no code found in the picture"
        else Reason("image_error", why, f"图片无法读取：{why}")
    )
    if as_json:
        record = {
            "input": given,
            "text": None,
            "format": "unknown",
            "steps": {"picture": False},
            "kid": None,
            "issuer": None,
            "payload": None,
            "verdict": "FAIL",
            "reasons": [r],
        }
        out.write(encoder.encode(record).decode("utf-8") + "\n")
    else:
        out.write(f"{_paint('FAIL', colour)}  {given}: {r.en}\n")
    out.flush()


def _paint(verdict: str, colour: bool) -> str:
    label = f"{verdict:<9}"
    return f"\033[1;{COLOURS[verdict]}m{label}\033[0m" if colour else label


def _human(given: str, decoded: Any, verdict: Any, colour: bool, is_image: bool) -> str:
    who = ""
    content = decoded.content
    name = getattr(content, "nm", None)
    if name:
        who = f" {name}"
    elif decoded.format == "HC1" and isinstance(content, dict):
        nam = content.get("nam") or {}
        who = f" {nam.get('gn', '')} {nam.get('fn', '')}".rstrip()
    label = (
        given if is_image else (decoded.text[:24] + "…" if len(decoded.text) > 25 else decoded.text)
    )
    why = "; ".join(f"{r.en} / {r.zh}" for r in verdict.reasons)
    return f"{_paint(verdict.verdict, colour)} {decoded.format:<7}{who}  {label}" + (
        f"  — {why}" if why else ""
    )
