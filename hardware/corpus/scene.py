"""Render 1280x720 camera frames of codes the way a station camera sees them.

A frame is a cluttered background (car interior at night, a sampling table, a wall), one
carrier (a phone showing an HP1/HC1 QR, a printed SR1 sheet, a flat label, a curved tube)
placed with a 3-D pose (distance, roll, tilt), then the camera's defects in the order they
happen: lighting, glare and screen moiré, a finger, defocus, motion blur, sensor noise and
the MJPEG compression of a USB camera. Every random choice comes from one seeded
generator, so a seed names a corpus exactly. The conditions applied are returned with the
frame so the benchmark can report misses by cause.

Difficulty is set from what was measured on real-looking frames (shared/MEASURED.md): bare
zxing-cpp reads ~85 % of phone QR codes and ~25-30 % of tube barcodes. The generator must
not be tuned to make the pipeline look good; its knobs are physical quantities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

W, H = 1280, 720
FOCAL = 1100.0  # px, a typical 720p USB camera with ~60° horizontal field of view

# Categories of still frames and their share of a corpus. "empty" frames carry no code.
CATEGORIES: dict[str, float] = {
    "phone_qr": 0.34,
    "paper_qr": 0.14,
    "label_c128": 0.12,
    "tube_c128": 0.18,
    "tube_qr": 0.08,
    "empty": 0.14,
}


@dataclass
class Scene:
    """One rendered frame and its ground truth."""

    image: np.ndarray
    codes: list[dict[str, Any]] = field(default_factory=list)  # text, format, corners
    conditions: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    import cv2

    small = rng.random((max(2, shape[0] // cell), max(2, shape[1] // cell))).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def background(rng: np.random.Generator) -> np.ndarray:
    """Clutter: gradients, shapes, text and stripes, so empty frames are not trivially empty."""
    import cv2

    kind = rng.choice(["car", "table", "wall"])
    base = {"car": (45, 40, 38), "table": (120, 140, 160), "wall": (170, 175, 180)}[kind]
    img = np.empty((H, W, 3), np.float32)
    tex = _smooth_noise(rng, (H, W), int(rng.integers(40, 160)))
    for c in range(3):
        img[..., c] = base[c] * (0.6 + 0.8 * tex) + rng.normal(0, 6)
    if kind == "table":  # wood grain: stretched noise
        grain = _smooth_noise(rng, (H // 8, W), 6)
        img *= (0.85 + 0.3 * cv2.resize(grain, (W, H)))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 4)
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        if shape == 0:
            cv2.rectangle(
                img,
                (x, y),
                (x + int(rng.integers(30, 300)), y + int(rng.integers(30, 200))),
                color,
                -1,
            )
        elif shape == 1:
            cv2.circle(img, (x, y), int(rng.integers(10, 120)), color, -1)
        elif shape == 2:
            cv2.line(
                img,
                (x, y),
                (int(rng.integers(0, W)), int(rng.integers(0, H))),
                color,
                int(rng.integers(1, 8)),
            )
        else:
            text = "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789 -"), 14))
            cv2.putText(
                img,
                text,
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.5, 1.6)),
                color,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
            )
    if rng.random() < 0.35:  # grilles, keyboards, seat stitching: periodic code-like stripes
        x, y = int(rng.integers(0, W - 200)), int(rng.integers(0, H - 120))
        period = int(rng.integers(3, 12))
        for i in range(0, int(rng.integers(60, 200)), period):
            cv2.line(
                img,
                (x + i, y),
                (x + i, y + int(rng.integers(30, 120))),
                (20, 20, 20),
                max(1, period // 3),
            )
    return img


# ---------------------------------------------------------------------------- carriers


def _qr_canvas(modules: np.ndarray, px: int, quiet: int, dark: tuple, light: tuple) -> np.ndarray:
    n = modules.shape[0]
    size = (n + 2 * quiet) * px
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = light
    big = np.kron(modules, np.ones((px, px), np.uint8)).astype(bool)
    region = canvas[quiet * px : quiet * px + n * px, quiet * px : quiet * px + n * px]
    region[big] = dark
    return canvas


def _put_lines(rng: np.random.Generator, img: np.ndarray, y0: int, y1: int, color: tuple) -> None:
    import cv2

    h, w = img.shape[:2]
    y = y0
    while y < y1:
        n = int(rng.integers(6, 22))
        text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789 :"), n))
        cv2.putText(
            img,
            text,
            (int(w * 0.08), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            w / 900.0,
            color,
            max(1, w // 300),
            cv2.LINE_AA,
        )
        y += max(12, int(h * 0.05))


def phone_carrier(rng: np.random.Generator, modules: np.ndarray | None, px: int, cond: dict):
    """A phone: bezel, app header and text, the QR on a lit screen (coloured, maybe dark mode).

    Returns (carrier BGR, mask, screen mask, code corners in carrier coordinates)."""
    import cv2

    status = rng.choice(["G", "G", "G", "Y", "R"])
    # The health-pass app tints the code by status; HC1 wallets show it black.
    tint = {"G": (40, 130, 30), "Y": (0, 140, 210), "R": (40, 40, 190)}[status]
    colored = bool(rng.random() < 0.45)
    inverted = bool(rng.random() < 0.10)
    cond.update(colored=colored, inverted=inverted)
    dark, light = (tint if colored else (20, 20, 20)), (250, 250, 250)
    if inverted:
        dark, light = (235, 235, 235), (25, 25, 25)
    n = modules.shape[0] if modules is not None else 41
    quiet = int(rng.integers(2, 5))
    code_size = (n + 2 * quiet) * px
    sw = int(code_size * rng.uniform(1.12, 1.35))
    sh = int(sw * rng.uniform(1.9, 2.2))
    bezel = max(4, sw // 22)
    carrier = np.zeros((sh + 2 * bezel, sw + 2 * bezel, 3), np.uint8)
    carrier[:] = (15, 15, 18)
    screen = np.full((sh, sw, 3), light, np.uint8)
    header = int(sh * 0.09)
    screen[:header] = tint if not inverted else (40, 40, 40)
    text_color = (90, 90, 90) if not inverted else (180, 180, 180)
    _put_lines(rng, screen, header + int(sh * 0.05), int(sh * 0.2), text_color)
    y0 = int(sh * 0.24)
    x0 = (sw - code_size) // 2
    corners = None
    if modules is not None:
        screen[y0 : y0 + code_size, x0 : x0 + code_size] = _qr_canvas(
            modules, px, quiet, dark, light
        )
        q = quiet * px
        corners = (
            np.array(
                [
                    [x0 + q, y0 + q],
                    [x0 + code_size - q, y0 + q],
                    [x0 + code_size - q, y0 + code_size - q],
                    [x0 + q, y0 + code_size - q],
                ],
                np.float32,
            )
            + bezel
        )
    else:
        _put_lines(rng, screen, y0, y0 + code_size, text_color)
    _put_lines(rng, screen, y0 + code_size + int(sh * 0.05), sh - 10, text_color)
    carrier[bezel : bezel + sh, bezel : bezel + sw] = screen
    mask = np.zeros(carrier.shape[:2], np.uint8)
    r = bezel * 3
    cv2.rectangle(mask, (r, 0), (mask.shape[1] - r, mask.shape[0]), 255, -1)
    cv2.rectangle(mask, (0, r), (mask.shape[1], mask.shape[0] - r), 255, -1)
    for cx, cy in (
        (r, r),
        (mask.shape[1] - r, r),
        (r, mask.shape[0] - r),
        (mask.shape[1] - r, mask.shape[0] - r),
    ):
        cv2.circle(mask, (cx, cy), r, 255, -1)
    screen_mask = np.zeros_like(mask)
    screen_mask[bezel : bezel + sh, bezel : bezel + sw] = 255
    return carrier, mask, screen_mask, corners


def paper_carrier(rng: np.random.Generator, modules: np.ndarray | None, px: int, cond: dict):
    """A printed SR1 sheet: toner black (sometimes faded), text around it, paper grain."""
    n = modules.shape[0] if modules is not None else 45
    quiet = int(rng.integers(3, 6))
    code_size = (n + 2 * quiet) * px
    pw = int(code_size * rng.uniform(1.5, 2.2))
    ph = int(pw * 1.41)
    paper = np.full((ph, pw, 3), 0, np.uint8)
    paper_tone = rng.uniform(225, 252)
    grain = rng.normal(0, 3, (ph, pw, 1))
    paper[:] = np.clip(paper_tone + grain + np.array([0, 2, 4]), 0, 255).astype(np.uint8)
    faded = bool(rng.random() < 0.2)
    cond.update(faded=faded)
    ink = (int(rng.uniform(70, 110)),) * 3 if faded else (25, 25, 25)
    _put_lines(rng, paper, int(ph * 0.06), int(ph * 0.25), (60, 60, 60))
    y0, x0 = int(ph * 0.3), (pw - code_size) // 2
    corners = None
    if modules is not None:
        canvas = _qr_canvas(modules, px, quiet, ink, (int(paper_tone),) * 3)
        paper[y0 : y0 + code_size, x0 : x0 + code_size] = canvas
        q = quiet * px
        corners = np.array(
            [
                [x0 + q, y0 + q],
                [x0 + code_size - q, y0 + q],
                [x0 + code_size - q, y0 + code_size - q],
                [x0 + q, y0 + code_size - q],
            ],
            np.float32,
        )
    else:
        _put_lines(rng, paper, y0, y0 + code_size, (60, 60, 60))
    _put_lines(rng, paper, y0 + code_size + int(ph * 0.04), ph - 10, (60, 60, 60))
    mask = np.full(paper.shape[:2], 255, np.uint8)
    return paper, mask, None, corners


def label_carrier(
    rng: np.random.Generator, bars: np.ndarray | None, px: int, text: str, cond: dict
):
    """A flat adhesive label with a Code 128 and its human-readable digits."""
    import cv2

    n = bars.shape[0] if bars is not None else 110
    quiet = int(rng.integers(6, 12))
    bar_h = int(n * px * rng.uniform(0.18, 0.35))
    lw = (n + 2 * quiet) * px
    lh = bar_h + int(bar_h * 0.9) + 10
    tone = int(rng.uniform(225, 252))
    label = np.full((lh, lw, 3), tone, np.uint8)
    y0 = int(bar_h * 0.25)
    corners = None
    if bars is not None:
        row = np.repeat(bars, px).astype(bool)
        ink = int(rng.uniform(15, 60))
        label[y0 : y0 + bar_h, quiet * px : quiet * px + row.size][:, row] = ink
        corners = np.array(
            [
                [quiet * px, y0],
                [quiet * px + row.size, y0],
                [quiet * px + row.size, y0 + bar_h],
                [quiet * px, y0 + bar_h],
            ],
            np.float32,
        )
    cv2.putText(
        label,
        text,
        (quiet * px, y0 + bar_h + int(bar_h * 0.45)),
        cv2.FONT_HERSHEY_SIMPLEX,
        max(0.3, bar_h / 90),
        (40, 40, 40),
        1,
        cv2.LINE_AA,
    )
    mask = np.full(label.shape[:2], 255, np.uint8)
    return label, mask, None, corners


def wrap_on_tube(
    carrier: np.ndarray, corners: np.ndarray | None, radius: float, axis_along_x: bool
):
    """Wrap a label around a cylinder seen from the side (orthographic along the view axis).

    With ``axis_along_x`` the tube's axis runs along the label's x (bars become rings, the
    code is only foreshortened in bar height); otherwise the code runs around the tube and
    its bars crowd together towards the edges, which is what defeats 1-D decoders.
    Returns the wrapped carrier, its mask, a shading map, and the code corners mapped.
    """
    import cv2

    img = carrier if not axis_along_x else carrier.transpose(1, 0, 2)
    h, w = img.shape[:2]  # the wrapped direction is x here
    half_arc = w / 2.0
    theta_max = min(half_arc / radius, math.pi / 2 * 0.97)
    out_w = int(2 * radius * math.sin(theta_max))
    xs = (np.arange(out_w, dtype=np.float32) - out_w / 2.0) / radius
    theta = np.arcsin(np.clip(xs, -1, 1))
    u = (theta * radius + half_arc).astype(np.float32)
    map_x = np.repeat(u[None, :], h, axis=0)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], out_w, axis=1)
    wrapped = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    shade = (0.55 + 0.45 * np.cos(theta)).astype(np.float32)
    wrapped = np.clip(wrapped * shade[None, :, None], 0, 255).astype(np.uint8)
    mask = np.full((h, out_w), 255, np.uint8)
    mapped = None
    if corners is not None:
        pts = corners.copy() if not axis_along_x else corners[:, ::-1].copy()
        th = np.clip((pts[:, 0] - half_arc) / radius, -theta_max, theta_max)
        pts[:, 0] = radius * np.sin(th) + out_w / 2.0
        mapped = pts if not axis_along_x else pts[:, ::-1].copy()
    if axis_along_x:
        wrapped = np.ascontiguousarray(wrapped.transpose(1, 0, 2))
        mask = np.ascontiguousarray(mask.T)
    return wrapped, mask, mapped


# ---------------------------------------------------------------------------- pose and effects


def pose_homography(
    size: tuple[int, int],
    center: tuple[float, float],
    scale: float,
    roll: float,
    yaw: float,
    pitch: float,
) -> np.ndarray:
    """Homography placing a flat carrier of ``size`` (w, h) with a 3-D pose in the frame."""
    import cv2

    w, h = size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    pts = (src - [w / 2, h / 2]) * scale
    r, y, p = (math.radians(a) for a in (roll, yaw, pitch))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rot = ry @ rx @ rz
    p3 = np.c_[pts, np.zeros(4)] @ rot.T
    z = FOCAL + p3[:, 2]
    dst = np.c_[center[0] + FOCAL * p3[:, 0] / z, center[1] + FOCAL * p3[:, 1] / z]
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def composite(
    frame: np.ndarray, carrier: np.ndarray, mask: np.ndarray, hom: np.ndarray, aa_sigma: float
) -> np.ndarray:
    """Warp the carrier into the frame; anti-alias first when shrinking (as optics do)."""
    import cv2

    if aa_sigma > 0.3:
        carrier = cv2.GaussianBlur(carrier, (0, 0), aa_sigma)
    warped = cv2.warpPerspective(carrier, hom, (W, H), flags=cv2.INTER_LINEAR)
    m = cv2.warpPerspective(mask, hom, (W, H), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    out = frame.astype(np.float32) * (1 - m[..., None]) + warped.astype(np.float32) * m[..., None]
    return out


def motion_kernel(length: float, angle: float) -> np.ndarray:
    import cv2

    size = max(3, math.ceil(length) | 1)
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cv2.line(
        k,
        (round(c - dx * length / 2), round(c - dy * length / 2)),
        (round(c + dx * length / 2), round(c + dy * length / 2)),
        1.0,
        1,
        cv2.LINE_AA,
    )
    return k / max(k.sum(), 1e-6)


def transform_points(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ hom.T
    return (p[:, :2] / p[:, 2:3]).astype(np.float32)
