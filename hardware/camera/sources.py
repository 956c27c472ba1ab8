"""Frame sources behind one interface, each on a reader thread that keeps the newest frame.

A decoder that reads frames from a queue falls behind: every frame it is late makes the
next one later (shared/MEASURED.md). So each source reads on its own thread into a
single slot; :meth:`FrameSource.read` returns the newest frame the caller has not seen.

Health (:class:`Health`) is computed from what actually arrives: frames per second over
the last seconds, age of the last frame, mean brightness (too dark / too bright), and a
state: ``starting``, ``ok``, ``stalled`` (no frame for ``stall_s``: the device is closed
and reopened with exponential backoff), ``unplugged`` (cannot be opened: retried with
backoff, so a replugged camera comes back without a restart), ``ended`` (replay done).

Sources: :class:`V4L2Source` (USB cameras through OpenCV, 1-frame driver buffer),
:class:`PiCamera2Source` (Pi camera modules; picamera2 imported only here), and
:class:`ReplaySource` (a folder of images or a video file at a set frame rate, each image
held for N frames followed by M empty frames, for tests and demos). When frames are too
dark for a while and an ``illumination`` callback is given, the source switches the
illumination LED on (and off again once frames are bright).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DARK_MEAN = 40.0
BRIGHT_MEAN = 225.0


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray
    seq: int
    at: float  # time.monotonic() when it arrived


@dataclass
class Health:
    state: str = "starting"
    fps: float = 0.0
    last_frame_age_s: float | None = None
    brightness: float | None = None
    too_dark: bool = False
    too_bright: bool = False
    reopens: int = 0
    frames: int = 0
    error: str | None = None
    illumination: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class _Stats:
    times: deque = field(default_factory=lambda: deque(maxlen=120))


class FrameSource:
    """Base: a reader thread around ``_open`` / ``_grab`` / ``_release`` of a subclass."""

    def __init__(
        self,
        stall_s: float = 2.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        illumination: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_s = stall_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._illum = illumination
        self._clock = clock
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seen = -1
        self._seq = 0
        self._health = Health()
        self._stats = _Stats()
        self._dark_run = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- subclass hooks

    def _open(self) -> None:
        raise NotImplementedError

    def _grab(self) -> np.ndarray | None:
        """Next frame, or None if none arrived (a timeout, a gap); raise OSError if gone."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    # -------------------------------------------------------------- public

    def start(self) -> FrameSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The newest frame not returned before, waiting up to ``timeout_s``."""
        deadline = self._clock() + timeout_s
        with self._cond:
            while self._frame is None or self._frame.seq == self._seen:
                left = deadline - self._clock()
                if left <= 0 or self._stop.is_set() or self._health.state == "ended":
                    return None
                self._cond.wait(min(left, 0.05))
            self._seen = self._frame.seq
            return self._frame

    def frames(self, timeout_s: float = 1.0) -> Iterator[Frame]:
        """Iterate over newest frames until the source ends or is closed."""
        while not self._stop.is_set():
            f = self.read(timeout_s)
            if f is None:
                if self._health.state == "ended":
                    return
                continue
            yield f

    def health(self) -> Health:
        with self._cond:
            h = Health(**self._health.as_dict())
            now = self._clock()
            if self._frame is not None:
                h.last_frame_age_s = round(now - self._frame.at, 3)
            ts = [t for t in self._stats.times if now - t <= 2.0]
            h.fps = (
                round((len(ts) - 1) / (ts[-1] - ts[0]), 1)
                if len(ts) >= 2 and ts[-1] > ts[0]
                else 0.0
            )
            return h

    # -------------------------------------------------------------- internals

    def _publish(self, img: np.ndarray) -> None:
        now = self._clock()
        small = img[::16, ::16]
        mean = float(small.mean())
        with self._cond:
            self._seq += 1
            self._frame = Frame(img, self._seq, now)
            self._stats.times.append(now)
            h = self._health
            h.state, h.frames, h.brightness = "ok", h.frames + 1, round(mean, 1)
            h.too_dark, h.too_bright = mean < DARK_MEAN, mean > BRIGHT_MEAN
            self._cond.notify_all()
        self._auto_illumination(mean)

    def _auto_illumination(self, mean: float) -> None:
        if self._illum is None:
            return
        self._dark_run = self._dark_run + 1 if mean < DARK_MEAN else 0
        h = self._health
        if not h.illumination and self._dark_run >= 5:
            self._illum(True)
            h.illumination = True
        elif h.illumination and mean > DARK_MEAN * 2.5:
            self._illum(False)
            h.illumination = False

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._cond:
            self._health.state = state
            if error is not None:
                self._health.error = error
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                self._open()
            except (OSError, RuntimeError) as exc:
                self._set_state("unplugged", str(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            last = self._clock()
            try:
                while not self._stop.is_set():
                    img = self._grab()
                    now = self._clock()
                    if img is not None:
                        self._publish(img)
                        last = now
                        backoff = self.backoff_initial_s
                    elif now - last > self.stall_s:
                        self._set_state("stalled", f"no frame for {now - last:.1f} s")
                        break
            except StopIteration:
                self._set_state("ended")
                self._safe_release()
                return
            except (OSError, RuntimeError) as exc:
                self._set_state("unplugged", str(exc))
            self._safe_release()
            if self._stop.is_set():
                break
            with self._cond:
                self._health.reopens += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
        self._safe_release()

    def _safe_release(self) -> None:
        try:
            self._release()
        except (OSError, RuntimeError):
            pass


class V4L2Source(FrameSource):
    """A USB camera through OpenCV's V4L2 backend (``device``: index or /dev/videoN).

    ``capture_factory`` defaults to ``cv2.VideoCapture``; tests pass a fake device."""

    def __init__(
        self,
        device: int | str = 0,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        exposure: float | None = None,
        capture_factory: Callable[..., Any] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.exposure = exposure
        self._factory = capture_factory
        self._cap: Any = None

    def _open(self) -> None:
        import cv2

        factory = self._factory or (lambda dev: cv2.VideoCapture(dev, cv2.CAP_V4L2))
        cap = factory(self.device)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open camera {self.device}")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        if self.exposure is not None:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2: 1 = manual, 3 = aperture priority
            cap.set(cv2.CAP_PROP_EXPOSURE, self.exposure)
        self._cap = cap

    def set_exposure(self, value: float | None) -> None:
        """Manual exposure (driver units), or None for automatic; applies on the fly."""
        import cv2

        self.exposure = value
        if self._cap is not None:
            self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 3 if value is None else 1)
            if value is not None:
                self._cap.set(cv2.CAP_PROP_EXPOSURE, value)

    def _grab(self) -> np.ndarray | None:
        ok, img = self._cap.read()
        if not ok:
            # V4L2 returns False both on a timeout and on a vanished device: check which
            if isinstance(self.device, str) and not Path(self.device).exists():
                raise OSError(f"{self.device} disappeared")
            return None
        return img

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PiCamera2Source(FrameSource):
    """A Pi camera module through picamera2 (imported only when this source opens)."""

    def __init__(
        self, width: int = 1280, height: int = 720, exposure_us: int | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.width, self.height, self.exposure_us = width, height, exposure_us
        self._cam: Any = None

    @staticmethod
    def available() -> bool:
        import importlib.util

        return importlib.util.find_spec("picamera2") is not None

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise RuntimeError(
                "picamera2 is not installed (Debian package python3-picamera2; "
                "the venv needs --system-site-packages)"
            ) from exc
        cam = Picamera2()
        cfg = cam.create_video_configuration(
            main={"size": (self.width, self.height), "format": "BGR888"}, buffer_count=2
        )
        cam.configure(cfg)
        if self.exposure_us is not None:
            cam.set_controls({"AeEnable": False, "ExposureTime": int(self.exposure_us)})
        cam.start()
        self._cam = cam

    def _grab(self) -> np.ndarray | None:
        return self._cam.capture_array("main")

    def _release(self) -> None:
        if self._cam is not None:
            self._cam.stop()
            self._cam.close()
            self._cam = None


class ReplaySource(FrameSource):
    """Replay a folder of images (sorted) or a video file at ``fps``.

    Each image is held for ``hold`` frames, then ``gap`` frames without a code (a grey
    frame) follow, like a queue of people stepping up. ``fps=0`` replays as fast as the
    consumer reads (``loop`` restarts at the end; otherwise the state becomes ``ended``).
    """

    SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp"})

    def __init__(
        self,
        path: str,
        fps: float = 30.0,
        hold: int = 1,
        gap: int = 0,
        loop: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.path, self.fps, self.hold, self.gap, self.loop = Path(path), fps, hold, gap, loop
        self._items: list[Path] = []
        self._video: Any = None
        self._plan: Iterator[np.ndarray | None] | None = None
        self._next_at = 0.0

    def _open(self) -> None:
        import cv2

        if self.path.is_dir():
            self._items = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in self.SUFFIXES
            )
            if not self._items:
                raise OSError(f"no images in {self.path}")
        elif self.path.is_file():
            self._video = cv2.VideoCapture(str(self.path))
            if not self._video.isOpened():
                raise OSError(f"cannot open video {self.path}")
        else:
            raise OSError(f"{self.path} does not exist")
        self._plan = self._frames()
        self._next_at = self._clock()

    def _frames(self) -> Iterator[np.ndarray | None]:
        import cv2

        while True:
            shape = None
            if self._video is not None:
                ok, img = self._video.read()
                while ok:
                    yield img
                    ok, img = self._video.read()
            else:
                for p in self._items:
                    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                    if img is None:
                        continue
                    shape = img.shape
                    for _ in range(self.hold):
                        yield img
                    for _ in range(self.gap):
                        yield np.full(shape, 128, np.uint8)
            if not self.loop:
                return
            if self._video is not None:
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _grab(self) -> np.ndarray | None:
        assert self._plan is not None
        if self.fps > 0:
            delay = self._next_at - self._clock()
            if delay > 0:
                time.sleep(delay)
            self._next_at = max(self._next_at + 1.0 / self.fps, self._clock() - 1.0)
        else:
            # as fast as read: wait until the consumer took the previous frame
            with self._cond:
                while (
                    self._frame is not None
                    and self._frame.seq != self._seen
                    and not self._stop.is_set()
                ):
                    self._cond.wait(0.05)
        img = next(self._plan, None)
        if img is None:
            raise StopIteration
        return img

    def _release(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None


def open_source(spec: str, **kw: Any) -> FrameSource:
    """From config: ``v4l2:0`` / ``v4l2:/dev/video2``, ``picamera2``, ``replay:PATH``."""
    kind, _, arg = spec.partition(":")
    if kind == "v4l2":
        dev: int | str = int(arg) if arg.isdigit() else (arg or 0)
        return V4L2Source(dev, **kw)
    if kind == "picamera2":
        return PiCamera2Source(**kw)
    if kind == "replay":
        return ReplaySource(arg, **kw)
    raise ValueError(f"unknown camera source {spec!r}: v4l2:N, picamera2 or replay:PATH")
