"""Synthetic training images: object crops pasted, rotated and scaled, onto backgrounds ("Cut, Paste and Learn").

Pure functions over numpy arrays and a ``numpy.random.Generator``; file I/O lives in ``jobs.py``.

* A :class:`Sprite` is an object crop: BGR pixels and an alpha (the PNG's alpha channel, or 255 where the crop is
  not black, as ``dsprep crop`` writes blanked crops).
* :func:`transform_sprite` flips, scales and rotates it with smooth interpolation, the alpha with it, in
  premultiplied colour (no dark fringe), and returns its exact annotation: the tight box of the pixels whose alpha
  is above ``alpha_threshold``, and the rotated rectangle of those pixels (the DOTA quad).
* :func:`place` finds a position whose box overlaps no placed box by more than ``max_overlap`` (intersection over
  the smaller box), testing a bounded number of random candidates at once: it always terminates; an object that
  does not fit is dropped and counted.
* :func:`compose` pastes the placed sprites (soft alpha, or Gaussian-softened edges, or Poisson blending).
* :func:`synthesize` does one whole image, deterministically for a given generator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class Sprite:
    bgr: np.ndarray    # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) uint8
    name: str = ""


def sprite_from_image(img: np.ndarray, mask_from: str = "auto", name: str = "") -> Sprite:
    """A sprite from a decoded crop: ``alpha`` uses the 4th channel, ``nonblack`` marks every non-black pixel
    opaque, ``auto`` takes the alpha channel when there is one."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    has_alpha = img.shape[2] == 4
    if mask_from == "alpha" or (mask_from == "auto" and has_alpha):
        if not has_alpha:
            raise ValueError(f"{name}: --mask-from alpha, but the image has no alpha channel")
        return Sprite(np.ascontiguousarray(img[:, :, :3]), np.ascontiguousarray(img[:, :, 3]), name)
    bgr = np.ascontiguousarray(img[:, :, :3])
    alpha = np.where(bgr.max(axis=2) > 0, 255, 0).astype(np.uint8)
    return Sprite(bgr, alpha, name)


@dataclass
class Placed:
    """A transformed sprite ready to paste: premultiplied colour, alpha in [0, 1], and its annotation."""

    color: np.ndarray   # (h, w, 3) float32, premultiplied by alpha
    alpha: np.ndarray   # (h, w) float32 in [0, 1]
    box: np.ndarray     # (4,) tight box of visible pixels, sprite coordinates (0-based, continuous)
    quad: np.ndarray    # (4, 2) rotated rectangle of the visible pixels, sprite coordinates
    name: str = ""
    x: int = 0
    y: int = 0


def _visible_box(alpha: np.ndarray, threshold: int) -> Optional[Tuple[int, int, int, int]]:
    ys, xs = np.nonzero(alpha > threshold)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def transform_sprite(sprite: Sprite, angle: float, scale: float, flip_h: bool = False, flip_v: bool = False,
                     alpha_threshold: int = 127) -> Optional[Placed]:
    """Flip, scale and rotate (degrees, counter-clockwise) a sprite.  Returns ``None`` when nothing stays visible.

    The output is cropped to the pixels with any alpha; ``box`` is the tight box of pixels with alpha above the
    threshold, ``quad`` the visible rectangle of the unrotated sprite carried through the same transform.
    """
    bgr, alpha = sprite.bgr, sprite.alpha
    if flip_h:
        bgr, alpha = bgr[:, ::-1], alpha[:, ::-1]
    if flip_v:
        bgr, alpha = bgr[::-1], alpha[::-1]
    vis = _visible_box(alpha, alpha_threshold)
    if vis is None:
        return None
    h, w = alpha.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(angle), float(scale))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    moved = corners @ m[:, :2].T + m[:, 2]
    lo = np.floor(moved.min(axis=0)) - 1
    hi = np.ceil(moved.max(axis=0)) + 1
    m[:, 2] -= lo
    ow, oh = int(hi[0] - lo[0]), int(hi[1] - lo[1])
    a = alpha.astype(np.float32) * (1.0 / 255.0)
    premult = bgr.astype(np.float32) * a[:, :, None]
    color = cv2.warpAffine(premult, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a_t = cv2.warpAffine(a, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a_t = np.clip(a_t, 0.0, 1.0)
    a8 = np.rint(a_t * 255.0).astype(np.uint8)
    tight = _visible_box(a8, alpha_threshold)
    any_box = _visible_box(a8, 0)
    if tight is None or any_box is None:
        return None
    vx0, vy0, vx1, vy1 = vis
    rect = np.array([[vx0, vy0], [vx1, vy0], [vx1, vy1], [vx0, vy1]], np.float64)
    quad = rect @ m[:, :2].T + m[:, 2]
    # The sprite's extent holds every pixel with any alpha and the whole quad, so placing the extent inside the
    # canvas keeps boxes and quads inside the image.
    x0 = max(0, min(any_box[0], int(np.floor(quad[:, 0].min()))))
    y0 = max(0, min(any_box[1], int(np.floor(quad[:, 1].min()))))
    x1 = min(ow, max(any_box[2], int(np.ceil(quad[:, 0].max()))))
    y1 = min(oh, max(any_box[3], int(np.ceil(quad[:, 1].max()))))
    quad = quad - [x0, y0]
    box = np.array(tight, np.float64) - [x0, y0, x0, y0]
    return Placed(np.ascontiguousarray(color[y0:y1, x0:x1]), np.ascontiguousarray(a_t[y0:y1, x0:x1]), box, quad,
                  sprite.name)


def overlap_ok(cand: np.ndarray, boxes: np.ndarray, max_overlap: float) -> np.ndarray:
    """For ``(K, 4)`` candidate boxes against ``(M, 4)`` placed boxes: intersection over the smaller box is at most
    ``max_overlap`` for all of them (with ``max_overlap == 0``: disjoint interiors)."""
    if len(boxes) == 0:
        return np.ones(len(cand), bool)
    ix = np.clip(np.minimum(cand[:, None, 2], boxes[None, :, 2]) - np.maximum(cand[:, None, 0], boxes[None, :, 0]),
                 0, None)
    iy = np.clip(np.minimum(cand[:, None, 3], boxes[None, :, 3]) - np.maximum(cand[:, None, 1], boxes[None, :, 1]),
                 0, None)
    inter = ix * iy
    area_c = ((cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1]))[:, None]
    area_b = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None, :]
    smaller = np.maximum(np.minimum(area_c, area_b), 1e-9)
    return (inter / smaller <= max_overlap + 1e-12).all(axis=1)


def place(size: Tuple[int, int], extent: Tuple[int, int], occupied: np.ndarray, max_overlap: float,
          rng: np.random.Generator, candidates: int = 64, rounds: int = 4) -> Optional[Tuple[int, int]]:
    """A top-left position for an ``extent = (w, h)`` sprite on a ``size = (W, H)`` canvas, or ``None``.

    Tests ``candidates`` random positions at once, at most ``rounds`` times: bounded work, always terminates.
    """
    W, H = size
    w, h = extent
    if w > W or h > H:
        return None
    for _ in range(rounds):
        xs = rng.integers(0, W - w + 1, candidates)
        ys = rng.integers(0, H - h + 1, candidates)
        cand = np.stack([xs, ys, xs + w, ys + h], axis=1).astype(np.float64)
        ok = np.flatnonzero(overlap_ok(cand, occupied, max_overlap))
        if len(ok):
            return int(xs[ok[0]]), int(ys[ok[0]])
    return None


def fit_background(bg: np.ndarray, canvas: Optional[Tuple[int, int]], fit: str,
                   rng: np.random.Generator) -> np.ndarray:
    """The background at canvas size: ``crop`` takes a random window where it is larger and pads (black) where it
    is smaller; ``resize`` stretches it; ``pad`` keeps it at the top-left, padding or cutting the rest."""
    if bg.ndim == 2:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)
    bg = bg[:, :, :3]
    if canvas is None:
        return np.ascontiguousarray(bg)
    W, H = canvas
    h, w = bg.shape[:2]
    if fit == "resize":
        return cv2.resize(bg, (W, H), interpolation=cv2.INTER_AREA if w > W or h > H else cv2.INTER_LINEAR)
    x = int(rng.integers(0, w - W + 1)) if (fit == "crop" and w > W) else 0
    y = int(rng.integers(0, h - H + 1)) if (fit == "crop" and h > H) else 0
    part = bg[y:y + H, x:x + W]
    if part.shape[:2] == (H, W):
        return np.ascontiguousarray(part)
    return cv2.copyMakeBorder(part, 0, H - part.shape[0], 0, W - part.shape[1], cv2.BORDER_CONSTANT, value=0)


def compose(canvas: np.ndarray, placed: Sequence[Placed], blend: str = "none") -> np.ndarray:
    """Paste every placed sprite (in order) on a copy of ``canvas``."""
    out = canvas.copy()
    for p in placed:
        h, w = p.alpha.shape
        region = out[p.y:p.y + h, p.x:p.x + w]
        if blend == "poisson":
            region[...] = _poisson(region, p)
            continue
        a = p.alpha
        color = p.color
        if blend == "gaussian":
            soft = cv2.GaussianBlur(a, (5, 5), 1.0)
            scale = np.divide(soft, a, out=np.zeros_like(a), where=a > 1e-6)
            color = color * np.minimum(scale, 1.0)[:, :, None]
            a = np.minimum(soft, a)
        bgf = region.astype(np.float32)
        comp = color + bgf * (1.0 - a)[:, :, None]
        region[...] = np.clip(comp + 0.5, 0, 255).astype(np.uint8)
    return out


def _poisson(region: np.ndarray, p: Placed) -> np.ndarray:
    """OpenCV seamlessClone of the sprite into its region (colour adapted to the surroundings)."""
    a = p.alpha
    mask = np.where(a > 0.5, 255, 0).astype(np.uint8)
    if not mask.any():
        return region
    safe_a = np.maximum(a, 1e-6)[:, :, None]
    src = np.clip(p.color / safe_a, 0, 255).astype(np.uint8)
    pad = 3
    src_p = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    mask_p = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    dst_p = cv2.copyMakeBorder(region, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    h, w = dst_p.shape[:2]
    try:
        cloned = cv2.seamlessClone(src_p, dst_p, mask_p, (w // 2, h // 2), cv2.NORMAL_CLONE)
    except cv2.error:
        return region
    out = region.copy()
    sel = mask > 0
    out[sel] = cloned[pad:pad + region.shape[0], pad:pad + region.shape[1]][sel]
    return out


@dataclass(frozen=True)
class SynthParams:
    """Every knob of :func:`synthesize`, with its documented default."""

    canvas: Optional[Tuple[int, int]] = None   # (W, H); None: the background's own size
    fit: str = "crop"
    per_image: Tuple[int, ...] = (4, 8, 16)    # the object count is drawn from these
    rotate: Tuple[float, float] = (0.0, 360.0)
    scale: Tuple[float, float] = (0.8, 1.2)
    flip: str = "h"                            # none | h | v | hv: each named flip with probability 1/2
    class_weights: Tuple[Tuple[str, float], ...] = ()
    max_overlap: float = 0.0
    blend: str = "none"
    alpha_threshold: int = 127
    candidates: int = 64
    rounds: int = 4


@dataclass
class SynthResult:
    image: np.ndarray
    boxes: np.ndarray       # (N, 4) canvas coordinates
    quads: np.ndarray       # (N, 4, 2)
    names: List[str]
    instance: Optional[np.ndarray] = None  # (H, W) uint8: 0 background, k+1 object k (visible pixels)
    dropped_too_large: int = 0
    dropped_no_room: int = 0
    stats: Dict[str, int] = field(default_factory=dict)


def choose_classes(classes: Sequence[str], weights: Dict[str, float], n: int, rng: np.random.Generator) -> List[str]:
    p = np.array([weights.get(c, 0.0 if weights else 1.0) for c in classes], np.float64)
    if p.sum() <= 0:
        raise ValueError("class weights are all zero")
    return [classes[i] for i in rng.choice(len(classes), size=n, p=p / p.sum())]


def synthesize(background: np.ndarray, pick_sprite, classes: Sequence[str], params: SynthParams,
               rng: np.random.Generator, masks: bool = False) -> SynthResult:
    """One synthetic image.  ``pick_sprite(class_name, rng) -> Sprite`` supplies object crops.

    Every random choice comes from ``rng`` in a fixed order, so the same generator state gives the same image.
    """
    canvas = fit_background(background, params.canvas, params.fit, rng)
    H, W = canvas.shape[:2]
    n = int(rng.choice(np.asarray(params.per_image)))
    chosen = choose_classes(list(classes), dict(params.class_weights), n, rng)
    placed: List[Placed] = []
    extents = np.zeros((0, 4), np.float64)
    too_large = no_room = 0
    for cls in chosen:
        sprite = pick_sprite(cls, rng)
        angle = rng.uniform(*params.rotate)
        scale = rng.uniform(*params.scale)
        flip_h = "h" in params.flip and bool(rng.random() < 0.5)
        flip_v = "v" in params.flip and bool(rng.random() < 0.5)
        t = transform_sprite(sprite, angle, scale, flip_h, flip_v, params.alpha_threshold)
        if t is None:
            too_large += 1
            continue
        h, w = t.alpha.shape
        # Placement tests the sprite's whole extent (faint edges included), so annotated boxes, which lie inside
        # it, keep the same guarantee.
        pos = place((W, H), (w, h), extents, params.max_overlap, rng, params.candidates, params.rounds)
        if pos is None:
            if w > W or h > H:
                too_large += 1
            else:
                no_room += 1
            continue
        t.x, t.y = pos
        t.name = cls
        placed.append(t)
        extents = np.vstack([extents, [t.x, t.y, t.x + w, t.y + h]])
    image = compose(canvas, placed, params.blend)
    offsets = np.array([[p.x, p.y] for p in placed], np.float64).reshape(-1, 2)
    boxes = np.array([p.box for p in placed], np.float64).reshape(-1, 4) + np.tile(offsets, 2)
    quads = np.array([p.quad for p in placed], np.float64).reshape(-1, 4, 2) + offsets[:, None, :]
    instance = None
    if masks:
        instance = np.zeros((H, W), np.uint8)
        for k, p in enumerate(placed):
            h, w = p.alpha.shape
            region = instance[p.y:p.y + h, p.x:p.x + w]
            region[np.rint(p.alpha * 255) > params.alpha_threshold] = min(k + 1, 254)
    return SynthResult(image, boxes, quads, [p.name for p in placed], instance, too_large, no_room)


def voc_palette() -> np.ndarray:
    """The standard PASCAL VOC colour map (256 x 3 RGB): bit j of the index's three-bit groups sets bit 7-j."""
    idx = np.arange(256)
    pal = np.zeros((256, 3), np.int64)
    for j in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * j + ch)) & 1) << (7 - j)
    return pal.astype(np.uint8)


def encode_palette_png(index: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette ('P' mode) PNG, as VOC's SegmentationClass/SegmentationObject files are (OpenCV cannot
    write these)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w = index.shape
    raw = np.zeros((h, w + 1), np.uint8)  # filter byte 0 per row
    raw[:, 1:] = index
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette.astype(np.uint8).tobytes()) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))
