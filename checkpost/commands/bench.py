"""`checkpost bench ...`: every performance claim of the project lives here.

Each benchmark prints, in the same run, a baseline (bare decoder, bare signature verify, raw
broker round trip) so that ratios mean something on a noisy machine, and ends with one line
of JSON holding every figure. The benchmarks themselves live beside the code they measure;
this module only dispatches, importing a benchmark's module when it is chosen.
"""

from __future__ import annotations

import argparse
import importlib

# (name, module, help). The module provides add_arguments(parser) and run(args) -> int.
BENCHMARKS: list[tuple[str, str, str]] = [
    ("verify", "checkpost.bench_verify", "code pipeline + policy vs bare signature verify"),
    ("decode", "checkpost.hardware.decode.bench", "station decoder vs bare zxing-cpp / pyzbar"),
    ("hub", "checkpost.hub.bench", "hub verification loop over a real broker"),
    ("station", "checkpost.edge.bench", "frame to verdict through the whole unit path"),
]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmarks with same-run baselines")
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    bench_sub.required = True
    for name, module, help_text in BENCHMARKS:
        p = bench_sub.add_parser(name, help=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            p.set_defaults(func=_missing(name, exc))
            continue
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)


def _missing(name: str, exc: Exception):
    def run(_args: argparse.Namespace) -> int:
        print(f"checkpost bench {name}: not available ({exc})")
        return 2

    return run
