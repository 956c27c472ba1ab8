"""Drivers and simulators for a station's hardware, each behind a narrow interface.

- :mod:`.decode` — the station decoder (QR, Code 128) and ``checkpost bench decode``.
- :mod:`.corpus` — seeded 1280x720 frame corpus with ground truth.
- :mod:`.camera` — V4L2 / picamera2 / replay frame sources with health.
- :mod:`.scanner` — hand-held 2D scanners (evdev keyboard wedge, USB serial).
- :mod:`.thermometer` — serial IR thermometers (ASCII, Modbus RTU, binary) and a pty simulator.
- :mod:`.gpio` — LEDs, buzzer, gate relay, button; RPi.GPIO / rpi-lgpio or a mock.

Real hardware libraries (RPi.GPIO, picamera2, evdev, pyserial, OpenCV) are imported only
when a real driver is opened; a simulator is used only when chosen explicitly.
See ``hardware/WIRING.md`` for wiring and bench checks (``checkpost hw check``).
"""
