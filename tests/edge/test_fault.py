"""Fault test over real Mosquitto and the real hub (issue 6 §8).

A gate unit publishes scans while it is SIGKILLed again and again; meanwhile the broker is
restarted and the hub is stopped and started. Afterwards the hub must hold every event the
unit committed exactly once: every id the unit announced after its commit is stored, no id
twice, no sequence number twice. The test prints the figures.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checkpost.edge.procs import Broker, Hub

from .helpers import wait_for

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


def _unit(data: Path, issuer: Any, broker: Broker, mode: str, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_fault_unit.py"),
            str(data),
            str(issuer.folder),
            broker.url,
            mode,
            str(seed),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def test_kill_broker_restart_hub_restart_exactly_once(tmp_path: Path, issuer: Any) -> None:
    rnd = random.Random(8)
    broker = Broker(tmp_path / "broker").start()
    hub = Hub(broker.url, tmp_path / "hub", str(issuer.folder)).start()
    data = tmp_path / "unit"
    announced: list[str] = []
    kills = broker_restarts = hub_restarts = 0
    procs: list[subprocess.Popen[str]] = []
    try:
        for round_ in range(10):
            if round_ == 3:
                broker.restart()
                broker_restarts += 1
            if round_ == 5:
                hub.stop()  # the unit keeps deciding locally; events wait in its outbox
            if round_ == 7:
                hub.start()
                hub_restarts += 1
            if round_ == 8:
                hub.stop(kill=True)  # and once more, the hard way
                hub.start()
                hub_restarts += 1
            p = _unit(data, issuer, broker, "run", round_)
            procs.append(p)
            assert p.stdout is not None
            want = rnd.randint(20, 80)
            for n, line in enumerate(p.stdout, 1):
                if line.startswith("P "):
                    announced.append(line[2:].strip())
                if n >= want:
                    break
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=20)
            kills += 1
            announced += [
                ln[2:].strip() for ln in p.stdout.read().splitlines() if ln.startswith("P ")
            ]
            p.stdout.close()
        # a last, quiet run delivers whatever is left
        p = _unit(data, issuer, broker, "drain", 99)
        procs.append(p)
        out, _ = p.communicate(timeout=120)
        assert "DRAINED 0" in out, out
        stored = wait_for(
            lambda: (ids := hub.stored_ids()) and set(announced) <= set(ids) and ids,
            timeout=60,
            what="every announced event stored",
        )
        import sqlite3

        db = sqlite3.connect(f"file:{hub.db}?mode=ro", uri=True)
        rows = db.execute("SELECT id, seq FROM events WHERE unit = 'gate-fault'").fetchall()
        db.close()
        ids = [r[0] for r in rows]
        seqs = [r[1] for r in rows]
        missing = set(announced) - set(ids)
        duplicated = len(ids) - len(set(ids))
        dup_seq = len(seqs) - len(set(seqs))
        extra = set(ids) - set(announced)  # committed, killed before it could announce
        print(
            f"\nfault test: {kills} SIGKILLs, {broker_restarts} broker restart, "
            f"{hub_restarts} hub restarts; {len(announced)} events announced, "
            f"{len(ids)} stored by the hub ({len(extra)} committed but unannounced at a kill); "
            f"lost {len(missing)}, duplicated {duplicated}, duplicate seq {dup_seq}"
        )
        assert not missing and duplicated == 0 and dup_seq == 0
        assert len(stored) >= len(announced)
        assert len(extra) <= kills * 2  # at most the batch in flight at each kill
        assert sorted(seqs) == list(range(1, len(seqs) + 1))  # gapless: nothing lost at all
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        hub.stop()
        broker.stop()
