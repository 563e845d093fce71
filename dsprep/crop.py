"""Cutting objects out of images, and blanking classes out to make clean backgrounds.  Pure array functions."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np


def pixel_bounds(boxes: np.ndarray, width: int, height: int, pad: int = 0) -> np.ndarray:
    """``(N, 4)`` continuous boxes -> integer ``x0, y0, x1, y1`` slices covering every touched pixel, padded and
    clipped to the image."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = np.floor(b[:, :2]) - pad
    hi = np.ceil(b[:, 2:]) + pad
    out = np.concatenate([lo, hi], axis=1)
    return np.clip(out, 0, [width, height, width, height]).astype(np.int64)


def blank_regions(img: np.ndarray, polygons: np.ndarray, value: int = 0) -> np.ndarray:
    """A copy of ``img`` with every ``(N, K, 2)`` polygon filled with ``value`` (overlaps included).

    Polygons are expanded outward to whole pixels, so no fringe of the object survives.
    """
    out = img.copy()
    if len(polygons) == 0:
        return out
    poly = np.asarray(polygons, np.float64)
    center = poly.mean(axis=1, keepdims=True)
    grown = np.where(poly >= center, np.ceil(poly), np.floor(poly))
    # fillPoly treats vertices as pixel centres, inclusive: a box [x0, x1) covers pixels x0..x1-1.
    grown = np.where(poly >= center, grown - 1, grown)
    color = (value,) * (out.shape[2] if out.ndim == 3 else 1)
    # one call per polygon: fillPoly given several fills by the even-odd rule, so where two objects overlap (a dog in
    # a person's box) the overlap would be left out
    for g in grown.astype(np.int32):
        cv2.fillPoly(out, [g], color)
    return out


def crop_polygon_rgba(img: np.ndarray, polygon: np.ndarray, upright: bool = False,
                      pad: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Cut one quadrilateral out as BGRA whose alpha is the polygon (anti-aliased edge).

    With ``upright`` the quad's rotated rectangle is turned to axis-aligned, long side horizontal, so the crop can
    be re-pasted at any angle.  Returns ``(bgra, bounds)`` where bounds are the integer source box used.
    """
    h, w = img.shape[:2]
    bgr = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    bgr = bgr[:, :, :3]
    poly = np.asarray(polygon, np.float64).reshape(4, 2)
    bounds = pixel_bounds(np.r_[poly.min(0), poly.max(0)][None], w, h, pad + (1 if upright else 0))[0]
    x0, y0, x1, y1 = bounds
    local = poly - [x0, y0]
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(alpha, [np.round(local * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    color = bgr[y0:y1, x0:x1]
    if not upright:
        return np.dstack([color, alpha]), bounds
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(local.astype(np.float32))
    if rw < rh:
        rw, rh, angle = rh, rw, angle + 90.0
    ow, oh = max(1, int(np.ceil(rw)) + 2 * pad), max(1, int(np.ceil(rh)) + 2 * pad)
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] += (ow / 2.0 - cx, oh / 2.0 - cy)
    color = cv2.warpAffine(color, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.dstack([color, alpha]), bounds


def polygon_mask(shape: Tuple[int, int], polygons: np.ndarray) -> np.ndarray:
    """``(H, W) uint8``, 255 on every pixel an ``(N, K, 2)`` polygon touches (grown outward to whole pixels, as
    :func:`blank_regions` blanks them)."""
    out = np.zeros(shape[:2], np.uint8)
    return blank_regions(out, polygons, 255) if len(polygons) else out


def paste_masks(shape: Tuple[int, int], masks: Sequence[np.ndarray], bounds: np.ndarray) -> np.ndarray:
    """``(H, W) uint8``, 255 where any of the bool ``masks`` (each over its integer ``bounds`` row) is set."""
    out = np.zeros(shape[:2], np.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, np.asarray(bounds, np.int64).reshape(-1, 4).tolist()):
        region = out[y0:y1, x0:x1]
        region[m] = 255
    return out


def blank_mask(shape: Tuple[int, int], polygons: np.ndarray, masks: Sequence[np.ndarray] = (),
               mask_bounds: Optional[np.ndarray] = None, margin: int = 3) -> np.ndarray:
    """The pixels to blank for a set of objects: ``(H, W) uint8`` (255 = blank).

    Objects with their own mask are blanked by the mask grown by ``margin`` pixels (edge pixels mix the object with
    its surroundings; VOC leaves a void band there); the others by their box or polygon (``polygons``).
    """
    out = polygon_mask(shape, polygons)
    if len(masks):
        own = paste_masks(shape, masks, mask_bounds)
        if margin > 0:
            own = cv2.dilate(own, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
        out = cv2.bitwise_or(out, own)
    return out


def grabcut_mask(img: np.ndarray, bounds: Sequence[int], iterations: int = 4, work_size: int = 200,
                 min_fraction: float = 0.1) -> Optional[np.ndarray]:
    """An object mask (bool, over the integer ``bounds`` ``x0, y0, x1, y1``) found by OpenCV's GrabCut, started from
    the box with a ring of context around it; None when GrabCut finds (almost) nothing (less than ``min_fraction``
    of the box), or when the box leaves no context (it covers the whole image).

    The work is done at most ``work_size`` pixels across (large objects are scaled down, the mask scaled back up),
    and OpenCV's random generator is seeded before each call, so the same crop gives the same mask in any process
    and order.  Only the largest connected part is kept (GrabCut leaves specks of look-alike background).
    """
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in bounds)
    bw, bh = x1 - x0, y1 - y0
    if bw < 2 or bh < 2:
        return None
    ring = max(8, (max(bw, bh) + 9) // 10)
    rx0, ry0, rx1, ry1 = max(0, x0 - ring), max(0, y0 - ring), min(w, x1 + ring), min(h, y1 + ring)
    if (rx0, ry0, rx1, ry1) == (x0, y0, x1, y1):
        return None  # no background sample for GrabCut's background model
    roi = img[ry0:ry1, rx0:rx1]
    if roi.ndim == 2:
        roi = cv2.cvtColor(roi, cv2.COLOR_GRAY2BGR)
    roi = np.ascontiguousarray(roi[:, :, :3])
    f = min(1.0, work_size / max(roi.shape[:2]))
    if f < 1.0:
        roi = cv2.resize(roi, (max(1, round(roi.shape[1] * f)), max(1, round(roi.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
    sx, sy = roi.shape[1] / (rx1 - rx0), roi.shape[0] / (ry1 - ry0)
    rect = (int(round((x0 - rx0) * sx)), int(round((y0 - ry0) * sy)),
            max(1, int(round(bw * sx))), max(1, int(round(bh * sy))))
    rect = (rect[0], rect[1], min(rect[2], roi.shape[1] - rect[0]), min(rect[3], roi.shape[0] - rect[1]))
    gc = np.zeros(roi.shape[:2], np.uint8)
    cv2.setRNGSeed(0x5EED)
    try:
        cv2.grabCut(roi, gc, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), iterations,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8) * 255
    if f < 1.0:
        fg = cv2.resize(fg, (rx1 - rx0, ry1 - ry0), interpolation=cv2.INTER_LINEAR)
    fg = fg[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0] > 127
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.view(np.uint8), connectivity=8)
    if n <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = labels == largest
    return out if out.sum() >= min_fraction * bw * bh else None


def inner_mask(mask: np.ndarray, bounds: Sequence[int], size: Tuple[int, int]) -> np.ndarray:
    """``mask`` (bool, over the integer ``bounds`` in an image of ``size = (W, H)``) without its outermost pixels
    (eroded by a 3 x 3 cross): an object's edge pixels mix it with what was around it (a 1-pixel rim of the old
    background once pasted elsewhere).  Edges on the image's border are kept (nothing was beyond them); a mask the
    erosion would empty is returned as it is."""
    W, H = size
    x0, y0, x1, y1 = (int(v) for v in bounds)
    ex0, ey0, ex1, ey1 = max(0, x0 - 1), max(0, y0 - 1), min(W, x1 + 1), min(H, y1 + 1)
    big = np.zeros((ey1 - ey0, ex1 - ex0), np.uint8)
    big[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0] = np.asarray(mask, bool)
    # outside the array erode sees its maximum (nothing is eroded there): that is the image's border
    big = cv2.erode(big, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    inner = big[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0] > 0
    return inner if inner.any() else np.asarray(mask, bool)


def mask_rgba(img: np.ndarray, bounds: Sequence[int], mask: np.ndarray, pad: int = 0) -> np.ndarray:
    """The crop ``img[y0-pad:y1+pad, x0-pad:x1+pad]`` (clipped) as BGRA whose alpha is 255 on ``mask`` (a bool
    mask over the unpadded ``bounds``) less its outermost pixels (:func:`inner_mask`: no rim of the old background)
    and 0 elsewhere, the pad ring included."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in bounds)
    px0, py0, px1, py1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    bgr = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    alpha = np.zeros((py1 - py0, px1 - px0), np.uint8)
    alpha[y0 - py0:y1 - py0, x0 - px0:x1 - px0][inner_mask(mask, bounds, (w, h))] = 255
    return np.dstack([bgr[py0:py1, px0:px1, :3], alpha])
