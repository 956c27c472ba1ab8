"""Work the station decoder no longer does twice, or at all, on a Code 128 frame: the
rotated 1-D scan of an upright strip, the strip made again for a candidate's fallbacks
or made when no step on it fits the budget, the strip's upscaling along the bars, and
the texture's other candidates when a bar blob's first look already read the code.
Each test checks that what is read stays the same."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp
from checkpost.hardware.corpus.symbols import code128_modules
from checkpost.hardware.decode import StationDecoder
from checkpost.hardware.decode import pipeline as pl
from checkpost.hardware.decode.pipeline import _Region

from .test_decode_fallbacks import _label_beside_clutter


def _station() -> StationDecoder:
    return StationDecoder(track=False, budget_ms=1000, debounce_s=0)


def _bars_frame(angle: float, px: float = 2.0, text: str = "BOX90424063") -> np.ndarray:
    """A Code 128 label alone on a grey table, turned by ``angle`` degrees (grayscale)."""
    bars = np.repeat(code128_modules(text)[None, :], 24, axis=0)
    label = np.where(np.pad(bars, ((6, 6), (12, 12))) == 1, 30, 235).astype(np.float32)
    h, w = label.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, px)
    m[:, 2] += np.array([640, 360]) - np.array([w / 2, h / 2])
    warped = cv2.warpAffine(label, m, (1280, 720), flags=cv2.INTER_AREA)
    mask = cv2.warpAffine(np.ones_like(label), m, (1280, 720))
    out = 120 * (1 - mask) + warped * mask
    out = cv2.GaussianBlur(out, (0, 0), 0.6) + np.random.default_rng(1).normal(0, 2, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _bar_box(angle: float, px: float = 2.0, text: str = "BOX90424063") -> np.ndarray:
    """The locator-style box (4x2, first edge along the code) of _bars_frame's bars."""
    n = len(code128_modules(text))
    a = np.radians(-angle)  # OpenCV's positive angle turns counter-clockwise on screen
    u = np.array([np.cos(a), np.sin(a)], np.float32)
    v = np.array([-u[1], u[0]], np.float32)
    c = np.array([640, 360], np.float32)
    hw, hh = n * px / 2, 12 * px
    return np.array(
        [c - u * hw - v * hh, c + u * hw - v * hh, c + u * hw + v * hh, c - u * hw + v * hh],
        np.float32,
    )


def test_upright_strips_skip_zxings_rotated_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def read_barcodes(img: np.ndarray, **kw: Any) -> Any:
        calls.append(kw)
        return zxingcpp.read_barcodes(img, **kw)

    dec = _station()
    monkeypatch.setattr(
        dec,
        "_zx",
        SimpleNamespace(
            read_barcodes=read_barcodes,
            BarcodeFormat=zxingcpp.BarcodeFormat,
            Binarizer=zxingcpp.Binarizer,
        ),
    )
    reads = dec.read(_bars_frame(angle=35))
    assert [(r.text, r.format) for r in reads] == [("BOX90424063", "Code128")]
    strips = [kw for kw in calls if tuple(kw["formats"]) == dec._fmt_1d]
    assert strips and all(kw["try_rotate"] is False for kw in strips)
    # every other look still scans both ways (a QR crop, a blob with no one direction)
    assert all(kw["try_rotate"] is True for kw in calls if tuple(kw["formats"]) != dec._fmt_1d)


def test_strip_is_made_once_for_the_cheap_look_and_the_fallbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fitted: list[np.ndarray] = []
    real = pl._refine_bars

    def counting(cv2_: Any, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        fitted.append(box)
        return real(cv2_, gray, box)

    monkeypatch.setattr(pl, "_refine_bars", counting)
    gray = _bars_frame(angle=20)
    gray[:, 600:610] = 120  # a stripe across the bars: no look reads it, so all steps run
    dec = _station()
    reg = _Region(0, 0, 1280, 720, "1d-box", box=_bar_box(20))
    dec._read_1d_box(gray, reg.box, {}, float("inf"), first_only=True, reg=reg)
    assert reg.strip is not None
    strip = reg.strip[1]
    dec._read_1d_box(gray, reg.box, {}, float("inf"), reg=reg)
    # fitted once; the other fits are of OpenCV's detector's own boxes (its step)
    assert sum(b is reg.box for b in fitted) == 1 and reg.strip[1] is strip
    # a strip is one frame's pixels: regions kept for the next frame drop it
    dec._update_regions([], [reg], gray.shape)
    assert all(r.strip is None for r in dec._regions)


def test_no_strip_is_made_when_its_first_step_cannot_run() -> None:
    gray = _bars_frame(angle=20)
    dec = _station()
    reg = _Region(0, 0, 1280, 720, "1d-box", box=_bar_box(20), resume=3)
    found: dict = {}
    dec._read_1d_box(gray, reg.box, found, 0.0, reg=reg)  # the deadline has passed
    assert found == {} and reg.strip is None
    assert reg.resume == 3  # the next frame starts where this one could not
    dec._read_1d_box(gray, reg.box, found, float("inf"), reg=reg)
    assert [t for t in found] == ["BOX90424063"]


def test_strip_is_upscaled_along_the_code_only() -> None:
    box = np.array([[100, 100], [300, 100], [300, 140], [100, 140]], np.float32)
    quad, (ow, oh) = pl._strip_geometry(box)
    assert abs(ow - 500) <= 1  # 260 px padded for the quiet zones, upscaled to 500
    assert oh == int(40 * 1.2 + 4)  # its own height, padded, not upscaled
    assert quad.shape == (4, 2)
    small = np.array([[0, 0], [60, 0], [60, 10], [0, 10]], np.float32)
    _, (ow, oh) = pl._strip_geometry(small)
    assert ow == int((60 * 1.24 + 12) * 2.5) and oh == 24  # at most 2.5x; >= 24 rows


@pytest.mark.parametrize("angle", [0, 20, 65])
def test_refine_bars_fits_the_bars(angle: float) -> None:
    gray = _bars_frame(angle=angle)
    truth = _bar_box(angle)
    coarse = truth + np.array([[-20, -14], [14, -20], [20, 14], [-14, 20]], np.float32)
    box = pl._refine_bars(cv2, gray, coarse)
    along = box[1] - box[0]
    turned = np.degrees(np.arctan2(along[1], along[0]))
    assert min(abs(turned + angle) % 180, 180 - abs(turned + angle) % 180) < 2
    centre, width = box.mean(axis=0), np.linalg.norm(along)
    assert np.linalg.norm(centre - truth.mean(axis=0)) < 4
    assert abs(width - np.linalg.norm(truth[1] - truth[0])) < 10


def test_texture_candidates_wait_for_the_bar_blobs(monkeypatch: pytest.MonkeyPatch) -> None:
    text, frame = _label_beside_clutter(1.8, 25)
    dec = _station()
    more: list[int] = []
    real = dec._texture_candidates

    def counting(*a: Any) -> list[_Region]:
        more.append(1)
        return real(*a)

    monkeypatch.setattr(dec, "_texture_candidates", counting)
    reads = dec.read(frame)
    assert [r.text for r in reads] == [text] and reads[0].stage.startswith("1d-")
    assert more == []  # read by the bar blob's first look: the rest was not needed
    # nothing read: the other candidates are located and looked at, as before
    blank = np.full((720, 1280, 3), 128, np.uint8)
    cv2.putText(blank, "ABC 123 XYZ", (200, 300), 0, 2.0, (20, 20, 20), 4)
    assert dec.read(blank) == [] and more == [1]


def test_locate_is_the_blobs_then_the_texture_candidates() -> None:
    _, frame = _label_beside_clutter(2.2, 25)
    half = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[::2, ::2])
    dec = _station()
    blobs, texture = dec._texture(half)
    rest = dec._texture_candidates(*texture)
    located = dec._locate(half)
    assert blobs and rest
    assert [(r.x0, r.y0, r.x1, r.y1, r.kind) for r in located] == [
        (r.x0, r.y0, r.x1, r.y1, r.kind) for r in blobs + rest
    ]
