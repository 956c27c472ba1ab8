"""The hub: verifies every unit's events in real time over MQTT and keeps city-wide state.

    loop.py        one worker: receive -> verify -> group commit -> answer -> acknowledge
    prepare.py     per-event decisions that need no state (code pipeline + policy)
    store/         one interface, SQLite (embedded) and PostgreSQL (scale-out), migrations,
                   and the city-wide rules enforced by constraints
    transport.py   the one MQTT module (gmqtt, TCP_NODELAY, acknowledge after commit)
    api.py         FastAPI: /healthz, /metrics, /api/v1/...; hub presence on the broker
    units.py       fleet view from units' retained status and telemetry
    metrics.py     Prometheus metrics of the loop
    service.py     `checkpost hub run`: supervisor of worker and API processes
    bench.py       `checkpost bench hub` (bench_sim.py: the simulated units)
    broker.py      a private Mosquitto for tests and benchmarks
    reasons.py     reasons only the hub gives (to merge into checkpost.reasons later)

The wire protocol is `checkpost.protocol`, shared with the edge agent (docs/protocol.md).
"""
