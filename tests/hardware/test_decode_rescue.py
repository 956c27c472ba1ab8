"""The QR fallbacks added for issue 4 (section 3), each on a frame made to need it: a
defocused QR read by inverting the measured blur (``deblur``), a large QR whose fallbacks
work on a reduced crop, a QR whose locator blob merged with the texture beside it (cut
out as a square), and frames of QR-like texture that must still read nothing.

Decoding tests use a large time budget so that no result depends on machine speed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from checkpost.hardware.decode import StationDecoder
from checkpost.hardware.decode import pipeline as pl
from checkpost.hardware.decode.pipeline import (
    _blur_sigma,
    _deblur,
    _solid_square,
    _working_scale,
)

from .test_decode_fallbacks import TEXT, _bare_zxing, _camera, _place, _qr_symbol

DEBLUR_STAGES = ("deblur", "deblur-fine", "deblur-wide")


def _station() -> StationDecoder:
    return StationDecoder(track=False, budget_ms=1000, debounce_s=0)


def _modules(seed: int, n: int = 40, px: int = 4) -> np.ndarray:
    """Random dark/light modules (no finder patterns: texture, not a code)."""
    cells = np.random.default_rng(seed).integers(0, 2, (n, n)).astype(np.uint8)
    return np.kron(cells, np.ones((px, px), np.uint8)) * 200 + 25


@pytest.mark.parametrize(("px", "blur"), [(3.0, 1.9), (4.0, 2.5)])
def test_defocused_qr_is_read_by_inverting_the_blur(
    px: float, blur: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # blur of 0.6 modules: sharpening kernels (and bare zxing) no longer read it
    frame = _camera(_place(_qr_symbol(), px, angle=10), blur=blur)
    assert TEXT not in _bare_zxing(frame)
    (r,) = _station().read(frame)
    assert (r.text, r.format) == (TEXT, "QR") and r.stage in DEBLUR_STAGES
    cx, cy = np.mean(r.corners, axis=0)
    assert abs(cx - 640) < 12 and abs(cy - 360) < 12  # corners mapped back to the frame
    # without the deconvolution nothing else in the ladder reads it
    monkeypatch.setattr(pl, "_deblur", lambda cv2, img, sigma, nsr: img)
    assert _station().read(frame) == []


def test_large_defocused_qr_is_read_from_a_reduced_crop() -> None:
    # 8 px modules, badly out of focus: a ~560 px crop, whose fallbacks work at 400 px
    frame = _camera(_place(_qr_symbol(), 8.0, angle=10), blur=4.5)
    assert TEXT not in _bare_zxing(frame)
    (r,) = _station().read(frame)
    assert r.text == TEXT and r.stage in DEBLUR_STAGES
    side = np.ptp(np.array(r.corners), axis=0)
    n = _qr_symbol().shape[0] - 8  # modules without the quiet zone
    expected = n * 8.0 * (np.cos(np.radians(10)) + np.sin(np.radians(10)))
    assert np.all(np.abs(side - expected) < 0.08 * expected)  # scaled back to frame pixels


def test_working_scale_upscales_small_crops_and_reduces_large_ones() -> None:
    for short, k, out in ((200, 2.0, 200), (400, 1.5, 400), (800, 1.0, 400)):
        base, got_k = _working_scale(cv2, np.zeros((short, short + 50), np.uint8))
        assert (got_k, min(base.shape)) == (k, out)


def test_blur_sigma_follows_the_defocus() -> None:
    sharp = _modules(1).astype(np.float32)
    est = [
        _blur_sigma(cv2, cv2.GaussianBlur(sharp, (0, 0), s).astype(np.uint8) if s else sharp)
        for s in (0, 1.0, 1.8, 2.6)
    ]
    assert est == sorted(est)
    assert est[0] < 1.1 and 1.4 < est[-1] <= 3.0


def test_deblur_undoes_a_gaussian_blur_and_invents_no_texture() -> None:
    sharp = _modules(2).astype(np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5).astype(np.uint8)
    restored = _deblur(cv2, blurred, 1.5, 0.01).astype(np.float32)
    inner = (slice(16, -16), slice(16, -16))  # away from the crop's reflected borders
    err_blurred = np.abs(blurred.astype(np.float32) - sharp)[inner].mean()
    err_restored = np.abs(restored - sharp)[inner].mean()
    assert err_restored < 0.7 * err_blurred  # measured 0.63
    flat = np.full((120, 90), 137, np.uint8)
    assert np.array_equal(_deblur(cv2, flat, 2.0, 0.03), flat)


def test_solid_square_is_cut_out_of_a_merged_blob() -> None:
    cells = np.zeros((20, 30), bool)
    cells[2:14, 3:15] = True  # the code: 12 x 12 cells
    cells[6:10, 15:29] = True  # a band of text touching it
    assert _solid_square(cv2, cells) == (3, 2, 12, 12)
    assert _solid_square(cv2, cells[6:10, :]) is None  # a band alone has no square


def test_qr_merged_with_texture_beside_it_is_located_and_read() -> None:
    symbol = _qr_symbol()
    frame = _place(symbol, 3.0, angle=0)
    # a block of dense texture touching the code on its right (a phone's busy screen)
    side = symbol.shape[0] * 3
    x1 = 640 + side // 2
    texture = _modules(3, n=30, px=4)[:, :]
    frame[300:420, x1 : x1 + 120] = texture[:120, :120]
    frame = _camera(frame, blur=0.6)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    blobs = [r for r in _station()._locate(np.ascontiguousarray(gray[::2, ::2])) if r.qr_blob]
    assert blobs and blobs[0].cut
    b = blobs[0]
    assert b.x0 > 640 - side / 2 - 32 and b.x1 < x1 + 32  # the code, not the texture
    assert [r.text for r in _station().read(frame)] == [TEXT]


@pytest.mark.parametrize("blur", [0.8, 2.0])
def test_qr_like_texture_reads_nothing_after_every_fallback(blur: float) -> None:
    frame = np.full((720, 1280), 120, np.float32)
    frame[200:520, 480:800] = _modules(4, n=80, px=4)
    frame = _camera(frame, blur=blur)
    dec = _station()
    assert dec.read(frame) == []
    # the texture earned the whole ladder, the deconvolutions included
    assert {"deblur", "deblur-fine", "deblur-wide", "up-adaptive", "bilateral"} <= set(dec._cost)


def test_steps_that_rebuild_module_edges_read_qr_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deconvolution, edge-preserving smoothing and a local threshold invent edges: QR's
    error correction refuses a wrong reconstruction, Code 128's one check character may
    not (a deblurred tube label once read ...627 for ...628). On a sampling station, those
    steps must ask zxing for QR only; the plain looks keep Code 128."""
    station = StationDecoder(station="sampling", track=False, budget_ms=1000, debounce_s=0)
    asked: dict[str, tuple] = {}

    def record(img, scale, formats, found, candidates, stage, **kw):
        asked[stage] = formats

    monkeypatch.setattr(station, "_zxing", record)
    crop = _modules(3, n=60, px=4)
    steps, _ = station._region_steps(crop, None, station._formats, {}, (0.0, 0.0))
    for _, run in steps:
        run()
    rebuilt = {"deblur", "deblur-fine", "deblur-wide", "bilateral", "up-adaptive"}
    assert rebuilt <= set(asked)
    assert all(asked[s] == station._fmt_qr for s in rebuilt)
    assert asked["crop"] == station._formats and len(station._formats) == 2
