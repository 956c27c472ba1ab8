"""`checkpost edge run`: argument parsing only; the unit's imports happen when it runs."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("edge", help="run a station unit")
    edge_sub = parser.add_subparsers(dest="edge_command", metavar="COMMAND")
    edge_sub.required = True
    run = edge_sub.add_parser(
        "run",
        help="run a station unit (checkpoint, gate, sampling table or transfer point)",
        description="Run a station unit. Flags override the config file; the merged config "
        "is validated before anything opens.",
    )
    from checkpost.edge.config import add_arguments

    add_arguments(run)
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from checkpost.edge.config import load_config, overrides_from_args

    from checkpost.config import ConfigError

    try:
        cfg = load_config(args.config, overrides_from_args(args))
    except ConfigError as exc:
        print(f"checkpost edge: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    if args.validate_config:
        print(
            f"{args.config or '<defaults>'}: configuration ok "
            f"({cfg.unit.station} unit {cfg.unit.id})"
        )
        return 0
    logging.basicConfig(
        level=cfg.unit.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from checkpost.edge.agent import Unit

    try:
        unit = Unit(cfg)
    except (ValueError, OSError) as exc:
        print(f"checkpost edge: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        unit.start()
    except ImportError as exc:  # e.g. evdev for hid: scanners, picamera2 for the Pi camera
        print(
            f"checkpost edge: cannot start: {exc.name or exc} is not installed "
            f"(needed by the configured device)",
            file=sys.stderr,
        )
        unit.stop()
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"checkpost edge: cannot start: {exc}", file=sys.stderr)
        unit.stop()
        return 2
    import gc

    from checkpost.service import notify_ready, notify_stopping

    # Started: what is allocated now (trust store, compiled rules, schemas, modules) lives
    # as long as the process. Out of the collector's generations, a scan's short-lived
    # garbage is all a collection walks (no multi-ms pause in front of a verdict on a Pi).
    gc.collect()
    gc.freeze()
    where = unit.http_server.url if unit.http_server is not None else "no station page"
    notify_ready(f"{cfg.unit.station} unit {cfg.unit.id}")
    print(
        f"checkpost edge: {cfg.unit.station} unit {cfg.unit.id} running; page {where}; "
        f"broker {cfg.link.broker}",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        notify_stopping()
        unit.stop()
    return 0
