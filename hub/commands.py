"""`checkpost hub run|command|sealed`: argument parsing; heavy imports happen when it runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hub", help="run the hub, send commands to units")
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
    cmd = hub_sub.add_parser(
        "command",
        help="send a command to one unit and wait for its acknowledgement",
        description="Publish a Command (with a fresh request id) on the unit's commands topic "
        "and wait for its CommandAck. Exit 0 when the unit acknowledged it, 1 when it refused "
        "or did not answer in time, 2 on a usage error.",
    )
    cmd.add_argument("unit", help="unit id ([a-z0-9-]{1,32})")
    cmd.add_argument("action", choices=("reload", "set-log-level", "resend-status", "sync-now"))
    cmd.add_argument("level", nargs="?", help="set-log-level: DEBUG, INFO, WARNING or ERROR")
    cmd.add_argument("--config", help="hub TOML config (broker and topic root come from it)")
    cmd.add_argument("--broker", help="broker URL (default: the config's, mqtt://127.0.0.1:1883)")
    cmd.add_argument("--timeout", type=float, default=10.0, metavar="S", help="default 10 s")
    cmd.add_argument("--json", action="store_true", help="print the acknowledgement as JSON")
    cmd.set_defaults(func=_command)
    sealed = hub_sub.add_parser(
        "sealed",
        help="build a signed sealed-building list for the hub to push to the gates",
        description="Sign a sealed-building list (one pseudonymous id per line: the HP1/SR1 "
        "sid or the DCC certificate id) with the trust-list signing key. Point the hub's "
        "[hub] sealed_file at the output: the hub publishes it retained on hub/sealed within "
        "documents_poll_s seconds (or at once on SIGHUP), and every gate applies it. A list "
        "with no ids lifts every seal.",
    )
    sealed.add_argument("--ids", required=True, help="file of ids, one per line ('-' = stdin)")
    sealed.add_argument("--version", type=int, required=True, help="must grow with each list")
    sealed.add_argument("--scope", default="", help="what the list covers, e.g. 'compound 12'")
    sealed.add_argument("--sign", required=True, help="trust-list signing private key (PEM)")
    sealed.add_argument("--out", required=True, help="where to write the signed document")
    sealed.set_defaults(func=_sealed)


def _run(args: argparse.Namespace) -> int:
    from checkpost.hub.service import run_hub

    return run_hub(args)


def _command(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys

    import msgspec
    from checkpost.hub.command_sender import ack_view, command_args, send_once
    from checkpost.hub.config import load_config

    from checkpost.config import ConfigError
    from checkpost.protocol import is_unit_id

    def usage(msg: str) -> int:
        print(f"checkpost hub command: {msg}", file=sys.stderr)
        return 2

    if not is_unit_id(args.unit):
        return usage(f"bad unit id {args.unit!r} (expected [a-z0-9-]{{1,32}})")
    if not 0 < args.timeout <= 3600:
        return usage(f"--timeout must be between 0 and 3600 s (got {args.timeout:g})")
    try:
        cmd, cargs = command_args(args.action, args.level)
        cfg = load_config(args.config)
    except (ValueError, ConfigError, msgspec.ValidationError) as exc:
        return usage(str(exc))
    broker = args.broker or cfg.hub.broker
    try:
        req, ack = asyncio.run(
            send_once(broker, cfg.hub.topic_root, args.unit, cmd, cargs, args.timeout)
        )
    except (OSError, TimeoutError, ValueError) as exc:
        print(f"checkpost hub command: cannot reach the broker {broker}: {exc}", file=sys.stderr)
        return 1
    view = ack_view(args.unit, req, cmd, ack, args.timeout)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, sort_keys=True))
    elif ack is None:
        print(f"{args.unit}: {cmd}: {view['error']} (req {req})")
    elif ack.ok:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(ack.detail.items()))
        print(f"{args.unit}: {cmd} ok" + (f" — {detail}" if detail else "") + f" (req {req})")
    else:
        print(f"{args.unit}: {cmd} refused: {ack.error} (req {req})")
    return 0 if ack is not None and ack.ok else 1


def _sealed(args: argparse.Namespace) -> int:
    import os
    import sys
    import time
    from pathlib import Path

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from checkpost.protocol.lists import MAX_SIDS, sealed_document

    def fail(msg: str) -> int:
        print(f"checkpost hub sealed: {msg}", file=sys.stderr)
        return 2

    if args.version < 0:
        return fail("--version must be a non-negative integer")
    try:
        text = sys.stdin.read() if args.ids == "-" else Path(args.ids).read_text("utf-8")
        key = load_pem_private_key(Path(args.sign).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return fail(str(exc))
    ids = sorted({line.strip() for line in text.splitlines() if line.strip()})
    if len(ids) > MAX_SIDS:
        return fail(f"{len(ids)} ids > {MAX_SIDS}")
    payload = sealed_document(
        ids, version=args.version, issued_at=time.time(), signer=key, scope=args.scope[:64]
    )
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, out)  # the hub polls the file: it must never see half of it
    print(f"sealed list version {args.version}: {len(ids)} ids, written to {out}")
    return 0
