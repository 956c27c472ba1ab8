"""Camera frame sources (V4L2, picamera2, replay) with health; see :mod:`.sources`.

    from checkpost.hardware.camera import open_source
    with open_source("v4l2:0") as cam:
        for frame in cam.frames():
            reads = decoder.decode(frame.image)
        cam.health()   # state, fps, last frame age, too dark / too bright, reopens

OpenCV and picamera2 are imported only when a source opens.
"""

from .sources import (
    Frame,
    FrameSource,
    Health,
    PiCamera2Source,
    ReplaySource,
    V4L2Source,
    open_source,
)

__all__ = [
    "Frame",
    "FrameSource",
    "Health",
    "PiCamera2Source",
    "ReplaySource",
    "V4L2Source",
    "open_source",
]
