"""A gate unit in its own process for the fault test: scans as fast as a queue of people,
printing each event id once its commit returned (``P id``). ``drain`` mode scans nothing and
exits when its outbox is empty (everything answered by the hub)."""

from __future__ import annotations

import sys
import time

from checkpost.edge.agent import Unit
from checkpost.edge.config import load_config
from checkpost.edge.workflows import CodeRead

from checkpost.issuer import TestIssuer


def main() -> int:
    data_dir, issuer_dir, broker, mode, seed = sys.argv[1:6]
    cfg = load_config(
        None,
        {
            "unit": "gate-fault",
            "station": "gate",
            "data_dir": data_dir,
            "http": "none",
            "broker": broker,
            "issuer_dir": issuer_dir,
        },
    )
    unit = Unit(cfg)
    unit.cfg = cfg
    unit.event_listeners.append(
        lambda evs: (
            evs and (sys.stdout.write("".join(f"P {e.id}\n" for e in evs)), sys.stdout.flush())
        )
    )
    unit.start(devices=False, http=False)
    if unit.link is not None:
        unit.link.resend_after = 3.0
    if mode == "drain":
        deadline = time.monotonic() + 90
        while unit.outbox.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"DRAINED {unit.outbox.depth}", flush=True)
        unit.stop()
        return 0
    issuer = TestIssuer.load(issuer_dir)
    for i in range(1_000_000):  # bounded; the parent kills us
        unit.submit(CodeRead(issuer.hp1(id_number=f"{seed}-{i}")))
        time.sleep(0.004)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
