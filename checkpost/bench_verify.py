"""`checkpost bench verify`: the code pipeline and policy against a bare signature check.

Measures, on one core, text → verdict for HP1 signed with ES256 and with EdDSA and for an
EU certificate (HC1), per code (median, p99) and per second, and in the same run the bare
`cryptography` verification of the very same signature over the very same bytes. The
ratio pipeline/bare is the figure that survives a noisy machine: issue 1's goal is ≤ 1.35.
Component costs (Base45, zlib, COSE, CBOR, policy) are printed to show where the rest goes.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
import zlib
from collections.abc import Callable
from typing import Any

GOAL_RATIO = 1.35


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=20000, help="iterations per measurement")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")


def _time(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """Median and p99 in µs per call, and calls per second over the whole loop."""
    for _ in range(min(200, n)):
        fn()
    samples = [0] * n
    clock = time.perf_counter_ns
    gc.collect()
    start = clock()
    for i in range(n):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    total = clock() - start
    samples.sort()
    return {
        "median_us": round(samples[n // 2] / 1000, 2),
        "p99_us": round(samples[min(n - 1, int(n * 0.99))] / 1000, 2),
        "per_s": round(n / (total / 1e9)),
    }


def _dcc(now: float) -> dict[str, Any]:
    import datetime as dt

    sc = dt.datetime.fromtimestamp(now - 20 * 3600, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "ver": "1.3.0",
        "nam": {"fn": "Musterfrau", "fnt": "MUSTERFRAU", "gn": "Erika", "gnt": "ERIKA"},
        "dob": "1964-08-12",
        "t": [
            {
                "tg": "840539006",
                "tt": "LP6464-4",
                "nm": "Roche LightCycler qPCR",
                "sc": sc,
                "tr": "260415000",
                "tc": "Testzentrum Köln Hbf",
                "co": "DE",
                "is": "Robert Koch-Institut",
                "ci": "URN:UVCI:01DE/IBMT102/18Q12HTUJ7Y73SWF4Q5PCEG49#Z",
            }
        ],
    }


def run(args: argparse.Namespace) -> int:
    import cbor2

    from checkpost.codes import cose
    from checkpost.codes.base45 import b45decode
    from checkpost.codes.claims import CLAIM_EXP, CLAIM_HCERT, CLAIM_IAT, CLAIM_ISS
    from checkpost.codes.trust import TrustEntry, alg_of, key_id
    from checkpost.issuer import TestIssuer, mint
    from checkpost.policy import decide
    from checkpost.runtime import build_context

    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n = max(100, args.n)
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        issuer = TestIssuer.create(tmp)
        ctx = build_context(issuer_dir=tmp)
    es_key = issuer.keys["ES256"]
    hc1_entry = TrustEntry(
        key_id(es_key.public_key()),
        alg_of(es_key.public_key()),
        es_key.public_key(),
        issuer="bench DSC",
        kinds=frozenset({"HC1"}),
    )
    ctx.trust.add(hc1_entry)
    hc1 = mint(
        "HC1",
        {
            CLAIM_ISS: "DE",
            CLAIM_IAT: int(now),
            CLAIM_EXP: int(now + 86400 * 30),
            CLAIM_HCERT: {1: _dcc(now)},
        },
        es_key,
        key_id(es_key.public_key()) + b"",
    )
    # The HC1 entry shares its kid with the HP1 key: key usage must pick the HC1 one.
    codes = {
        "HP1 ES256": issuer.hp1(iat=now, alg="ES256"),
        "HP1 EdDSA": issuer.hp1(iat=now, alg="EdDSA"),
        "HC1 ES256": hc1,
    }
    verify, policy = ctx.verifier.verify, ctx.policy
    # As the hub loop and the edge agent do once started: long-lived objects (trust store,
    # compiled rules and schemas, modules) leave the collector's generations, so a scan's
    # short-lived garbage is all a collection walks.
    gc.collect()
    gc.freeze()
    schemas_ok = ctx.verifier.schemas is not None and ctx.verifier.schemas.available
    temps = [36.5]
    figures: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "n": n,
        "pinned": not args.no_pin,
        "goal_ratio": GOAL_RATIO,
    }
    print(
        f"checkpost bench verify — {n} iterations per figure, one core"
        f"{'' if not args.no_pin else ' (not pinned)'}; µs per code"
    )
    print(
        f"{'code':<11} {'chars':>5} {'pipeline med':>12} {'p99':>8} {'per s':>8} │ "
        f"{'bare verify med':>15} {'p99':>8} {'per s':>8} │ {'ratio':>5}  verdict"
    )
    for label, text in codes.items():
        decoded = verify(text, now)
        verdict = decide(decoded, temps, "checkpoint", now, policy)
        raw = zlib.decompress(b45decode(text[4:]))
        msg = cose.parse_sign1(raw)
        tbs = msg.to_be_signed()
        entry = next(
            e
            for e in ctx.trust.candidates(msg.kid)
            if e.cose_alg == msg.alg and label[:3] in e.kinds
        )
        key = entry.public_key
        if msg.alg == cose.ALG_ES256:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            der = encode_dss_signature(
                int.from_bytes(msg.signature[:32], "big"), int.from_bytes(msg.signature[32:], "big")
            )
            ecdsa = ec.ECDSA(hashes.SHA256())

            def bare(
                key: Any = key, der: bytes = der, tbs: bytes = tbs, ecdsa: Any = ecdsa
            ) -> None:
                key.verify(der, tbs, ecdsa)
        else:
            sig = msg.signature

            def bare(key: Any = key, sig: bytes = sig, tbs: bytes = tbs) -> None:
                key.verify(sig, tbs)

        def pipeline(text: str = text) -> None:
            decide(verify(text, now), temps, "checkpoint", now, policy)

        p = _time(pipeline, n)
        b = _time(bare, n)
        ratio = round(p["median_us"] / b["median_us"], 3)
        note = "" if label[:3] != "HC1" or schemas_ok else " (no DCC schemas: schema step fails)"
        print(
            f"{label:<11} {len(text):>5} {p['median_us']:>12.1f} {p['p99_us']:>8.1f} "
            f"{p['per_s']:>8} │ {b['median_us']:>15.1f} {b['p99_us']:>8.1f} {b['per_s']:>8} │ "
            f"{ratio:>5.2f}  {verdict.verdict}{note}"
        )
        figures[label.replace(" ", "_").lower()] = {
            "chars": len(text),
            "pipeline": p,
            "bare_verify": b,
            "ratio": ratio,
            "verdict": verdict.verdict,
            "meets_goal": ratio <= GOAL_RATIO,
        }

    # Where the envelope's cost goes, for the ES256 health pass.
    text = codes["HP1 ES256"]
    body = text[4:]
    compressed = b45decode(body)
    raw = zlib.decompress(compressed)
    msg = cose.parse_sign1(raw)
    decoded = verify(text, now)
    bundle_rules, _ = policy.combined(("HP1", "Temperature"))
    bundle_data = {
        "payload": decoded.claims[-270],
        "external": {"now": int(now), "iat": 0, "exp": 0, "readings": [365], "readingCount": 1},
    }
    parts = {
        "base45": _time(lambda: b45decode(body), n),
        "zlib": _time(lambda: zlib.decompressobj().decompress(compressed, 65536), n),
        "cose": _time(lambda: cose.parse_sign1(raw), n),
        "cbor_claims": _time(lambda: cbor2.loads(msg.payload), n),
        # Rule evaluation alone: our checkpoint bundle = HP1 rules + temperature rules, fused.
        "rules_checkpoint_bundle": _time(lambda: bundle_rules.misses(bundle_data), n),
        "policy_decide": _time(lambda: decide(decoded, temps, "checkpoint", now, policy), n),
    }
    try:
        import base45 as base45_pkg  # the PyPI package, when installed, as a reference point

        parts["base45_pypi_package"] = _time(lambda: base45_pkg.b45decode(body), max(100, n // 10))
    except ImportError:
        pass
    rules = _rules_figures(n)
    if rules:
        parts.update(rules)
    print(
        "components (HP1 ES256): "
        + ", ".join(f"{k} {v['median_us']:.1f}" for k, v in parts.items() if "median_us" in v)
        + " µs"
    )
    bundle = parts["rules_checkpoint_bundle"]["median_us"]
    bare = figures["hp1_es256"]["bare_verify"]["median_us"]
    figures["checkpoint_bundle_us"] = round(bundle, 2)
    print(
        f"rules: checkpoint bundle (HP1 + temperature) {bundle:.1f} µs per scan vs bare "
        f"ES256 {bare:.1f} µs — {'met' if bundle < bare else 'NOT met'} (goal: less)"
    )
    eu = rules.get("eu_rules_de", {})
    if "error" in eu:
        print(f"rules: EU DE rule set not measured: {eu['error']}")
    elif eu:
        print(f"rules: EU DE rule set, per certificate: {_eu_line(eu)}")
    figures["components"] = parts
    worst = max(v["ratio"] for k, v in figures.items() if isinstance(v, dict) and "ratio" in v)
    print(
        f"goal: pipeline ≤ {GOAL_RATIO}x bare verify — worst ratio {worst:.2f}: "
        f"{'met' if worst <= GOAL_RATIO else 'NOT met'}"
    )
    figures["worst_ratio"] = worst
    print(json.dumps(figures, ensure_ascii=False))
    return 0


def _rules_figures(n: int) -> dict[str, Any]:
    """One country's full EU rule set per certificate (needs EU rules: `../shared/eu-rules`
    in a development checkout, or CHECKPOST_EU_RULES)."""
    from checkpost.rules import bench as rules_bench

    rules_dir = os.environ.get("CHECKPOST_EU_RULES")
    try:
        result = rules_bench.measure(
            country="DE",
            rules_dir=rules_dir,
            samples=max(500, n // 4),
            es256_samples=max(500, n // 4),
            with_panzi=False,
        )
    except (OSError, ValueError) as exc:  # no EU rules on a user's clone: say so, don't fail
        return {"eu_rules_de": {"error": str(exc)[:200]}}
    return {"eu_rules_de": result}


def _eu_line(eu: dict[str, Any]) -> str:
    keys = ("checkpost_cold", "es256_verify")
    parts = [f"{k} {eu[k]['median_us']:.1f} µs" for k in keys if isinstance(eu.get(k), dict)]
    return ", ".join(parts) or json.dumps(eu)[:200]
