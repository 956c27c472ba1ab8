"""Frame sources: newest-frame semantics, health, stall -> reopen, unplug -> replug, replay."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from checkpost.hardware.camera import ReplaySource, V4L2Source, open_source
from checkpost.hardware.camera.simulator import FakeCamera


def until(cond: Callable[[], object], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_reader_keeps_only_the_newest_frame() -> None:
    cam = FakeCamera(fps=200)
    with V4L2Source(0, capture_factory=cam) as src:
        first = src.read(5)
        assert first is not None
        time.sleep(0.2)  # the camera produced many frames meanwhile
        nxt = src.read(5)
        assert nxt is not None and nxt.seq > first.seq + 1
        assert cam.props[cv2.CAP_PROP_BUFFERSIZE] == 1
        assert until(lambda: src.health().fps > 0)
        h = src.health()
        assert h.state == "ok" and not h.too_dark and h.last_frame_age_s is not None


def test_stall_is_reported_and_the_device_reopened() -> None:
    cam = FakeCamera()
    with V4L2Source(0, capture_factory=cam, stall_s=0.1, backoff_initial_s=0.02) as src:
        assert src.read(5) is not None
        cam.stalled = True
        assert until(lambda: src.health().state == "stalled")
        cam.stalled = False
        assert until(lambda: src.health().state == "ok" and src.health().reopens >= 1)
        assert cam.opens >= 2


def test_unplug_and_replug_without_restart() -> None:
    cam = FakeCamera()
    with V4L2Source(
        0, capture_factory=cam, stall_s=0.1, backoff_initial_s=0.02, backoff_max_s=0.05
    ) as src:
        assert src.read(5) is not None
        cam.unplug()
        assert until(lambda: src.health().state in ("stalled", "unplugged"))
        assert until(lambda: src.health().state == "unplugged")
        cam.replug()
        assert until(lambda: src.health().state == "ok")
        assert src.read(5) is not None


def test_dark_frames_are_flagged_and_switch_on_the_illumination() -> None:
    cam = FakeCamera(brightness=10)
    calls: list[bool] = []
    with V4L2Source(0, capture_factory=cam, illumination=calls.append) as src:
        assert until(lambda: calls == [True])
        assert src.health().too_dark and src.health().illumination
        cam.brightness = 160
        assert until(lambda: calls == [True, False])
        cam.brightness = 250
        assert until(lambda: src.health().too_bright)


def _folder(tmp: Path, n: int) -> Path:
    for i in range(n):
        img = np.full((40, 60, 3), 30 * (i + 1), np.uint8)
        cv2.imwrite(str(tmp / f"img{i}.png"), img)
    return tmp


def test_replay_holds_each_image_then_gaps_and_ends(tmp_path: Path) -> None:
    with ReplaySource(str(_folder(tmp_path, 2)), fps=0, hold=3, gap=2) as src:
        means = [round(float(f.image.mean())) for f in src.frames(timeout_s=5)]
        assert means == [30, 30, 30, 128, 128, 60, 60, 60, 128, 128]
        assert src.health().state == "ended"


def test_replay_at_a_frame_rate_and_missing_path(tmp_path: Path) -> None:
    with open_source(f"replay:{_folder(tmp_path, 1)}", fps=50, hold=5) as src:
        assert len(list(src.frames(timeout_s=5))) >= 1
    with ReplaySource(str(tmp_path / "nope"), backoff_initial_s=0.01) as src:
        assert until(lambda: src.health().state == "unplugged")
