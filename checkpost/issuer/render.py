"""Printable images of codes: QR for passes and registrations, Code 128 + QR labels for tubes
and boxes (the sampler's camera or hand scanner reads whichever is easier on a curved tube).

Code 128 is drawn with zxing-cpp's writer and every label is decoded back before it is
written: python-barcode mis-encodes some strings containing "99" (MEASURED.md), and a label
that does not read is worse than none.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


class RenderError(RuntimeError):
    """A rendered code did not decode back to its text."""


def qr_image(text: str, *, box_size: int = 6, border: int = 4) -> Image.Image:
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    qr.add_data(text)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("L")


def code128_image(text: str, *, scale: int = 3, height: int = 90) -> Image.Image:
    import numpy as np
    import zxingcpp

    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    strip = Image.fromarray(np.array(barcode.to_image(scale=scale, add_quiet_zones=True)))
    return strip.resize((strip.width, height), Image.Resampling.NEAREST)


def _check(image: Image.Image, text: str) -> None:
    import numpy as np
    import zxingcpp

    found = {r.text for r in zxingcpp.read_barcodes(np.array(image.convert("L")))}
    if text not in found:
        raise RenderError(f"rendered code does not read back as {text!r} (read {sorted(found)})")


def save_qr(text: str, path: str | Path, *, caption: str | None = None) -> Path:
    img = qr_image(text)
    if caption:
        canvas = Image.new("L", (img.width, img.height + 24), 255)
        canvas.paste(img, (0, 0))
        ImageDraw.Draw(canvas).text((12, img.height), caption[:60], fill=0)
        img = canvas
    _check(img, text)
    path = Path(path)
    img.save(path)
    return path


def save_label(code: str, path: str | Path) -> Path:
    """A tube or box label: Code 128 strip, a small QR and the human-readable code."""
    strip = code128_image(code)
    qr = qr_image(code, box_size=4, border=2)
    width = strip.width + qr.width + 20
    height = max(strip.height + 28, qr.height) + 10
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(strip, (5, 5))
    canvas.paste(qr, (strip.width + 15, 5))
    ImageDraw.Draw(canvas).text((12, strip.height + 10), code, fill=0)
    _check(canvas, code)
    path = Path(path)
    canvas.save(path)
    return path
