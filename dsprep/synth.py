"""Synthetic training images: object crops pasted, rotated and scaled, onto backgrounds ("Cut, Paste and Learn").

Pure functions over numpy arrays and a ``numpy.random.Generator``; file I/O lives in ``jobs.py``.

* A :class:`Sprite` is an object crop: BGR pixels and an alpha (the PNG's alpha channel, or 255 where the crop is
  not black, as ``dsprep crop`` writes blanked crops).
* :func:`transform_sprite` flips, scales and rotates it with smooth interpolation, the alpha with it (colour first
  bled into transparent pixels, so no dark fringe), and returns its exact annotation: the tight box of the pixels
  whose alpha is above ``alpha_threshold``, and the rotated rectangle of those pixels (the DOTA quad).
* :func:`place` finds a position whose box overlaps no placed box by more than ``max_overlap`` (intersection over
  the smaller box), testing a bounded number of random candidates at once: it always terminates; an object that
  does not fit is dropped and counted.
* :func:`compose` pastes the placed sprites (soft alpha, or Gaussian-softened edges, or Poisson blending).
* :func:`synthesize` does one whole image, deterministically for a given generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class Sprite:
    bgr: np.ndarray    # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) uint8
    name: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def visible(self, threshold: int) -> Optional[Tuple[int, int, int, int]]:
        """Tight box of the pixels with alpha above ``threshold`` (computed once per sprite)."""
        key = ("visible", threshold)
        if key not in self._cache:
            self._cache[key] = _visible_box(self.alpha, threshold)
        return self._cache[key]

    def bled(self) -> np.ndarray:
        """``(h + 2p, w + 2p, 4)`` uint8 BGRA, padded by ``PAD`` transparent pixels, whose transparent pixels carry
        the colour of the nearest opaque pixel (computed once per sprite).

        Interpolating this while warping never mixes in the colour of transparent pixels (no dark fringe around
        objects cut from black), so the warped colour can be blended as it is.
        """
        if "bled" not in self._cache:
            opaque = self.alpha > 0
            bgr = self.bgr
            if opaque.any() and not opaque.all():
                src = np.where(opaque, 0, 255).astype(np.uint8)  # distance to the nearest opaque (zero) pixel
                _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
                colors = bgr[opaque]  # label k (1-based) is the k-th opaque pixel in row-major order
                bgr = colors[labels - 1]
            bgra = np.dstack([bgr, self.alpha])
            self._cache["bled"] = cv2.copyMakeBorder(bgra, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
            self._cache["bled"][:PAD, :, 3] = 0
            self._cache["bled"][-PAD:, :, 3] = 0
            self._cache["bled"][:, :PAD, 3] = 0
            self._cache["bled"][:, -PAD:, 3] = 0
        return self._cache["bled"]


PAD = 2


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
    """A transformed sprite ready to paste: colour, alpha, and its annotation."""

    color: np.ndarray   # (h, w, 3) uint8 (straight, not premultiplied: transparent pixels carry bled colour)
    alpha: np.ndarray   # (h, w) uint8
    box: np.ndarray     # (4,) tight box of visible pixels, sprite coordinates (0-based, continuous)
    quad: np.ndarray    # (4, 2) rotated rectangle of the visible pixels, sprite coordinates
    name: str = ""
    x: int = 0
    y: int = 0


def _visible_box(alpha: np.ndarray, threshold: int) -> Optional[Tuple[int, int, int, int]]:
    """Tight ``x0, y0, x1, y1`` (exclusive ends) of the pixels with ``alpha > threshold``, or None."""
    mask = cv2.compare(alpha, threshold, cv2.CMP_GT) if threshold > 0 else alpha
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return x, y, x + w, y + h


def transform_sprite(sprite: Sprite, angle: float, scale: float, flip_h: bool = False, flip_v: bool = False,
                     alpha_threshold: int = 127) -> Optional[Placed]:
    """Flip, scale and rotate (degrees, counter-clockwise) a sprite.  Returns ``None`` when nothing stays visible.

    The output is cropped to the pixels with any alpha; ``box`` is the tight box of pixels with alpha above the
    threshold, ``quad`` the visible rectangle of the unrotated sprite carried through the same transform.
    """
    h, w = sprite.alpha.shape
    vis = sprite.visible(alpha_threshold)
    if vis is None:
        return None
    # One affine map in pixel-index space (what warpAffine uses): flips first, then scale and rotation about the
    # centre (as cv2.getRotationMatrix2D: counter-clockwise on screen).  Folding the flips into the matrix avoids
    # copying flipped arrays; plain floats, because numpy's per-call cost dominates on 2x3 matrices.
    rad = math.radians(angle)
    ca, sa = scale * math.cos(rad), scale * math.sin(rad)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    fx, fy = (-1.0 if flip_h else 1.0), (-1.0 if flip_v else 1.0)
    tx, ty = ((w - 1.0) if flip_h else 0.0), ((h - 1.0) if flip_v else 0.0)
    a, b = ca * fx, sa * fy
    d, e = -sa * fx, ca * fy
    c = ca * tx + sa * ty + (1 - ca) * cx - sa * cy
    f = -sa * tx + ca * ty + sa * cx + (1 - ca) * cy

    def apply(points):
        """Continuous coordinates (pixel i spans [i, i+1)) through the index-space map."""
        return [(a * (x - 0.5) + b * (y - 0.5) + c + 0.5, d * (x - 0.5) + e * (y - 0.5) + f + 0.5)
                for x, y in points]

    moved = apply(((0, 0), (w, 0), (w, h), (0, h)))
    lox = math.floor(min(p[0] for p in moved)) - 1
    loy = math.floor(min(p[1] for p in moved)) - 1
    ow = math.ceil(max(p[0] for p in moved)) + 1 - lox
    oh = math.ceil(max(p[1] for p in moved)) + 1 - loy
    c -= lox
    f -= loy
    # the cached sprite is padded by PAD pixels: x_unpadded = x_padded - PAD
    mp = np.array([[a, b, c - (a + b) * PAD], [d, e, f - (d + e) * PAD]])
    # Constant (transparent black) border: a sample that reaches outside the sprite only mixes pixels of the
    # transparent PAD ring with it, so its alpha is 0 and its colour never shows (and it is 2x faster than
    # BORDER_REPLICATE).
    warped = cv2.warpAffine(sprite.bled(), mp, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a8 = cv2.extractChannel(warped, 3)
    tight = _visible_box(a8, alpha_threshold)
    any_box = _visible_box(a8, 0)
    if tight is None or any_box is None:
        return None
    vx0, vy0, vx1, vy1 = vis
    quad = np.array(apply(((vx0, vy0), (vx1, vy0), (vx1, vy1), (vx0, vy1))), np.float64)
    # The sprite's extent holds every pixel with any alpha and the whole quad, so placing the extent inside the
    # canvas keeps boxes and quads inside the image.
    x0 = max(0, min(any_box[0], int(np.floor(quad[:, 0].min()))))
    y0 = max(0, min(any_box[1], int(np.floor(quad[:, 1].min()))))
    x1 = min(ow, max(any_box[2], int(np.ceil(quad[:, 0].max()))))
    y1 = min(oh, max(any_box[3], int(np.ceil(quad[:, 1].max()))))
    quad = quad - [x0, y0]
    box = np.array(tight, np.float64) - [x0, y0, x0, y0]
    return Placed(cv2.cvtColor(warped[y0:y1, x0:x1], cv2.COLOR_BGRA2BGR), a8[y0:y1, x0:x1], box, quad,
                  sprite.name)


def overlap_ok(cand: np.ndarray, boxes: np.ndarray, max_overlap: float) -> np.ndarray:
    """For ``(K, 4)`` candidate boxes against ``(M, 4)`` placed boxes: intersection over the smaller box is at most
    ``max_overlap`` for all of them (with ``max_overlap == 0``: disjoint interiors)."""
    if len(boxes) == 0:
        return np.ones(len(cand), bool)
    c, b = cand[:, None, :], boxes[None, :, :]
    ix = np.minimum(c[..., 2], b[..., 2]) - np.maximum(c[..., 0], b[..., 0])
    iy = np.minimum(c[..., 3], b[..., 3]) - np.maximum(c[..., 1], b[..., 1])
    if max_overlap <= 0:  # disjoint interiors: no positive-area intersection
        return ~((ix > 0) & (iy > 0)).any(axis=1)
    inter = np.maximum(ix, 0) * np.maximum(iy, 0)
    area_c = (c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return (inter <= (max_overlap + 1e-12) * np.maximum(np.minimum(area_c, area_b), 1e-9)).all(axis=1)


def place(size: Tuple[int, int], extent: Tuple[int, int], occupied: np.ndarray, max_overlap: float,
          rng: np.random.Generator, candidates: int = 64, rounds: int = 5) -> Optional[Tuple[int, int]]:
    """A top-left position for an ``extent = (w, h)`` sprite on a ``size = (W, H)`` canvas, or ``None``.

    Tests random positions in batches (4, 16, then ``candidates`` per round, ``rounds`` rounds): bounded work,
    always terminates.
    """
    W, H = size
    w, h = extent
    if w > W or h > H:
        return None
    high = np.array([W - w + 1, H - h + 1])
    for r in range(rounds):
        k = min(candidates, 4 ** (r + 1))  # 4, 16, then full batches: cheap when the canvas is still empty
        xy = rng.integers(0, high, (k, 2))
        if len(occupied) == 0:
            return int(xy[0, 0]), int(xy[0, 1])
        cand = np.empty((k, 4), np.float64)
        cand[:, :2] = xy
        cand[:, 2] = xy[:, 0] + w
        cand[:, 3] = xy[:, 1] + h
        ok = np.flatnonzero(overlap_ok(cand, occupied, max_overlap))
        if len(ok):
            return int(xy[ok[0], 0]), int(xy[ok[0], 1])
    return None


def fit_background(bg: np.ndarray, canvas: Optional[Tuple[int, int]], fit: str,
                   rng: np.random.Generator, copy: bool = True) -> np.ndarray:
    """The background at canvas size: ``crop`` takes a random window where it is larger and pads (black) where it
    is smaller; ``resize`` stretches it; ``pad`` keeps it at the top-left, padding or cutting the rest.

    With ``copy=False`` the result may be a view of ``bg`` (for callers that own ``bg`` and paste into it)."""
    if bg.ndim == 2:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)
    bg = bg[:, :, :3]
    if canvas is None:
        return bg.copy() if copy else bg
    W, H = canvas
    h, w = bg.shape[:2]
    if fit == "resize":
        return cv2.resize(bg, (W, H), interpolation=cv2.INTER_AREA if w > W or h > H else cv2.INTER_LINEAR)
    x = int(rng.integers(0, w - W + 1)) if (fit == "crop" and w > W) else 0
    y = int(rng.integers(0, h - H + 1)) if (fit == "crop" and h > H) else 0
    part = bg[y:y + H, x:x + W]
    if part.shape[:2] == (H, W):
        return part.copy() if copy else part
    return cv2.copyMakeBorder(part, 0, H - part.shape[0], 0, W - part.shape[1], cv2.BORDER_CONSTANT, value=0)


def compose(canvas: np.ndarray, placed: Sequence[Placed], blend: str = "none", inplace: bool = False) -> np.ndarray:
    """Paste every placed sprite (in order) on ``canvas`` (a copy of it unless ``inplace``)."""
    out = canvas if inplace else canvas.copy()
    for p in placed:
        h, w = p.alpha.shape
        region = out[p.y:p.y + h, p.x:p.x + w]
        if blend == "poisson":
            region[...] = _poisson(region, p)
            continue
        a = p.alpha
        if blend == "gaussian":
            a = np.minimum(cv2.GaussianBlur(a, (5, 5), 1.0), a)  # softened edges, never more opaque
        # out = colour * a/255 + background * (255 - a)/255: saturating uint8 OpenCV arithmetic, each product
        # rounded (within 1 of the exact blend), a few times faster than float blending on object-sized arrays.
        a3 = cv2.merge([a, a, a])
        fg = cv2.multiply(p.color, a3, scale=1.0 / 255.0)
        back = cv2.multiply(region, cv2.bitwise_not(a3), scale=1.0 / 255.0)
        cv2.add(fg, back, dst=region)  # written straight into the canvas
    return out


def _poisson(region: np.ndarray, p: Placed) -> np.ndarray:
    """OpenCV seamlessClone of the sprite into its region (colour adapted to the surroundings)."""
    mask = np.where(p.alpha > 127, 255, 0).astype(np.uint8)
    if not mask.any():
        return region
    src = np.ascontiguousarray(p.color)
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
    rounds: int = 5


@dataclass
class SynthResult:
    image: np.ndarray
    boxes: np.ndarray       # (N, 4) canvas coordinates
    quads: np.ndarray       # (N, 4, 2)
    names: List[str]
    instance: Optional[np.ndarray] = None  # (H, W) uint8: 0 background, k+1 object k (visible pixels)
    dropped_too_large: int = 0
    dropped_no_room: int = 0


def choose_classes(classes: Sequence[str], weights: Dict[str, float], n: int, rng: np.random.Generator) -> List[str]:
    p = np.array([weights.get(c, 0.0 if weights else 1.0) for c in classes], np.float64)
    if p.sum() <= 0:
        raise ValueError("class weights are all zero")
    return [classes[i] for i in rng.choice(len(classes), size=n, p=p / p.sum())]


def synthesize(background: np.ndarray, pick_sprite, classes: Sequence[str], params: SynthParams,
               rng: np.random.Generator, masks: bool = False, reuse_background: bool = False) -> SynthResult:
    """One synthetic image.  ``pick_sprite(class_name, rng) -> Sprite`` supplies object crops.

    Every random choice comes from ``rng`` in a fixed order, so the same generator state gives the same image.
    ``background`` is left untouched unless ``reuse_background`` (then objects may be pasted into it directly,
    saving a copy of the canvas).
    """
    canvas = fit_background(background, params.canvas, params.fit, rng, copy=not reuse_background)
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
    image = compose(canvas, placed, params.blend, inplace=True)
    offsets = np.array([[p.x, p.y] for p in placed], np.float64).reshape(-1, 2)
    boxes = np.array([p.box for p in placed], np.float64).reshape(-1, 4) + np.tile(offsets, 2)
    quads = np.array([p.quad for p in placed], np.float64).reshape(-1, 4, 2) + offsets[:, None, :]
    instance = None
    if masks:
        instance = np.zeros((H, W), np.uint8)
        for k, p in enumerate(placed):
            h, w = p.alpha.shape
            region = instance[p.y:p.y + h, p.x:p.x + w]
            region[p.alpha > params.alpha_threshold] = min(k + 1, 254)
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


# ---- option values: the rules of the knobs above (each raises ValueError with a sentence) -------------------------

def parse_range(text: str, cast=float) -> Tuple[float, float]:
    """``"LOW:HIGH"`` or a single value (``LOW == HIGH``)."""
    try:
        parts = [cast(v) for v in str(text).split(":")]
    except ValueError as e:
        raise ValueError(f"expected LOW:HIGH or a single value, not '{text}'") from e
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(math.isfinite(p) for p in parts) or parts[0] > parts[1]:
        raise ValueError(f"expected LOW:HIGH with LOW <= HIGH, not '{text}'")
    return parts[0], parts[1]


def parse_counts(text: str, limit: int = 10000) -> Tuple[int, ...]:
    """Objects per image: a list (``4,8,16``) or a range (``4:64``); each count from 0 to ``limit``."""
    try:
        if ":" in text:
            lo, hi = parse_range(text, int)
            values = tuple(range(lo, hi + 1))
        else:
            values = tuple(int(v) for v in text.split(","))
    except ValueError as e:
        raise ValueError(f"expected a list (4,8,16) or a range (4:64), not '{text}'") from e
    if not values or min(values) < 0 or max(values) > limit:
        raise ValueError(f"counts must be from 0 to {limit}, not '{text}'")
    return values


def parse_weights(text: Optional[str], classes: Sequence[str]) -> Tuple[Tuple[str, float], ...]:
    """``car=2,bus=1``: per-class weights (classes not named get 0); at least one positive."""
    if not text:
        return ()
    out = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        name, sep, value = item.partition("=")
        try:
            w = float(value)
        except ValueError as e:
            raise ValueError(f"expected NAME=WEIGHT, not '{item}'") from e
        if not sep or not w >= 0 or not math.isfinite(w):
            raise ValueError(f"expected NAME=WEIGHT with a finite WEIGHT >= 0, not '{item}'")
        if name not in classes:
            raise ValueError(f"no object folder '{name}' (classes: {', '.join(classes)})")
        out.append((name, w))
    if sum(w for _, w in out) <= 0:
        raise ValueError("at least one weight must be positive")
    return tuple(out)


def canvas_bytes(canvas: Tuple[int, int], masks: bool = False) -> int:
    """Memory one synthetic image needs at most: the canvas, its encoded copy and working arrays."""
    w, h = canvas
    return w * h * (3 * 3 + (2 if masks else 0))
