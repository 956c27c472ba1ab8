"""`checkpost bench hub`: the verification loop over a real broker, with same-run baselines.

Starts a private Mosquitto (unless --broker), the hub's worker process(es) on a fresh store,
and simulated units in other processes. Phases:

1. checkpoint at the maximum rate (a window of outstanding scans per simulator);
2. checkpoint paced at half the rate phase 1 reached, for the latency goal;
3. sampling tables (sequential workflows) at the maximum rate;

then checks the store against what was sent (lost, duplicated) and measures the baselines:
raw request/response round trips through the same broker with the same client (gmqtt),
and bare ES256 verifies per second. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

import msgspec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stations", type=int, default=500, help="simulated units (default 500)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per phase (default 30)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="checkpoint events/s to offer (0 = as fast as the hub answers)",
    )
    p.add_argument("--workers", type=int, default=1, help="hub worker processes (default 1)")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--db",
        default=None,
        help="store URL (default: fresh SQLite file / fresh PostgreSQL schema)",
    )
    p.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server for --store postgres",
    )
    p.add_argument("--broker", default=None, help="use this broker instead of a private Mosquitto")
    p.add_argument(
        "--phases",
        default="checkpoint,half,sampling",
        help="comma list of checkpoint, half, sampling",
    )
    p.add_argument("--sims", type=int, default=2, help="simulator processes (default 2)")
    p.add_argument(
        "--window", type=int, default=600, help="outstanding scans per simulator at max rate"
    )
    p.add_argument("--baseline-seconds", type=float, default=5.0)
    p.add_argument(
        "--sr1-cache",
        action="store_true",
        help="keep the hub's cache of valid SR1 codes on. Off by default: the simulated tables "
        "reuse 50 people each, and in a real round every person's code is verified once",
    )
    p.add_argument(
        "--hub-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a [hub] config field for this run, e.g. commit_mode=thread (repeatable)",
    )


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores; Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_window(pids: dict[str, int], start_at: float, seconds: float, out: dict[str, Any]) -> Any:
    """Sample the CPU time of `pids` over [start_at, start_at + seconds] on a thread; fills
    `out` with each process's share of one core over that window."""
    import threading

    def run() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        before = {k: _cpu_seconds(p) for k, p in pids.items()}
        busy0 = _machine_busy_seconds()
        t0 = time.perf_counter()
        time.sleep(seconds)
        dt = time.perf_counter() - t0
        ours = 0.0
        for k, p in pids.items():
            share = (_cpu_seconds(p) - before[k]) / dt
            ours += share
            if k.startswith("postgres") and k != "postgres":  # one figure for the server
                out["postgres"] = round(out.get("postgres", 0.0) + share, 2)
            else:
                out[k] = round(share, 2)
        machine = (_machine_busy_seconds() - busy0) / dt
        # everything else on the machine (other people's jobs, the kernel's own threads)
        out["others"] = round(max(0.0, machine - ours), 2)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def cpu_budget(cpu: dict[str, float], per_s: float, cores: int) -> dict[str, Any]:
    """What one event costs in CPU, per process group (us), and the rate at which the
    measured processes would fill every core at that cost (`machine_ceiling_per_s`): on a
    small machine the hub shares with its broker and simulators, that says whether a rate
    is the hub's limit or the machine's. "worker" is the hub, "sim" the load generator."""
    if per_s <= 0:
        return {}
    groups: dict[str, float] = {}
    for name, cores_used in cpu.items():
        if name == "others":
            continue
        group = name.rstrip("0123456789")
        groups[group] = groups.get(group, 0.0) + cores_used
    us = {g: round(c / per_s * 1e6, 1) for g, c in groups.items()}
    total = sum(groups.values())
    return {
        "cpu_us_per_event": us,
        "machine_ceiling_per_s": round(cores / total * per_s) if total else None,
    }


def es256_baseline(seconds: float) -> float:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    msg = os.urandom(300)
    sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(200):
            pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        n += 200
        if time.perf_counter() >= end:
            break
    return n / (time.perf_counter() - t0)


def _echo_proc(broker: str, ready: Any, stop_at: float) -> None:
    import asyncio

    from checkpost.hub.transport import Link

    async def main() -> None:
        link = Link(broker, f"echo-{uuid.uuid4().hex[:8]}", receive_maximum=65535)

        def on(topic: str, payload: bytes, token: Any) -> None:
            link.publish("bench/resp/" + topic.rsplit("/", 1)[-1], payload, 1)
            link.ack(token)

        link.route("bench/req/", on)
        link.subscribe("bench/req/+", 1)
        await link.connect()
        ready.put("ready")
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        await link.disconnect()

    _run_loop(main())


def _rr_proc(broker: str, seconds: float, inflight: int, out: Any, rate: float = 0.0) -> None:
    """Request/response round trips through the broker: `inflight` outstanding at once, or,
    with `rate`, paced at that many per second the way the checkpoint simulators pace."""
    import asyncio

    from checkpost.hub.transport import Link

    async def main() -> None:
        link = Link(broker, f"rr-{uuid.uuid4().hex[:8]}", receive_maximum=65535)
        done = 0
        payload = os.urandom(250).hex().encode()  # ~500 B, like a scan
        lat: list[float] = []
        sent_at: dict[int, float] = {}
        counter = 0

        def send() -> None:
            nonlocal counter
            counter += 1
            sent_at[counter] = time.perf_counter()
            link.publish(f"bench/req/{counter}", payload, 1)

        def on(topic: str, body: bytes, token: Any) -> None:
            nonlocal done
            n = int(topic.rsplit("/", 1)[-1])
            t = sent_at.pop(n, None)
            if t is not None:
                lat.append(time.perf_counter() - t)
            link.ack_soon(token)
            done += 1
            if not rate and time.perf_counter() < end:
                send()

        link.route("bench/resp/", on)
        link.subscribe("bench/resp/+", 1)
        await link.connect()
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        end = t0 + seconds
        if rate:
            while time.perf_counter() < end:
                due = int((time.perf_counter() - t0) * rate) + 1 - counter
                for _ in range(due):
                    send()
                await asyncio.sleep(max(0.001, t0 + counter / rate - time.perf_counter()))
        else:
            for _ in range(inflight):
                send()
            while time.perf_counter() < end:
                await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        await link.disconnect()
        out.put(
            {
                "rr_per_s": done / elapsed,
                "p50_ms": _ms(_pct(lat, 0.5)),
                "p99_ms": _ms(_pct(lat, 0.99)),
                "p999_ms": _ms(_pct(lat, 0.999)),
                "max_ms": _ms(max(lat) if lat else None),
                **({"offered_rate": round(rate, 1)} if rate else {"inflight": inflight}),
            }
        )

    _run_loop(main())


def broker_rr_baseline(
    broker: str, seconds: float, inflight: int = 100, rate: float = 0.0
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    echo = ctx.Process(target=_echo_proc, args=(broker, q, time.time() + seconds + 15), daemon=True)
    echo.start()
    q.get(timeout=30)
    rr = ctx.Process(target=_rr_proc, args=(broker, seconds, inflight, q, rate), daemon=True)
    rr.start()
    res = q.get(timeout=seconds + 30)
    rr.join(10)
    echo.terminate()
    echo.join(10)
    return res


def run(args: argparse.Namespace) -> int:
    from checkpost.hub.broker import PrivateBroker
    from checkpost.hub.config import HubConfig, HubSection
    from checkpost.hub.loop import worker_main
    from checkpost.hub.store import open_store

    from checkpost.issuer import TestIssuer

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.sr1_cache:  # the worker processes inherit it (hub/prepare.py)
        os.environ.setdefault("CHECKPOST_HUB_SR1_CACHE", "0")
    tmp = tempfile.mkdtemp(prefix="checkpost-bench-hub-")
    broker = None
    workers: list[Any] = []
    sims: list[Any] = []
    schema = None
    out: dict[str, Any] = {
        "bench": "hub",
        "store": args.store,
        "workers": args.workers,
        "stations": args.stations,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "sr1_cache": int(os.environ.get("CHECKPOST_HUB_SR1_CACHE", "50000")) > 0,
        # The machine may be shared: the load before and after says how much to trust figures.
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        if args.broker:
            broker_url = args.broker
        else:
            broker = PrivateBroker(os.path.join(tmp, "mosquitto")).start()
            broker_url = broker.url
        issuer_dir = os.path.join(tmp, "issuer")
        TestIssuer.create(issuer_dir)
        if args.db:
            db = args.db
        elif args.store == "postgres":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            sep = "&" if "?" in args.pg else "?"
            db = f"{args.pg}{sep}schema={schema}"
        else:
            db = os.path.join(tmp, "hub.db")
        store = open_store(db)  # migrate once before the workers start
        options: dict[str, Any] = {}
        for item in args.hub_option:
            key, _, value = item.partition("=")
            try:
                options[key] = json.loads(value)
            except ValueError:
                options[key] = value
        hub = msgspec.convert(
            {
                "broker": broker_url,
                "db": db,
                "issuer_dir": issuer_dir,
                "share_group": "bench-hub",
                **options,
            },
            HubSection,
        )
        cfg = HubConfig(hub=hub)
        if options:
            out["hub_options"] = options
        ctx = mp.get_context("spawn")
        for i in range(args.workers):
            p = ctx.Process(
                target=worker_main,
                args=(cfg, i, os.environ.get("CHECKPOST_BENCH_LOG", "WARNING")),
                daemon=True,
            )
            p.start()
            workers.append(p)
        time.sleep(1.5)
        print(f"hub: {args.workers} worker(s), store {args.store}, broker {broker_url}", flush=True)

        all_ids: list[str] = []
        dup_answers = 0
        run_id = int(time.time()) % 1000
        max_rate = None
        for phase in phases:
            if phase == "half" and not max_rate:
                continue
            rate = 0.0
            if phase == "half":
                rate = max_rate / 2  # type: ignore[operator]
            elif phase == "checkpoint" and args.rate:
                rate = args.rate
            pids = {f"worker{i}": p.pid for i, p in enumerate(workers)}
            if broker is not None and broker.proc is not None:
                pids["broker"] = broker.proc.pid
            res = _run_phase(ctx, phase, args, broker_url, issuer_dir, rate, run_id, pids)
            all_ids.extend(res["ids"])
            dup_answers += res["dup_answers"]
            key = {
                "checkpoint": "checkpoint",
                "half": "checkpoint_half_rate",
                "sampling": "sampling",
            }[phase]
            out[key] = res["summary"]
            print(f"{key}: {json.dumps(res['summary'])}", flush=True)
            if phase == "checkpoint":
                max_rate = res["summary"]["per_s"]

        # the workers have answered everything the simulators saw answered; now check the store
        stored_ids = {r[0] for r in store.all("SELECT id FROM events")}
        sent = set(all_ids)
        out["check"] = {
            "sent": len(all_ids),
            "sent_unique": len(sent),
            "stored": len(stored_ids),
            "lost": len(sent - stored_ids),
            "duplicated": (len(all_ids) - len(sent)) + len(stored_ids - sent) + dup_answers,
            "dup_answers": dup_answers,
        }
        print(f"check: {json.dumps(out['check'])}", flush=True)
        for p in workers:
            p.terminate()
        for p in workers:
            p.join(15)
        workers = []
        out["baseline_broker_rr"] = broker_rr_baseline(broker_url, args.baseline_seconds)
        print(
            "baseline broker request/response (gmqtt, 100 in flight): "
            + json.dumps(out["baseline_broker_rr"])
        )
        half = out.get("checkpoint_half_rate", {}).get("offered_rate")
        if isinstance(half, (int, float)) and half > 0:
            # The latency floor the hub cannot beat: the same broker and client, paced at
            # the half-rate phase's rate, with an echo instead of a hub.
            out["baseline_broker_rr_half_rate"] = broker_rr_baseline(
                broker_url, args.baseline_seconds, rate=half
            )
            print(
                "baseline broker request/response paced at the half rate: "
                + json.dumps(out["baseline_broker_rr_half_rate"])
            )
        out["baseline_es256_verifies_per_s"] = round(
            es256_baseline(min(3.0, args.baseline_seconds))
        )
        print(f"baseline ES256 verifies/s (one core): {out['baseline_es256_verifies_per_s']}")
        trace = os.environ.get("CHECKPOST_HUB_TRACE")
        if trace:
            out["stages"] = stage_report(trace)
            for tag, st in out["stages"].items():
                print(f"stages {tag} (ms; batch in events): {json.dumps(st)}")
        if schema:
            store.drop_schema()  # type: ignore[attr-defined]
        store.close()
    finally:
        for p in workers + sims:
            if p.is_alive():
                p.kill()
                p.join(5)
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, separators=(",", ":")))
    return 0


def _run_phase(
    ctx: Any,
    phase: str,
    args: argparse.Namespace,
    broker: str,
    issuer_dir: str,
    rate: float,
    run_id: int,
    pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    from checkpost.hub.bench_sim import _entry

    kind = "sampling" if phase == "sampling" else "checkpoint"
    nsim = max(1, args.sims)
    prefix = {"checkpoint": "cp", "half": "hr", "sampling": "sa"}[phase]
    units = [f"bench-{prefix}-{i:04d}" for i in range(args.stations)]
    q = ctx.Queue()
    start_at = time.time() + 3600  # replaced below once every simulator is ready
    procs = []
    # codes per simulator: enough for the phase at up to ~8k/s in total
    per_sim_rate = (rate / nsim) if rate else 8000 / nsim
    n_codes = int(per_sim_rate * args.duration * 1.1) + 100
    start_at = time.time() + 4 + n_codes / 15000.0 + (0 if kind == "checkpoint" else 2)
    for s in range(nsim):
        mine = units[s::nsim]
        seed = (run_id * 100 + s + 1) * (7 if phase == "half" else 1) + (
            50 if kind == "sampling" else 0
        )
        if kind == "checkpoint":
            kwargs = {
                "broker": broker,
                "issuer_dir": issuer_dir,
                "units": mine,
                "seed": seed,
                "n_codes": n_codes,
                "rate": rate / nsim if rate else 0.0,
                "duration": args.duration,
                "start_at": start_at,
                "window": args.window,
                "root": "checkpost/v1",
            }
        else:
            kwargs = {
                "broker": broker,
                "issuer_dir": issuer_dir,
                "units": mine,
                "seed": seed,
                "people_per_unit": 50,
                "duration": args.duration,
                "start_at": start_at,
                "root": "checkpost/v1",
                "run_id": run_id,
            }
        p = ctx.Process(target=_entry, args=(kind, q, kwargs), daemon=True)
        p.start()
        procs.append(p)
    # CPU share (of one core) of each process over the middle of the phase: on a shared
    # 2-core machine this says whether a latency tail is the hub's or the machine's.
    cpu: dict[str, float] = {}
    pids = dict(pids or {})
    if args.store == "postgres":  # the server's backends are part of the system under test
        pids.update({f"postgres{p}": p for p in _pids_named("postgres")})
    pids.update({f"sim{i}": p.pid for i, p in enumerate(procs)})
    sampler = _cpu_window(pids, start_at + args.duration * 0.2, args.duration * 0.6, cpu)
    results = []
    deadline = time.time() + 120 + args.duration * 2
    while len(results) < nsim and time.time() < deadline:
        try:
            tag, payload = q.get(timeout=5)
        except Exception:
            if not any(p.is_alive() for p in procs):
                break
            continue
        if tag == "done":
            results.append(payload)
        elif tag == "error":
            print(f"simulator failed: {payload}", file=sys.stderr)
            results.append(None)
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    ok = [r for r in results if r]
    lat = [x for r in ok for x in r["latencies"]]
    sent = sum(r["sent"] for r in ok)
    answered = sum(r["answered"] for r in ok)
    span = max((r["send_seconds"] for r in ok), default=args.duration)
    verdicts: dict[str, int] = {}
    for r in ok:
        for k, v in r["verdicts"].items():
            verdicts[k] = verdicts.get(k, 0) + v
    summary: dict[str, Any] = {
        "offered_rate": rate or "max",
        "sent": sent,
        "answered": answered,
        "per_s": round(answered / span, 1) if span else 0,
        "p50_ms": _ms(_pct(lat, 0.5)),
        "p99_ms": _ms(_pct(lat, 0.99)),
        "p999_ms": _ms(_pct(lat, 0.999)),
        "max_ms": _ms(max(lat) if lat else None),
        "verdicts": verdicts,
        "unanswered": sent - answered,
    }
    sampler.join(1)
    if cpu:
        summary["cpu_cores"] = cpu
        summary.update(cpu_budget(cpu, summary["per_s"], os.cpu_count() or 1))
    if kind == "checkpoint":
        expected: dict[str, int] = {}
        for r in ok:
            for k, v in r["expected"].items():
                expected[k] = expected.get(k, 0) + v
        summary["sent_by_case"] = expected
    else:
        rej: dict[str, int] = {}
        for r in ok:
            for k, v in r["rule_rejects"].items():
                rej[k] = rej.get(k, 0) + v
        summary["rule_rejects"] = rej
    return {
        "summary": summary,
        "ids": [i for r in ok for i in r["ids"]],
        "dup_answers": sum(r["dup_answers"] for r in ok),
    }


_STAGES = (
    ("publish->hub", 0, 1),  # unit's publish to the worker's callback (broker, sockets, queue)
    ("verify", 1, 2),  # decode, code pipeline, policy
    ("wait_commit", 2, 3),  # pending while the previous batch commits
    ("stage", 3, 4),  # the batch's SQL (split mode; 0 otherwise)
    ("durable", 4, 5),  # COMMIT with fsync, on the store thread
    ("answer", 5, 6),  # results published and PUBACKs written for the batch
    ("result->unit", 6, 7),  # broker to the unit's callback
)


def stage_report(prefix: str) -> dict[str, Any]:
    """Per-stage latency percentiles (ms) per phase from the trace files the workers and
    simulators write with CHECKPOST_HUB_TRACE=prefix: where publish->result time goes."""
    import glob

    hub: dict[str, list[float]] = {}
    for path in glob.glob(prefix + ".hub*"):
        with open(path) as f:
            for r in json.load(f):
                hub[r[0]] = r[1:]
    out: dict[str, Any] = {}
    for path in sorted(glob.glob(prefix + ".sim-*")):
        tag = {"cp": "checkpoint", "hr": "checkpoint_half_rate", "sa": "sampling"}.get(
            path[len(prefix) + 5 :].split("-")[0], "other"
        )
        with open(path) as f:
            for eid, sent, got in json.load(f):
                h = hub.get(eid)
                if h is None:
                    continue
                t = [sent, *h[:6], got]
                acc = out.setdefault(tag, {"batch": [], "total": []})
                for name, a, b in _STAGES:
                    acc.setdefault(name, []).append(t[b] - t[a])
                acc["total"].append(got - sent)
                acc["batch"].append(h[6] / 1000)  # events; /1000 undoes the ms scaling below
    return {
        tag: {
            name: {q: _ms(_pct(v, p)) for q, p in (("p50", 0.5), ("p99", 0.99))}
            for name, v in acc.items()
        }
        for tag, acc in out.items()
    }


def _run_loop(coro: Any) -> Any:
    """uvloop when installed (the hub extra has it), else the standard event loop."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)
