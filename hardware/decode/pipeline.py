"""The station decoder: what a station expects (QR, Code 128) from each camera frame.

Stages, cheapest first, stopping at the first that reads something (measured costs on one
core of the 2-vCPU dev machine; a Pi 4 core is ~3-5x slower):

1. **Tracked regions** (``track=True``): where a code was read in the last three frames,
   zxing-cpp on a full-resolution crop (0.3-1.5 ms): a phone held up is read again from a
   small crop. Where a code was only *seen*, nothing is spent here: the locator finds it
   again, and its fallback ladder *resumes* at the step where the last frame's budget
   ran out, so a code held in view gets every fallback within a few frames instead of
   the first few fallbacks on every frame (``_ladder``, ``_resume``).
2. **zxing-cpp at half size, QR Model 2 only** (~0.5 ms), with ``return_errors`` so that a
   QR whose finder patterns were found but whose data failed still says *where* it is.
   ``BarcodeFormat.QRCode`` is a family in zxing-cpp 3 (Micro QR, rMQR): the station asks
   for Model 2 only. Code 128 is not scanned on the whole frame: tube modules vanish at
   half size, a full-frame 1-D scan costs ~3 ms, and it cannot read codes turned > 20°.
3. **Locator** (~1 ms): the gradient structure tensor of every other pixel, in 8x8-pixel
   cells. Codes are dense, high-contrast texture; bars have one gradient direction
   (coherence near 1), QR modules two. The strongest blobs become candidates, each with
   the bars' direction when it has one. Those blobs merge a phone's QR with its text and
   a label's bars with the clutter they touch, so two finer cuts come first: **QR blobs**
   (textured cells >= 3 cells thick whose gradients, pooled over 3x3 cells, have no one
   direction: the QR's own outline; when such a block merged with the texture beside
   it, its largest solid square) and **bar blobs** (textured cells whose pooled
   gradients share one direction: the bars alone, with their box).
4. **Cheap looks at each candidate**: a QR blob's crop and its upscaled, sharpened crop
   (a blob of a phone's QR size gets its whole ladder here, before anything else); for
   bars, the box is fitted to the bar edges at full resolution, turned upright, upscaled
   to >= 2 px per module and decoded as a strip (this is what reads tubes held at any
   angle), and for a bar blob also the profile averaged along the bars; a crop for the
   other blobs.
5. **Fallbacks, only on candidates, only within the budget**: for QR the crop upscaled
   and sharpened (small modules, soft focus: zxing samples one pixel per module, which
   at 2 px per module is as often the neighbour's), deblurred (defocus: a Wiener
   deconvolution of the blur measured on the crop), denoised within the modules and
   sharpened (low light), the darkest colour channel (tinted health codes), deblurred
   less damped and wider, an adaptive threshold handed over as a binary image (glare,
   moire), upscaled and smoothed (low-light noise), sharpened, pyzbar, a global
   binarizer (glare), pyzbar inverted (zxing tries inverted codes itself). A large
   crop's fallbacks work on it reduced to 400 px (its modules are big) so that several
   fit in the budget; zxing checks the QR's error correction whatever image it is
   handed, so no fallback can turn clutter into text; for
   bars a profile averaged along the bars and sharpened, upper/middle/lower bands (a
   finger across the code, the flat middle of a tube), pyzbar, OpenCV's barcode
   *detector* as a second opinion on the box (never its decoder, which cannot read
   Code 128 and invents EAN strings).

The budget (``budget_ms``) is this thread's CPU time, so a busy machine changes how long a
frame takes, not what is read; each fallback's cost per pixel is learnt as it runs and a
step that would overrun the budget is not started. Empty frames cost the cheap stages
plus whatever the budget allows on clutter the locator found.

Every read must pass the format's acceptance pattern (a station reading tubes accepts
digits or ``BOX`` + digits in Code 128; QR text must be printable ASCII), so a mis-read of
clutter cannot reach a workflow. Debounce is separate from decoding: ``decode()`` drops a
text seen within ``debounce_s``; ``read()`` returns everything in the frame.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

QR = "QR"
CODE128 = "Code128"

# CPU ms of fallbacks per frame: what a station runs (`[camera] decode_budget_ms`) and what
# `checkpost bench decode` measures by default. On seeds 5150, 8675309 and 777001 (never
# tuned on) 12 ms read 88.4 % of QR against 87.6 % at 10 ms, p95 12.0-12.4 ms per frame.
DEFAULT_BUDGET_MS = 12.0

# What a station accepts per format. Code 128 on tubes and boxes carries digits (a tube)
# or BOX + digits; allowing any text would let a partial read of a label's printed digits
# or a shipping label reach the sampling workflow.
DEFAULT_ACCEPT: dict[str, str] = {
    QR: r"[\x20-\x7e]{4,4096}",
    CODE128: r"\d{8,20}|BOX\d{4,12}|[A-Z0-9]{2,6}[-:]?\d{6,16}",
}


@dataclass(frozen=True, slots=True)
class Read:
    """One code read: its text, format ("QR" | "Code128"), corners in frame pixels
    (top-left, top-right, bottom-right, bottom-left; empty for hand-held scanners), the
    milliseconds the frame took to decode, the stage that read it and where it came from."""

    text: str
    format: str
    corners: tuple[tuple[float, float], ...] = ()
    ms: float = 0.0
    stage: str = ""
    source: str = "camera"

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "format": self.format,
            "corners": [[round(x, 1), round(y, 1)] for x, y in self.corners],
        }


@dataclass
class _Region:
    """A place in the frame worth a full-resolution look: a read, or a code seen but not read."""

    x0: int
    y0: int
    x1: int
    y1: int
    kind: str  # QR or CODE128 or "1d-box"
    age: int = 0
    box: np.ndarray | None = None  # rotated box (4x2) for 1-D candidates
    coherence: float = 0.0
    codelike: bool = True  # worth the expensive fallbacks (see _locate)
    qr_blob: bool = False  # a solid, square-ish block of 2-D texture: a QR's own outline
    cut: bool = False  # a QR blob cut out of a larger blob (see _solid_square): less sure
    read: bool = False  # tracked because it was read (not merely seen)
    bar_blob: bool = False  # cut out of a blob by its bars' direction (see _bar_blobs)
    resume: int = 0  # fallback ladder step where the last frame's budget ran out
    done: bool = False  # its whole ladder already ran this frame
    # this frame's upright strip of a 1-D box: (fitted box, strip, homography), made once
    # for the cheap look and the fallbacks (see _read_1d_box)
    strip: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass
class Debouncer:
    """The same text within ``window_s`` of its last sighting is the same read."""

    window_s: float = 2.0
    _seen: dict[str, float] = field(default_factory=dict)

    def fresh(self, text: str, now: float) -> bool:
        last = self._seen.get(text)
        self._seen[text] = now
        if len(self._seen) > 256:
            cutoff = now - self.window_s
            self._seen = {t: s for t, s in self._seen.items() if s >= cutoff}
        return last is None or now - last > self.window_s


class StationDecoder:
    """Decode QR and Code 128 from camera frames within a per-frame time budget.

    ``station="checkpoint"`` looks for QR only (phones, printed passes) and skips the 1-D
    locator; ``"sampling"`` also reads Code 128 on tubes and box labels. ``budget_ms`` caps
    the time spent on fallbacks in one frame (the cheap stages always run). ``track``
    keeps regions across frames: pass ``track=False`` (or call :meth:`reset`) for unrelated
    images.
    """

    def __init__(
        self,
        station: str = "sampling",
        budget_ms: float = DEFAULT_BUDGET_MS,
        debounce_s: float = 2.0,
        track: bool = True,
        accept: dict[str, str] | None = None,
        use_zbar: bool = True,
        max_candidates: int = 3,
    ) -> None:
        import cv2
        import zxingcpp

        if station not in ("checkpoint", "sampling"):
            raise ValueError(f"station must be 'checkpoint' or 'sampling', not {station!r}")
        self.station = station
        self.budget_ms = budget_ms
        self.track = track
        self.debouncer = Debouncer(debounce_s)
        self._cv2 = cv2
        self._zx = zxingcpp
        fmt = zxingcpp.BarcodeFormat
        # QRCode in zxing-cpp 3 is a family (Micro QR, rMQR too): the station wants Model 2.
        qr = fmt.QRCodeModel2
        self._formats = (qr,) if station == "checkpoint" else (qr, fmt.Code128)
        self._fmt_1d = (fmt.Code128,)
        self._fmt_qr = (qr,)
        pats = dict(DEFAULT_ACCEPT, **(accept or {}))
        self._accept = {k: re.compile(v) for k, v in pats.items()}
        self._regions: list[_Region] = []
        self._cost: dict[str, float] = {}  # learnt seconds per fallback step
        self.max_candidates = max_candidates
        # Locator thresholds (tuned on corpus seed 1): mean squared Sobel gradient per 8x8
        # cell, relative to the frame's median so a dark frame still finds its code.
        self.energy_floor = 1500.0
        self.energy_factor = 6.0
        self.coherence_1d = 0.2  # above: also try an upright strip
        self.coherence_bars = 0.45  # above: try the strip before the QR crop
        self.min_fill = 0.45  # share of a blob's box that is textured, to earn fallbacks
        self.max_aspect = 3.0
        self.max_strip_area = 300_000  # px: see read()
        self.coherence_bar_blob = 0.65  # pooled over 3x3 cells: above, bars (_bar_blobs)
        self.sure_qr_px = 96  # a QR blob this size is read before the other candidates
        self.coherence_qr = 0.5  # pooled over 3x3 cells: below, a QR blob (see _qr_blobs)
        self._bd = cv2.barcode.BarcodeDetector() if station == "sampling" else None
        self._zbar: Callable[..., Any] | None = None
        self._zbar_syms: list[Any] = []
        if use_zbar:
            try:
                from pyzbar import pyzbar

                self._zbar = pyzbar.decode
                self._zbar_syms = [pyzbar.ZBarSymbol.QRCODE]
                if station == "sampling":
                    self._zbar_syms.append(pyzbar.ZBarSymbol.CODE128)
            except (ImportError, OSError):  # libzbar missing: zxing stages still run
                self._zbar = None

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget tracked regions and debounce history (a new scene or a new clip)."""
        self._regions.clear()
        self.debouncer._seen.clear()

    def decode(self, frame: np.ndarray, now: float | None = None) -> list[Read]:
        """Reads in ``frame`` that are new within the debounce window."""
        now = time.monotonic() if now is None else now
        return [r for r in self.read(frame) if self.debouncer.fresh(r.text, now)]

    def read(self, frame: np.ndarray) -> list[Read]:
        """Every accepted code in ``frame`` (no debounce); updates the tracked regions."""
        t0 = time.perf_counter()
        c0 = _now()
        gray, color = self._split(frame)
        found: dict[str, tuple[str, tuple, str]] = {}
        candidates: list[_Region] = []
        deadline = c0 + self.budget_ms / 1000.0

        # 1. tracked regions at full resolution: where a code was read, one look at a crop
        #    (a phone held up is read again from a small crop). Where a code was seen but
        #    not read, nothing here: the locator finds it again below, and its fallback
        #    ladder resumes where the last frame's budget stopped it (see _resume).
        if self.track and self._regions:
            for reg in self._regions:
                if found or _now() > deadline:
                    break
                if reg.read or (
                    reg.kind == QR
                    and not reg.qr_blob
                    and (reg.x1 - reg.x0) * (reg.y1 - reg.y0) <= self.max_strip_area
                ):
                    self._read_region(gray, color, reg, found, deadline, cheap=True)
        # 2. zxing at half size, QR only: 0.4 ms, reads most phones. Code 128 is not tried
        #    on the whole frame: tube modules vanish at half size and a whole-frame 1-D
        #    scan costs 3 ms; the locator below finds bars at any angle for less.
        half = None
        if not found:
            half = self._cv2.resize(
                gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=self._cv2.INTER_AREA
            )
            self._zxing(
                half, 2.0, self._fmt_qr, found, candidates, "zxing-half", try_downscale=False
            )
        # 3. locate code-like regions, decode each at full resolution, then the fallbacks
        if not found:
            assert half is not None
            # the locator looks at every other pixel (not an average): aliased fine bars keep
            # their gradient energy, averaged ones lose it
            found_blobs, texture = self._texture(np.ascontiguousarray(gray[::2, ::2]))
            candidates.extend(found_blobs)
            merged = _merge(candidates)
            blobs = [c for c in merged if c.qr_blob]
            bars = [c for c in merged if c.bar_blob]
            if self.track:
                self._resume(blobs + bars)
            # A QR blob is the code's own outline (square, two gradient directions, no
            # text or stripes): its crop and its most productive fallback (upscaled and
            # sharpened) come before the looks at the looser candidates.
            # A blob of at least a phone's QR size (>= 96 px a side: HP1/HC1 codes have
            # >= 57 modules of >= 2 px; clutter that passes for a QR blob is smaller)
            # gets its whole ladder here; a smaller one (a tube's QR, or clutter) only the
            # two steps, so that the bars of a tube are not kept waiting. So does a square
            # cut out of a larger blob (see _qr_blobs): the two steps read most of those
            # (moire on a phone's screen), and its whole ladder here cost 0.1-0.3 ms in
            # the median frame of seeds 20261123, 424242 and 31337 for 1-2 more reads.
            for reg in blobs:
                if found or _now() > deadline:
                    break
                sure = min(reg.x1 - reg.x0, reg.y1 - reg.y0) >= self.sure_qr_px and not reg.cut
                self._read_region(
                    gray, color, reg, found, deadline, cheap=False, upto=None if sure else 2
                )
                reg.done = sure
            # Then the first look at each bar blob, the likeliest Code 128.
            self._first_looks(gray, bars, found, deadline, second=False)
            candidates = blobs + bars
            if not found:
                # Only now the texture's other blobs (~0.4 ms: labelling, scoring, boxes):
                # most tube and label frames read on their bar blob's first look and never
                # need them. They come after the blobs as they always did, so the order of
                # the looks is unchanged.
                merged = _merge([*merged, *self._texture_candidates(*texture)])
                located = [c for c in merged if not (c.qr_blob or c.bar_blob)]
                located = located[: self.max_candidates]
                if self.track:
                    self._resume(located)
                self._first_looks(gray, located, found, deadline, second=False)
                others = bars + located
                self._first_looks(gray, others, found, deadline, second=True)
                candidates = blobs + others
        if not found:
            for reg in candidates:
                if _now() > deadline:
                    break
                if reg.done or not (reg.codelike or reg.kind == "1d-box"):
                    continue
                self._read_region(
                    gray, color, reg, found, deadline, cheap=False, skip=2 if reg.qr_blob else 0
                )
                if found:
                    break
        ms = (time.perf_counter() - t0) * 1000.0
        reads = [
            Read(text, fmt, corners, ms, stage) for text, (fmt, corners, stage) in found.items()
        ]
        if self.track:
            self._update_regions(reads, candidates, gray.shape)
        return reads

    def _first_looks(
        self, gray: np.ndarray, regs: list[_Region], found: dict, deadline: float, second: bool
    ) -> None:
        """The cheap looks at ``regs`` in order (see _read_candidate), while in budget."""
        for reg in regs:
            if found or _now() > deadline:
                return
            # the second look (a strip across a blob the blur made isotropic) is not spent
            # on a frame-sized blob of clutter, where it costs 5-8 ms
            big = (reg.x1 - reg.x0) * (reg.y1 - reg.y0) > self.max_strip_area
            if second and big and not reg.codelike:
                continue
            self._read_candidate(gray, reg, found, deadline, second)

    def _locate(self, half: np.ndarray) -> list[_Region]:
        """Code-like regions from the local gradient structure tensor of the half-size frame.

        Codes are dense, high-contrast texture: high gradient energy. Bars have one gradient
        direction (coherence near 1), QR modules two. Each connected blob of high energy
        becomes a candidate (its rotated box in full-frame pixels), strongest first; the
        1-D ones are refined by OpenCV's barcode detector when it agrees. Costs ~1 ms.
        read() makes the same list in two parts (_texture, then _texture_candidates).
        """
        blobs, texture = self._texture(half)
        return blobs + self._texture_candidates(*texture)

    def _texture(
        self, half: np.ndarray
    ) -> tuple[list[_Region], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The texture map of the half-size frame (gradient structure tensor in 8x8-pixel
        cells, and the mask of its code-like energy) and its QR and bar blobs (see
        _qr_blobs); the map goes on to _texture_candidates if the blobs were not enough."""
        cv2 = self._cv2
        gx = cv2.Sobel(half, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(half, cv2.CV_32F, 0, 1, ksize=3)
        size = (half.shape[1] // 4, half.shape[0] // 4)
        jxx = cv2.resize(cv2.multiply(gx, gx), size, interpolation=cv2.INTER_AREA)
        jyy = cv2.resize(cv2.multiply(gy, gy), size, interpolation=cv2.INTER_AREA)
        jxy = cv2.resize(cv2.multiply(gx, gy), size, interpolation=cv2.INTER_AREA)
        energy = jxx + jyy
        thr = max(self.energy_floor, self.energy_factor * float(np.median(energy[::2, ::2])))
        mask = (energy > thr).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        return self._qr_blobs(mask, jxx, jyy, jxy), (mask, energy, jxx, jyy, jxy)

    def _texture_candidates(
        self,
        mask: np.ndarray,
        energy: np.ndarray,
        jxx: np.ndarray,
        jyy: np.ndarray,
        jxy: np.ndarray,
    ) -> list[_Region]:
        """The strongest blobs of the texture mask as candidates, each with the bars'
        direction when it has one (see _locate)."""
        cv2 = self._cv2
        out: list[_Region] = []
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return []
        areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        esum = np.bincount(labels.ravel(), weights=energy.ravel(), minlength=n)[1:]
        score = esum / np.maximum(areas, 1) * np.minimum(areas, 150.0)
        score[areas < 4] = -1
        for i in np.argsort(-score)[: self.max_candidates]:
            if score[i] < 0:
                break
            x, y, w, h = (int(v) for v in stats[i + 1, :4])
            cell = labels[y : y + h, x : x + w] == i + 1
            e = energy[y : y + h, x : x + w]
            # orientation from the blob's strongest half: bars, not the label's edges or text
            strong = cell & (e >= e[cell].mean())
            sxx = float(jxx[y : y + h, x : x + w][strong].sum())
            syy = float(jyy[y : y + h, x : x + w][strong].sum())
            sxy = float(jxy[y : y + h, x : x + w][strong].sum())
            coh = float(np.sqrt((sxx - syy) ** 2 + 4 * sxy * sxy) / (sxx + syy + 1e-3))
            rows, cols = np.nonzero(cell)
            pts = np.c_[cols + x, rows + y].astype(np.float32) * 8 + 4
            reg = _Region(x * 8, y * 8, (x + w) * 8, (y + h) * 8, QR)
            reg.coherence = coh
            # a code fills its box with texture; clutter (text lines, the edges of shapes)
            # is elongated or hollow: only code-like blobs earn the expensive fallbacks
            fill = float(cell.sum()) / max(1, w * h)
            reg.codelike = fill >= self.min_fill and max(w, h) <= self.max_aspect * min(w, h)
            if self.station == "sampling" and coh > self.coherence_1d:
                # bars' gradients point along the code: that is the strip's direction
                reg.box = _oriented_box(pts, 0.5 * float(np.arctan2(2 * sxy, sxx - syy)))
                if coh > self.coherence_bars:
                    reg.kind = "1d-box"
            out.append(reg)
        return out

    def _qr_blobs(
        self, mask: np.ndarray, jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray
    ) -> list[_Region]:
        """QR codes as the locator sees them: solid blocks of textured cells at least three
        cells (48 px) thick whose gradients, pooled over 3x3 cells, have no one direction.

        The blobs of the energy mask merge a phone's QR with its text, a label's bars with
        the clutter behind them; opening the mask with a 3x3-cell square removes lines of
        text, stripes and edges (all thinner than a QR of >= 21 modules at >= 2 px), and
        the pooled coherence separates QR modules (two directions) from bars. The blob's
        box is then the code's own outline: a tight crop that the expensive fallbacks
        (upscaling, sharpening) can afford. Measured on corpus seed 7: a candidate covering
        >= 80 % of the code and < 3x its area in 95 % of QR frames.
        """
        cv2 = self._cv2
        k = np.full((3, 3), 1 / 9, np.float32)
        sxx, syy, sxy = (cv2.filter2D(a, -1, k) for a in (jxx, jyy, jxy))
        coh = np.sqrt((sxx - syy) ** 2 + 4 * sxy * sxy) / (sxx + syy + 1e-3)
        m = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        m &= (coh < self.coherence_qr).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        blobs = []
        for i in range(1, n):
            x, y, w, h, a = (int(v) for v in stats[i])
            # >= 5 cells (40 px) a side: the smallest QR a station reads (21 modules at 2 px)
            if min(w, h) < 5:
                continue
            sq = None
            if a < 0.4 * w * h or max(w, h) > 1.6 * min(w, h):
                # a phone's QR merged with the texture beside it (its text, the moire on
                # its screen): the largest solid square inside the blob is the code. Only
                # a phone's size (>= 96 px): smaller squares cut out of blobs are mostly
                # a label's text and bars (seeds 20261123 and 424242: 173 of 295 squares
                # under 96 px were on Code 128 frames, costing their bars' budget).
                side = self.sure_qr_px // 8
                if min(w, h) < side or a < side * side:
                    continue  # no room for such a square: not worth a distance transform
                sq = _solid_square(cv2, labels[y : y + h, x : x + w] == i, side)
                if sq is None:
                    continue
                sx, sy, w, h = sq
                x, y = x + sx, y + sy
                a = w * h
            blobs.append((a, x, y, w, h, sq is not None))
        out = []
        for _, x, y, w, h, cut in sorted(blobs, reverse=True)[:2]:
            reg = _Region(x * 8, y * 8, (x + w) * 8, (y + h) * 8, QR)
            reg.qr_blob = True
            reg.cut = cut
            out.append(reg)
        if self.station == "sampling":
            out.extend(self._bar_blobs(mask, coh, sxx, syy, sxy))
        return out

    def _bar_blobs(
        self,
        mask: np.ndarray,
        coh: np.ndarray,
        sxx: np.ndarray,
        syy: np.ndarray,
        sxy: np.ndarray,
    ) -> list[_Region]:
        """Bars as their own blobs: textured cells whose pooled gradients share one
        direction. A label on a cluttered table merges with the clutter into one blob of
        no particular direction, which the locator's boxes cannot turn upright; cut out by
        direction, the bars get a box of their own."""
        cv2 = self._cv2
        m = mask & (coh > self.coherence_bar_blob).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] if n > 1 else []
        out = []
        for i in order:
            x, y, w, h, a = (int(v) for v in stats[i + 1])
            if a < 6:
                break
            cell = labels[y : y + h, x : x + w] == i + 1
            bxx = float(sxx[y : y + h, x : x + w][cell].sum())
            byy = float(syy[y : y + h, x : x + w][cell].sum())
            bxy = float(sxy[y : y + h, x : x + w][cell].sum())
            rows, cols = np.nonzero(cell)
            pts = np.c_[cols + x, rows + y].astype(np.float32) * 8 + 4
            reg = _Region(x * 8, y * 8, (x + w) * 8, (y + h) * 8, "1d-box")
            reg.box = _oriented_box(pts, 0.5 * float(np.arctan2(2 * bxy, bxx - byy)))
            reg.coherence = float(coh[y : y + h, x : x + w][cell].mean())
            reg.bar_blob = True
            out.append(reg)
        return out

    def _read_candidate(
        self, gray: np.ndarray, reg: _Region, found: dict, deadline: float, second: bool
    ) -> None:
        """The cheap looks at a candidate. First pass: the likelier reading (an upright strip
        for bars, a full-resolution crop for anything else); second pass: an upright strip
        for blobs whose bars the blur made look less directional."""
        strip = reg.box is not None and (second != (reg.kind == "1d-box"))
        if second and not strip:
            return
        if strip:
            assert reg.box is not None
            self._read_1d_box(gray, reg.box, found, deadline, first_only=True, reg=reg)
            return
        h, w = gray.shape
        bw, bh = reg.x1 - reg.x0, reg.y1 - reg.y0
        m = int(0.15 * max(bw, bh)) + 12
        x0, y0 = max(0, reg.x0 - m), max(0, reg.y0 - m)
        x1, y1 = min(w, reg.x1 + m), min(h, reg.y1 + m)
        # Code 128 is looked for in upright strips; here only QR (a 1-D scan of the crop at
        # every angle would cost more than the rest of the frame).
        if x1 - x0 >= 16 and y1 - y0 >= 16:
            self._zxing(
                gray[y0:y1, x0:x1],
                1.0,
                self._fmt_qr,
                found,
                None,
                "crop",
                offset=(float(x0), float(y0)),
                try_downscale=False,
            )

    # ------------------------------------------------------------------ stages

    def _split(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if frame.ndim == 2:
            return frame, None
        if frame.shape[2] == 4:
            frame = frame[..., :3]
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY), frame

    def _accept_read(self, text: str, fmt: str) -> bool:
        pat = self._accept.get(fmt)
        return bool(text) and pat is not None and pat.fullmatch(text) is not None

    def _zxing(
        self,
        img: np.ndarray,
        scale: float,
        formats: tuple,
        found: dict,
        candidates: list[_Region] | None,
        stage: str,
        *,
        offset: tuple[float, float] = (0, 0),
        try_downscale: bool = True,
        binarizer: Any = None,
        to_frame: Any = None,
        upright: bool = False,
    ) -> None:
        """zxing-cpp on ``img``; accepted reads go to ``found``, and with ``candidates``
        the QR it saw but could not read. ``upright``: ``img`` is a strip whose bars are
        vertical by construction (see _read_1d_box), so zxing's second 1-D scan of the
        image turned by 90 degrees is skipped: it halves the cost of every strip look
        (0.38 -> 0.19 ms on a read tube strip, 0.98 -> 0.34 ms on one that fails) and can
        only find bars across the strip, which the strip's box says are not there."""
        kw: dict[str, Any] = {
            "formats": formats,
            "try_downscale": try_downscale,
            "try_rotate": not upright,
            "return_errors": candidates is not None,
        }
        if binarizer is not None:
            kw["binarizer"] = binarizer
        for r in self._zx.read_barcodes(img, **kw):
            fmt = CODE128 if r.format == self._zx.BarcodeFormat.Code128 else QR
            p = r.position
            pts = np.array(
                [
                    [p.top_left.x, p.top_left.y],
                    [p.top_right.x, p.top_right.y],
                    [p.bottom_right.x, p.bottom_right.y],
                    [p.bottom_left.x, p.bottom_left.y],
                ],
                np.float32,
            )
            pts = pts * scale + np.array(offset, np.float32) if to_frame is None else to_frame(pts)
            if r.valid and r.text and self._accept_read(r.text, fmt):
                corners = tuple((float(x), float(y)) for x, y in pts)
                found.setdefault(r.text, (fmt, corners, stage))
            elif candidates is not None and not r.valid:
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                candidates.append(_Region(int(x0), int(y0), int(x1), int(y1), fmt))

    def _zbar_read(
        self,
        img: np.ndarray,
        found: dict,
        stage: str,
        offset: tuple[float, float],
        scale: float = 1.0,
        to_frame: Any = None,
    ) -> None:
        if self._zbar is None:
            return
        for r in self._zbar(img, symbols=self._zbar_syms):
            fmt = QR if r.type == "QRCODE" else CODE128
            try:
                text = r.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if not self._accept_read(text, fmt):
                continue
            pts = np.array([[pt.x, pt.y] for pt in r.polygon], np.float32)
            if len(pts) < 4:
                x, y, w, h = r.rect
                pts = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
            pts = pts[:4]
            pts = pts * scale + np.array(offset, np.float32) if to_frame is None else to_frame(pts)
            found.setdefault(text, (fmt, tuple((float(x), float(y)) for x, y in pts), stage))

    def _read_region(
        self,
        gray: np.ndarray,
        color: np.ndarray | None,
        reg: _Region,
        found: dict,
        deadline: float,
        cheap: bool,
        upto: int | None = None,
        skip: int = 0,
    ) -> None:
        """Decode a region: ``cheap`` one look at a crop; otherwise the fallback ladder,
        steps ``skip`` to ``upto`` of it (a QR blob's first two run early, see read())."""
        h, w = gray.shape
        bw, bh = reg.x1 - reg.x0, reg.y1 - reg.y0
        # a QR blob's box is the code's outline to a cell (8 px): a smaller margin keeps
        # the upscaled fallbacks affordable
        m = int((0.1 if reg.qr_blob else 0.2) * max(bw, bh)) + 12
        x0, y0 = max(0, reg.x0 - m), max(0, reg.y0 - m)
        x1, y1 = min(w, reg.x1 + m), min(h, reg.y1 + m)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return
        crop = gray[y0:y1, x0:x1]
        off = (float(x0), float(y0))
        if cheap:
            self._zxing(crop, 1.0, self._formats, found, None, "tracked", offset=off)
            return
        if reg.kind == "1d-box" and reg.box is not None:
            self._read_1d_box(gray, reg.box, found, deadline, reg=reg)
            return
        # a QR seen by zxing is a QR; a locator blob may be bars that the blur made isotropic
        fmts = self._fmt_qr if reg.kind == QR and reg.box is None else self._formats
        colour = None if color is None else color[y0:y1, x0:x1]
        steps, px = self._region_steps(crop, colour, fmts, found, off)
        self._ladder(steps, reg, skip, len(steps) if upto is None else upto, deadline, px, found)

    def _region_steps(
        self,
        crop: np.ndarray,
        colour: np.ndarray | None,
        fmts: tuple,
        found: dict,
        off: tuple[float, float],
    ) -> tuple[list[tuple[str, Callable[[], None]]], dict[str, float]]:
        """The fallback ladder for a 2-D candidate, most productive first, and the pixels
        each step works on (what its learnt cost is per). Each step addresses one
        measured cause of a miss; each image is made only if its step runs (the budget
        usually stops a miss after the first four or five).

        Measured on corpus seeds 20261123 and 424242 (QR misses of the ladder before it,
        read by the step on the locator's own crop, budget aside): ``deblur`` 17 of 91;
        then of the 75 left, ``bilateral`` 9 (low light), ``deblur-wide`` 3 and an
        adaptive threshold 3 (glare, moire) that no other step read."""
        cv2 = self._cv2
        base, k = _working_scale(cv2, crop)
        to_crop = crop.shape[1] / base.shape[1] / k  # working pixels -> crop pixels
        sigma: list[float] = []  # the blur, measured once if a deblur step runs

        def blur() -> float:
            if not sigma:
                sigma.append(_blur_sigma(cv2, base))
            return sigma[0]

        # Steps that rebuild module edges (deconvolution, edge-preserving smoothing, a
        # local threshold) read QR only: a wrong reconstruction fails QR's Reed-Solomon
        # check, but Code 128 has one mod-103 check character, and a deblurred tube label
        # read as 4496535856627 beside the true ...628 (seed 424242, still 415, with a
        # budget large enough to reach the step). Bars have their own ladder.
        rebuilt = self._fmt_qr

        def zx(
            make: Callable[[], np.ndarray],
            stage: str,
            scale: float = to_crop,
            formats: tuple | None = None,
            binarizer: Any = None,
        ) -> Any:
            # no downscaled pass on an image upscaled (or reduced) on purpose: only an image
            # at the crop's own scale gets one
            return stage, lambda: self._zxing(
                make(),
                scale,
                formats or fmts,
                found,
                None,
                stage,
                offset=off,
                try_downscale=scale == 1.0,
                binarizer=binarizer,
            )

        def deblurred(nsr: float, wider: float = 1.0) -> np.ndarray:
            return _up(cv2, _deblur(cv2, base, min(3.0, wider * blur()), nsr), k)

        steps: list[tuple[str, Callable[[], None]]] = [
            zx(lambda: crop, "crop", 1.0),
            # upscaled and sharpened against soft focus: the fallback that recovered the
            # most QR frames on corpus seed 7
            zx(lambda: _sharpen(cv2, _up(cv2, base, k), 1.25 * k, 1.5), "up-sharpen"),
            # defocus beyond what a sharpening kernel undoes: invert the measured blur
            zx(lambda: deblurred(0.03), "deblur", formats=rebuilt),
            # low light: sensor noise smoothed away on either side of the edges, sharpened
            zx(
                lambda: _sharpen(cv2, _up(cv2, _bilateral(cv2, base), k), 1.25 * k, 1.5),
                "bilateral",
                formats=rebuilt,
            ),
        ]
        if colour is not None:
            # a green or red health code on white: the darkest channel has full contrast
            steps.append(zx(lambda: _min_channel(cv2, colour), "min-channel", 1.0))
        steps += [
            # the same inverse with less damping (clean frames), and for a wider blur
            zx(lambda: deblurred(0.01), "deblur-fine", formats=rebuilt),
            zx(lambda: deblurred(0.01, wider=1.3), "deblur-wide", formats=rebuilt),
            # glare and moire: a threshold from each module's neighbourhood, not zxing's
            # 40-px blocks, handed over as an already-binary image
            zx(
                lambda: _adaptive(cv2, _up(cv2, base, k), k),
                "up-adaptive",
                formats=rebuilt,
                binarizer=self._zx.Binarizer.FixedThreshold,
            ),
            # low light: smoothing the upscaled crop averages the noise, keeps the modules
            zx(lambda: cv2.GaussianBlur(_up(cv2, base, k), (0, 0), 0.75 * k), "up-smooth"),
            zx(lambda: _sharpen(cv2, crop), "sharpen", 1.0),
        ]
        if crop.size < 250_000:  # zbar costs ~10-30 ns per pixel: only on small crops
            steps.append(("zbar", lambda: self._zbar_read(crop, found, "zbar", off)))
        steps.append(
            zx(lambda: crop, "global-bin", 1.0, binarizer=self._zx.Binarizer.GlobalHistogram)
        )
        if crop.size < 250_000:
            steps.append(
                ("zbar-inverted", lambda: self._zbar_read(255 - crop, found, "zbar-inverted", off))
            )
        # steps at the crop's own resolution, the others on the working image
        at_crop = {"crop", "min-channel", "sharpen", "zbar", "global-bin", "zbar-inverted"}
        work = float(base.size) * k * k
        return steps, {name: float(crop.size) if name in at_crop else work for name, _ in steps}

    def _read_1d_box(
        self,
        gray: np.ndarray,
        box: np.ndarray,
        found: dict,
        deadline: float,
        first_only: bool = False,
        reg: _Region | None = None,
    ) -> None:
        """Turn a located 1-D box upright and decode the strip (and its central band).
        ``first_only``: only the upright look; otherwise the fallbacks, resumed from
        ``reg`` (see _ladder).

        The upright strip (the bars fitted at full resolution, then warped: 1-2 ms on a
        tube) is made once per region and frame: the cheap look and the fallback ladder
        of the same candidate share it (``reg.strip``), and it is not made at all when
        the first step that would use it no longer fits in the budget (on a frame of
        clutter, a frame-sized box's warp alone cost up to 7 ms for no look at all)."""
        cv2 = self._cv2
        lo = 0 if first_only else (2 if reg is not None and reg.bar_blob else 1)
        hi = (2 if reg is not None and reg.bar_blob else 1) if first_only else len(_STEPS_1D)
        start = reg.resume if reg is not None and not first_only and lo <= reg.resume < hi else lo
        if reg is not None and reg.strip is not None:
            box, strip, hom = reg.strip
        else:
            # box[0] -> box[1] runs along the code (see _oriented_box); the locator's box
            # is coarse (8 px cells), so first fit it to the bars at full resolution
            box = _refine_bars(cv2, gray, box)
            quad, (ow, oh) = _strip_geometry(box)
            if not self._affordable(_STEPS_1D[start], deadline, float(ow * oh)):
                if reg is not None and not first_only:
                    reg.resume = start
                return
            # the box is a rectangle, so the quad is a parallelogram: an affine warp is the
            # same strip (within a grey level) for 10 % less than a perspective one.
            # Bilinear, not bicubic: 0.2 ms less per Code 128 frame's median, and as many
            # tubes and labels read (370 vs 369 on seeds 5150, 777001, 8675309; 131 vs 130
            # on 20261123)
            dst = np.array([[0, 0], [ow, 0], [0, oh]], np.float32)
            aff = cv2.getAffineTransform(quad[[0, 1, 3]], dst)
            strip = cv2.warpAffine(
                gray, aff, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            hom = np.vstack([aff, [0.0, 0.0, 1.0]])
            if reg is not None:
                reg.strip = (box, strip, hom)
        oh = strip.shape[0]
        inv = np.linalg.inv(hom)

        def to_frame(pts: np.ndarray) -> np.ndarray:
            p = np.c_[pts, np.ones(len(pts))] @ inv.T
            return (p[:, :2] / p[:, 2:3]).astype(np.float32)

        def band(lo: float, hi: float, stage: str) -> Callable[[], None]:
            """Scan only part of the bars' height: above or below a finger, or the flat
            middle of a code wrapped along a tube."""
            y0, y1 = int(oh * lo), max(int(oh * lo) + 8, int(oh * hi))

            def band_frame(pts: np.ndarray) -> np.ndarray:
                return to_frame(pts + np.array([0, y0], np.float32))

            return lambda: self._zxing(
                strip[y0:y1],
                1.0,
                self._fmt_1d,
                found,
                None,
                stage,
                to_frame=band_frame,
                try_downscale=False,
                upright=True,
            )

        steps: list[tuple[str, Callable[[], None]]] = [
            (
                "1d-upright",
                lambda: self._zxing(
                    strip,
                    1.0,
                    self._fmt_1d,
                    found,
                    None,
                    "1d-upright",
                    to_frame=to_frame,
                    try_downscale=False,
                    upright=True,
                ),
            ),
            ("1d-profile", lambda: self._profile(strip, found, to_frame)),
            ("1d-band-mid", band(0.33, 0.67, "1d-band-mid")),
            ("1d-band-top", band(0.1, 0.4, "1d-band-top")),
            ("1d-band-bottom", band(0.6, 0.9, "1d-band-bottom")),
            (
                "1d-zbar",
                lambda: self._zbar_read(strip, found, "1d-zbar", (0, 0), to_frame=to_frame),
            ),
            ("1d-cv-detector", lambda: self._cv_detector(gray, box, found)),
            (
                "1d-sharpen",
                lambda: self._zxing(
                    _sharpen(cv2, strip),
                    1.0,
                    self._fmt_1d,
                    found,
                    None,
                    "1d-sharpen",
                    to_frame=to_frame,
                    upright=True,
                ),
            ),
        ]
        assert tuple(name for name, _ in steps) == _STEPS_1D
        # the cheap look does not move the ladder's resume point (see _ladder)
        ladder_reg = None if first_only else reg
        self._ladder(steps, ladder_reg, lo, hi, deadline, float(strip.size), found)

    def _ladder(
        self,
        steps: list[tuple[str, Callable[[], None]]],
        reg: _Region | None,
        lo: int,
        hi: int,
        deadline: float,
        px: float | dict[str, float],
        found: dict,
    ) -> None:
        """Run ``steps[lo:hi]`` while affordable, stopping at the first read.

        ``px`` is the pixels the steps work on, or each step's (by name) when they work
        at different scales. With a tracked region (``reg``), start at the step where the
        last frame's budget ran out and wrap around: a code held in view gets every
        fallback within a few frames instead of the first few fallbacks on every frame."""
        order = list(range(lo, hi))
        if reg is not None and lo <= reg.resume < hi:
            k = order.index(reg.resume)
            order = order[k:] + order[:k]
        for i in order:
            name, step = steps[i]
            if found:
                return
            pixels = px[name] if isinstance(px, dict) else px
            if not self._affordable(name, deadline, pixels):
                if reg is not None:
                    reg.resume = i
                return
            self._timed(name, step, pixels)

    def _affordable(self, name: str, deadline: float, pixels: float) -> bool:
        """Whether step ``name`` on ``pixels`` is expected to finish before the deadline.

        Each step's cost per pixel is learnt on the machine it runs on (a moving average),
        so a Pi, 3-5x slower, simply tries fewer fallbacks per frame instead of overrunning,
        and a large crop is not started when only a small one would fit."""
        return _now() + self._cost.get(name, 2e-8) * pixels <= deadline

    def _timed(self, name: str, step: Callable[[], None], pixels: float) -> None:
        t = _now()
        step()
        per_px = (_now() - t) / max(pixels, 1.0)
        old = self._cost.get(name)
        self._cost[name] = per_px if old is None else 0.8 * old + 0.2 * per_px

    def _profile(self, strip: np.ndarray, found: dict, to_frame: Callable) -> None:
        """Average the strip along the bars (noise and JPEG blocks cancel, bars do not),
        sharpen the 1-D profile against defocus, and decode it as a clean synthetic code."""
        cv2 = self._cv2
        oh = strip.shape[0]
        for lo, hi in ((0.3, 0.7), (0.1, 0.4), (0.6, 0.9)):
            band = strip[int(oh * lo) : max(int(oh * lo) + 2, int(oh * hi))]
            prof = band.astype(np.float32).mean(axis=0)[None, :]
            blur = cv2.GaussianBlur(prof, (0, 0), sigmaX=3)
            sharp = np.clip(prof + 1.5 * (prof - blur), 0, 255).astype(np.uint8)
            img = np.repeat(sharp, 20, axis=0)
            y_mid = float(oh * (lo + hi) / 2)

            def at_band(pts: np.ndarray, y_mid: float = y_mid) -> np.ndarray:
                q = pts.copy()
                q[:, 1] = np.where(q[:, 1] < 10, y_mid - 0.1 * oh, y_mid + 0.1 * oh)
                return to_frame(q)

            self._zxing(
                img,
                1.0,
                self._fmt_1d,
                found,
                None,
                "1d-profile",
                to_frame=at_band,
                try_downscale=False,
                upright=True,
            )
            if found:
                return

    def _cv_detector(self, gray: np.ndarray, box: np.ndarray, found: dict) -> None:
        """Second opinion on a 1-D box from OpenCV's barcode detector (detector only)."""
        if self._bd is None:
            return
        h, w = gray.shape
        x0, y0 = np.maximum(box.min(axis=0).astype(int) - 24, 0)
        x1, y1 = box.max(axis=0).astype(int) + 24
        x1, y1 = min(int(x1), w), min(int(y1), h)
        if x1 - x0 < 24 or y1 - y0 < 24 or (x1 - x0) * (y1 - y0) > 200_000:
            return
        ok, pts = self._bd.detect(gray[y0:y1, x0:x1])
        if not ok or pts is None:
            return
        for b in np.asarray(pts, np.float32).reshape(-1, 4, 2):
            b = b + np.array([x0, y0], np.float32)
            # orient along the longer side; try the other way round too (square boxes)
            e1 = np.linalg.norm(b[1] - b[0])
            e2 = np.linalg.norm(b[2] - b[1])
            first = b if e1 >= e2 else np.roll(b, -1, axis=0)
            for cand in (first, np.roll(first, -1, axis=0)):
                self._read_1d_box(gray, cand, found, float("inf"), first_only=True)
                if found:
                    return

    def _resume(self, candidates: list[_Region]) -> None:
        """Carry each tracked, unread region's ladder position to this frame's candidate
        at the same place (the code moved little between frames)."""
        for c in candidates:
            for old in self._regions:
                if old.read or old.kind != c.kind or old.qr_blob != c.qr_blob:
                    continue
                ix = max(0, min(c.x1, old.x1) - max(c.x0, old.x0))
                iy = max(0, min(c.y1, old.y1) - max(c.y0, old.y0))
                union = (c.x1 - c.x0) * (c.y1 - c.y0) + (old.x1 - old.x0) * (old.y1 - old.y0)
                if ix * iy > 0.4 * (union - ix * iy):
                    c.resume = old.resume
                    break

    def _update_regions(
        self, reads: list[Read], candidates: list[_Region], shape: tuple[int, ...]
    ) -> None:
        keep: list[_Region] = []
        for r in reads:
            pts = np.array(r.corners, np.float32)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            keep.append(_Region(int(x0), int(y0), int(x1), int(y1), r.format, read=True))
        if not reads:
            # Seen, not read: what looked most like a code, so that the next frame spends
            # its budget on the fallbacks this frame could not afford (clutter is found
            # again by the locator anyway).
            keep.extend(c for c in candidates if c.qr_blob or c.codelike or c.kind == "1d-box")
            for old in self._regions:
                old.age += 1
                if old.age <= 3:
                    keep.append(old)
        for reg in keep:
            reg.strip = None  # a strip is this frame's pixels only
        self._regions = _merge(keep)[:4]


# The fallback ladder of a 1-D box, in order (see _read_1d_box).
_STEPS_1D = (
    "1d-upright",
    "1d-profile",
    "1d-band-mid",
    "1d-band-top",
    "1d-band-bottom",
    "1d-zbar",
    "1d-cv-detector",
    "1d-sharpen",
)


def _strip_geometry(box: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The quad around a fitted 1-D box that becomes its upright strip, and the strip's
    size: padded along the code for the quiet zones and a little across it, upscaled to
    >= 500 px along the code (at most 2.5x) so that thin tube modules get >= 2 px.

    Only along the code: along the bars every row says the same, so upscaling that way
    too (as before) doubled the warp and zxing's scan of the strip for no new row. On
    the development seeds the strip at its own height read as many tubes and labels
    (a few moved from the upright look to the averaged profile, which a bar blob's
    first look includes) and saved ~0.3 ms per Code 128 frame."""
    long_side = float(np.linalg.norm(box[1] - box[0]))
    short_side = float(np.linalg.norm(box[3] - box[0]))
    u = (box[1] - box[0]) / max(long_side, 1e-6)
    v = (box[3] - box[0]) / max(short_side, 1e-6)
    pad_u, pad_v = 0.12 * long_side + 6, 0.1 * short_side + 2
    quad = np.array(
        [
            box[0] - u * pad_u - v * pad_v,
            box[1] + u * pad_u - v * pad_v,
            box[2] + u * pad_u + v * pad_v,
            box[3] - u * pad_u + v * pad_v,
        ],
        np.float32,
    )
    sw = long_side + 2 * pad_u
    sh = short_side + 2 * pad_v
    k = max(1.0, min(2.5, 500.0 / max(sw, 1)))
    return quad, (int(sw * k), max(24, int(sh)))


def _now() -> float:
    """The clock of the per-frame budget: this thread's CPU time, so that a busy machine
    (another process on the same core) does not change *what* is read, only how long it
    takes; on a station's dedicated core the two are the same."""
    return time.thread_time()


def _refine_bars(cv2: Any, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Fit an oriented box to the bars inside ``box`` at full resolution.

    The strongest gradients give the bars' direction (structure tensor); pixels whose
    gradient points along it are bar edges, and their extent along and across it is the
    code. Returns ``box`` unchanged when too few bar edges are found.

    It runs on every bar candidate of a Code 128 frame (0.5-1.7 ms, a quarter of a
    typical tube frame), so after the two full-crop gradient images it works on the
    strong pixels only (a fifth of the crop): the direction test and the extents need
    nothing else.
    """
    h, w = gray.shape
    x0, y0 = np.maximum(box.min(axis=0).astype(int) - 8, 0)
    x1, y1 = box.max(axis=0).astype(int) + 8
    x1, y1 = min(int(x1), w), min(int(y1), h)
    if (x1 - x0) * (y1 - y0) < 100 or (x1 - x0) * (y1 - y0) > 250_000:
        return box
    crop = gray[y0:y1, x0:x1]
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.multiply(gx, gx) + cv2.multiply(gy, gy)
    inside = np.zeros(crop.shape, np.uint8)
    cv2.fillConvexPoly(inside, (box - [x0, y0]).astype(np.int32), 1)
    mean = cv2.mean(mag, mask=inside)[0]
    ys, xs = np.nonzero((mag > 1.5 * mean) & inside.view(bool))
    if len(xs) == 0:
        return box
    sx, sy = gx[ys, xs], gy[ys, xs]
    sxx, syy = float(np.dot(sx, sx)), float(np.dot(sy, sy))
    sxy = float(np.dot(sx, sy))
    th = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    u = np.array([np.cos(th), np.sin(th)], np.float32)
    v = np.array([-u[1], u[0]], np.float32)
    along = np.abs(sx * u[0] + sy * u[1])
    across = np.abs(sx * v[0] + sy * v[1])
    keep = along > 2 * across
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 20:
        return box
    step = max(1, len(xs) // 2000)  # extents from a sample: percentiles of 2k points suffice
    pts = np.c_[xs[::step] + x0, ys[::step] + y0].astype(np.float32)
    a, b = np.percentile(pts @ u, [1, 99])
    c, d = np.percentile(pts @ v, [3, 97])
    if b - a < 8 or d - c < 4:
        return box
    return np.array([u * a + v * c, u * b + v * c, u * b + v * d, u * a + v * d], np.float32)


def _solid_square(
    cv2: Any, cells: np.ndarray, min_side: int = 5
) -> tuple[int, int, int, int] | None:
    """The largest solid square of ``cells`` (a blob's boolean cell mask), grown a row or
    column at a time while the added line is at least half inside the blob and the box
    stays square (a rolled QR's corners stick out of its inscribed square on all four
    sides; the texture beside a code is on one side only, so growing towards it soon
    stops); ``(x, y, w, h)`` in cells, or None when it has fewer than ``min_side``."""
    padded = np.pad(cells.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_C, 3)[1:-1, 1:-1]
    r = int(dist.max())
    if r < 3:
        return None
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    box = [int(cx) - r + 1, int(cy) - r + 1, int(cx) + r, int(cy) + r]  # x0 y0 x1 y1

    grown = True
    while grown:
        grown = False
        for side in range(4):  # left, top, right, bottom
            line = _outside_line(cells, box, side)
            bigger = box.copy()
            bigger[side] += -1 if side < 2 else 1
            bw, bh = bigger[2] - bigger[0], bigger[3] - bigger[1]
            square = max(bw, bh) <= max(1.15 * min(bw, bh), min(bw, bh) + 1)
            if line is not None and square and line.mean() >= 0.5:
                box, grown = bigger, True
                break
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < min_side:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _outside_line(cells: np.ndarray, box: list[int], side: int) -> np.ndarray | None:
    """The row or column of ``cells`` just outside ``box`` (x0, y0, x1, y1, half-open) on
    ``side`` (0 left, 1 top, 2 right, 3 bottom); None at the edge of ``cells``."""
    x0, y0, x1, y1 = box
    h, w = cells.shape
    if side == 0:
        return cells[y0:y1, x0 - 1] if x0 > 0 else None
    if side == 1:
        return cells[y0 - 1, x0:x1] if y0 > 0 else None
    if side == 2:
        return cells[y0:y1, x1] if x1 < w else None
    return cells[y1, x0:x1] if y1 < h else None


def _oriented_box(pts: np.ndarray, theta: float) -> np.ndarray:
    """Box around ``pts`` with its first edge along angle ``theta`` (radians)."""
    u = np.array([np.cos(theta), np.sin(theta)], np.float32)
    v = np.array([-u[1], u[0]], np.float32)
    pu, pv = pts @ u, pts @ v
    a, b, c, d = pu.min(), pu.max(), pv.min(), pv.max()
    return np.array([u * a + v * c, u * b + v * c, u * b + v * d, u * a + v * d], np.float32)


def _min_channel(cv2: Any, bgr: np.ndarray) -> np.ndarray:
    """Darkest colour channel: a green or red health code on white gets full contrast."""
    b, g, r = cv2.split(bgr)
    return cv2.min(cv2.min(b, g), r)


def _sharpen(cv2: Any, img: np.ndarray, sigma: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """Unsharp mask: ``img + amount * (img - blurred)``."""
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1.0 + amount, blur, -amount, 0)


def _working_scale(cv2: Any, crop: np.ndarray) -> tuple[np.ndarray, float]:
    """The image a 2-D candidate's fallbacks work on, and how much they upscale it.

    Small modules (2-3.5 px): zxing samples each module at one pixel of a grid fitted to
    the finder patterns, and at 2 px per module that pixel is as often the neighbour's;
    upscaled (cubic) 2x or 1.5x, the grid lands inside the modules. A crop of >= 480 px
    holds a large code (>= 5 px per module for the densest health code): its fallbacks
    work on it reduced to 400 px, where each costs a third as much, so that several fit
    in the budget instead of none."""
    short = min(crop.shape[:2])
    if short < 320:
        return crop, 2.0
    if short < 480:
        return crop, 1.5
    f = 400.0 / short
    return cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), 1.0


def _up(cv2: Any, img: np.ndarray, k: float) -> np.ndarray:
    """``img`` upscaled ``k`` times (cubic); unchanged for ``k`` = 1."""
    if k == 1.0:
        return img
    return cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)


def _bilateral(cv2: Any, img: np.ndarray) -> np.ndarray:
    """Noise smoothed within each module but not across module edges."""
    return cv2.bilateralFilter(img, 5, 30, 3)


def _adaptive(cv2: Any, img: np.ndarray, k: float) -> np.ndarray:
    """Binarised against a Gaussian mean over ~15 px (scaled by ``k``): a few modules,
    so a glare spot or a moire band moves the threshold with it."""
    smooth = cv2.GaussianBlur(img, (0, 0), 0.75 * k)
    block = int(15 * k) | 1
    return cv2.adaptiveThreshold(
        smooth, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 0
    )


def _blur_sigma(cv2: Any, crop: np.ndarray) -> float:
    """The Gaussian blur (sigma, px) of a code crop, from its sharpest edges.

    A step edge of contrast C blurred by a Gaussian of width sigma has a steepest slope
    of C / (sqrt(2 pi) sigma); a code has edges everywhere, so the 99th percentile of the
    gradient and the 5-95 % spread of the grey levels of the crop's middle (the code, not
    the carrier around it) give sigma. It reads ~1.0 px on a sharp frame (the light
    pre-smoothing against noise, JPEG) and rises with defocus; clamped to 0.8-3 px.
    """
    h, w = crop.shape
    inner = crop[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.float32)
    smooth = cv2.GaussianBlur(inner, (0, 0), 0.7)
    lo, hi = np.percentile(smooth[::2, ::2], [5, 95])  # every 4th pixel is enough
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    slope = float(np.percentile(cv2.magnitude(gx, gy)[::2, ::2], 99)) / 8.0  # Sobel: 8x
    return float(np.clip((hi - lo) / (np.sqrt(2 * np.pi) * slope + 1e-3), 0.8, 3.0))


def _deblur(cv2: Any, img: np.ndarray, sigma: float, nsr: float) -> np.ndarray:
    """Wiener deconvolution of a Gaussian blur of ``sigma`` px: each frequency is divided
    by the blur's gain G, damped where G is small (``nsr``, the noise-to-signal ratio)
    so noise is not amplified without bound. Reflected borders keep the crop's edges
    from ringing into the code. Nothing is invented: zxing still checks the QR's error
    correction on whatever grid it samples."""
    f = img.astype(np.float32)
    h, w = f.shape
    pad = int(3 * sigma) + 4
    hh = cv2.getOptimalDFTSize(h + 2 * pad)
    ww = cv2.getOptimalDFTSize(w + 2 * pad)
    f = cv2.copyMakeBorder(f, pad, hh - h - pad, pad, ww - w - pad, cv2.BORDER_REFLECT)
    # the Gaussian's gain is separable: an outer product of two 1-D gains
    c = np.float32(-2 * (np.pi * sigma) ** 2)
    fy = np.fft.fftfreq(hh).astype(np.float32)
    fx = np.fft.rfftfreq(ww).astype(np.float32)
    gain = np.outer(np.exp(c * fy * fy), np.exp(c * fx * fx))
    # damped only where the blur took most of the signal: the mean grey is kept
    wiener = gain / (gain * gain + np.float32(nsr) * (1 - gain * gain))
    out = np.fft.irfft2(np.fft.rfft2(f) * wiener, s=(hh, ww))
    return np.clip(out[pad : pad + h, pad : pad + w], 0, 255).astype(np.uint8)


def _merge(regions: Iterable[_Region]) -> list[_Region]:
    """Drop regions mostly inside an earlier one (same place found by two stages)."""
    out: list[_Region] = []
    for r in regions:
        dup = False
        for o in out:
            ix = max(0, min(r.x1, o.x1) - max(r.x0, o.x0))
            iy = max(0, min(r.y1, o.y1) - max(r.y0, o.y0))
            area = max(1, (r.x1 - r.x0) * (r.y1 - r.y0))
            # a QR blob (no bar direction) does not stand in for a located box (which has one)
            same = r.kind == o.kind and (r.qr_blob, r.bar_blob) == (o.qr_blob, o.bar_blob)
            if ix * iy > 0.6 * area and same:
                dup = True
                break
        if not dup:
            out.append(r)
    return out


def decode_image_file(path: str, station: str = "sampling") -> list[Read]:
    """Decode a PNG/JPEG file with the station pipeline (used by ``checkpost verify IMAGE``).

    Image files are not camera frames: a generated QR PNG may be tiny (1 px per module) or
    huge, so after the camera pipeline this also tries the image upscaled and as a pure
    symbol. Raises ``ValueError`` when the file cannot be read as an image.
    """
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return decode_image(img, station=station)


def decode_image(img: np.ndarray, station: str = "sampling") -> list[Read]:
    """Decode one still image (not a camera stream): the pipeline with a generous budget."""
    import cv2

    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
    if img.ndim == 3 and img.shape[2] == 4:  # composite transparency on white
        alpha = img[..., 3:4].astype(np.float32) / 255
        img = (img[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    dec = StationDecoder(station=station, budget_ms=200.0, track=False, debounce_s=0)
    t0 = time.perf_counter()
    reads = dec.read(img)
    if reads:
        return reads
    gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # Small generated symbols: upscale with nearest neighbour (keeps module edges sharp).
    if min(gray.shape) < 400:
        k = int(np.ceil(400 / max(1, min(gray.shape))))
        big = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
        big = cv2.copyMakeBorder(big, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
        found: dict = {}
        dec._zxing(
            big, 1.0 / k, dec._formats, found, None, "file-upscaled", offset=(-16.0 / k, -16.0 / k)
        )
        if found:
            ms = (time.perf_counter() - t0) * 1000
            return [Read(t, f, c, ms, s) for t, (f, c, s) in found.items()]
    return []
