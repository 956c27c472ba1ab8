"""Telemetry every N seconds: what a hub operator needs to see a unit going wrong.

The message is the protocol's ``Telemetry`` (checkpost/protocol/messages.py): one schema,
validated by the hub when it decodes it.
Everything here is cheap (a few /proc and /sys reads); ``vcgencmd`` runs only where it
exists (a Raspberry Pi) with a short timeout.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from typing import Any

import msgspec

from checkpost.protocol import Telemetry

log = logging.getLogger("checkpost.edge.telemetry")


def cpu_temp() -> float | None:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp") as fh:
            return round(int(fh.read().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def vcgencmd_throttled() -> tuple[bool, bool, str]:
    """(under-voltage now or since boot, throttled now or since boot, raw flags)."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return False, False, ""
    try:
        out = subprocess.run(
            [exe, "get_throttled"], capture_output=True, text=True, timeout=2
        ).stdout
        raw = out.strip().partition("=")[2]
        flags = int(raw, 16)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False, False, ""
    return bool(flags & 0x50001), bool(flags & 0x60006), raw


def mem_available_mb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError):
        return None
    return None


def collect(unit: Any, now: float, last: dict[str, float]) -> Telemetry:
    h = unit.health(now)
    uv, thr, raw = vcgencmd_throttled()
    try:
        load1: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load1 = None
    try:
        disk = round(shutil.disk_usage(unit.data_dir).free / 2**20, 1)
    except OSError:
        disk = None
    cam = h["camera"]
    docs = h["documents"]
    elapsed = max(1e-6, now - last.get("at", unit.started_at))
    decode_rate = (unit.decoded - last.get("decoded", 0)) / elapsed
    last.update(at=now, decoded=unit.decoded)
    th = unit.thermometer
    reading_age = None
    if th is not None:
        r = th.latest(max_age_s=1e9)
        if r is not None:
            reading_age = round(time.monotonic() - r.at, 1)
    p99, p50 = unit.latency.pct(0.99), unit.latency.pct(0.5)
    return Telemetry(
        unit=unit.unit_id,
        ts=now,
        queue_depth=h["queue"]["depth"],
        queue_oldest_s=h["queue"]["oldest_age_s"] or 0.0,
        cpu_temp=cpu_temp(),
        undervolt=uv,
        camera_ok=None if cam is None else cam["state"] == "ok",
        thermometer_ok=None if h["thermometer"] is None else h["thermometer"] == "ok",
        verdict_p99_ms=None if p99 is None else round(p99, 2),
        station=unit.station,
        agent=unit.status_info()["agent"],
        throttled=thr,
        throttle_flags=raw,
        load1=load1,
        mem_available_mb=mem_available_mb(),
        disk_free_mb=disk,
        camera_fps=None if cam is None else cam["fps"],
        camera_frame_age_s=None if cam is None else cam["last_frame_age_s"],
        decode_per_s=round(decode_rate, 2) if unit.camera is not None else None,
        decode_p50_ms=None
        if unit.decode_ms.pct(0.5) is None
        else round(unit.decode_ms.pct(0.5), 2),
        thermometer=h["thermometer"],
        thermometer_reading_age_s=reading_age,
        scanner=h["scanner"],
        queue_alarm=h["queue"]["alarm"],
        clock_offset_s=h["clock"]["offset_s"],
        hub_online=h["hub"]["online"],
        trust_version=str(docs["trust"]["version"]),
        trust_age_h=docs["trust"]["age_h"],
        trust_stale=bool(docs["trust"]["stale"]),
        policy_version=str(docs["policy"]["version"]),
        policy_age_h=docs["policy"]["age_h"],
        trust_error=str(docs["trust"]["error"])[:300],
        policy_error=str(docs["policy"]["error"])[:300],
        verdict_p50_ms=None if p50 is None else round(p50, 2),
        refused=unit.refused,
    )


def telemetry_loop(unit: Any, stop: threading.Event) -> None:
    interval = unit.cfg.telemetry.interval_s
    last: dict[str, float] = {}
    while not stop.wait(interval):
        try:
            unit.outbox.purge_journal()  # retention: the local audit is kept 30 days
            t = collect(unit, unit.clock(), last)
            unit.last_telemetry = t
            if unit.link is not None:
                unit.link.publish_telemetry(msgspec.json.encode(t))
        except Exception:
            log.exception("telemetry failed")
