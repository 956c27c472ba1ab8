"""`checkpost corpus make --seed N --out DIR`: the seeded camera-frame corpus."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("corpus", help="generate seeded camera-frame corpora")
    sub = p.add_subparsers(dest="corpus_cmd", metavar="ACTION")
    sub.required = True
    m = sub.add_parser("make", help="render stills and clips with ground truth (manifest.json)")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--stills", type=int, default=600)
    m.add_argument("--clips", type=int, default=60)
    m.add_argument("--workers", type=int, default=None, help="processes (default: CPUs, max 4)")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from checkpost.hardware.corpus import make_corpus

    t0 = time.perf_counter()
    manifest = make_corpus(
        args.seed, args.out, stills=args.stills, clips=args.clips, workers=args.workers
    )
    cats: dict[str, int] = {}
    for s in manifest["stills"]:
        cats[s["category"]] = cats.get(s["category"], 0) + 1
    print(
        f"seed {args.seed}: {len(manifest['stills'])} stills "
        f"({', '.join(f'{k} {v}' for k, v in sorted(cats.items()))}), "
        f"{len(manifest['clips'])} clips -> {args.out}/manifest.json "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0
