"""Synthetic training images: object crops pasted, rotated and scaled, onto backgrounds ("Cut, Paste and Learn").

Pure functions over numpy arrays and a ``numpy.random.Generator``; file I/O lives in ``jobs/synth.py``.

* A :class:`Sprite` is an object crop: BGR pixels and an alpha (the PNG's alpha channel -- the object's silhouette
  when ``dsprep crop`` had its mask -- or 255 where the crop is not black).
* :func:`plan_fit` / :func:`apply_fit` turn a background into the canvas: ``cover`` (default) scales it to cover
  the canvas and cuts a random window, so no image is padded; the scale it used is the scale objects are drawn at
  (times a jitter), so an object keeps its size against the scene it came from.
* :func:`transform_sprite` flips, scales and rotates a sprite with smooth interpolation, the alpha with it (colour
  first bled into transparent pixels, so no dark fringe), softens its edge (:func:`soften_edges`: feathering by
  default), and returns its exact annotation *after* all that: the tight box of the pixels whose final alpha is above
  ``alpha_threshold``, and the rotated rectangle of those pixels (the DOTA quad).
* :func:`place` finds a position whose box overlaps no placed box by more than ``max_overlap`` (intersection over
  the smaller box) and that an ``accept`` test takes (no blanked region under it; no earlier object hidden beyond
  ``max_occlusion`` of its visible pixels), testing a bounded number of random candidates at once: it always
  terminates; an object that does not fit is dropped and counted.
* :func:`compose` pastes the placed sprites in order (alpha, or Poisson blending), each optionally colour-matched to
  where it lands (:func:`harmonize`).
* :func:`synthesize` does one whole image, deterministically for a given generator.  When objects may overlap it
  keeps a map of which object owns each visible pixel: boxes and masks are those of the visible parts, hidden
  fractions decide ``truncated`` and which objects are too hidden to annotate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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

    def premultiplied(self, edge_width: float) -> np.ndarray:
        """``(h + 2p, w + 2p, 4)`` uint8 BGRA, padded by ``PAD`` transparent pixels: the alpha softened by an inward
        feather ``edge_width`` sprite pixels wide (:func:`soften_edges`; 0: as it is), the colour premultiplied by
        that alpha (computed once per sprite and width).

        Bilinear interpolation of premultiplied colour is exact compositing arithmetic: warping this gives the
        colour to add over the background's remaining share directly, with no fringe and no bleeding needed.
        """
        key = ("premultiplied", edge_width)
        if key not in self._cache:
            variants = [k for k in self._cache if k[0] == "premultiplied"]
            if len(variants) >= MAX_VARIANTS:  # bounded memory: the oldest variant goes (dicts keep insertion order)
                del self._cache[variants[0]]
            a = soften_edges(self.alpha, "feather", edge_width) if edge_width > 0 else self.alpha
            color = cv2.multiply(self.bgr, cv2.merge([a, a, a]), scale=1.0 / 255.0)
            self._cache[key] = cv2.copyMakeBorder(np.dstack([color, a]), PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT,
                                                  value=0)
        return self._cache[key]


PAD = 2
FEATHER_STEPS = 4  # feathered variants of a sprite per octave of scale: the width drawn is within 9% of the asked
MAX_VARIANTS = 4   # feathered variants kept per sprite (the jitter's range spans about three)


def edge_width(blend: str, feather: float, scale: float) -> float:
    """The feather width in *sprite* pixels that becomes ``feather`` canvas pixels at ``scale`` (scales rounded to
    quarter octaves, so a sprite is feathered once per quarter octave it is drawn at); 0 for hard edges."""
    if blend == "gaussian":
        feather = 2.0
    elif blend != "feather" or feather < 0.5:
        return 0.0  # hard edges
    level = round(math.log2(max(scale, 1e-6)) * FEATHER_STEPS)
    return feather / 2.0 ** (level / FEATHER_STEPS)


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

    color: np.ndarray   # (h, w, 3) uint8: premultiplied by alpha, or (premultiplied False) straight colour
    alpha: np.ndarray   # (h, w) uint8: the alpha pasted
    box: Sequence[float]   # x0, y0, x1, y1: tight box of visible pixels, sprite coordinates (0-based, continuous)
    quad: Sequence         # 4 (x, y) corners: rotated rectangle of the visible pixels, sprite coordinates
    name: str = ""
    x: int = 0
    y: int = 0
    premultiplied: bool = False

    def straight(self) -> np.ndarray:
        """The colour not premultiplied (where the alpha is 0: black)."""
        if not self.premultiplied:
            return self.color
        a3 = cv2.merge([self.alpha, self.alpha, self.alpha])
        return cv2.divide(self.color, a3, scale=255.0)

    @property
    def extent(self) -> Tuple[int, int, int, int]:
        h, w = self.alpha.shape
        return self.x, self.y, self.x + w, self.y + h


def _visible_box(alpha: np.ndarray, threshold: int) -> Optional[Tuple[int, int, int, int]]:
    """Tight ``x0, y0, x1, y1`` (exclusive ends) of the pixels with ``alpha > threshold``, or None."""
    mask = cv2.compare(alpha, threshold, cv2.CMP_GT) if threshold > 0 else alpha
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return x, y, x + w, y + h


def transform_sprite(sprite: Sprite, angle: float, scale: float, flip_h: bool = False, flip_v: bool = False,
                     alpha_threshold: int = 127, blend: str = "none", feather: float = 0.0) -> Optional[Placed]:
    """Flip, scale and rotate (degrees, counter-clockwise) a sprite whose edge is softened for ``blend`` (see
    :func:`soften_edges`).  Returns ``None`` when nothing stays visible.

    The output is cropped to the pixels with any alpha; ``box`` is the tight box of pixels whose final alpha (the
    one pasted) is above the threshold, ``quad`` the visible rectangle of the unrotated sprite carried through the
    same transform.
    """
    h, w = sprite.alpha.shape
    vis = sprite.visible(alpha_threshold)
    if vis is None:
        return None
    # One affine map in pixel-index space (what warpAffine uses): flips first, then scale and rotation about the
    # centre (as cv2.getRotationMatrix2D: counter-clockwise on screen).  Folding the flips into the matrix avoids
    # copying flipped arrays; plain floats, because numpy's per-call cost dominates on 2x3 matrices (this function
    # runs for every object: its arithmetic is written out).
    rad = math.radians(angle)
    ca, sa = scale * math.cos(rad), scale * math.sin(rad)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    fx, fy = (-1.0 if flip_h else 1.0), (-1.0 if flip_v else 1.0)
    tx, ty = ((w - 1.0) if flip_h else 0.0), ((h - 1.0) if flip_v else 0.0)
    a, b = ca * fx, sa * fy
    d, e = -sa * fx, ca * fy
    c = ca * tx + sa * ty + (1 - ca) * cx - sa * cy
    f = -sa * tx + ca * ty + sa * cx + (1 - ca) * cy
    # Continuous coordinates (pixel i spans [i, i+1)) through the index-space map: x' = a x + b y + kx, so over
    # the corners of a rectangle the extremes are kx + (a x0 or a x1) + (b y0 or b y1).
    kx, ky = c + 0.5 - 0.5 * (a + b), f + 0.5 - 0.5 * (d + e)
    aw, bh, dw, eh = a * w, b * h, d * w, e * h
    lox = math.floor(kx + min(0.0, aw) + min(0.0, bh)) - 1
    loy = math.floor(ky + min(0.0, dw) + min(0.0, eh)) - 1
    ow = math.ceil(kx + max(0.0, aw) + max(0.0, bh)) + 1 - lox
    oh = math.ceil(ky + max(0.0, dw) + max(0.0, eh)) + 1 - loy
    c -= lox
    f -= loy
    kx -= lox
    ky -= loy
    # the cached sprite is padded by PAD pixels: x_unpadded = x_padded - PAD
    mp = np.array(((a, b, c - (a + b) * PAD), (d, e, f - (d + e) * PAD)))
    # Constant (transparent black) border: a sample that reaches outside the sprite only mixes pixels of the
    # transparent PAD ring with it, so its alpha is 0 and its colour never shows (and it is 2x faster than
    # BORDER_REPLICATE).
    premultiplied = blend != "poisson"
    src = sprite.premultiplied(edge_width(blend, feather, scale)) if premultiplied else sprite.bled()
    warped = cv2.warpAffine(src, mp, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a8 = cv2.extractChannel(warped, 3)
    if not premultiplied:
        a8 = soften_edges(a8, blend, feather, alpha_threshold)
    tx0, ty0, tw, th = cv2.boundingRect(cv2.compare(a8, alpha_threshold, cv2.CMP_GT) if alpha_threshold > 0 else a8)
    if tw == 0:
        return None
    ax0, ay0, aw_, ah_ = cv2.boundingRect(a8)
    vx0, vy0, vx1, vy1 = vis
    corners = [(kx + a * px + b * py, ky + d * px + e * py) for px, py in ((vx0, vy0), (vx1, vy0), (vx1, vy1),
                                                                          (vx0, vy1))]
    (qx0, qy0), (qx1, qy1), (qx2, qy2), (qx3, qy3) = corners
    # The sprite's extent holds every pixel with any alpha and the whole quad, so placing the extent inside the
    # canvas keeps boxes and quads inside the image.
    x0 = max(0, min(ax0, math.floor(min(qx0, qx1, qx2, qx3))))
    y0 = max(0, min(ay0, math.floor(min(qy0, qy1, qy2, qy3))))
    x1 = min(ow, max(ax0 + aw_, math.ceil(max(qx0, qx1, qx2, qx3))))
    y1 = min(oh, max(ay0 + ah_, math.ceil(max(qy0, qy1, qy2, qy3))))
    quad = ((qx0 - x0, qy0 - y0), (qx1 - x0, qy1 - y0), (qx2 - x0, qy2 - y0), (qx3 - x0, qy3 - y0))
    box = (tx0 - x0, ty0 - y0, tx0 + tw - x0, ty0 + th - y0)
    return Placed(cv2.cvtColor(warped[y0:y1, x0:x1], cv2.COLOR_BGRA2BGR), a8[y0:y1, x0:x1], box, quad,
                  sprite.name, premultiplied=premultiplied)


BLENDS = ("feather", "none", "gaussian", "poisson")


def soften_edges(alpha: np.ndarray, blend: str, feather: float = 2.0, threshold: int = 127) -> np.ndarray:
    """The alpha a sprite is pasted with, for each ``blend``:

    * ``feather``: a soft edge about ``feather`` pixels wide, inside the silhouette only (the alpha is never raised:
      no background colour leaks in around the object): ``min(alpha, GaussianBlur(alpha, sigma = feather / 2))``;
      widths below 0.25 pixel leave the alpha as it is;
    * ``gaussian``: ``feather`` 2 (kept for existing command lines);
    * ``poisson``: binary, 255 where ``alpha > threshold`` (exactly the pixels Poisson cloning replaces);
    * ``none``: unchanged.

    :func:`transform_sprite` feathers the sprite before warping it, at the width that becomes ``feather`` canvas
    pixels at the drawn scale (:func:`edge_width`); boxes and masks are computed from the warped alpha, so they
    describe the pixels as pasted.
    """
    if blend == "poisson":
        return cv2.compare(alpha, threshold, cv2.CMP_GT)
    if blend == "gaussian":
        blend, feather = "feather", 2.0
    if blend == "feather" and feather >= 0.25:
        sigma = feather / 2.0
        k = 2 * int(math.ceil(2.5 * sigma)) + 1
        return cv2.min(alpha, cv2.GaussianBlur(alpha, (k, k), sigma))
    return alpha


def overlap_ok(cand: np.ndarray, boxes: np.ndarray, max_overlap: float) -> np.ndarray:
    """For ``(K, 4)`` candidate boxes against ``(M, 4)`` placed boxes: intersection over the smaller box is at most
    ``max_overlap`` for all of them (with ``max_overlap == 0``: disjoint interiors)."""
    if len(boxes) == 0 or max_overlap >= 1:
        return np.ones(len(cand), bool)
    c, b = cand[:, None, :], boxes[None, :, :]
    if max_overlap <= 0:  # disjoint interiors: no positive-area intersection (fewest array operations)
        hit = (c[..., 0] < b[..., 2]) & (b[..., 0] < c[..., 2]) & (c[..., 1] < b[..., 3]) & (b[..., 1] < c[..., 3])
        return ~hit.any(axis=1)
    ix = np.minimum(c[..., 2], b[..., 2]) - np.maximum(c[..., 0], b[..., 0])
    iy = np.minimum(c[..., 3], b[..., 3]) - np.maximum(c[..., 1], b[..., 1])
    inter = np.maximum(ix, 0) * np.maximum(iy, 0)
    area_c = (c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return (inter <= (max_overlap + 1e-12) * np.maximum(np.minimum(area_c, area_b), 1e-9)).all(axis=1)


def place(size: Tuple[int, int], extent: Tuple[int, int], occupied: np.ndarray, max_overlap: float,
          rng: np.random.Generator, candidates: int = 64, rounds: int = 5,
          accept: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> Optional[Tuple[int, int]]:
    """A top-left position for an ``extent = (w, h)`` sprite on a ``size = (W, H)`` canvas, or ``None``; its
    centre uniform over the canvas (moved inside by at most half the sprite's size where it would stick out).

    Tests random positions in batches (4, 16, then ``candidates`` per round, ``rounds`` rounds): bounded work,
    always terminates.  ``accept(xy (k, 2)) -> (k,) bool`` is a further test of positions that pass the box test; it
    is asked about 8 of them at a time, in order, and the first accepted one is taken.
    """
    W, H = size
    w, h = extent
    if w > W or h > H:
        return None
    # The centre is drawn uniformly over the canvas and the extent then moved inside it: drawing the corner
    # uniformly would crowd the centres of large objects into the middle of the canvas (they could never be
    # nearer an edge than half their size), and a third of the canvas would hold a third of the objects only for
    # small ones.
    span = np.array([W, H], np.float64)
    half = np.array([w / 2.0, h / 2.0])
    top = np.array([W - w, H - h], np.float64)
    for r in range(rounds):
        k = min(candidates, 4 ** (r + 1))  # 4, 16, then full batches: cheap when the canvas is still empty
        xy = np.clip(np.floor(rng.random((k, 2)) * span - half), 0, top).astype(np.int64)
        if len(occupied) == 0 and accept is None:
            return int(xy[0, 0]), int(xy[0, 1])
        if accept is None and max_overlap <= 0 and k * len(occupied) <= 128:
            # Few candidates and boxes (the common case): plain Python tests them in order, stopping at the first
            # free one, faster than a dozen array operations on tiny arrays; the same answer as the array test.
            boxes = occupied.tolist()
            for cx, cy in xy.tolist():
                if not any(cx < bx1 and bx0 < cx + w and cy < by1 and by0 < cy + h for bx0, by0, bx1, by1 in boxes):
                    return cx, cy
            continue
        if len(occupied) and max_overlap <= 0:  # disjoint extents (the default): the fewest array operations
            x, y, b = xy[:, :1], xy[:, 1:], occupied
            free = ~((x < b[:, 2]) & (b[:, 0] < x + w) & (y < b[:, 3]) & (b[:, 1] < y + h)).any(axis=1)
            if accept is None:
                i = int(free.argmax())
                if free[i]:
                    return int(xy[i, 0]), int(xy[i, 1])
                continue
            ok = np.flatnonzero(free)
        elif len(occupied) and max_overlap < 1:
            cand = np.empty((k, 4), np.float64)
            cand[:, :2] = xy
            cand[:, 2] = xy[:, 0] + w
            cand[:, 3] = xy[:, 1] + h
            ok = np.flatnonzero(overlap_ok(cand, occupied, max_overlap))
        else:
            ok = np.arange(k)
        if accept is None:
            if len(ok):
                return int(xy[ok[0], 0]), int(xy[ok[0], 1])
            continue
        for s in range(0, len(ok), 8):
            chunk = ok[s:s + 8]
            good = accept(xy[chunk])
            if good.any():
                i = chunk[int(np.argmax(good))]
                return int(xy[i, 0]), int(xy[i, 1])
    return None


# ---- the canvas: fitting the background ---------------------------------------------------------------------------

FITS = ("cover", "crop", "resize", "pad")


@dataclass(frozen=True)
class Fit:
    """How a background becomes the canvas: the ``window = (x, y, w, h)`` of background pixels used is scaled to
    ``size = (W, H)``; with ``pad`` it is placed at the top-left unscaled and the rest is black."""

    window: Tuple[int, int, int, int]
    size: Tuple[int, int]
    pad: bool = False

    @property
    def scale(self) -> Tuple[float, float]:
        """Canvas pixels per background pixel, ``(sx, sy)``."""
        if self.pad:
            return 1.0, 1.0
        return self.size[0] / self.window[2], self.size[1] / self.window[3]

    @property
    def object_scale(self) -> float:
        """The background's scale (geometric mean of ``sx`` and ``sy``): objects are drawn at this scale times the
        jitter, so they keep their size against the scene."""
        sx, sy = self.scale
        return math.sqrt(sx * sy)


def plan_fit(bg_size: Tuple[int, int], canvas: Optional[Tuple[int, int]], fit: str,
             rng: np.random.Generator) -> Fit:
    """The :class:`Fit` of a ``bg_size = (w, h)`` background to the canvas ``(W, H)`` (None: its own size).

    * ``cover``: scaled by ``max(W / w, H / h)`` (up or down) so it covers the canvas, then a random window;
    * ``crop``: a random window at the background's own scale, scaled up (never padded) where it is smaller;
    * ``resize``: the whole background stretched to the canvas;
    * ``pad``: kept at the top-left at its own scale; the rest of the canvas is black, what sticks out is cut.

    Draws two integers from ``rng`` for ``cover`` and ``crop`` (the window position), none otherwise.
    """
    w, h = bg_size
    if canvas is None:
        return Fit((0, 0, w, h), (w, h))
    W, H = canvas
    if fit == "pad":
        return Fit((0, 0, min(w, W), min(h, H)), (W, H), pad=True)
    if fit == "resize":
        return Fit((0, 0, w, h), (W, H))
    if fit not in ("cover", "crop"):
        raise ValueError(f"unknown fit '{fit}' (choose from {', '.join(FITS)})")
    s = max(W / w, H / h)
    if fit == "crop":
        s = max(s, 1.0)
    ww = min(w, max(1, int(round(W / s))))
    wh = min(h, max(1, int(round(H / s))))
    x = int(rng.integers(0, w - ww + 1))
    y = int(rng.integers(0, h - wh + 1))
    return Fit((x, y, ww, wh), (W, H))


def apply_fit(img: np.ndarray, fit: Fit, mask: bool = False, copy: bool = True) -> np.ndarray:
    """The canvas made from ``img`` by ``fit``.  ``mask``: ``img`` is a 0/255 mask, scaled so that every canvas
    pixel any masked background pixel reaches is 255 (a superset: nothing is lost when scaling down).  With
    ``copy=False`` the result may be a view of ``img`` (for callers that own ``img`` and paste into it)."""
    x, y, w, h = fit.window
    W, H = fit.size
    part = img[y:y + h, x:x + w]
    if fit.pad:
        if part.shape[:2] == (H, W):
            return part.copy() if copy else part
        return cv2.copyMakeBorder(part, 0, H - part.shape[0], 0, W - part.shape[1], cv2.BORDER_CONSTANT, value=0)
    if (w, h) == (W, H):
        return part.copy() if copy else part
    if mask:
        if W < w or H < h:  # bilinear sampling can step over a thin masked line: widen it by one pixel first
            part = cv2.dilate(part, np.ones((3, 3), np.uint8))
        return cv2.compare(cv2.resize(part, (W, H), interpolation=cv2.INTER_LINEAR), 0, cv2.CMP_GT)
    # Bilinear down to half size (aliasing is mild there, and it is 5x faster than area averaging); area below.
    interp = cv2.INTER_AREA if (W < w / 2 or H < h / 2) else cv2.INTER_LINEAR
    return cv2.resize(part, (W, H), interpolation=interp)


# ---- colour: harmonizing an object with where it lands --------------------------------------------------------------

HARMONIZE_GAIN = (1 / 3, 3.0)  # contrast changes are bounded: a flat object never gets a textured region's noise


def harmonize_luts(obj_mean: np.ndarray, obj_std: np.ndarray, region_mean: np.ndarray, region_std: np.ndarray,
                   strength: float) -> np.ndarray:
    """``(256, 3) uint8`` per-channel tables that move an object's channel means and standard deviations toward a
    region's: target mean ``m_o + s (m_r - m_o)``, target std ``sd_o^(1-s) sd_r^s``, i.e.
    ``v -> round((v - m_o) * gain + target mean)`` with ``gain = target std / sd_o`` bounded by
    :data:`HARMONIZE_GAIN` (1 where the object is flat)."""
    mo, so = np.asarray(obj_mean, np.float64).reshape(-1), np.asarray(obj_std, np.float64).reshape(-1)
    mr, sr = np.asarray(region_mean, np.float64).reshape(-1), np.asarray(region_std, np.float64).reshape(-1)
    target = mo + strength * (mr - mo)
    gain = np.where(so > 1.0, np.power(np.maximum(sr, 1e-6) / np.maximum(so, 1e-6), strength), 1.0)
    gain = np.clip(gain, *HARMONIZE_GAIN)
    v = np.arange(256, dtype=np.float64)[:, None]
    return np.clip(np.floor((v - mo) * gain + target + 0.5), 0, 255).astype(np.uint8)


def harmonize(color: np.ndarray, alpha: np.ndarray, region: np.ndarray, threshold: int = 127,
              strength: float = 0.5) -> np.ndarray:
    """The object's colour (``(h, w, 3)`` BGR uint8) with its CIE Lab statistics over its visible pixels
    (``alpha > threshold``) moved toward those of ``region`` (the canvas pixels it lands on) by ``strength`` (0:
    unchanged, 1: the same mean and spread as the region).  One Lab conversion each way and a lookup table."""
    if strength <= 0 or region.size == 0:
        return color
    vis = cv2.compare(alpha, threshold, cv2.CMP_GT)
    if not cv2.countNonZero(vis):
        return color
    lab = cv2.cvtColor(color, cv2.COLOR_BGR2LAB)
    mo, so = cv2.meanStdDev(lab, mask=vis)
    mr, sr = cv2.meanStdDev(cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2LAB))
    lut = harmonize_luts(mo, so, mr, sr, strength)
    return cv2.cvtColor(cv2.LUT(lab, lut.reshape(1, 256, 3)), cv2.COLOR_LAB2BGR)


def compose(canvas: np.ndarray, placed: Sequence[Placed], blend: str = "none", inplace: bool = False,
            harmonize_strength: float = 0.0, alpha_threshold: int = 127) -> np.ndarray:
    """Paste every placed sprite (in order, later ones on top) on ``canvas`` (a copy of it unless ``inplace``).

    Each sprite's alpha is used as it is (:func:`transform_sprite` already softened it; its colour is premultiplied
    by it); ``poisson`` clones its visible pixels instead.  With ``harmonize_strength`` each sprite is first
    colour-matched to the canvas region it lands on, as composed so far (:func:`harmonize`)."""
    out = canvas if inplace else canvas.copy()
    for p in placed:
        h, w = p.alpha.shape
        region = out[p.y:p.y + h, p.x:p.x + w]
        a = p.alpha
        color = p.color
        if harmonize_strength:
            color = harmonize(p.straight(), a, region, alpha_threshold, harmonize_strength)
            if p.premultiplied:
                color = cv2.multiply(color, cv2.merge([a, a, a]), scale=1.0 / 255.0)
        if not p.premultiplied:
            if blend == "poisson":
                region[...] = _poisson(region, color, a)
                continue
            color = cv2.multiply(color, cv2.merge([a, a, a]), scale=1.0 / 255.0)
        # out = colour x a/255 (premultiplied) + background x (255 - a)/255: saturating uint8 OpenCV arithmetic,
        # each product rounded (within 1 of the exact blend), a few times faster than float blending on
        # object-sized arrays.
        inv = cv2.bitwise_not(a)
        back = cv2.multiply(region, cv2.merge([inv, inv, inv]), scale=1.0 / 255.0)
        cv2.add(color, back, dst=region)  # written straight into the canvas
    return out


def _poisson(region: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """OpenCV seamlessClone of the sprite's visible pixels (``alpha`` is binary here, see :func:`soften_edges`)
    into its region (colour adapted to the surroundings)."""
    mask = alpha
    if not mask.any():
        return region
    src = np.ascontiguousarray(color)
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


# ---- one image --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthParams:
    """Every knob of :func:`synthesize`, with its documented default."""

    canvas: Optional[Tuple[int, int]] = None   # (W, H); None: the background's own size
    fit: str = "cover"
    per_image: Tuple[int, ...] = (4, 8, 16)    # the object count is drawn from these
    rotate: Tuple[float, float] = (-15.0, 15.0)   # small: objects stay about upright (0:360 for aerial views)
    scale: Optional[Tuple[float, float]] = None  # absolute scale range; None: jitter x the background's scale
    jitter: Tuple[float, float] = (0.8, 1.2)   # scale relative to the background's (when scale is None)
    flip: str = "h"                            # none | h | v | hv: each named flip with probability 1/2
    class_weights: Tuple[Tuple[str, float], ...] = ()
    max_overlap: Optional[float] = None        # box overlap (IoS); None: 0 unless max_occlusion > 0, then 1
    max_occlusion: float = 0.0                 # hidden fraction of an object's visible pixels placement allows
    truncated_above: float = 0.15              # hidden fraction above which an object is marked truncated
    drop_above: float = 0.7                    # hidden fraction above which an object is not annotated
    blend: str = "feather"
    feather: float = 2.0                       # soft edge width (pixels) for blend == "feather"
    harmonize: float = 0.0                     # colour-matching strength (0: off)
    avoid_blanked: bool = False                # keep objects off the background's blanked regions (filled: no)
    alpha_threshold: int = 127
    candidates: int = 64
    rounds: int = 5

    @property
    def box_overlap(self) -> float:
        if self.max_overlap is not None:
            return self.max_overlap
        return 0.0 if self.max_occlusion <= 0 else 1.0


@dataclass
class SynthResult:
    image: np.ndarray
    boxes: np.ndarray       # (N, 4) canvas coordinates: tight boxes of the visible pixels
    quads: np.ndarray       # (N, 4, 2)
    names: List[str]
    instance: Optional[np.ndarray] = None  # (H, W) uint8: 0 background, k+1 object k (visible pixels), 255 void
    dropped_too_large: int = 0
    dropped_no_room: int = 0
    truncated: Optional[np.ndarray] = None  # (N,) bool: more than truncated_above of the object is hidden
    hidden: int = 0         # objects pasted but hidden beyond drop_above: not annotated (void in the masks)
    scale: float = 1.0      # the background's scale (objects are drawn at jitter x this)


def choose_classes(classes: Sequence[str], weights: Dict[str, float], n: int, rng: np.random.Generator) -> List[str]:
    """``n`` classes drawn with probabilities proportional to ``weights`` (all equal without weights)."""
    p = np.array([weights.get(c, 0.0 if weights else 1.0) for c in classes], np.float64)
    if p.sum() <= 0:
        raise ValueError("class weights are all zero")
    cdf = np.cumsum(p)
    # inverse-CDF sampling (what Generator.choice does with p, without its checks: 20x cheaper here); a class of
    # weight 0 spans an empty interval and is never drawn
    idx = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(classes) - 1)
    return [classes[i] for i in idx.tolist()]


class _Occupancy:
    """Placement state of one canvas: the placed extents, the blanked regions (an integral image), and -- when
    objects may overlap -- which object owns each visible pixel (``owner``: 0 none, k + 1 object k), each object's
    visible area when placed and how much of it later objects hid."""

    def __init__(self, size: Tuple[int, int], keepout: Optional[np.ndarray], track: bool, max_occlusion: float,
                 capacity: int = 16):
        W, H = size
        self._extents = np.zeros((max(capacity, 1), 4), np.float64)
        self.n = 0
        self.keep = cv2.integral(cv2.compare(keepout, 0, cv2.CMP_GT) // 255) if keepout is not None else None
        if self.keep is not None and not self.keep[-1, -1]:
            self.keep = None  # nothing blanked inside this canvas
        self.owner = np.zeros((H, W), np.uint16) if track else None
        self.max_occlusion = max_occlusion
        self.area = np.zeros(0, np.int64)
        self.hidden = np.zeros(0, np.int64)

    @property
    def extents(self) -> np.ndarray:
        """``(n, 4)`` extents placed so far (a view)."""
        return self._extents[:self.n]

    def accept_for(self, t: Placed, threshold: int) -> Optional[Callable[[np.ndarray], np.ndarray]]:
        """The test of candidate positions for sprite ``t`` beyond the box test, or None when there is none."""
        h, w = t.alpha.shape
        vis = t.alpha > threshold if self.owner is not None and len(self.area) else None
        if self.keep is None and vis is None:
            return None
        keep = self.keep

        def accept(xy: np.ndarray) -> np.ndarray:
            x, y = xy[:, 0], xy[:, 1]
            ok = np.ones(len(xy), bool)
            if keep is not None:  # no blanked pixel inside the extent (integral image: four look-ups each)
                ok &= (keep[y + h, x + w] - keep[y, x + w] - keep[y + h, x] + keep[y, x]) == 0
            if vis is not None and ok.any():
                ok[ok] = self._occlusion_ok(xy[ok], vis)
            return ok
        return accept

    def _occlusion_ok(self, xy: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """Whether the new object's visible pixels at each position hide no earlier object beyond
        ``max_occlusion`` of its visible area (counting what is hidden already)."""
        h, w = vis.shape
        n = len(self.area)
        ex = self.extents
        touch = ((np.minimum(xy[:, None, 0] + w, ex[None, :, 2]) > np.maximum(xy[:, None, 0], ex[None, :, 0])) &
                 (np.minimum(xy[:, None, 1] + h, ex[None, :, 3]) > np.maximum(xy[:, None, 1], ex[None, :, 1]))
                 ).any(axis=1)
        ok = np.ones(len(xy), bool)
        if not touch.any():
            return ok
        idx = np.flatnonzero(touch)
        windows = np.lib.stride_tricks.sliding_window_view(self.owner, (h, w))[xy[idx, 1], xy[idx, 0]]
        under = windows[:, vis].astype(np.int64) + (n + 1) * np.arange(len(idx))[:, None]
        counts = np.bincount(under.ravel(), minlength=len(idx) * (n + 1)).reshape(len(idx), n + 1)[:, 1:]
        allowed = np.floor(self.max_occlusion * self.area + 1e-9).astype(np.int64)
        ok[idx] = ((self.hidden[None, :] + counts) <= allowed[None, :]).all(axis=1)
        return ok

    def add(self, t: Placed, threshold: int) -> None:
        x0, y0, x1, y1 = t.extent
        if self.n == len(self._extents):
            self._extents = np.concatenate([self._extents, np.zeros_like(self._extents)])
        self._extents[self.n] = (x0, y0, x1, y1)
        self.n += 1
        if self.owner is None:
            return
        vis = t.alpha > threshold
        region = self.owner[y0:y1, x0:x1]
        n = len(self.area)
        counts = np.bincount(region[vis].astype(np.int64), minlength=n + 1)[1:]
        self.hidden = self.hidden + counts
        region[vis] = n + 1
        self.area = np.append(self.area, int(np.count_nonzero(vis)))
        self.hidden = np.append(self.hidden, 0)


def _pixel_quad(vis: np.ndarray) -> np.ndarray:
    """``(4, 2)`` the smallest rotated rectangle holding every pixel square (``[i, i+1)``) of a bool mask."""
    pts = cv2.findNonZero(vis.view(np.uint8))
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float32)
    corners = (hull[:, None, :] + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)[None]).reshape(-1, 2)
    return cv2.boxPoints(cv2.minAreaRect(corners)).astype(np.float64)


def synthesize(background: np.ndarray, pick_sprite, classes: Sequence[str], params: SynthParams,
               rng: np.random.Generator, masks: bool = False, reuse_background: bool = False,
               keepout: Optional[np.ndarray] = None) -> SynthResult:
    """One synthetic image.  ``pick_sprite(class_name, rng) -> Sprite`` supplies object crops.

    ``keepout``: ``(h, w)`` uint8 mask over the background, non-zero where an object was blanked; objects are kept
    off it when ``params.avoid_blanked`` (by default they are not: a filled region is background like any other).  Every random choice comes from ``rng`` in a fixed order, so the
    same generator state gives the same image.  ``background`` is left untouched unless ``reuse_background`` (then
    objects may be pasted into it directly, saving a copy of the canvas).
    """
    if background.ndim == 2:
        background = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
    background = background[:, :, :3]
    fit = plan_fit((background.shape[1], background.shape[0]), params.canvas, params.fit, rng)
    canvas = apply_fit(background, fit, copy=not reuse_background)
    H, W = canvas.shape[:2]
    thr = params.alpha_threshold
    if keepout is not None and params.avoid_blanked:
        if keepout.shape[:2] != background.shape[:2]:
            raise ValueError(f"keep-out mask is {keepout.shape[1]}x{keepout.shape[0]}, the background is "
                             f"{background.shape[1]}x{background.shape[0]}")
        keep = apply_fit(keepout, fit, mask=True)
    else:
        keep = None
    box_overlap = params.box_overlap
    n = params.per_image[int(rng.integers(len(params.per_image)))]
    occ = _Occupancy((W, H), keep, track=box_overlap > 0, max_occlusion=params.max_occlusion, capacity=n)
    chosen = choose_classes(list(classes), dict(params.class_weights), n, rng)
    placed: List[Placed] = []
    too_large = no_room = 0
    base_scale = 1.0 if params.scale is not None else fit.object_scale
    # the loop's constants as locals (a few microseconds per object add up over 16 objects)
    rot_lo, rot_hi = params.rotate
    sc_lo, sc_hi = params.scale if params.scale is not None else params.jitter
    may_flip_h, may_flip_v = "h" in params.flip, "v" in params.flip
    blend, feather, candidates, rounds = params.blend, params.feather, params.candidates, params.rounds
    uniform, random = rng.uniform, rng.random
    for cls in chosen:
        sprite = pick_sprite(cls, rng)
        angle = uniform(rot_lo, rot_hi)
        scale = uniform(sc_lo, sc_hi) * base_scale
        flip_h = may_flip_h and random() < 0.5
        flip_v = may_flip_v and random() < 0.5
        t = transform_sprite(sprite, angle, scale, flip_h, flip_v, thr, blend, feather)
        if t is None:
            too_large += 1
            continue
        h, w = t.alpha.shape
        # Placement tests the sprite's whole extent (faint edges included), so annotated boxes, which lie inside
        # it, keep the same guarantee.
        pos = place((W, H), (w, h), occ.extents, box_overlap, rng, candidates, rounds, accept=occ.accept_for(t, thr))
        if pos is None:
            if w > W or h > H:
                too_large += 1
            else:
                no_room += 1
            continue
        t.x, t.y = pos
        t.name = cls
        placed.append(t)
        occ.add(t, thr)
    image = compose(canvas, placed, params.blend, inplace=True, harmonize_strength=params.harmonize,
                    alpha_threshold=thr)
    boxes = np.array([p.box for p in placed], np.float64).reshape(-1, 4)
    quads = np.array([p.quad for p in placed], np.float64).reshape(-1, 4, 2)
    offsets = np.array([[p.x, p.y] for p in placed], np.float64).reshape(-1, 2)
    boxes += np.tile(offsets, 2)
    quads += offsets[:, None, :]
    keep_obj = np.ones(len(placed), bool)
    truncated = np.zeros(len(placed), bool)
    if occ.owner is not None and len(placed):
        frac = occ.hidden / np.maximum(occ.area, 1)
        for k in np.flatnonzero(occ.hidden > 0):  # only objects something was pasted over
            x0, y0, x1, y1 = placed[k].extent
            vis = occ.owner[y0:y1, x0:x1] == k + 1
            if not vis.any():
                continue
            bx, by, bw, bh = cv2.boundingRect(vis.view(np.uint8))
            boxes[k] = (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh)
            quads[k] = _pixel_quad(vis) + (x0, y0)
        keep_obj = (frac <= params.drop_above) & (occ.hidden < occ.area)  # nothing visible: never annotated
        truncated = frac > params.truncated_above
    instance = None
    if masks:
        instance = _instance_map((H, W), placed, keep_obj, occ.owner, thr)
    sel = np.flatnonzero(keep_obj)
    return SynthResult(image, boxes[sel], quads[sel], [placed[k].name for k in sel], instance, too_large, no_room,
                       truncated[sel], int((~keep_obj).sum()), fit.object_scale)


def _instance_map(shape: Tuple[int, int], placed: Sequence[Placed], keep: np.ndarray, owner: Optional[np.ndarray],
                  threshold: int) -> np.ndarray:
    """``(H, W) uint8``: 0 background, ``j + 1`` the j-th annotated object's visible pixels (capped at 254), 255 the
    pixels of objects pasted but too hidden to annotate (void, as VOC marks what is not to be learned)."""
    ids = np.zeros(len(placed) + 1, np.uint8)
    ids[1:][keep] = np.minimum(np.arange(1, int(keep.sum()) + 1), 254)
    ids[1:][~keep] = 255
    if owner is not None:
        return ids[owner]
    instance = np.zeros(shape, np.uint8)
    for k, p in enumerate(placed):
        x0, y0, x1, y1 = p.extent
        region = instance[y0:y1, x0:x1]
        region[p.alpha > threshold] = ids[k + 1]
    return instance


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
    """Memory one synthetic image needs at most: the canvas, its encoded copy and working arrays (the pixel owner
    map, the blanked-region mask and its integral image)."""
    w, h = canvas
    return w * h * (3 * 3 + 2 + 5 + (2 if masks else 0))
