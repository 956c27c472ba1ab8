"""Camera-like frames holding a code, for the benchmark, the demo's replay cameras and tests.

A 1280x720 frame: a textured background (the hardware corpus's), a QR code rendered at a
size a phone held at arm's length gives (4-6 px per module), slightly blurred and noisy.
Generated frames are checked by decoding them back before use (MEASURED.md: a generator can
mis-encode), so a benchmark never times a frame that cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_frame(
    text: str, seed: int = 0, size: tuple[int, int] = (1280, 720), module_px: int = 5
) -> np.ndarray:
    import cv2
    from checkpost.hardware.corpus.scene import background

    from checkpost.issuer.render import qr_image

    rng = np.random.default_rng(seed)
    w, h = size
    bg = background(rng)
    if bg.ndim == 2:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)
    frame = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA)
    qr = np.array(qr_image(text, box_size=module_px, border=4).convert("L"))
    qr = cv2.cvtColor(qr, cv2.COLOR_GRAY2BGR)
    qh, qw = qr.shape[:2]
    scale = min(1.0, 0.8 * h / qh)
    if scale < 1.0:
        qr = cv2.resize(qr, (int(qw * scale), int(qh * scale)), interpolation=cv2.INTER_AREA)
        qh, qw = qr.shape[:2]
    x = int(rng.integers(0, max(1, w - qw)))
    y = int(rng.integers(0, max(1, h - qh)))
    frame[y : y + qh, x : x + qw] = qr
    frame = cv2.GaussianBlur(frame, (0, 0), 0.7)
    noise = rng.normal(0, 4, frame.shape).astype(np.int16)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def readable(frame: np.ndarray, text: str) -> bool:
    from checkpost.hardware.decode import StationDecoder

    dec = StationDecoder(station="checkpoint", budget_ms=50.0, track=False, debounce_s=0)
    return any(r.text == text for r in dec.read(frame))


def write_frames(texts: list[str], folder: Path, seed: int = 0) -> list[Path]:
    """One PNG per code, named in order (a replay camera shows them in this order)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, text in enumerate(texts):
        frame = make_frame(text, seed + i)
        path = folder / f"{i:04d}.png"
        cv2.imwrite(str(path), frame)
        out.append(path)
    return out
