"""The unit with the real hub (`checkpost hub run`), telemetry, the benchmark and the demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from checkpost.edge.procs import Hub
from checkpost.edge.telemetry import collect
from checkpost.edge.workflows import CodeRead, Tap

from checkpost.protocol import Telemetry, decode_telemetry

from .helpers import make_unit, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_hub(tmp_path_factory: pytest.TempPathFactory, broker: Any, issuer: Any) -> Any:
    hub = Hub(broker.url, tmp_path_factory.mktemp("hub"), str(issuer.folder)).start()
    yield hub
    hub.stop()


def test_tube_opened_at_two_tables_conflict_from_the_real_hub(
    tmp_path: Path, issuer: Any, broker: Any, real_hub: Any
) -> None:
    a = make_unit(tmp_path, issuer, station="sampling", broker=broker.url, unit="samp-a").start(
        devices=False
    )
    b = make_unit(tmp_path, issuer, station="sampling", broker=broker.url, unit="samp-b").start(
        devices=False
    )
    try:
        # the hub is up when it answers
        wait_for(lambda: a.link.connected and b.link.connected, what="connected")
        a.submit(CodeRead("200000000001"))
        wait_for(
            lambda: a.workflow.view and a.workflow.view.confirmed, timeout=60, what="hub answer"
        )
        assert a.workflow.view.verdict == "PASS"
        b.submit(CodeRead("200000000001"))  # the same pre-printed label at another table
        wait_for(lambda: b.workflow.view and b.workflow.view.confirmed, timeout=60, what="conflict")
        assert b.workflow.view.verdict == "FAIL"
        assert b.workflow.notice.reason.code == "hub_conflict"
        assert b.outbox.journal_entries("conflict")
        # people go into the tube that is really open; the hub agrees
        a.submit(CodeRead(issuer.sr1(id_number="sys-1")))
        a.submit(Tap("close_tube"))
        wait_for(
            lambda: a.outbox.depth == 0 and not a.workflow.awaiting, timeout=60, what="drained"
        )
        assert b.workflow.tube is not None  # b's tube is shown as refused; staff discard it
    finally:
        a.stop()
        b.stop()


def test_checkpoint_against_the_real_hub(
    tmp_path: Path, issuer: Any, broker: Any, real_hub: Any
) -> None:
    u = make_unit(tmp_path, issuer, broker=broker.url, unit="chk-real").start(devices=False)
    ids: list[str] = []
    u.event_listeners.append(lambda evs: ids.extend(e.id for e in evs))
    try:
        wait_for(lambda: u.link.connected, what="connected")
        u.submit(Tap("plate", {"plate": "京A12345"}))
        u.submit(Tap("temp", {"celsius": 36.4}))
        u.submit(CodeRead(issuer.hp1()))
        u.submit(Tap("temp", {"celsius": 36.4}))
        u.submit(CodeRead(issuer.hp1(id_number="2", colour="R")))
        u.submit(Tap("turn_back", {"why": "red code"}))
        wait_for(lambda: len(ids) == 7 and u.outbox.depth == 0, timeout=60, what="all answered")
        wait_for(lambda: set(ids) <= set(real_hub.stored_ids()), what="stored by the hub")
        assert u.workflow.counters(time.time())["turned_back"] == 1
    finally:
        u.stop()


def test_telemetry_is_the_protocol_message(tmp_path: Path, issuer: Any) -> None:
    u = make_unit(tmp_path, issuer, unit="tel-1", thermometer="sim", gpio="mock")
    u.start(http=False)
    try:
        wait_for(lambda: u.thermometer.status() == "ok", what="thermometer ok")
        u._poll_thermometer()
        t = collect(u, time.time(), {})
        assert isinstance(t, Telemetry)
        assert t.thermometer == "ok" and t.thermometer_ok and t.disk_free_mb and t.load1 is not None
        assert t.trust_version == "1" and not t.trust_stale and t.policy_version
        # what the unit sends is what the hub's validating decoder gives back
        assert decode_telemetry(msgspec.json.encode(t)) == t
    finally:
        u.stop()


def test_bench_station_offline_and_online() -> None:
    from checkpost.edge.bench import run_bench

    off = run_bench(offline=True, frames=20, warmup=3, quiet=True)
    assert off["frames"] == 20 and off["lost"] == 0 and "bare_decode" in off["stages_ms"]
    on = run_bench(offline=False, frames=20, warmup=3, quiet=True)
    assert on["mode"] == "online" and "hub" in on["stages_ms"] and on["lost"] == 0


def test_system_demo_loses_nothing(tmp_path: Path) -> None:
    from checkpost.edge.demo import run_system_demo, summary_line

    lines: list[str] = []
    totals = run_system_demo(
        tmp_path / "demo",
        duration=12,
        stations=("checkpoint", "gate", "sampling", "transfer"),
        say=lines.append,
    )
    line = summary_line(totals)
    print("\n" + "\n".join(lines) + "\n" + line)
    assert any("hub API http://127.0.0.1:" in x for x in lines)
    assert totals["verdicts"] > 0 and totals["tubes"] > 0
    assert totals["lost"] == 0 and totals["duplicated"] == 0 and totals["undelivered"] == 0
    assert line.endswith("lost 0, duplicated 0")


def test_hub_process_store_path_is_absolute_when_given_a_relative_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` writes to a relative demo-out/: `sqlite:///<path>` must not point at /."""
    from checkpost.edge.procs import Hub

    monkeypatch.chdir(tmp_path)
    hub = Hub("mqtt://127.0.0.1:1883", Path("demo-out/system/hub"), None)
    assert hub.db == tmp_path / "demo-out" / "system" / "hub" / "hub.db"
