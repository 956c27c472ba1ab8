"""Station code decoding: QR and Code 128 from camera frames, fast enough for a Pi.

Stable API (other parts of checkpost call these)::

    from checkpost.hardware.decode import StationDecoder, Read, decode_image_file

    dec = StationDecoder(station="checkpoint" | "sampling", debounce_s=2.0)  # 12 ms budget
    reads = dec.decode(frame)       # new reads (debounced), frame = BGR or gray ndarray
    reads = dec.read(frame)         # every read in this frame, no debounce
    dec.reset()                     # a new scene: forget tracked regions and debounce
    decode_image_file("pass.png")   # one image file, generous budget (checkpost verify IMAGE)

A :class:`Read` has ``text``, ``format`` ("QR" | "Code128"), ``corners`` (4 points in
frame pixels, clockwise from top-left), ``ms`` (time the frame took), ``stage`` (which
pipeline stage read it) and ``source`` ("camera" or "scanner"). Hand-held scanners yield
the same Read type with no corners, so workflows do not care where a code came from.

The pipeline and why each stage exists are described in :mod:`.pipeline`; the benchmark
that holds it to its goals is :mod:`.bench` (``checkpost bench decode``).
"""

from .pipeline import (
    CODE128,
    DEFAULT_BUDGET_MS,
    QR,
    Debouncer,
    Read,
    StationDecoder,
    decode_image,
    decode_image_file,
)

__all__ = [
    "CODE128",
    "DEFAULT_BUDGET_MS",
    "QR",
    "Debouncer",
    "Read",
    "StationDecoder",
    "decode_image",
    "decode_image_file",
]
