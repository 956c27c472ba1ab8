"""`checkpost scan`: decode image files with exactly the station pipeline, in one process.

Each image is a separate scene (no tracking between files). With ``--json`` one line per
image: {"file", "codes": [{"text", "format", "corners"}], "ms"}; otherwise a readable line.
Exit code 0 when every image had at least one code, 1 when some had none, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scan", help="decode codes from image files with the station decoder")
    p.add_argument("paths", nargs="+", metavar="FILE|DIR", help="images, or folders of images")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--station", choices=["checkpoint", "sampling"], default="sampling")
    p.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="per-frame fallback budget (default: the camera's)",
    )
    p.set_defaults(func=run)


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    import cv2
    from checkpost.hardware.decode import StationDecoder

    kw = {} if args.budget_ms is None else {"budget_ms": args.budget_ms}
    dec = StationDecoder(station=args.station, track=False, debounce_s=0, **kw)
    files = _files(args.paths)
    if not files:
        print("checkpost scan: no image files given", file=sys.stderr)
        return 2
    status = 0
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            msg = {"file": str(f), "error": "not a readable image"}
            print(json.dumps(msg) if args.json else f"{f}: not a readable image")
            status = max(status, 2)
            continue
        reads = dec.read(img)
        ms = round(reads[0].ms if reads else _time_empty(dec, img), 2)
        if not reads:
            status = max(status, 1)
        if args.json:
            print(json.dumps({"file": str(f), "codes": [r.as_dict() for r in reads], "ms": ms}))
        else:
            texts = "; ".join(f"{r.format} {r.text}" for r in reads) or "no code"
            print(f"{f}: {texts} ({ms} ms)")
    return status


def _time_empty(dec, img) -> float:  # type: ignore[no-untyped-def]
    """A frame with no code still took time: measure it again for the report."""
    import time

    t0 = time.perf_counter()
    dec.read(img)
    return (time.perf_counter() - t0) * 1000
