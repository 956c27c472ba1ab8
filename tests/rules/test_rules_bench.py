"""The benchmark runs and reports the figures ``checkpost bench verify`` relies on.

Timing goals are not asserted here (a loaded CI machine would make them flaky); the
figures are for ``python -m checkpost.rules.bench`` and ``checkpost bench verify``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from _rules_shared import EU_RULES, require

from checkpost.rules.bench import measure

FIGURES = ("median_us", "p99_us", "mean_us", "n")


def test_measure_returns_every_figure() -> None:
    res = measure(country="DE", rules_dir=require(EU_RULES), samples=200, es256_samples=200)
    for key in ("checkpost_cold", "checkpost_warm", "checkpost_all_rules",
                "checkpost_engine_only", "panzi", "es256_verify"):  # fmt: skip
        assert set(res[key]) == set(FIGURES), key
        assert res[key]["median_us"] > 0
    assert res["rules_of_country"] == 11 and res["payloads"] > 10
    assert isinstance(res["goal_met"], bool) and res["cold_vs_es256"] > 0


def test_standalone_prints_a_last_json_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "checkpost.rules.bench", "--samples", "100", "--country", "NL",
         "--rules", str(require(EU_RULES))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    res = json.loads(out.stdout.splitlines()[-1])
    assert res["country"] == "NL" and "es256_verify" in res
