"""A fake V4L2 device for tests and demos: ``V4L2Source(capture_factory=FakeCamera(...))``.

It behaves like ``cv2.VideoCapture`` on a USB camera: frames at a rate, and faults a USB
camera really has: ``stall`` (read returns False, as on a select timeout), ``unplug`` (the
device cannot be opened and reads fail), ``replug``, and ``brightness`` for dark scenes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class FakeCamera:
    """Factory: calling it "opens" the device and returns a capture object."""

    def __init__(
        self, width: int = 320, height: int = 180, fps: float = 100.0, brightness: int = 128
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.brightness = brightness
        self.stalled = False
        self.plugged = True
        self.opens = 0
        self.props: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self, device: Any) -> _FakeCapture:
        self.opens += 1
        return _FakeCapture(self, self.plugged)

    def unplug(self) -> None:
        self.plugged = False

    def replug(self) -> None:
        self.plugged = True


class _FakeCapture:
    def __init__(self, cam: FakeCamera, opened: bool) -> None:
        self.cam, self._opened, self._n = cam, opened, 0

    def isOpened(self) -> bool:
        return self._opened

    def set(self, prop: int, value: float) -> bool:
        self.cam.props[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(1.0 / self.cam.fps)
        if not self.cam.plugged or self.cam.stalled or not self._opened:
            return False, None
        self._n += 1
        img = np.full((self.cam.height, self.cam.width, 3), self.cam.brightness, np.uint8)
        img[0, 0] = self._n % 256
        return True, img

    def release(self) -> None:
        self._opened = False
