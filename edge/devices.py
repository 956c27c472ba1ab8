"""Wiring the unit to the hardware of ``checkpost.hardware`` through its interfaces only.

- camera: ``hardware.camera.open_source`` (``v4l2:N``, ``picamera``, ``replay:DIR``) →
  ``hardware.decode.StationDecoder`` on a thread of its own → ``CodeRead`` inputs;
- scanner: ``hardware.scanner.SerialScanner`` / ``WedgeScanner`` → ``CodeRead`` inputs;
- thermometer: ``hardware.thermometer.Thermometer`` (``PROFILE:DEVICE``), or ``sim``: the
  hardware package's pty simulator with the *real* driver on its port. The agent pulls the
  newest reading when a code is read and polls the status (unplugged → DeviceState);
- GPIO: ``hardware.gpio.StationIO`` on the ``rpi`` backend (``real``) or the mock.

A simulator is used only when named (``sim``, ``mock``, ``replay:``); a real device that
fails to open raises, it never falls back to a simulator silently.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from checkpost.edge.workflows import CodeRead

log = logging.getLogger("checkpost.edge.devices")


def open_devices(unit: Any) -> None:
    cfg = unit.cfg
    if cfg.gpio.backend != "none":
        from checkpost.hardware.gpio import PinMap, StationIO, make_backend

        pins = PinMap.from_dict(dict(cfg.gpio.pins)) if cfg.gpio.pins else PinMap()
        unit.io = StationIO(pins, make_backend("rpi" if cfg.gpio.backend == "real" else "mock"))
    th = cfg.thermometer.source
    if th != "none":
        from checkpost.hardware.thermometer import Thermometer, ThermometerConfig

        if th == "sim":
            from checkpost.hardware.thermometer.simulator import ThermometerSimulator

            unit.thermo_sim = ThermometerSimulator("ascii", value=36.5, interval_s=0.2).start()
            profile, port = "ascii", unit.thermo_sim.path
        else:
            profile, _, port = th.partition(":")
        unit.thermometer = Thermometer(
            ThermometerConfig(
                port=port,
                profile=profile,
                max_age_s=cfg.thermometer.max_age_s,
                offset_c=cfg.thermometer.offset_c,
            )
        ).start()
    sc = cfg.scanner.source
    if sc != "none":
        kind, _, dev = sc.partition(":")

        def on_read(read: Any) -> None:
            unit.submit(CodeRead(read.text, "scanner"))

        if kind == "serial":
            from checkpost.hardware.scanner import SerialScanner

            unit.scanner = SerialScanner(dev, on_read).start()
        else:
            from checkpost.hardware.scanner import WedgeScanner

            unit.scanner = WedgeScanner(dev, on_read).start()
    cam = cfg.camera.source
    if cam != "none":
        from checkpost.hardware.camera import open_source
        from checkpost.hardware.decode import StationDecoder

        kw: dict[str, Any] = {}
        if cam.startswith("replay:"):
            kw = {
                "fps": cfg.camera.fps,
                "loop": cfg.camera.loop,
                "hold": cfg.camera.hold,
                "gap": cfg.camera.gap,
            }
        spec = "picamera2" if cam == "picamera" else cam
        unit.camera = open_source(spec, **kw).start()
        unit.decoder = StationDecoder(
            station="checkpoint" if unit.station in ("checkpoint", "gate") else "sampling",
            budget_ms=cfg.camera.decode_budget_ms,
            debounce_s=cfg.camera.debounce_s,
        )
        unit._spawn(lambda: camera_loop(unit), "camera")


def camera_loop(unit: Any) -> None:
    """Newest frame → decoder → inputs. Bounded by the unit's stop flag."""
    cam, dec = unit.camera, unit.decoder
    while not unit._stop.is_set():
        frame = cam.read(timeout_s=0.5)
        if frame is None:
            if cam.health().state == "ended":
                unit._stop.wait(0.5)
            continue
        unit.frames += 1
        unit.last_frame_at = time.monotonic()
        t0 = time.perf_counter()
        reads = dec.decode(frame.image)
        unit.decode_ms.add((time.perf_counter() - t0) * 1000.0)
        for r in reads:
            unit.decoded += 1
            age_ms = max(0.0, (time.monotonic() - frame.at) * 1000.0)
            unit.submit(CodeRead(r.text, "camera", frame_ms=age_ms))


def close_devices(unit: Any) -> None:
    for name in ("camera", "scanner", "thermometer", "thermo_sim", "io"):
        dev = getattr(unit, name, None)
        if dev is None:
            continue
        try:
            dev.close()
        except Exception as exc:  # closing a vanished device may fail any way
            log.warning("closing %s: %s", name, exc)
