"""The whole-system demo: a hub and simulated stations on one machine, on embedded defaults.

``run_system_demo(out_dir, duration, stations)`` starts a private Mosquitto, the hub
(``checkpost hub run``, SQLite) and the stations, each a real :class:`~checkpost.edge.agent.Unit`
with its station page:

- **checkpoints** and a **compound gate**: a replay camera over generated 1280x720 frames of
  health passes (mostly green; some yellow, red, stale tests, risk travel), a thermometer
  simulator on a pseudo-terminal read by the real serial driver, mock GPIO; a simulated
  staff member types plates (some from risk regions), decides REVIEWs, releases or turns
  vehicles back;
- **sampling tables**: a simulated hand-held scanner (tube labels, SR1 registrations, box
  labels; now and then the same person twice, which the table refuses), tubes filled and
  closed, boxes sealed and handed over;
- a **transfer point** that receives every sealed box (scanning its tubes), each checked
  against what the hub knows of it (a ``box_check`` answered by the hub's store);
- the gate's sealed-building list is pushed by the hub side: signed and published retained
  on ``<root>/hub/sealed`` (``checkpost.hub.lists``), as an operator would;
- now and then a sampling table enters a person with no code by hand (name, ID number,
  phone; only masked forms and the ID number's keyed hash leave the table).

At the end it waits (bounded) for every unit's outbox to drain, then compares every event
id the units committed with the hub's store, and returns the totals for the last line
``N verdicts: P pass, R review, F fail; T tubes, B boxes; lost L, duplicated D``.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATIONS = ("checkpoint", "checkpoint", "gate", "sampling", "sampling", "transfer")
PLATES = ["京A", "京B", "冀C", "津D", "沪A", "鄂A", "粤B"]
RISK = ["鄂A", "沪"]


@dataclass
class Tally:
    committed: dict[str, set[str]] = field(default_factory=dict)  # unit -> event ids
    verdicts: dict[str, int] = field(
        default_factory=lambda: {"PASS": 0, "REVIEW": 0, "REMEASURE": 0, "FAIL": 0}
    )
    tubes: int = 0
    boxes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listener(self, unit: str) -> Callable[[list[Any]], None]:
        ids = self.committed.setdefault(unit, set())

        def on_events(events: list[Any]) -> None:
            with self.lock:
                for e in events:
                    ids.add(e.id)
                    kind = e.__struct_config__.tag
                    if kind == "scan" and e.local:
                        self.verdicts[e.local] += 1
                    elif kind == "tube_close":
                        self.tubes += 1
                    elif kind == "box_seal":
                        self.boxes += 1

        return on_events


def _risk_policy_file(out: Path) -> Path:
    """The default policy with two risk regions, so turned-back vehicles show up."""
    from checkpost.policy.model import default_policy_text

    text = default_policy_text()
    path = out / "policy.toml"
    if "risk_regions" in text:
        import re

        text = re.sub(r"risk_regions\s*=\s*\[[^\]]*\]", 'risk_regions = ["鄂A", "沪"]', text)
    else:
        text = text.replace("[checkpoint]", '[checkpoint]\nrisk_regions = ["鄂A", "沪"]', 1)
    path.write_text(text, encoding="utf-8")
    return path


def _camera_frames(
    issuer: Any, folder: Path, n: int, period: float, start: float, rng: random.Random
) -> None:
    """Frames shown one every `period` s: each pass is minted to be fresh when it shows."""
    import cv2
    from checkpost.edge.frames import make_frame

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["G"] * 14 + ["Y", "R", "stale", "trip"]
    for i in range(n):
        k = rng.choice(kinds)
        iat = start + i * period - 20
        text = issuer.hp1(
            id_number=f"{folder.name}-{i}",
            iat=iat,
            name=rng.choice(["张*三", "李*四", "王*五", "赵*六"]),
            colour=k if k in ("G", "Y", "R") else "G",
            test_age_hours=60 if k == "stale" else 20,
            trip=k == "trip",
            lifetime=600,
        )
        cv2.imwrite(str(folder / f"{i:04d}.png"), make_frame(text, rng.randrange(1 << 30)))


def run_system_demo(
    out_dir: Path,
    duration: float = 60.0,
    stations: tuple[str, ...] | list[str] = DEFAULT_STATIONS,
    *,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    from checkpost.edge.agent import Unit
    from checkpost.edge.config import load_config
    from checkpost.edge.procs import Broker, Hub, free_port

    from checkpost.issuer import TestIssuer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    rng = random.Random(6)
    issuer = TestIssuer.create(out_dir / "issuer")
    policy_file = _risk_policy_file(out_dir)
    broker = Broker(out_dir / "broker").start()
    hub = Hub(broker.url, out_dir / "hub", str(issuer.folder)).start()
    units: list[Any] = []
    drivers: list[threading.Thread] = []
    tally = Tally()
    period = 2.0
    try:
        start = time.time()
        counts: dict[str, int] = {}
        for kind in stations:
            counts[kind] = counts.get(kind, 0) + 1
            uid = f"{kind[:4]}-{counts[kind]}"
            over: dict[str, Any] = {
                "unit": uid,
                "station": kind,
                "data_dir": str(out_dir / "units" / uid),
                "broker": broker.url,
                "http": f"127.0.0.1:{free_port()}",
                "issuer_dir": str(issuer.folder),
                "gpio": "mock",
            }
            toml = f'[policy]\nfile = "{policy_file}"\n[telemetry]\ninterval_s = 5\n'
            if kind in ("checkpoint", "gate"):
                frames = out_dir / "frames" / uid
                _camera_frames(issuer, frames, int(duration / period) + 3, period, start, rng)
                over["camera"] = f"replay:{frames}"
                over["thermometer"] = "sim"
                # fps x (hold + gap) = one person every `period` seconds
                toml += "[camera]\nfps = 10\nhold = 3\ngap = 17\ndebounce_s = 1.0\n"
            if kind == "sampling":
                toml += f'[sampling]\npool = 5\ntube_labels = 40\nbox_labels = 5\ntable = "{uid}"\n'
            conf = out_dir / f"{uid}.toml"
            conf.write_text(toml, encoding="utf-8")
            unit = Unit(load_config(conf, over))
            unit.event_listeners.append(tally.listener(uid))
            unit.start()
            units.append(unit)
        say(f"hub API {hub.api}  (broker {broker.url}, store {hub.db})")
        for u in units:
            say(f"  {u.station:<10} {u.unit_id:<8} {u.http_server.url}")
        sampling = [u for u in units if u.station == "sampling"]
        for u in units:
            fn = {
                "checkpoint": _checkpoint_staff,
                "gate": _gate_staff,
                "sampling": _sampling_staff,
                "transfer": _transfer_staff,
            }[u.station]
            t = threading.Thread(
                target=fn,
                args=(u, issuer, stop, random.Random(zlib.crc32(u.unit_id.encode())), sampling),
                name=f"staff-{u.unit_id}",
                daemon=True,
            )
            t.start()
            drivers.append(t)
        end = time.monotonic() + duration
        next_summary = time.monotonic() + 5
        while time.monotonic() < end and not stop.is_set():
            stop.wait(0.25)
            if time.monotonic() >= next_summary:
                next_summary += 5
                v = tally.verdicts
                depth = sum(u.outbox.depth for u in units)
                say(
                    f"[{int(duration - (end - time.monotonic())):>4}s] verdicts {sum(v.values())} "
                    f"(pass {v['PASS']}, review {v['REVIEW'] + v['REMEASURE']}, fail {v['FAIL']}); "
                    f"tubes {tally.tubes}, boxes {tally.boxes}; upload queues {depth}"
                )
        stop.set()
        for t in drivers:
            t.join(timeout=10)
        for u in units:  # cameras off, but links and workers on until the outboxes drain
            from checkpost.edge import devices

            devices.close_devices(u)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(u.outbox.depth for u in units):
            time.sleep(0.1)
        undelivered = sum(u.outbox.depth for u in units)
        for u in units:
            u.stop()
        stored: dict[str, list[str]] = {}
        db = sqlite3.connect(f"file:{hub.db}?mode=ro", uri=True, timeout=10)
        try:
            for uid in tally.committed:
                stored[uid] = [
                    r[0] for r in db.execute("SELECT id FROM events WHERE unit = ?", (uid,))
                ]
        finally:
            db.close()
        lost = sum(len(ids - set(stored.get(uid, []))) for uid, ids in tally.committed.items())
        duplicated = sum(len(v) - len(set(v)) for v in stored.values())
        v = tally.verdicts
        totals = {
            "verdicts": sum(v.values()),
            "pass": v["PASS"],
            "review": v["REVIEW"] + v["REMEASURE"],
            "fail": v["FAIL"],
            "tubes": tally.tubes,
            "boxes": tally.boxes,
            "events": sum(len(x) for x in tally.committed.values()),
            "stored": sum(len(x) for x in stored.values()),
            "lost": lost,
            "duplicated": duplicated,
            "undelivered": undelivered,
            "stations": list(stations),
        }
        return totals
    finally:
        stop.set()
        for u in units:
            u.stop()
        hub.stop()
        broker.stop()


def summary_line(t: dict[str, Any]) -> str:
    return (
        f"{t['verdicts']} verdicts: {t['pass']} pass, {t['review']} review, {t['fail']} fail; "
        f"{t['tubes']} tubes, {t['boxes']} boxes; lost {t['lost']}, duplicated {t['duplicated']}"
    )


# -- simulated staff --------------------------------------------------------------------------


def _wait(stop: threading.Event, s: float) -> bool:
    return stop.wait(s)


def _checkpoint_staff(
    u: Any, issuer: Any, stop: threading.Event, rng: random.Random, sampling: list[Any]
) -> None:
    from checkpost.edge.workflows import Tap

    wf = u.workflow
    target = 2
    while not stop.is_set():
        if _wait(stop, 0.3):
            return
        v = wf.vehicle
        if v is None:
            plate = rng.choice(PLATES) + f"{rng.randrange(10000, 99999)}"
            u.submit(Tap("plate", {"plate": plate, "direction": rng.choice(["in", "out"])}))
            target = rng.randint(1, 3)
            continue
        cur = wf.current
        if cur is not None and cur.stage == "review":
            u.submit(Tap("decide", {"allow": rng.random() < 0.7, "why": "checked travel record"}))
            continue
        if cur is not None and cur.stage == "remeasure" and u.thermo_sim is not None:
            u.thermo_sim.value = 36.7
            continue
        if u.thermo_sim is not None and rng.random() < 0.03:
            u.thermo_sim.value = 37.8  # a warm forehead: measure again
        if cur is None and (
            len(v.occupants) >= target or (v.risk_region and len(v.occupants) >= 1)
        ):
            u.submit(Tap("advice"))
            u.submit(Tap("disinfect"))
            if v.risk_region:
                u.submit(Tap("turn_back", {"why": "transit from a risk region"}))
            elif all(o.verdict == "PASS" for o in v.occupants):
                u.submit(Tap("release"))
            else:
                u.submit(Tap(rng.choice(["turn_back", "refer"]), {"why": "occupant not passed"}))
            _wait(stop, 0.5)


def _gate_staff(
    u: Any, issuer: Any, stop: threading.Event, rng: random.Random, sampling: list[Any]
) -> None:
    from checkpost.edge.workflows import Tap
    from checkpost.hub.lists import publish_sealed

    sealed = [issuer.sid(f"{u.unit_id}-{i}") for i in range(0, 40, 7)]
    try:  # what the hub's operator does: a signed list, retained for every gate
        publish_sealed(
            u.cfg.link.broker,
            sealed,
            version=int(time.time()),
            signer=issuer.trust_key,
            scope="demo compound",
            root=u.cfg.link.root,
        )
    except (OSError, TimeoutError) as exc:
        print(f"demo: sealed list not published: {exc}", flush=True)
    while not _wait(stop, 4.0):
        u.submit(Tap("direction"))


def _sampling_staff(
    u: Any, issuer: Any, stop: threading.Event, rng: random.Random, sampling: list[Any]
) -> None:
    from checkpost.edge.workflows import CodeRead, Tap

    table = int(u.unit_id.rsplit("-", 1)[-1])
    person = 0
    tube_no = 0
    box_no = 0
    boxed: list[str] = []
    while not stop.is_set():
        tube_no += 1
        tube = f"{table:02d}{tube_no:010d}"
        u.submit(CodeRead(tube, "scanner"))
        for _ in range(5):
            if _wait(stop, 0.35):
                return
            person += 1
            if rng.random() < 0.08:  # an elderly person with no code: entered by hand
                entry = {
                    "name": "王小明",
                    "id_number": f"{u.unit_id}-id{person}",
                    "phone": "13900001111",
                }
                u.submit(Tap("manual", entry))
                continue
            u.submit(
                CodeRead(issuer.sr1(id_number=f"{u.unit_id}-p{person}", name="李*四"), "scanner")
            )
            if rng.random() < 0.05:  # the same person again: the table refuses
                u.submit(
                    CodeRead(
                        issuer.sr1(id_number=f"{u.unit_id}-p{person}", name="李*四"), "scanner"
                    )
                )
        boxed.append(tube)
        if len(boxed) == 3:
            box_no += 1
            box = f"BOX{table:02d}{box_no:05d}"
            u.submit(CodeRead(box, "scanner"))
            for t in boxed:
                u.submit(CodeRead(t, "scanner"))
            u.submit(Tap("seal_box"))
            u.submit(Tap("handover", {"handler": "刘师傅", "box": box}))
            boxed = []
            if _wait(stop, 0.5):
                return


def _transfer_staff(
    u: Any, issuer: Any, stop: threading.Event, rng: random.Random, sampling: list[Any]
) -> None:
    from checkpost.edge.agent import Control
    from checkpost.edge.workflows import CodeRead, Tap

    seen: set[str] = set()
    u.submit(Tap("handler", {"handler": "赵师傅"}))
    while not _wait(stop, 0.5):
        for s in sampling:
            for sheet in list(s.workflow.sheets):
                box = sheet["box"]
                if box in seen or sheet["event"] in s.workflow.awaiting:
                    continue  # the box travels once the hub has its handover
                seen.add(box)
                manifest = {
                    box: {
                        "tubes": sheet["tubes"],
                        "samples": sheet["samples"],
                        "tube_codes": sheet["tube_codes"],
                    }
                }
                u.submit(Control(lambda m=manifest: u.workflow.add_manifest(m)))
                u.submit(CodeRead(box, "scanner"))
                for t in sheet["tube_codes"]:
                    u.submit(CodeRead(t, "scanner"))
                u.submit(Tap("register", {}))


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description="whole-system demo: hub + simulated stations")
    p.add_argument("--out", default="demo-out/system")
    p.add_argument("--duration", type=float, default=60.0)
    args = p.parse_args()
    totals = run_system_demo(Path(args.out), args.duration)
    print(summary_line(totals))
    return 0 if totals["lost"] == 0 and totals["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
