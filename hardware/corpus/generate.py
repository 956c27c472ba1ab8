"""Seeded corpus of station camera frames: stills per category and short clips.

`make_corpus(seed, out)` writes JPEG frames (the camera's MJPEG compression is one of the
defects, so the file is the frame) and `manifest.json` with the ground truth:

    {"seed": N, "width": 1280, "height": 720,
     "stills": [{"file", "category", "codes": [{"text", "format", "corners"}], "conditions"}],
     "clips": [{"dir", "category", "frames": [file...], "full_index", "inside_index",
                "codes": [...]}]}

`full_index` is the first clip frame in which the whole code is inside the picture and no
longer smeared by its own movement by more than one module (see `_clip`); the benchmark
counts frames from there to the first read. Each still and each clip draws from
its own generator seeded by (seed, index), so corpora of different sizes share a prefix
and a frame can be regenerated alone when a miss is investigated.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import scene as sc
from .symbols import code128_modules, payload, qr_modules

CLIP_CATEGORIES = ("phone_qr", "paper_qr", "label_c128", "tube_c128")
CLIP_FRAMES = 10


@dataclass
class Setup:
    """Everything about a shot that stays fixed while the pose moves (a clip's constants)."""

    category: str
    bg: np.ndarray
    carrier: np.ndarray
    mask: np.ndarray
    screen: np.ndarray | None
    corners: np.ndarray | None  # code corners in carrier coordinates
    codes: list[dict[str, Any]]
    scale: float
    roll: float
    yaw: float
    pitch: float
    center: tuple[float, float]
    effects: dict[str, Any]


def _defocus(rng: np.random.Generator, hard: bool) -> float:
    """Gaussian sigma in px: mostly in focus, sometimes soft, rarely badly out of focus."""
    u = rng.random()
    if not hard:
        return float(rng.uniform(0.0, 1.0))
    if u < 0.75:
        return float(rng.uniform(0.0, 0.9))
    if u < 0.94:
        return float(rng.uniform(0.9, 1.7))
    return float(rng.uniform(1.7, 3.0))


def _effects(rng: np.random.Generator, category: str, hard: bool = True) -> dict[str, Any]:
    glossy = category.startswith("tube") or category == "phone_qr"
    low = bool(rng.random() < 0.3)
    eff: dict[str, Any] = {
        "low_light": low,
        "gain": float(rng.uniform(0.25, 0.55)) if low else float(rng.uniform(0.8, 1.15)),
        "glare": bool(rng.random() < (0.2 if glossy else 0.1)),
        "moire": bool(category == "phone_qr" and rng.random() < 0.3),
        "moire_period": float(rng.uniform(6.0, 30.0)),
        "moire_amp": float(rng.uniform(0.05, 0.15)),
        "finger": bool(rng.random() < (0.08 if hard else 0.03)),
        "defocus": _defocus(rng, hard),
        "motion": float(min(12.0, rng.lognormal(0.5, 0.6))) if rng.random() < 0.25 else 0.0,
        "motion_angle": float(rng.uniform(0, 180)),
        "noise": float(rng.uniform(1.5, 4.0)),
        "jpeg": int(rng.integers(45, 93)),
    }
    if not hard:
        eff["motion"] = min(eff["motion"], 3.0)
    if low:
        eff["noise"] += float(rng.uniform(3, 9))
    return eff


def build_setup(rng: np.random.Generator, category: str, hard: bool = True) -> Setup:
    """Choose the carrier, the code and the pose of one shot."""
    cond: dict[str, Any] = {}
    codes: list[dict[str, Any]] = []
    screen = None
    empty = category == "empty"
    if empty:
        category_shape = rng.choice(["phone", "paper", "label", "tube", "none"])
    else:
        category_shape = category.split("_")[0]
    roll = float(rng.normal(0, 15))
    yaw, pitch = (float(np.clip(rng.normal(0, 12), -40, 40)) for _ in range(2))
    if category_shape in ("phone", "paper", "none"):
        if category_shape == "phone" or category_shape == "none":
            kind = "hc1" if rng.random() < 0.3 else "hp1"
            ec = "Q" if kind == "hc1" else "M"
        else:
            kind, ec = "sr1", "M"
        mods = None
        if not empty:
            text = payload(rng, kind)
            mods = qr_modules(text, ec)
            codes.append({"text": text, "format": "QR"})
        target = float(np.exp(rng.uniform(math.log(2.2), math.log(7.0))))
        px = max(2, math.ceil(target * 1.5))
        if category_shape == "paper":
            carrier, mask, _, corners = sc.paper_carrier(rng, mods, px, cond)
        else:
            carrier, mask, screen, corners = sc.phone_carrier(rng, mods, px, cond)
        if rng.random() < 0.1:
            roll += 90
    elif category_shape == "label":
        kind = "box" if rng.random() < 0.5 else "tube"
        text = payload(rng, kind)
        bars = None if empty else code128_modules(text)
        if not empty:
            codes.append({"text": text, "format": "Code128"})
        target = float(rng.uniform(1.4, 3.2))
        px = max(2, math.ceil(target * 1.5))
        carrier, mask, _, corners = sc.label_carrier(rng, bars, px, text, cond)
        roll = float(rng.normal(0, 25))
    else:  # tube, with a Code 128 or a small QR
        text = payload(rng, "tube")
        use_qr = category == "tube_qr"
        target = float(rng.uniform(2.5, 5.5)) if use_qr else float(rng.uniform(1.4, 3.2))
        px = max(2, math.ceil(target * 1.5))
        if use_qr:
            mods = qr_modules(text, "M")
            carrier, mask, _, corners = sc.paper_carrier(rng, mods, px, cond)
            codes.append({"text": text, "format": "QR"})
            # a label with a small QR: crop the sheet tight around the code
            q = int(px * 2)
            x0, y0 = int(corners[0][0]) - q, int(corners[0][1]) - q
            x1, y1 = int(corners[2][0]) + q, int(corners[2][1]) + q
            carrier, mask = carrier[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy()
            corners = corners - [x0, y0]
            along = False
            radius = carrier.shape[1] * float(rng.uniform(0.7, 1.4))
        else:
            bars = None if empty else code128_modules(text)
            if not empty:
                codes.append({"text": text, "format": "Code128"})
            carrier, mask, _, corners = sc.label_carrier(rng, bars, px, text, cond)
            along = bool(rng.random() < 0.7)
            span = carrier.shape[0] if along else carrier.shape[1]
            radius = span * (
                float(rng.uniform(0.45, 0.8)) if along else float(rng.uniform(0.5, 0.9))
            )
        cond.update(tube_axis_along_code=along)
        carrier, mask, corners = sc.wrap_on_tube(carrier, corners, radius, along)
        roll = float(rng.uniform(-90, 90))
        yaw, pitch = float(rng.normal(0, 8)), float(rng.normal(0, 8))
    scale = target / px
    h, w = carrier.shape[:2]
    if corners is not None:
        ccx, ccy = corners.mean(axis=0)
        span = float(np.ptp(corners, axis=0).max()) * scale
    else:
        ccx, ccy, span = w / 2, h / 2, 200.0
    margin = span * 0.6 + 10
    cx = float(rng.uniform(margin, sc.W - margin)) if 2 * margin < sc.W else sc.W / 2
    cy = float(rng.uniform(margin, sc.H - margin)) if 2 * margin < sc.H else sc.H / 2
    # The pose is applied about the carrier centre; shift so the code lands on (cx, cy).
    center = (cx - (ccx - w / 2) * scale, cy - (ccy - h / 2) * scale)
    if corners is not None:
        scale, center = _keep_code_in_frame(carrier, corners, scale, center, roll, yaw, pitch)
        target = scale * px
    eff = _effects(rng, category, hard)
    eff.update(cond)
    eff.update(
        module_px=round(target, 2), roll=round(roll, 1), yaw=round(yaw, 1), pitch=round(pitch, 1)
    )
    return Setup(
        category,
        sc.background(rng),
        carrier,
        mask,
        screen,
        corners,
        codes,
        scale,
        roll,
        yaw,
        pitch,
        center,
        eff,
    )


def _keep_code_in_frame(
    carrier: np.ndarray,
    corners: np.ndarray,
    scale: float,
    center: tuple[float, float],
    roll: float,
    yaw: float,
    pitch: float,
) -> tuple[float, tuple[float, float]]:
    """Move (and if need be, step back) so the whole code is in the frame.

    The placement above keeps the code's centre a margin from the edges, but a large code
    (an HC1 at 7 px per module is ~650 px) rolled and tilted can still reach past an edge.
    A code cut by the frame edge is unreadable by any decoder (a finder pattern or the
    stop pattern is simply not in the picture), yet the manifest would list it as shown;
    and staff see on the station screen that it is cut off and step back. So a still
    always shows its whole code plus about one module: it is shifted inside when it fits,
    and otherwise held further away (smaller modules) until it fits. The rest of the quiet
    zone may still be cut by the frame edge, as it can be at a station. Nothing is drawn
    from the generator here, so every other random choice of the corpus is unchanged.
    (Seed 20261123: 17 of 521 stills with a code are moved, 4 of them held further away.)
    """
    size = (carrier.shape[1], carrier.shape[0])
    lo_q, hi_q = corners.min(axis=0), corners.max(axis=0)
    pad = 0.02 * float((hi_q - lo_q).max())  # about one module (QR 57+, Code 128 ~110+)
    quad = np.array(
        [lo_q - pad, [hi_q[0] + pad, lo_q[1] - pad], hi_q + pad, [lo_q[0] - pad, hi_q[1] + pad]],
        np.float32,
    )
    edge = 4.0
    for _ in range(8):
        hom = sc.pose_homography(size, center, scale, roll, yaw, pitch)
        pts = sc.transform_points(hom, quad)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        ext = hi - lo
        room = np.array([sc.W, sc.H], np.float32) - 2 * edge
        if (ext > room).any():
            scale *= 0.95 * float((room / ext).min())
            continue
        shift = np.maximum(edge - lo, 0) - np.maximum(hi - (np.array([sc.W, sc.H]) - edge), 0)
        if not shift.any():
            break
        center = (center[0] + float(shift[0]), center[1] + float(shift[1]))
    return scale, center


def render(
    setup: Setup,
    rng: np.random.Generator,
    *,
    center: tuple[float, float] | None = None,
    extra_motion: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, list[dict]]:
    """Render one frame of ``setup``; ``extra_motion`` is (length px, angle°) from moving."""
    import cv2

    eff = setup.effects
    c = center if center is not None else setup.center
    hom = sc.pose_homography(
        (setup.carrier.shape[1], setup.carrier.shape[0]),
        c,
        setup.scale,
        setup.roll,
        setup.yaw,
        setup.pitch,
    )
    aa = 0.4 / setup.scale if setup.scale < 1 else 0.0
    frame = sc.composite(setup.bg, setup.carrier, setup.mask, hom, aa)
    # Lighting: a self-lit phone screen keeps more of its brightness in the dark.
    gain = eff["gain"]
    gmap = np.full((sc.H, sc.W), gain, np.float32)
    if setup.screen is not None:
        sm = cv2.warpPerspective(setup.screen, hom, (sc.W, sc.H)).astype(np.float32) / 255
        gmap = gmap * (1 - sm) + min(1.0, gain * 2.6) * sm
        if eff["moire"]:
            yy, xx = np.mgrid[0 : sc.H, 0 : sc.W].astype(np.float32)
            ang = math.radians(setup.roll + 3)
            period = eff["moire_period"]
            wave = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
            gmap *= 1 + eff["moire_amp"] * wave * sm
    yy, xx = np.mgrid[0 : sc.H : 8, 0 : sc.W : 8].astype(np.float32)
    vign = 1 - 0.35 * (((xx - sc.W / 2) / sc.W) ** 2 + ((yy - sc.H / 2) / sc.H) ** 2) * 2
    gmap *= cv2.resize(vign, (sc.W, sc.H))
    frame *= gmap[..., None]
    codes = []
    for code in setup.codes:
        pts = sc.transform_points(hom, setup.corners)
        codes.append(
            {**code, "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in pts]}
        )
    fr = rng
    if setup.corners is not None:
        pts = sc.transform_points(hom, setup.corners)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        size = float((hi - lo).max())
        if eff["glare"]:
            gx, gy = fr.uniform(lo, hi)
            s = size * fr.uniform(0.05, 0.2)
            blob = np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * s * s)))
            frame += cv2.resize(blob, (sc.W, sc.H))[..., None] * fr.uniform(80, 260)
        if eff["finger"]:
            edge = int(fr.integers(0, 4))
            a, b = pts[edge], pts[(edge + 1) % 4]
            t = fr.uniform(0.1, 0.9)
            p = a + (b - a) * t
            inward = pts.mean(axis=0) - p
            p = p + inward * fr.uniform(-0.25, 0.1)
            axes = (int(size * fr.uniform(0.08, 0.14)), int(size * fr.uniform(0.25, 0.4)))
            ang = math.degrees(math.atan2(inward[1], inward[0])) + 90
            skin = np.array([120, 150, 205], np.float32) * gain * fr.uniform(0.7, 1.1)
            fmask = np.zeros((sc.H, sc.W), np.float32)
            cv2.ellipse(fmask, (int(p[0]), int(p[1])), axes, ang, 0, 360, 1.0, -1, cv2.LINE_AA)
            fmask = cv2.GaussianBlur(fmask, (0, 0), 2)
            frame = frame * (1 - fmask[..., None]) + skin * fmask[..., None]
    if eff["defocus"] > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), eff["defocus"])
    length = math.hypot(eff["motion"], extra_motion[0])
    if length >= 1.5:
        angle = eff["motion_angle"] if extra_motion[0] < eff["motion"] else extra_motion[1]
        frame = cv2.filter2D(frame, -1, sc.motion_kernel(length, angle))
    frame += fr.normal(0, eff["noise"], frame.shape[:2])[..., None]
    img = np.clip(frame, 0, 255).astype(np.uint8)
    return img, codes


def _still(seed: int, index: int, out: str) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 1, index])
    cats = list(sc.CATEGORIES)
    category = str(
        rng.choice(cats, p=np.array(list(sc.CATEGORIES.values())) / sum(sc.CATEGORIES.values()))
    )
    setup = build_setup(rng, category)
    img, codes = render(setup, rng)
    name = f"still_{index:05d}.jpg"
    _write_jpeg(Path(out) / name, img, setup.effects["jpeg"])
    return {"file": name, "category": category, "codes": codes, "conditions": setup.effects}


def _clip(seed: int, index: int, out: str) -> dict[str, Any]:
    """A code moving into view and settling: entry over 2-6 frames, then held (small shake).

    The hand decelerates (ease-out), so the code often crosses the frame edge while it is
    still moving fast: a phone travelling 100-200 px per frame with the shutter open for
    15-50 % of the interval is smeared over tens of modules, which no decoder can read. So
    ``full_index``, where the benchmark starts counting, is the first frame in which the
    whole code is inside the picture *and* the hand's movement during the exposure smears
    it by at most one module (a box blur of one module keeps ~64 % of the finest pattern's
    contrast; at two modules it is zero). ``inside_index`` is the first frame with the
    code inside the picture regardless of smear, kept for reference. Frame 0 is rendered
    with the velocity the code already has (it is moving in, not standing still).
    """
    rng = np.random.default_rng([seed, 2, index])
    category = CLIP_CATEGORIES[index % len(CLIP_CATEGORIES)]
    setup = build_setup(rng, category, hard=False)
    pts = sc.transform_points(
        sc.pose_homography(
            (setup.carrier.shape[1], setup.carrier.shape[0]),
            setup.center,
            setup.scale,
            setup.roll,
            setup.yaw,
            setup.pitch,
        ),
        setup.corners,
    )
    size = float(np.ptp(pts, axis=0).max())
    ang = float(rng.uniform(0, 2 * math.pi))
    start_dist = size * 1.2 + float(np.hypot(sc.W, sc.H)) * 0.25
    entry = int(rng.integers(2, 7))
    exposure = float(rng.uniform(0.15, 0.5))  # fraction of the frame interval the shutter is open
    d = Path(out) / f"clip_{index:04d}"
    d.mkdir(parents=True, exist_ok=True)
    files, full_index, inside_index, codes = [], None, None, []

    def dist_at(f: int) -> float:
        k = min(1.0, f / entry)  # f < 0: the path before the first frame, further out
        return start_dist * (1 - (1 - (1 - k) ** 2))

    prev = (
        setup.center[0] + math.cos(ang) * dist_at(-1),
        setup.center[1] + math.sin(ang) * dist_at(-1),
    )
    module = float(setup.effects["module_px"])
    for f in range(CLIP_FRAMES):
        dist = dist_at(f)
        shake = rng.normal(0, 1.5, 2) if f >= entry else np.zeros(2)
        c = (
            setup.center[0] + math.cos(ang) * dist + shake[0],
            setup.center[1] + math.sin(ang) * dist + shake[1],
        )
        v = math.hypot(c[0] - prev[0], c[1] - prev[1])
        prev = c
        # the hand's own movement; the shake once held is not "moving into view"
        entry_smear = abs(dist_at(f - 1) - dist) * exposure
        img, codes = render(setup, rng, center=c, extra_motion=(v * exposure, math.degrees(ang)))
        corners = np.array(codes[0]["corners"])
        inside = bool(
            (corners >= 1).all()
            and (corners[:, 0] < sc.W - 1).all()
            and (corners[:, 1] < sc.H - 1).all()
        )
        if inside and inside_index is None:
            inside_index = f
        if inside and entry_smear <= module and full_index is None:
            full_index = f
        name = f"f{f:02d}.jpg"
        _write_jpeg(d / name, img, setup.effects["jpeg"])
        files.append(name)
    return {
        "dir": d.name,
        "category": category,
        "frames": files,
        "full_index": full_index,
        "inside_index": inside_index,
        "codes": [{"text": c["text"], "format": c["format"]} for c in codes],
        "conditions": setup.effects,
    }


def _write_jpeg(path: Path, img: np.ndarray, quality: int) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def make_corpus(
    seed: int,
    out: str | os.PathLike[str],
    stills: int = 600,
    clips: int = 60,
    workers: int | None = None,
) -> dict[str, Any]:
    """Generate a corpus into ``out`` and return (and write) its manifest."""
    out_s = str(out)
    Path(out_s).mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    if workers == 1:
        st = [_still(seed, i, out_s) for i in range(stills)]
        cl = [_clip(seed, i, out_s) for i in range(clips)]
    else:
        with ProcessPoolExecutor(workers) as ex:
            st = list(ex.map(_still, [seed] * stills, range(stills), [out_s] * stills, chunksize=8))
            cl = list(ex.map(_clip, [seed] * clips, range(clips), [out_s] * clips, chunksize=4))
    manifest = {"seed": seed, "width": sc.W, "height": sc.H, "stills": st, "clips": cl}
    (Path(out_s) / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
