"""What one country's EU rule set costs per certificate, against a bare ES256 verify.

The goal (issue 7 §4) is that running every applicable rule of a country costs less per
certificate than the signature check itself, measured in the same run on the same
machine. :func:`measure` returns, for payloads taken from the country's own rule tests:

* ``checkpost_cold``: :meth:`RuleSet.check` (selection + evaluation + verdict) with the
  date parse cache emptied before every certificate -- the honest figure, because every
  scan brings new dates and a new validation clock;
* ``checkpost_warm``: the same with the cache warm (repeat scans of one pass);
* ``checkpost_all_rules``: every rule of the country, whatever the certificate type;
* ``checkpost_engine_only``: only evaluating the selected rules on prepared data, cold
  cache -- the like-for-like comparison with
* ``panzi``: the same selected rules interpreted by ``panzi-json-logic`` (if installed);
* ``es256_verify``: one ``cryptography`` ECDSA P-256 verify of a ~300-byte message.

Each figure is median / p99 / mean in microseconds over individually timed calls.
``checkpost bench verify`` calls :func:`measure`; ``python -m checkpost.rules.bench`` prints
the figures and a last JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from checkpost.rules import certlogic
from checkpost.rules.eu import (
    Rule,
    RuleSet,
    certificate_types,
    find_rule_files,
    load_value_sets,
    make_external,
)


def default_rules_dir() -> Path:
    """``$CHECKPOST_EU_RULES``, else ``shared/eu-rules`` beside the repository."""
    env = os.environ.get("CHECKPOST_EU_RULES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "eu-rules"


def _stats(samples_ns: Sequence[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    n = len(s)
    return {
        "median_us": round(s[n // 2] / 1000, 2),
        "p99_us": round(s[min(n - 1, (n * 99) // 100)] / 1000, 2),
        "mean_us": round(sum(s) / n / 1000, 2),
        "n": n,
    }


def _time_calls(
    calls: Sequence[Callable[[], Any]], samples: int, before: Callable[[], Any] | None = None
) -> list[int]:
    """Time ``samples`` calls, cycling through ``calls``; ``before`` runs untimed."""
    clock = time.perf_counter_ns
    out: list[int] = []
    k = len(calls)
    for i in range(samples):
        fn = calls[i % k]
        if before is not None:
            before()
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def _payloads(rules_dir: Path, country: str) -> list[tuple[Any, dict[str, Any]]]:
    """Distinct (payload, external) pairs from the country's rule tests that are whole
    enough to select rules: a certificate type and a validation clock. Tests without value
    sets get the shared ``valuesets/valueSets.json``."""
    shared_sets: dict[str, list[str]] = {}
    if (rules_dir / "valuesets").is_dir():
        shared_sets = load_value_sets(rules_dir / "valuesets")
    seen: set[str] = set()
    out: list[tuple[Any, dict[str, Any]]] = []
    files = find_rule_files(rules_dir / country)
    # Tests without a clock (all of NL's): the latest ValidFrom of the country's rules.
    fallback_clock = max(json.loads(f.read_text(encoding="utf-8"))["ValidFrom"] for f in files)
    for rule_file in files:
        for test_file in sorted((rule_file.parent / "tests").glob("*.json")):
            test = json.loads(test_file.read_text(encoding="utf-8"))
            payload = test.get("payload")
            external = test.get("external") or {}
            if len(certificate_types(payload)) < 2:
                continue
            if not isinstance(external.get("validationClock"), str):
                external = {**external, "validationClock": fallback_clock}
            if not isinstance(external.get("valueSets"), dict):
                external = {**external, "valueSets": shared_sets}
            key = json.dumps([payload, external["validationClock"]], sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append((payload, external))
    return out


def es256_baseline(samples: int = 5000) -> dict[str, float]:
    """Bare ``cryptography`` ES256 verify of a ~300-byte message with a fresh P-256 key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(300)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    algorithm = ec.ECDSA(hashes.SHA256())

    def verify() -> None:
        public.verify(signature, message, algorithm)

    for _ in range(200):
        verify()
    return _stats(_time_calls([verify], samples))


def measure(
    country: str = "DE",
    rules_dir: str | Path | None = None,
    samples: int = 5000,
    es256_samples: int = 5000,
    with_panzi: bool = True,
) -> dict[str, Any]:
    """Per-certificate cost of ``country``'s full EU rule set, with same-run baselines.

    Returns a JSON-ready dict (figures in µs); ``goal_met`` is true when the cold-cache
    median is below the bare ES256 verify median.
    """
    root = Path(rules_dir) if rules_dir is not None else default_rules_dir()
    country = country.upper()
    if not (root / country).is_dir():
        raise FileNotFoundError(f"no rules for {country} under {root}")
    t0 = time.perf_counter()
    rule_set = RuleSet.from_dirs(root)
    compile_ms = (time.perf_counter() - t0) * 1000
    country_rules: list[Rule] = [r for r in rule_set if r.country == country]
    cases = _payloads(root, country)
    if not cases:
        raise ValueError(f"no usable test payloads for {country} under {root}")

    checks: list[Callable[[], Any]] = []
    alls: list[Callable[[], Any]] = []
    interp: list[tuple[list[Any], dict[str, Any]]] = []
    engines: list[Callable[[], Any]] = []
    selected_counts: list[int] = []
    for payload, external in cases:
        clock = external["validationClock"]
        value_sets = external["valueSets"]

        def check(p: Any = payload, c: str = clock, v: Any = value_sets) -> Any:
            return rule_set.check(p, country=country, clock=c, value_sets=v)

        data = {
            "payload": payload,
            "external": make_external(clock=clock, value_sets=value_sets, country=country),
        }

        def run_all(d: dict[str, Any] = data) -> Any:
            return rule_set.run(d, country_rules)

        checks.append(check)
        alls.append(run_all)
        chosen = rule_set.select(country=country, clock=clock, types=certificate_types(payload))
        selected_counts.append(len(chosen))
        interp.append(([r.logic for r in chosen], data))

        def engine(exprs: list[Any] = [r.expression for r in chosen], d: Any = data) -> Any:  # noqa: B006
            return [e.evaluate(d) for e in exprs]

        engines.append(engine)

    for fn in checks + alls:  # warm up code paths, not caches
        fn()
    results: dict[str, Any] = {
        "country": country,
        "rules_loaded": len(rule_set),
        "rules_of_country": len(country_rules),
        "payloads": len(cases),
        "rules_per_certificate": round(sum(selected_counts) / len(selected_counts), 2),
        "compile_all_rules_ms": round(compile_ms, 1),
        "checkpost_cold": _stats(_time_calls(checks, samples, before=certlogic.clear_caches)),
        "checkpost_warm": _stats(_time_calls(checks, samples)),
        "checkpost_all_rules": _stats(_time_calls(alls, samples, before=certlogic.clear_caches)),
        "checkpost_engine_only": _stats(
            _time_calls(engines, samples, before=certlogic.clear_caches)
        ),
    }
    if with_panzi:
        results["panzi"] = _panzi(interp, samples)
    results["es256_verify"] = es256_baseline(es256_samples)
    base = results["es256_verify"]["median_us"]
    cold = results["checkpost_cold"]["median_us"]
    results["cold_vs_es256"] = round(cold / base, 3)
    results["goal_met"] = cold < base
    if isinstance(results.get("panzi"), dict) and "median_us" in results["panzi"]:
        engine_only = results["checkpost_engine_only"]["median_us"]
        results["speedup_vs_panzi"] = round(results["panzi"]["median_us"] / engine_only, 1)
    return results


def _panzi(interp: list[tuple[list[Any], dict[str, Any]]], samples: int) -> dict[str, Any]:
    try:
        from json_logic import certLogic
    except ImportError:
        return {"skipped": "panzi-json-logic not installed"}

    def make(logics: list[Any], data: dict[str, Any]) -> Callable[[], Any]:
        def run() -> list[Any]:
            out = []
            for logic in logics:
                try:  # it raises on partial payloads; a verifier must catch that
                    out.append(certLogic(logic, data))
                except Exception as exc:
                    out.append(exc)
            return out

        return run

    calls = [make(logics, data) for logics, data in interp]
    for fn in calls:
        fn()
    return _stats(_time_calls(calls, samples))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--country", default="DE", help="country of acceptance (default DE)")
    parser.add_argument("--rules", help="EU rules root (default: shared/eu-rules)")
    parser.add_argument("--samples", type=int, default=5000, help="timed certificates")
    parser.add_argument("--no-panzi", action="store_true", help="skip the panzi comparison")


def run(args: argparse.Namespace) -> int:
    try:
        res = measure(
            country=args.country,
            rules_dir=args.rules,
            samples=args.samples,
            es256_samples=args.samples,
            with_panzi=not args.no_panzi,
        )
    except (OSError, ValueError) as exc:
        print(f"rules bench: {exc}")
        return 2

    def row(label: str, key: str) -> None:
        s = res.get(key)
        if isinstance(s, dict) and "median_us" in s:
            print(f"  {label:<44} median {s['median_us']:8.2f} µs   p99 {s['p99_us']:8.2f} µs")

    print(
        f"EU rules of {res['country']}: {res['rules_of_country']} rules, "
        f"{res['rules_per_certificate']} applicable per certificate on average, "
        f"{res['payloads']} payloads from its rule tests "
        f"(compiling all {res['rules_loaded']} rules took {res['compile_all_rules_ms']} ms)"
    )
    row("checkpost, per certificate (cold date cache)", "checkpost_cold")
    row("checkpost, per certificate (warm date cache)", "checkpost_warm")
    row("checkpost, every rule of the country", "checkpost_all_rules")
    row("checkpost, selected rules only (cold cache)", "checkpost_engine_only")
    row("panzi-json-logic, same selected rules", "panzi")
    row("bare ES256 verify (baseline)", "es256_verify")
    print(
        f"  cold / ES256 = {res['cold_vs_es256']}  goal (< 1) "
        f"{'met' if res['goal_met'] else 'NOT met'}"
        + (
            f"; evaluating the same rules, {res['speedup_vs_panzi']}x panzi's speed"
            if "speedup_vs_panzi" in res
            else ""
        )
    )
    print(json.dumps(res), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checkpost.rules.bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
