"""`checkpost hub run`: argument parsing only; the heavy imports happen when it runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hub", help="run the hub")
    hub_sub = parser.add_subparsers(dest="hub_command", metavar="COMMAND")
    hub_sub.required = True
    run = hub_sub.add_parser("run", help="run the verification loop workers and the HTTP API")
    run.add_argument("--config", help="hub TOML config (default: built-in embedded defaults)")
    run.add_argument("--broker", help="broker URL, e.g. mqtt://127.0.0.1:1883")
    run.add_argument("--db", help="store URL: sqlite:///path/hub.db or postgresql://...")
    run.add_argument("--http", help="HOST:PORT of the API (default 127.0.0.1:8080)")
    run.add_argument("--workers", type=int, help="loop worker processes (default 1)")
    run.add_argument("--data-dir", help="folder for the SQLite file and runtime state")
    run.add_argument("--issuer-dir", help="trust a test issuer's keys (demos only)")
    run.add_argument("--log-level", default="WARNING")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from checkpost.hub.service import run_hub

    return run_hub(args)
