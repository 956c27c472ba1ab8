"""Payloads and clean symbols (QR module matrices, Code 128 bar rows) for the corpus.

Payloads imitate what a station really sees, because QR version and module size follow
from the length: `HP1:`/`SR1:`/`HC1:` + Base45 text of the real lengths (random bytes: the
decoder never checks signatures), tube codes of 10-14 digits, box codes `BOX` + 6-10 digits.

Symbols are made with zxing-cpp's writer (python-barcode mis-encodes some Code 128 strings
containing "99", see shared/MEASURED.md) and every one is decoded back before use, so a
miss in the benchmark is the decoder's fault, never the generator's.
"""

from __future__ import annotations

import numpy as np

_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45(data: bytes) -> str:
    """RFC 9285 Base45, kept here so the corpus does not depend on the core's codec."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        c, n = n % 45, n // 45
        d, e = n % 45, n // 45
        out += [_B45[c], _B45[d], _B45[e]]
    if len(data) % 2:
        n = data[-1]
        out += [_B45[n % 45], _B45[n // 45]]
    return "".join(out)


def _b45_of_length(rng: np.random.Generator, lo: int, hi: int) -> str:
    chars = int(rng.integers(lo, hi + 1))
    nbytes = max(2, (chars * 2) // 3)
    return base45(rng.bytes(nbytes))


def payload(rng: np.random.Generator, kind: str) -> str:
    """A realistic payload of the given kind: hp1, hc1, sr1, tube, box."""
    if kind == "hp1":
        return "HP1:" + _b45_of_length(rng, 200, 260)
    if kind == "hc1":
        return "HC1:" + _b45_of_length(rng, 350, 600)
    if kind == "sr1":
        return "SR1:" + _b45_of_length(rng, 200, 240)
    if kind == "tube":
        n = int(rng.integers(10, 15))
        return "".join(str(int(d)) for d in rng.integers(0, 10, n))
    if kind == "box":
        n = int(rng.integers(6, 11))
        return "BOX" + "".join(str(int(d)) for d in rng.integers(0, 10, n))
    raise ValueError(f"unknown payload kind {kind!r}")


def qr_modules(text: str, ec_level: str = "M") -> np.ndarray:
    """QR module matrix (1 = dark), without quiet zone, checked by decoding it back."""
    import zxingcpp

    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ec_level)
    img = np.asarray(zxingcpp.write_barcode_to_image(code, scale=1, add_quiet_zones=False))
    dark = (img < 128).astype(np.uint8)
    check = np.pad(255 - dark * 255, 4, constant_values=255).astype(np.uint8)
    check = np.kron(check, np.ones((3, 3), np.uint8))
    got = zxingcpp.read_barcodes(check, formats=(zxingcpp.BarcodeFormat.QRCode,))
    if [r.text for r in got] != [text]:
        raise RuntimeError(f"generated QR does not decode back to {text!r}")
    return dark


def code128_modules(text: str) -> np.ndarray:
    """Code 128 bar row (1 = bar, one entry per module), checked by decoding it back."""
    import zxingcpp

    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    img = np.asarray(zxingcpp.write_barcode_to_image(code, scale=1, add_quiet_zones=False))
    row = (img[img.shape[0] // 2] < 128).astype(np.uint8)
    check = np.pad(255 - row * 255, 12, constant_values=255).astype(np.uint8)
    check = np.repeat(np.repeat(check[None, :], 40, axis=0), 2, axis=1)
    got = zxingcpp.read_barcodes(check, formats=(zxingcpp.BarcodeFormat.Code128,))
    if [r.text for r in got] != [text]:
        raise RuntimeError(f"generated Code 128 does not decode back to {text!r}")
    return row
