"""`checkpost bench hub` runs end to end (tiny), and its CPU accounting."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from checkpost.hub.bench import cpu_budget


def test_cpu_budget_per_event_and_machine_ceiling() -> None:
    cpu = {"worker0": 0.5, "worker1": 0.5, "broker": 0.3, "sim0": 0.1, "sim1": 0.1,
           "others": 0.4}  # fmt: skip
    got = cpu_budget(cpu, per_s=5000, cores=2)
    assert got["cpu_us_per_event"] == {"worker": 200.0, "broker": 60.0, "sim": 40.0}
    assert got["machine_ceiling_per_s"] == 6667  # 2 cores / 300 us per event
    assert cpu_budget(cpu, per_s=0, cores=2) == {}


@pytest.mark.slow
def test_bench_hub_smoke() -> None:
    """Both phases over a private Mosquitto, store checked: nothing lost or doubled."""
    out = subprocess.run(
        [sys.executable, "-m", "checkpost", "bench", "hub", "--duration", "2", "--stations",
         "20", "--phases", "checkpoint,sampling", "--baseline-seconds", "1"],
        capture_output=True, text=True, timeout=240, check=True,
    ).stdout  # fmt: skip
    report = json.loads(out.strip().splitlines()[-1])
    assert report["check"]["lost"] == 0 and report["check"]["duplicated"] == 0
    for phase in ("checkpoint", "sampling"):
        assert report[phase]["answered"] == report[phase]["sent"] > 0
        assert set(report[phase]["cpu_us_per_event"]) >= {"worker", "broker", "sim"}
    assert report["baseline_broker_rr"]["rr_per_s"] > 0
