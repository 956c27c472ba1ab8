"""`checkpost hub run`: a small supervisor for the loop workers and the API process.

Documents: the API process publishes the signed trust list and policy bundle (retained, on
`hub/trust` and `hub/policy`) and re-reads the files every few seconds; `kill -HUP` on this
supervisor makes it re-read them at once. Workers switch by following those retained
topics (`checkpost.hub.publisher`), so all processes and all units converge on one version.

Workers are processes (one asyncio loop each), so N workers use N cores and a crash in one
never takes the others down. A worker that dies is restarted with the same index, hence
the same MQTT client id and persistent session: the broker redelivers what it had not
acknowledged. The API runs in its own process so a slow query never delays a verdict.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from typing import Any

import msgspec

log = logging.getLogger("checkpost.hub")


def effective_config(args: argparse.Namespace) -> Any:
    from checkpost.hub.config import load_config

    cfg = load_config(getattr(args, "config", None))
    hub = cfg.hub
    changes: dict[str, Any] = {}
    for flag, field in (
        ("broker", "broker"),
        ("db", "db"),
        ("http", "http"),
        ("workers", "workers"),
        ("data_dir", "data_dir"),
        ("issuer_dir", "issuer_dir"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            changes[field] = value
    if changes:
        hub = msgspec.structs.replace(hub, **changes)
        cfg = msgspec.structs.replace(cfg, hub=msgspec.convert(msgspec.to_builtins(hub), type(hub)))
    return cfg


def restart_delay(previous: float, lived: float) -> float:
    """Seconds before restarting a process that lived `lived` seconds: 1 s after a death
    in steady state, doubling for each death soon after a start, at most a minute."""
    return 1.0 if lived > 60 else min(max(previous, 0.5) * 2, 60.0)


def run_hub(args: argparse.Namespace) -> int:
    from checkpost.config import ConfigError

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        cfg = effective_config(args)
    except (ConfigError, msgspec.ValidationError) as exc:
        print(f"checkpost hub: {exc}", file=sys.stderr)
        return 2
    data = cfg.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    host, _, port = cfg.hub.http.rpartition(":")
    if not host or not port.isdigit():
        print(f"checkpost hub: bad --http {cfg.hub.http!r} (expected HOST:PORT)", file=sys.stderr)
        return 2
    # Multiprocess metrics: the folder must be empty when the processes start.
    prom = data / "prometheus"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)

    from checkpost.hub.store import open_store

    try:
        store = open_store(cfg.db_url())  # migrate once, before any worker starts
        store.close()
        from checkpost.hub.loop import build_context

        build_context(cfg)  # fail fast on a bad trust list or policy
    except Exception as exc:
        print(f"checkpost hub: cannot start: {exc}", file=sys.stderr)
        return 2

    from checkpost.hub.api import api_main
    from checkpost.hub.loop import worker_main

    ctx = mp.get_context("spawn")
    level = args.log_level.upper()
    specs: dict[str, tuple[Any, tuple[Any, ...]]] = {
        f"worker-{i}": (worker_main, (cfg, i, level)) for i in range(cfg.hub.workers)
    }
    specs["api"] = (api_main, (cfg, host, int(port), args.log_level.lower()))
    procs: dict[str, Any] = {}
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    def reload_documents(signum: int, frame: Any) -> None:
        # The API process publishes the trust list and policy (hub/publisher.py): it reads
        # the files again now; workers follow what it publishes on the retained topics.
        api = procs.get("api")
        if api is not None and api.is_alive() and api.pid is not None:
            log.warning("SIGHUP: asking the API process to publish the documents again")
            os.kill(api.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload_documents)

    def spawn(name: str) -> None:
        target, targs = specs[name]
        p = ctx.Process(target=target, args=targs, name=name, daemon=False)
        p.start()
        procs[name] = p

    for name in specs:
        spawn(name)
    print(
        f"checkpost hub: {cfg.hub.workers} worker(s) on {cfg.hub.broker}, store {cfg.db_url()}, "
        f"API http://{cfg.hub.http}",
        flush=True,
    )
    # A process that dies is restarted; one that keeps dying soon after its start (say a
    # worker that cannot load a trust list or policy file edited since the hub started)
    # waits twice as long each time, up to a minute, instead of spinning every second.
    started = {name: time.monotonic() for name in specs}
    delay = dict.fromkeys(specs, 0.5)  # doubled before use: the first wait is 1 s
    died: dict[str, float] = {}
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for name, p in list(procs.items()):
            if p.is_alive() or stopping:
                continue
            if name not in died:
                died[name] = now
                lived = now - started[name]
                delay[name] = restart_delay(delay[name], lived)
                log.error("%s exited with %s after %.0f s; restarting in %.0f s",
                          name, p.exitcode, lived, delay[name])  # fmt: skip
            if now - died[name] < delay[name]:
                continue
            del died[name]
            started[name] = now
            spawn(name)
    for p in procs.values():
        if p.is_alive():
            p.terminate()
    for p in procs.values():
        p.join(15)
        if p.is_alive():
            p.kill()
            p.join(5)
    return 0
