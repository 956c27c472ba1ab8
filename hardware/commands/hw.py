"""`checkpost hw check`: walk through each hardware part on the bench (hardware/WIRING.md).

Each part is checked with its real driver; ``--simulate`` runs the same checks against the
simulators instead (a laptop, CI, or a demo), and says so in every line. Parts not named
in the options are skipped, so a station without a thermometer is still checkable.
Exit code 0 when every checked part passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("hw", help="check hardware on the bench")
    sub = p.add_subparsers(dest="hw_cmd", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("check", help="check camera, decoder, thermometer, scanner and GPIO")
    c.add_argument("--simulate", action="store_true", help="use the simulators, not hardware")
    c.add_argument("--camera", help="camera source: v4l2:0, picamera2, replay:PATH")
    c.add_argument("--thermometer", help="serial port of the IR thermometer")
    c.add_argument("--profile", default="ascii", choices=["ascii", "modbus", "binary"])
    c.add_argument("--baud", type=int, default=9600)
    c.add_argument("--scanner", help="serial port of a USB-serial 2D scanner")
    c.add_argument("--wedge", help="evdev device of a keyboard-wedge scanner")
    c.add_argument("--gpio", action="store_true", help="exercise LEDs, buzzer, relay, button")
    c.add_argument("--pins", help="pin map as JSON, e.g. '{\"relay\": 23}'")
    c.add_argument(
        "--interactive",
        action="store_true",
        help="pause so a person can confirm each LED, sound and click",
    )
    c.add_argument("--json", action="store_true", help="print results as one JSON object")
    c.set_defaults(func=run)


Result = tuple[str, bool, str]


def _check(name: str, fn: Callable[[], str]) -> Result:
    try:
        return name, True, fn()
    except Exception as exc:  # a bench check reports every failure, it does not crash
        return name, False, f"{type(exc).__name__}: {exc}"


def _camera(spec: str, simulate: bool) -> str:
    from checkpost.hardware.camera import V4L2Source, open_source

    if simulate:
        from checkpost.hardware.camera.simulator import FakeCamera

        src: Any = V4L2Source(0, capture_factory=FakeCamera())
    else:
        src = open_source(spec)
    with src:
        frame = src.read(timeout_s=5.0)
        time.sleep(1.0)
        h = src.health()
    if frame is None:
        raise RuntimeError(f"no frame within 5 s (state {h.state}, {h.error})")
    light = "too dark" if h.too_dark else "too bright" if h.too_bright else "exposure ok"
    return (
        f"{frame.image.shape[1]}x{frame.image.shape[0]}, {h.fps} fps, "
        f"brightness {h.brightness} ({light})"
    )


def _decoder() -> str:
    import numpy as np
    from checkpost.hardware.corpus.symbols import payload, qr_modules
    from checkpost.hardware.decode import StationDecoder

    text = payload(np.random.default_rng(0), "hp1")
    img = np.kron(1 - qr_modules(text), np.ones((4, 4), np.uint8)) * 255
    frame = np.full((720, 1280), 200, np.uint8)
    frame[100 : 100 + img.shape[0], 100 : 100 + img.shape[1]] = img
    dec = StationDecoder(track=False)
    reads = dec.read(frame)
    if [r.text for r in reads] != [text]:
        raise RuntimeError("the station decoder did not read a clean test frame")
    return f"reads a test QR in {reads[0].ms:.1f} ms"


def _thermometer(port: str, profile: str, baud: int, simulate: bool) -> str:
    from checkpost.hardware.thermometer import Thermometer, ThermometerConfig

    sim = None
    if simulate:
        from checkpost.hardware.thermometer.simulator import ThermometerSimulator

        sim = ThermometerSimulator(profile, value=36.6).start()
        port = sim.path
    try:
        with Thermometer(ThermometerConfig(port=port, profile=profile, baudrate=baud)) as t:
            r = t.wait_reading(timeout_s=5.0)
            status = t.status()
        if r is None:
            raise RuntimeError(f"no valid reading within 5 s (status: {status})")
        return f"{r.celsius:.1f} °C (raw {r.raw} {r.unit}), status {status}"
    finally:
        if sim is not None:
            sim.close()


def _serial_scanner(port: str, simulate: bool) -> str:
    from checkpost.hardware.scanner import SerialScanner

    got: list[Any] = []
    sim = None
    if simulate:
        from checkpost.hardware.scanner import SerialScannerSimulator

        sim = SerialScannerSimulator()
        port = sim.path
    try:
        with SerialScanner(port, got.append) as sc:
            if sim is not None:
                time.sleep(0.2)
                sim.scan("0012345678")
            else:
                print("  scan any code with the serial scanner within 15 s ...")
            end = time.monotonic() + (5 if sim else 15)
            while not got and time.monotonic() < end:
                time.sleep(0.05)
            del sc
        if not got:
            raise RuntimeError("no code received")
        return f"read {got[0].text!r} ({got[0].format})"
    finally:
        if sim is not None:
            sim.close()


def _wedge(device: str, simulate: bool) -> str:
    from checkpost.hardware.scanner import WedgeScanner, key_events

    got: list[Any] = []
    events = list(key_events("0012345678")) if simulate else None
    sc = WedgeScanner(device, got.append, events=events).start()
    if not simulate:
        print("  scan any code with the keyboard-wedge scanner within 15 s ...")
    end = time.monotonic() + (5 if simulate else 15)
    while not got and time.monotonic() < end:
        time.sleep(0.05)
    sc.close()
    if not got:
        raise RuntimeError("no code received (is the device grabbed by another program?)")
    return f"read {got[0].text!r}, device grabbed exclusively"


def _gpio(pins_json: str | None, simulate: bool, interactive: bool) -> str:
    from checkpost.hardware.gpio import MockBackend, PinMap, StationIO, make_backend

    pins = PinMap.from_dict(json.loads(pins_json)) if pins_json else PinMap()
    pins.validate()
    backend = MockBackend() if simulate else make_backend("rpi")

    def step(msg: str) -> None:
        if interactive and not simulate:
            input(f"  {msg} - press Enter to continue ")
        else:
            time.sleep(0.05 if simulate else 0.6)

    with StationIO(pins, backend, relay_max_on_s=1.0) as io:
        for v in ("pass", "review", "fail"):
            io.show(v)
            step(f"{v} LED on")
        io.show(None)
        for pattern in ("pass", "remeasure", "fail"):
            io.buzz(pattern, wait=True)
            step(f"buzzer '{pattern}'")
        io.illumination(True)
        step("illumination LED on")
        io.illumination(False)
        io.pulse_gate(0.5)
        step("relay clicked on, then off after 0.5 s")
        pressed = None
        if pins.button is not None and interactive and not simulate:
            print("  press the button within 10 s ...")
            end = time.monotonic() + 10
            while time.monotonic() < end and not pressed:
                pressed = io.poll_button() or None
                time.sleep(0.005)
    changes = len(backend.timeline) if isinstance(backend, MockBackend) else "n/a"
    extra = "" if pressed is None else ", button press seen"
    return f"outputs exercised (pin changes recorded: {changes}){extra}"


def run(args: argparse.Namespace) -> int:
    sim = args.simulate
    results: list[Result] = [_check("decoder", _decoder)]
    if args.camera or sim:
        results.append(_check("camera", lambda: _camera(args.camera or "v4l2:0", sim)))
    if args.thermometer or sim:
        results.append(
            _check(
                "thermometer",
                lambda: _thermometer(args.thermometer or "", args.profile, args.baud, sim),
            )
        )
    if args.scanner or sim:
        results.append(_check("serial scanner", lambda: _serial_scanner(args.scanner or "", sim)))
    if args.wedge or sim:
        results.append(_check("wedge scanner", lambda: _wedge(args.wedge or "", sim)))
    if args.gpio or sim:
        results.append(_check("gpio", lambda: _gpio(args.pins, sim, args.interactive)))
    tag = " [simulated]" if sim else ""
    if args.json:
        print(
            json.dumps(
                {
                    "simulated": sim,
                    "checks": [{"part": n, "ok": ok, "detail": d} for n, ok, d in results],
                }
            )
        )
    else:
        for name, ok, detail in results:
            print(
                f"{'PASS' if ok else 'FAIL'}  {name:<15} {detail}{tag if name != 'decoder' else ''}"
            )
    return 0 if all(ok for _, ok, _ in results) else 1
