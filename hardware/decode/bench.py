"""`checkpost bench decode`: the station decoder against bare zxing-cpp and bare pyzbar.

All three run in the same process on the same frames, pinned to one core with OpenCV's
thread pool off, so the ratios hold on a noisy machine. Figures per category and overall:
read rate (exact payload), wrong reads (a payload that is not the one shown), false reads
on frames without a code, median and p95 milliseconds per 1280x720 frame; on clips, the
frames from "fully in view" (inside the picture and no longer smeared by the hand's
movement by more than one module, see the generator's ``_clip``) to the first read. The
last line is one JSON object with every figure and the goals checked.

Without ``--corpus`` a corpus is generated into a temporary folder from ``--seed``. The
decoder was tuned on seed 1; report figures on another seed (the default is 20261123).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from checkpost.hardware.decode.pipeline import DEFAULT_BUDGET_MS

DEFAULT_SEED = 20261123
QR_CATEGORIES = ("phone_qr", "paper_qr", "tube_qr")
GOALS = {
    "qr_read_min": 0.87,
    "qr_over_zxing_points": 1.5,
    "tube_c128_min": 0.65,
    "median_ms_max": 4.0,
    "p95_ms_max": 15.0,
    "clips_within_3_min": 0.95,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", help="corpus folder with manifest.json (default: generate one)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed when generating")
    p.add_argument("--stills", type=int, default=600, help="still frames when generating")
    p.add_argument("--clips", type=int, default=60, help="clips when generating")
    p.add_argument("--station", choices=["checkpoint", "sampling"], default="sampling")
    p.add_argument(
        "--budget-ms",
        type=float,
        default=DEFAULT_BUDGET_MS,
        help=f"station fallback budget (CPU ms; default {DEFAULT_BUDGET_MS:g}, as a station)",
    )
    p.add_argument("--keep", help="write the generated corpus here instead of a temp folder")
    p.add_argument("--misses", action="store_true", help="list the station's misses")


def _pin_one_core() -> int | None:
    """Measure on one core: pin the process and turn off OpenCV's thread pool."""
    import cv2

    cv2.setNumThreads(1)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    except (AttributeError, OSError):
        return None


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values), q))


class _Bare:
    """The baselines: each decoder alone, formats restricted to what the station reads."""

    def __init__(self) -> None:
        import zxingcpp
        from pyzbar import pyzbar

        self._zx = zxingcpp
        self._fmts = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)
        self._zbar = pyzbar.decode
        self._syms = [pyzbar.ZBarSymbol.QRCODE, pyzbar.ZBarSymbol.CODE128]

    def zxing(self, frame: np.ndarray) -> list[str]:
        return [r.text for r in self._zx.read_barcodes(frame, formats=self._fmts)]

    def zbar(self, frame: np.ndarray) -> list[str]:
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        out = []
        for r in self._zbar(gray, symbols=self._syms):
            out.append(r.data.decode("utf-8", "replace"))
        return out


def _score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    with_code = [r for r in rows if r["expected"]]
    empty = [r for r in rows if not r["expected"]]
    ms = [r["ms"] for r in rows]
    read = sum(1 for r in with_code if set(r["expected"]) <= set(r["got"]))
    wrong = sum(1 for r in with_code if set(r["got"]) - set(r["expected"]))
    return {
        "frames": len(rows),
        "read_rate": round(read / len(with_code), 4) if with_code else None,
        "read": read,
        "wrong": wrong,
        "false_on_empty": sum(1 for r in empty if r["got"]),
        "median_ms": round(statistics.median(ms), 2) if ms else 0.0,
        "p95_ms": round(_pct(ms, 95), 2),
    }


def _run_stills(manifest: dict, root: Path, runners: dict[str, Callable]) -> dict[str, list]:
    import cv2

    # One pass per pipeline, as a station core runs only its own decoder. Interleaved
    # (station, zxing, zbar on each frame in turn) zbar's ~20 ms over its own buffers
    # evicted the station's caches before every frame: its median read 0.6-0.7 ms slower
    # on seeds 5150, 777001 and 8675309 than in a pass of its own.
    rows: dict[str, list] = {name: [] for name in runners}
    for name, fn in runners.items():
        for item in manifest["stills"]:
            frame = cv2.imread(str(root / item["file"]), cv2.IMREAD_COLOR)
            expected = [c["text"] for c in item["codes"]]
            t0 = time.perf_counter()
            got = fn(frame)
            ms = (time.perf_counter() - t0) * 1000
            rows[name].append(
                {
                    "file": item["file"],
                    "category": item["category"],
                    "expected": expected,
                    "got": got,
                    "ms": ms,
                    "conditions": item.get("conditions", {}),
                }
            )
    return rows


def _run_clips(manifest: dict, root: Path, station: Any, bare: _Bare) -> dict[str, Any]:
    import cv2

    deltas: dict[str, list[int | None]] = {"station": [], "zxing": [], "station_from_inside": []}
    ms: list[float] = []
    per_cat: dict[str, list[int | None]] = {}
    for clip in manifest["clips"]:
        frames = [cv2.imread(str(root / clip["dir"] / f), cv2.IMREAD_COLOR) for f in clip["frames"]]
        truth = {c["text"] for c in clip["codes"]}
        full = clip["full_index"]
        if full is None:
            continue
        station.reset()
        first: dict[str, int | None] = {"station": None, "zxing": None}
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            got_s = [r.text for r in station.read(frame)]
            ms.append((time.perf_counter() - t0) * 1000)
            if first["station"] is None and truth & set(got_s):
                first["station"] = i
            if first["zxing"] is None and truth & set(bare.zxing(frame)):
                first["zxing"] = i
        for k in ("station", "zxing"):
            d = None if first[k] is None else max(0, first[k] - full)
            deltas[k].append(d)
        # for reference: counted from the first frame with the code inside the picture,
        # however smeared by the hand's movement (see the corpus generator's _clip)
        inside = clip.get("inside_index", full)
        st = first["station"]
        deltas["station_from_inside"].append(None if st is None else max(0, st - inside))
        per_cat.setdefault(clip["category"], []).append(
            None if first["station"] is None else max(0, first["station"] - full)
        )

    def summary(ds: list[int | None]) -> dict[str, Any]:
        n = len(ds)
        within = sum(1 for d in ds if d is not None and d <= 2)
        read = [d for d in ds if d is not None]
        return {
            "clips": n,
            "within_3_frames": round(within / n, 4) if n else None,
            "never_read": n - len(read),
            "median_frames_after_full": statistics.median(read) if read else None,
        }

    return {
        "station": summary(deltas["station"]),
        "zxing": summary(deltas["zxing"]),
        "station_from_inside": summary(deltas["station_from_inside"]),
        "station_by_category": {k: summary(v) for k, v in sorted(per_cat.items())},
        "station_median_ms": round(statistics.median(ms), 2) if ms else 0.0,
        "station_p95_ms": round(_pct(ms, 95), 2),
    }


def run(args: argparse.Namespace) -> int:
    from checkpost.hardware.corpus import make_corpus
    from checkpost.hardware.decode import StationDecoder

    tmp = None
    if args.corpus:
        root = Path(args.corpus)
        manifest = json.loads((root / "manifest.json").read_text())
    else:
        if args.keep:
            root = Path(args.keep)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="checkpost-corpus-")
            root = Path(tmp.name)
        t0 = time.perf_counter()
        manifest = make_corpus(args.seed, root, stills=args.stills, clips=args.clips)
        print(
            f"generated corpus seed {args.seed}: {len(manifest['stills'])} stills, "
            f"{len(manifest['clips'])} clips in {time.perf_counter() - t0:.1f} s -> {root}"
        )
    try:
        core = _pin_one_core()
        station = StationDecoder(
            station=args.station, budget_ms=args.budget_ms, track=False, debounce_s=0
        )
        bare = _Bare()

        def station_fn(frame: np.ndarray) -> list[str]:
            return [r.text for r in station.read(frame)]

        runners = {"station": station_fn, "zxing": bare.zxing, "zbar": bare.zbar}
        # warm-up: first calls pay for lazy initialisation inside the libraries
        import cv2

        warm = cv2.imread(str(root / manifest["stills"][0]["file"]))
        for fn in runners.values():
            fn(warm)
        t0 = time.perf_counter()
        rows = _run_stills(manifest, root, runners)
        clip_station = StationDecoder(
            station=args.station, budget_ms=args.budget_ms, track=True, debounce_s=0
        )
        clips = _run_clips(manifest, root, clip_station, bare)
        elapsed = time.perf_counter() - t0
    finally:
        if tmp is not None:
            tmp.cleanup()

    cats = sorted({r["category"] for r in rows["station"]})
    results: dict[str, Any] = {
        "seed": manifest.get("seed"),
        "core": core,
        "station": args.station,
        "budget_ms": args.budget_ms,
        "pipelines": {},
    }
    for name, rs in rows.items():
        entry: dict[str, Any] = {"overall": _score(rs)}
        for c in cats:
            entry[c] = _score([r for r in rs if r["category"] == c])
        qr_rows = [r for r in rs if r["category"] in QR_CATEGORIES]
        entry["qr"] = _score(qr_rows)
        results["pipelines"][name] = entry
    results["clips"] = clips
    st, zx = results["pipelines"]["station"], results["pipelines"]["zxing"]
    total_wrong = st["overall"]["wrong"]
    total_false = st["overall"]["false_on_empty"]
    checks = {
        "qr_read>=87%": st["qr"]["read_rate"] >= GOALS["qr_read_min"],
        "qr_read>=zxing+1.5pt": (st["qr"]["read_rate"] - zx["qr"]["read_rate"]) * 100
        >= GOALS["qr_over_zxing_points"],
        "tube_c128>=65%": (st.get("tube_c128", {}).get("read_rate") or 0) >= GOALS["tube_c128_min"],
        "zero_wrong": total_wrong == 0,
        "zero_false_on_empty": total_false == 0,
        "median<=4ms": st["overall"]["median_ms"] <= GOALS["median_ms_max"],
        "p95<=15ms": st["overall"]["p95_ms"] <= GOALS["p95_ms_max"],
        "clips_within_3>=95%": (clips["station"]["within_3_frames"] or 0)
        >= GOALS["clips_within_3_min"],
    }
    results["goals"] = checks
    results["elapsed_s"] = round(elapsed, 1)

    _print_table(results, cats)
    if args.misses:
        for r in rows["station"]:
            if r["expected"] and not set(r["expected"]) <= set(r["got"]):
                c = r["conditions"]
                print(f"miss {r['file']} {r['category']} {json.dumps(c, sort_keys=True)}")
    print(json.dumps(results, separators=(",", ":")))
    sys.stdout.flush()
    return 0


def _print_table(results: dict[str, Any], cats: list[str]) -> None:
    print(
        f"\nseed {results['seed']}, station={results['station']}, one core "
        f"(cpu {results['core']}), budget {results['budget_ms']} ms"
    )
    header = (
        f"{'category':<12} {'pipeline':<8} {'frames':>6} {'read':>7} {'wrong':>5} "
        f"{'false':>5} {'med ms':>7} {'p95 ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for c in [*cats, "qr", "overall"]:
        for name, entry in results["pipelines"].items():
            s = entry[c]
            rr = "  -   " if s["read_rate"] is None else f"{s['read_rate'] * 100:6.1f}%"
            print(
                f"{c:<12} {name:<8} {s['frames']:>6} {rr:>7} {s['wrong']:>5} "
                f"{s['false_on_empty']:>5} {s['median_ms']:>7.2f} {s['p95_ms']:>7.2f}"
            )
    cl = results["clips"]
    print(
        f"\nclips: station read within 3 frames of fully in view: "
        f"{(cl['station']['within_3_frames'] or 0) * 100:.1f}% of {cl['station']['clips']} "
        f"(never read {cl['station']['never_read']}); bare zxing "
        f"{(cl['zxing']['within_3_frames'] or 0) * 100:.1f}%; counted from the first frame "
        f"with the code inside however smeared: "
        f"{(cl['station_from_inside']['within_3_frames'] or 0) * 100:.1f}%"
    )
    for k, v in cl["station_by_category"].items():
        print(f"  {k:<12} {(v['within_3_frames'] or 0) * 100:5.1f}% of {v['clips']}")
    print(
        "goals: "
        + ", ".join(f"{k} {'MET' if ok else 'NOT MET'}" for k, ok in results["goals"].items())
    )
