"""The station decoder's fallbacks, each on a frame made to need it: a small tilted QR
(upscaled and sharpened), a QR in low light (upscaled and smoothed), a dark-mode QR, a
Code 128 label merged with clutter (cut out by its bars' direction), and the fallback
ladder resuming across frames. Every decoding assertion is on the real decoded text.

Decoding tests use a large time budget so that no result depends on machine speed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from checkpost.hardware.corpus import make_corpus
from checkpost.hardware.corpus.symbols import code128_modules, payload, qr_modules
from checkpost.hardware.decode import StationDecoder
from checkpost.hardware.decode.pipeline import QR, _Region

TEXT = payload(np.random.default_rng(3), "hp1")
BARE = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)


def _bare_zxing(frame: np.ndarray) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(frame, formats=BARE)]


def _qr_symbol(dark: int = 20, light: int = 240) -> np.ndarray:
    return np.where(np.pad(qr_modules(TEXT), 4) == 1, dark, light).astype(np.uint8)


def _place(
    symbol: np.ndarray, px: float, angle: float, keystone: float = 0.0, bg: int = 120
) -> np.ndarray:
    """``symbol`` (one pixel per module) at ``px`` pixels per module in a 1280x720 frame,
    rolled by ``angle`` degrees and tilted (``keystone``: relative width change top to
    bottom), anti-aliased as optics do."""
    h, w = symbol.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    pts = (src - [w / 2, h / 2]) * px
    a = np.radians(angle)
    pts = pts @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T
    pts[:, 0] *= 1 + np.sign(pts[:, 1]) * keystone
    dst = (pts + np.array([640, 360])).astype(np.float32)
    big = cv2.resize(symbol, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    big = cv2.GaussianBlur(big.astype(np.float32), (0, 0), 4.0 / px)
    hom = cv2.getPerspectiveTransform(src * 8, dst)
    mask = cv2.warpPerspective(np.ones_like(big), hom, (1280, 720))
    warped = cv2.warpPerspective(big, hom, (1280, 720), flags=cv2.INTER_AREA)
    return np.full((720, 1280), bg, np.float32) * (1 - mask) + warped * mask


def _camera(frame: np.ndarray, blur: float, noise: float = 2.0, gain: float = 1.0) -> np.ndarray:
    """Defocus, exposure gain, sensor noise and MJPEG compression, seeded."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(frame, (0, 0), blur) * gain + rng.normal(0, noise, frame.shape)
    ok, buf = cv2.imencode(
        ".jpg", np.clip(frame, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 70]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)


def _station() -> StationDecoder:
    return StationDecoder(track=False, budget_ms=1000, debounce_s=0)


def test_small_tilted_qr_is_read_upscaled_and_sharpened() -> None:
    # 2.3 px per module, soft focus, tilted: zxing's sampling grid lands between modules
    frame = _camera(_place(_qr_symbol(), 2.3, angle=12, keystone=0.08), blur=1.0)
    assert TEXT not in _bare_zxing(frame)
    (r,) = _station().read(frame)
    assert (r.text, r.format, r.stage) == (TEXT, "QR", "up-sharpen")
    xs = [p[0] for p in r.corners]
    assert min(xs) > 450 and max(xs) < 830  # corners mapped back to frame pixels


def test_low_light_noisy_qr_is_read_upscaled_and_smoothed() -> None:
    # a car interior at night: gain 0.28, sensor noise sigma 10
    frame = _camera(_place(_qr_symbol(), 3.0, angle=8), blur=1.0, noise=10, gain=0.28)
    assert TEXT not in _bare_zxing(frame)
    reads = _station().read(frame)
    assert [r.text for r in reads] == [TEXT]
    # upscaled, and smoothed within the modules (bilateral) or everywhere (Gaussian)
    assert reads[0].stage in ("up-sharpen", "bilateral", "up-smooth")


def test_dark_mode_small_qr_is_read() -> None:
    inverted = _qr_symbol(dark=235, light=25)  # light modules on a dark screen
    frame = _camera(_place(inverted, 2.3, angle=15, keystone=0.08, bg=40), blur=1.0)
    assert TEXT not in _bare_zxing(frame)
    assert [r.text for r in _station().read(frame)] == [TEXT]


def test_qr_blob_is_the_codes_own_outline() -> None:
    frame = _camera(_place(_qr_symbol(), 3.0, angle=0), blur=0.5)
    # a block of text beside the code must not merge into its candidate
    for i in range(5):
        cv2.putText(frame, "abc 123 xyz", (80, 200 + 30 * i), 0, 0.8, (60, 60, 60), 2)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    dec = _station()
    blobs = [r for r in dec._locate(np.ascontiguousarray(gray[::2, ::2])) if r.qr_blob]
    side = (qr_modules(TEXT).shape[0] + 8) * 3.0  # symbol with its quiet zone, in pixels
    x0, y0, x1, y1 = 640 - side / 2, 360 - side / 2, 640 + side / 2, 360 + side / 2
    assert blobs
    b = blobs[0]
    assert abs(b.x0 - x0) < 24 and abs(b.x1 - x1) < 24
    assert abs(b.y0 - y0) < 24 and abs(b.y1 - y1) < 24


def _label_beside_clutter(px: float, angle: float) -> tuple[str, np.ndarray]:
    """A Code 128 box label on a dark table, touching a bright box and near printed text:
    the locator's energy blob merges them, so its box has no one direction."""
    text = "BOX90424063"
    bars = np.repeat(code128_modules(text)[None, :], 30, axis=0)
    label = np.where(np.pad(bars, ((6, 22), (12, 12))) == 1, 30, 235).astype(np.uint8)
    cv2.putText(label, text, (14, label.shape[0] - 5), 0, 0.25, 60, 1)
    frame = np.full((720, 1280), 35, np.uint8)
    cv2.rectangle(frame, (300, 250), (560, 420), 200, -1)
    cv2.rectangle(frame, (700, 200), (1000, 330), 170, -1)
    for i in range(6):
        cv2.putText(frame, "ABC 123 XYZ", (80, 80 + 40 * i), 0, 1.0, 150, 2)
    h, w = label.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, px)
    m[:, 2] += np.array([640, 380]) - np.array([w / 2, h / 2])
    lab = cv2.GaussianBlur(label.astype(np.float32), (0, 0), 0.4)
    warped = cv2.warpAffine(lab, m, (1280, 720), flags=cv2.INTER_AREA)
    mask = cv2.warpAffine(np.ones_like(lab), m, (1280, 720))
    out = frame.astype(np.float32) * (1 - mask) + warped * mask
    out = cv2.GaussianBlur(out, (0, 0), 0.7) + np.random.default_rng(0).normal(0, 2.5, out.shape)
    return text, cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("angle", [10, 25, 40])
def test_code128_merged_with_clutter_is_cut_out_by_its_bars(angle: float) -> None:
    text, frame = _label_beside_clutter(1.8, angle)
    reads = _station().read(frame)
    assert [(r.text, r.format) for r in reads] == [(text, "Code128")]
    without = _station()
    without.coherence_bar_blob = 2.0  # no bar blobs: the merged blob is all it has
    assert without.read(frame) == []


def test_checkpoint_station_has_no_bar_blobs() -> None:
    _, frame = _label_beside_clutter(2.2, 25)
    dec = StationDecoder(station="checkpoint", track=False, budget_ms=1000)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert not any(r.bar_blob for r in dec._locate(np.ascontiguousarray(gray[::2, ::2])))
    assert dec.read(frame) == []


def test_fallback_ladder_resumes_where_the_budget_ran_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dec = _station()
    ran: list[int] = []
    steps: list[tuple[str, Callable[[], None]]] = [
        (f"s{i}", lambda i=i: ran.append(i)) for i in range(5)
    ]
    allowed = {"n": 0}

    def affordable(name: str, deadline: float, pixels: float) -> bool:
        allowed["n"] -= 1
        return allowed["n"] >= 0

    monkeypatch.setattr(dec, "_affordable", affordable)
    reg = _Region(0, 0, 100, 100, QR)
    frames = []
    for _ in range(3):  # three frames, two steps' worth of budget each
        ran.clear()
        allowed["n"] = 2
        dec._ladder(steps, reg, 1, 5, 0.0, 1.0, {})
        frames.append(list(ran))
    assert frames == [[1, 2], [3, 4], [1, 2]]
    # a found code stops the ladder at once
    ran.clear()
    allowed["n"] = 9
    dec._ladder(steps, reg, 1, 5, 0.0, 1.0, {"x": ("QR", (), "s")})
    assert ran == []


def test_next_frames_candidate_inherits_the_ladder_position() -> None:
    dec = StationDecoder(track=True, budget_ms=1000)
    old = _Region(100, 100, 300, 300, QR, qr_blob=True, resume=4)
    dec._regions = [old]
    moved = _Region(104, 98, 306, 302, QR, qr_blob=True)
    elsewhere = _Region(700, 100, 900, 300, QR, qr_blob=True)
    bars_there = _Region(100, 100, 300, 300, "1d-box")
    dec._resume([moved, elsewhere, bars_there])
    assert (moved.resume, elsewhere.resume, bars_there.resume) == (4, 0, 0)


def test_corpus_codes_are_whole_in_frame_and_clips_count_from_a_readable_frame(
    tmp_path: Path,
) -> None:
    m = make_corpus(5, tmp_path, stills=24, clips=4, workers=1)
    for s in m["stills"]:
        for c in s["codes"]:
            pts = np.array(c["corners"])
            assert (pts >= 0).all() and (pts[:, 0] < 1280).all() and (pts[:, 1] < 720).all()
    for clip in m["clips"]:
        assert clip["inside_index"] is not None and clip["full_index"] is not None
        assert clip["inside_index"] <= clip["full_index"] < len(clip["frames"])
