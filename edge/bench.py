"""`checkpost bench station [--offline]`: frame to verdict through the whole unit path.

Per frame, on one thread (as the unit's camera thread and worker do in sequence):

    decode      StationDecoder on a 1280x720 camera-like frame (the unit's decoder settings)
    verdict     workflow: code pipeline + policy (the local verdict)
    store       outbox commit, fsync'd (SQLite WAL, synchronous=FULL) — before anything shows
    screen      the screen state built and pushed (what the page draws next frame)
    hub         (online) publish → hub verifies and commits → Result back → confirmed state

``total`` is frame in → local verdict on screen (offline goal: p99 ≤ 50 ms) and, online,
frame in → hub-confirmed verdict on screen (goal: p99 ≤ 150 ms). The same run times the bare
decoder on the same frames as the baseline. Online, a private Mosquitto and the real hub
(``checkpost hub run``, SQLite store) are started on loopback and stopped at the end.

The Pi 4 estimate multiplies the unit's CPU stages by 4 (MEASURED.md: a Pi 4 core is 3-5x
slower) and adds an SD-card fsync allowance for the store stage; the hub round trip is
taken as measured here (the hub runs on a server, not on the Pi) plus a LAN allowance.
The last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PI_FACTOR = 4.0
SD_FSYNC_MS = 8.0  # a class-10 SD card's fsync, typical
LAN_MS = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offline", action="store_true", help="no broker and no hub: local verdicts only"
    )
    p.add_argument("--frames", type=int, default=300, help="frames to time (default 300)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--station", choices=("gate", "checkpoint"), default="gate")
    p.add_argument("--keep", metavar="DIR", help="keep the working folder here")
    p.add_argument("--json", action="store_true", help="print only the JSON line")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def run(args: argparse.Namespace) -> int:
    try:
        result = run_bench(
            offline=args.offline,
            frames=args.frames,
            warmup=args.warmup,
            station=args.station,
            keep=Path(args.keep) if args.keep else None,
            quiet=args.json,
        )
    except RuntimeError as exc:
        print(f"checkpost bench station: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


def run_bench(
    *,
    offline: bool,
    frames: int = 300,
    warmup: int = 20,
    station: str = "gate",
    keep: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    from checkpost.edge.agent import HubResult, Unit
    from checkpost.edge.config import load_config
    from checkpost.edge.frames import make_frame, readable
    from checkpost.edge.procs import Broker, Hub
    from checkpost.edge.workflows import CodeRead, Tap
    from checkpost.hardware.decode import StationDecoder

    from checkpost.issuer import TestIssuer

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    work = keep or Path(tempfile.mkdtemp(prefix="checkpost-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = hub = unit = None
    try:
        issuer = TestIssuer.create(work / "issuer")
        n = warmup + frames
        say(f"making {n} frames (1280x720, one HP1 code each)…")
        now = time.time()
        texts = [issuer.hp1(id_number=f"B{i:06d}", iat=now, name="张*三") for i in range(n)]
        images = [make_frame(t, i) for i, t in enumerate(texts)]
        if not readable(images[0], texts[0]):
            raise RuntimeError("generated frame not readable (decoder or generator broken)")
        # baseline: the bare decoder on the same frames
        base = StationDecoder(station="checkpoint", debounce_s=0)
        bare = []
        for img in images:
            t0 = time.perf_counter()
            base.read(img)
            bare.append((time.perf_counter() - t0) * 1000.0)
        bare = bare[warmup:]
        over: dict[str, Any] = {
            "unit": "bench-1",
            "station": station,
            "data_dir": str(work / "unit"),
            "http": "none",
            "issuer_dir": str(issuer.folder),
        }
        if not offline:
            broker = Broker(work / "broker").start()
            hub = Hub(broker.url, work / "hub", str(issuer.folder)).start()
            over["broker"] = broker.url
            say(f"broker {broker.url}, hub {hub.api} (log {hub.log})")
        cfg = load_config(None, over)
        unit = Unit(cfg)
        unit.start(devices=False, http=False, worker=False)
        from checkpost.edge.screen import ScreenHub

        unit.screen = ScreenHub()
        arrived: dict[str, float] = {}
        results: dict[str, Any] = {}
        cond = threading.Condition()

        def on_result(r: Any) -> None:
            with cond:
                arrived[r.id] = time.perf_counter()
                results[r.id] = r
                cond.notify_all()

        if unit.link is not None:
            unit.link.on_result = on_result
            deadline = time.monotonic() + 60
            while not unit.link.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            if not unit.link.connected:
                raise RuntimeError("unit could not connect to the broker")
        if station == "checkpoint":
            unit.process(Tap("plate", {"plate": "京A12345"}))
        decoder = StationDecoder(station="checkpoint", debounce_s=0)

        def wait_result(eid: str, timeout: float) -> float | None:
            end = time.monotonic() + timeout
            with cond:
                while eid not in arrived:
                    left = end - time.monotonic()
                    if left <= 0:
                        return None
                    cond.wait(left)
                return arrived[eid]

        if unit.link is not None:  # the hub is ready when it answers a first event
            say("waiting for the hub to answer…")
            ready = False
            for attempt in range(60):
                unit.process(CodeRead(issuer.hp1(id_number=f"W{attempt}")))
                ev = unit.last_events[-1]
                if wait_result(ev.id, 1.0) is not None:
                    ready = True
                    break
            if not ready:
                raise RuntimeError(f"the hub did not answer (see {hub.log if hub else ''})")
        stages: dict[str, list[float]] = {
            k: [] for k in ("decode", "verdict", "store", "screen", "local_total", "hub", "total")
        }
        lost = 0
        verdicts: dict[str, int] = {}
        for i, img in enumerate(images):
            if station == "checkpoint":
                unit.process(Tap("temp", {"celsius": 36.5}))
            t0 = time.perf_counter()
            reads = decoder.read(img)
            t1 = time.perf_counter()
            if not reads:
                lost += 1
                continue
            state = unit.process(
                CodeRead(reads[0].text, "camera", frame_ms=(t1 - t0) * 1000), t_in=t1
            )
            t2 = time.perf_counter()
            st = dict(unit.stages)
            v = (state.get("verdict") or {}).get("verdict", "?")
            verdicts[v] = verdicts.get(v, 0) + 1
            hub_ms = None
            if unit.link is not None:
                eid = unit.last_events[-1].id
                got = wait_result(eid, 10.0)
                if got is None:
                    lost += 1
                    continue
                unit.process(HubResult(results[eid]))
                t3 = time.perf_counter()
                hub_ms = (got - t2) * 1000.0
            if i < warmup:
                continue
            stages["decode"].append((t1 - t0) * 1000.0)
            stages["verdict"].append(st.get("verdict_ms", 0.0))
            stages["store"].append(st.get("store_ms", 0.0))
            stages["screen"].append(st.get("screen_ms", 0.0))
            stages["local_total"].append((t2 - t0) * 1000.0)
            if hub_ms is not None:
                stages["hub"].append(hub_ms)
                stages["total"].append((t3 - t0) * 1000.0)
            else:
                stages["total"].append((t2 - t0) * 1000.0)
        if not stages["total"]:
            raise RuntimeError("no frame went through")
        goal = 50.0 if offline else 150.0
        summary = {
            k: {"p50": round(pct(v, 0.5), 2), "p99": round(pct(v, 0.99), 2)}
            for k, v in stages.items()
            if v
        }
        summary["bare_decode"] = {"p50": round(pct(bare, 0.5), 2), "p99": round(pct(bare, 0.99), 2)}
        cpu = ("decode", "verdict", "screen")
        pi_local = (
            sum(summary[k]["p99"] for k in cpu) * PI_FACTOR + summary["store"]["p99"] + SD_FSYNC_MS
        )
        pi_total = pi_local + (summary["hub"]["p99"] + LAN_MS if "hub" in summary else 0.0)
        out: dict[str, Any] = {
            "bench": "station",
            "mode": "offline" if offline else "online",
            "station": station,
            "frames": len(stages["total"]),
            "lost": lost,
            "verdicts": verdicts,
            "stages_ms": summary,
            "total_p50_ms": summary["total"]["p50"],
            "total_p99_ms": summary["total"]["p99"],
            "goal_p99_ms": goal,
            "meets_goal": summary["total"]["p99"] <= goal,
            "pi4_estimate_p99_ms": round(pi_total, 1),
            "pi4_assumptions": f"CPU stages x{PI_FACTOR:g}, +{SD_FSYNC_MS:g} ms SD fsync, "
            f"hub on a server +{LAN_MS:g} ms LAN",
        }
        if not quiet:
            print(f"\n{'stage':<12} {'p50 ms':>8} {'p99 ms':>8}")
            for k, v in summary.items():
                print(f"{k:<12} {v['p50']:>8.2f} {v['p99']:>8.2f}")
            print(
                f"\n{out['mode']}: total p99 {out['total_p99_ms']} ms (goal ≤ {goal:g} ms) — "
                f"{'met' if out['meets_goal'] else 'NOT met'}; Pi 4 estimate p99 "
                f"{out['pi4_estimate_p99_ms']} ms ({out['pi4_assumptions']})"
            )
        return out
    finally:
        if unit is not None:
            unit.stop()
        if hub is not None:
            hub.stop()
        if broker is not None:
            broker.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
