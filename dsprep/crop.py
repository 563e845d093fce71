"""Cutting objects out of images, and blanking classes out to make clean backgrounds.  Pure array functions."""
from __future__ import annotations

from typing import Tuple

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
    """A copy of ``img`` with every ``(N, K, 2)`` polygon filled with ``value`` (one fillPoly call).

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
    cv2.fillPoly(out, list(grown.astype(np.int32)), color)
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
