"""Prometheus metrics of the hub (base units, `_total` counters, bounded labels).

Workers are separate processes, so the metrics use prometheus-client's multiprocess mode:
`PROMETHEUS_MULTIPROC_DIR` must be set before this module is imported (the `hub run`
supervisor does it) and the API process aggregates the files. Without the variable the
metrics are per-process, which is what tests and a single-process embed get.

The loop updates metrics once per batch from local tallies, not once per event, so that
metrics cost stays a small fraction of the loop.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    5,
)

EVENTS = Counter("checkpost_hub_events", "Events stored, by kind", ["kind"])
VERDICTS = Counter("checkpost_hub_verdicts", "Scan verdicts sent, by result", ["verdict"])
REJECTS = Counter(
    "checkpost_hub_rejects", "Messages rejected before the store, by reason", ["reason"]
)
RULE_REJECTS = Counter(
    "checkpost_hub_rule_rejects", "Events refused by a city-wide rule", ["reason"]
)
DUPLICATES = Counter("checkpost_hub_duplicates", "Events answered again from the store")
ALERTS = Counter("checkpost_hub_alerts", "Alerts raised (e.g. unit spoofing)", ["code"])
LOOP_LATENCY = Histogram(
    "checkpost_hub_loop_latency_seconds",
    "Receive to result published (includes the group commit)",
    buckets=LATENCY_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "checkpost_hub_commit_seconds", "Store commit time per batch", buckets=LATENCY_BUCKETS
)
BATCH_SIZE = Histogram(
    "checkpost_hub_batch_size",
    "Events per group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
EVENT_LAG = Histogram(
    "checkpost_hub_event_lag_seconds",
    "Hub receive time minus the unit's event time (queueing on the unit and the broker)",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 86400),
)
