"""The station decoder: API, stages, the EU DCC PNGs, corpus determinism, scan and bench CLIs.

Decoding tests use a large time budget so that no result depends on machine speed;
speed is measured by `checkpost bench decode`, not here."""

from __future__ import annotations

import base64
import glob
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from checkpost.hardware.corpus import make_corpus
from checkpost.hardware.corpus.symbols import base45, code128_modules, payload, qr_modules
from checkpost.hardware.decode import (
    Debouncer,
    Read,
    StationDecoder,
    decode_image,
    decode_image_file,
)

DCC = sorted(glob.glob("/work/shared/dcc-testdata/*/2DCode/raw/*.json"))
# ES 501-503: the PNG encodes another certificate than PREFIX (a defect of the test data).
DCC_PNG_DIFFERS = {"ES/2DCode/raw/501.json", "ES/2DCode/raw/502.json", "ES/2DCode/raw/503.json"}


def _frame(symbol: np.ndarray, angle: float = 0.0, scale: int = 3) -> np.ndarray:
    """A clean 1280x720 frame with ``symbol`` (1 = dark) in the middle, rotated by ``angle``."""
    img = np.kron(1 - symbol, np.ones((scale, scale), np.uint8)) * 255
    img = cv2.copyMakeBorder(img.astype(np.uint8), 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    frame = np.full((720, 1280), 120, np.uint8)
    h, w = img.shape
    y, x = (720 - h) // 2, (1280 - w) // 2
    frame[y : y + h, x : x + w] = img
    if angle:
        m = cv2.getRotationMatrix2D((640, 360), angle, 1.0)
        frame = cv2.warpAffine(frame, m, (1280, 720), flags=cv2.INTER_LINEAR, borderValue=120)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def _c128(text: str, height: int = 30) -> np.ndarray:
    return np.repeat(code128_modules(text)[None, :], height, axis=0)


def test_every_eu_dcc_png_is_read() -> None:
    assert DCC, "shared/dcc-testdata not found beside the repository (read in place)"
    read = images = 0
    for f in DCC:
        case = json.loads(Path(f).read_text())
        raw = case.get("2DCODE")
        if not raw:
            continue
        img = cv2.imdecode(np.frombuffer(base64.b64decode(raw), np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:  # common/Q1 deliberately carries no image
            continue
        images += 1
        reads = decode_image(img)
        assert reads, f
        key = "/".join(Path(f).parts[-4:])
        if key in DCC_PNG_DIFFERS:
            assert reads[0].text.startswith("HC1:")
        else:
            assert reads[0].text == case["PREFIX"], f
        read += 1
    assert images > 400 and read == images


def test_read_reports_text_format_corners_and_ms() -> None:
    text = payload(np.random.default_rng(1), "hp1")
    dec = StationDecoder(track=False, budget_ms=1000)
    (r,) = dec.read(_frame(qr_modules(text), angle=20))
    assert (r.text, r.format) == (text, "QR") and len(r.corners) == 4 and r.ms > 0
    xs = [p[0] for p in r.corners]
    assert min(xs) > 400 and max(xs) < 880
    assert r.as_dict()["corners"][0] == [round(r.corners[0][0], 1), round(r.corners[0][1], 1)]


def test_rotated_code128_is_read_by_the_upright_strip_not_by_bare_zxing() -> None:
    frame = _frame(_c128("0123456789012"), angle=37, scale=2)
    bare = zxingcpp.read_barcodes(frame, formats=(zxingcpp.BarcodeFormat.Code128,))
    assert [b.text for b in bare] == []
    (r,) = StationDecoder(track=False, budget_ms=1000).read(frame)
    assert (r.text, r.format) == ("0123456789012", "Code128") and r.stage.startswith("1d")


def test_checkpoint_station_reads_qr_only() -> None:
    frame = _frame(_c128("BOX12345678"), angle=0, scale=2)
    assert (
        StationDecoder("sampling", track=False, budget_ms=1000).read(frame)[0].text == "BOX12345678"
    )
    assert StationDecoder("checkpoint", track=False, budget_ms=1000).read(frame) == []
    with pytest.raises(ValueError):
        StationDecoder("gate")


def test_code128_outside_the_accepted_patterns_is_not_reported() -> None:
    frame = _frame(_c128("hello world"), scale=2)
    assert StationDecoder(track=False, budget_ms=1000).read(frame) == []
    custom = StationDecoder(track=False, budget_ms=1000, accept={"Code128": r"[a-z ]+"})
    assert [r.text for r in custom.read(frame)] == ["hello world"]


def test_tracked_region_reads_the_next_frame_from_a_crop() -> None:
    text = payload(np.random.default_rng(2), "sr1")
    frame = _frame(qr_modules(text), scale=5)
    dec = StationDecoder(budget_ms=1000)
    assert dec.read(frame)[0].stage == "zxing-half"
    assert dec.read(frame)[0].stage == "tracked"
    dec.reset()
    assert dec.read(frame)[0].stage == "zxing-half"


def test_debounce_window() -> None:
    d = Debouncer(window_s=2.0)
    assert d.fresh("A", 0.0) and not d.fresh("A", 1.5) and not d.fresh("A", 3.0)
    assert d.fresh("A", 5.1) and d.fresh("B", 5.1)
    text = payload(np.random.default_rng(3), "hp1")
    frame = _frame(qr_modules(text))
    dec = StationDecoder(debounce_s=2.0, budget_ms=1000)
    assert len(dec.decode(frame, now=10.0)) == 1
    assert dec.decode(frame, now=11.0) == []
    assert len(dec.decode(frame, now=14.0)) == 1


def test_blank_and_noise_frames_yield_nothing() -> None:
    dec = StationDecoder(track=False, budget_ms=1000)
    rng = np.random.default_rng(0)
    assert dec.read(np.zeros((720, 1280, 3), np.uint8)) == []
    noise = rng.integers(0, 256, (720, 1280), dtype=np.uint8)
    assert dec.read(noise) == []
    stripes = np.tile(np.repeat(np.array([0, 255], np.uint8), 3), (720, 214))[:, :1280]
    assert dec.read(stripes) == []


def test_image_files_and_unreadable_files(tmp_path: Path) -> None:
    text = payload(np.random.default_rng(4), "hc1")
    tiny = (1 - qr_modules(text, "Q")) * 255  # 1 px per module, no quiet zone
    p = tmp_path / "tiny.png"
    cv2.imwrite(str(p), tiny.astype(np.uint8))
    assert [r.text for r in decode_image_file(str(p))] == [text]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image_file(str(bad))


def test_symbols_and_base45() -> None:
    assert base45(b"AB") == "BB8" and base45(b"Hello!!") == "%69 VD92EX0"
    rng = np.random.default_rng(5)
    for kind, lo, hi in (("hp1", 204, 264), ("hc1", 354, 604), ("sr1", 204, 244)):
        t = payload(rng, kind)
        assert t.startswith(kind.upper() + ":") and lo - 4 <= len(t) <= hi
    assert payload(rng, "tube").isdigit() and payload(rng, "box").startswith("BOX")
    # the string python-barcode gets wrong: zxing's writer, checked by decoding back
    assert code128_modules("0099887766").size > 0


def test_corpus_is_deterministic_and_truthful(tmp_path: Path) -> None:
    a = make_corpus(11, tmp_path / "a", stills=14, clips=2, workers=1)
    b = make_corpus(11, tmp_path / "b", stills=14, clips=2, workers=1)
    assert a["stills"] == b["stills"] and a["clips"] == b["clips"]
    for s in a["stills"]:
        assert (tmp_path / "a" / s["file"]).read_bytes() == (
            tmp_path / "b" / s["file"]
        ).read_bytes()
        img = cv2.imread(str(tmp_path / "a" / s["file"]))
        assert img.shape == (720, 1280, 3)
        assert (s["category"] == "empty") == (s["codes"] == [])
    clip = a["clips"][0]
    assert len(clip["frames"]) == 10 and clip["full_index"] is not None
    # whatever the decoder reads on these frames is what the manifest says
    dec = StationDecoder(track=False, budget_ms=1000)
    for s in a["stills"]:
        got = {r.text for r in dec.read(cv2.imread(str(tmp_path / "a" / s["file"])))}
        assert got <= {c["text"] for c in s["codes"]}


def test_scan_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from checkpost.cli import main

    text = payload(np.random.default_rng(6), "hp1")
    cv2.imwrite(str(tmp_path / "a.png"), _frame(qr_modules(text)))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((50, 50, 3), 255, np.uint8))
    rc = main(["scan", "--json", "--station", "checkpoint", str(tmp_path)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 1  # one image had no code
    assert lines[0]["file"].endswith("a.png") and lines[0]["codes"][0]["text"] == text
    assert set(lines[0]["codes"][0]) == {"text", "format", "corners"} and lines[0]["ms"] > 0
    assert lines[1]["codes"] == []


def test_bench_runs_on_a_tiny_corpus_and_ends_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from checkpost.cli import main

    make_corpus(3, tmp_path, stills=12, clips=2, workers=1)
    assert main(["bench", "decode", "--corpus", str(tmp_path)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last["pipelines"]) == {"station", "zxing", "zbar"}
    st = last["pipelines"]["station"]["overall"]
    assert st["frames"] == 12 and st["wrong"] == 0 and math.isfinite(st["median_ms"])
    assert "clips_within_3>=95%" in last["goals"]


def test_read_is_a_plain_value() -> None:
    r = Read("x", "QR")
    assert r.source == "camera" and r.corners == () and r.ms == 0.0
