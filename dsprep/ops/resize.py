"""Fitting images to a fixed size, and mapping boxes with them.  Pure functions.

A transform is ``(scale_x, scale_y, pad_x, pad_y)``: a point of the original image ``(x, y)`` lands at
``(x * scale_x + pad_x, y * scale_y + pad_y)`` in the stored image.  The scales are the ones actually used for the
pixels (rounded output size / input size), so stored boxes match stored pixels exactly.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..images import LazyModule

cv2 = LazyModule("cv2", globals())  # imported on first use: the format registry imports this module to detect formats

LETTERBOX_FILL = (114, 114, 114)  # the usual detector padding gray


def parse_size(text: str) -> Tuple[int, int]:
    """``"512x384"`` (or ``"512"``) -> ``(512, 384)`` as (width, height)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        if len(parts) == 1:
            w = h = int(parts[0])
        elif len(parts) == 2:
            w, h = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError as e:
        raise ValueError(f"size must look like 512x512, not '{text}'") from e
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, not '{text}'")
    return w, h


def fit_image(img: np.ndarray, size: Tuple[int, int], mode: str = "letterbox") -> Tuple[np.ndarray, np.ndarray]:
    """Resize ``img`` to ``size = (W, H)``.  ``letterbox`` keeps the aspect ratio and pads (centred, gray);
    ``stretch`` scales each axis.  Returns ``(new image, transform (4,) float64)``."""
    h, w = img.shape[:2]
    tw, th = size
    if mode == "stretch":
        nw, nh, px, py = tw, th, 0, 0
    elif mode == "letterbox":
        s = min(tw / w, th / h)
        nw, nh = max(1, min(tw, int(round(w * s)))), max(1, min(th, int(round(h * s))))
        px, py = (tw - nw) // 2, (th - nh) // 2
    else:
        raise ValueError(f"resize mode must be letterbox or stretch, not '{mode}'")
    interp = cv2.INTER_AREA if nw < w or nh < h else cv2.INTER_LINEAR
    resized = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=interp)
    if (nw, nh) == (tw, th):
        out = np.ascontiguousarray(resized)
    else:
        out = cv2.copyMakeBorder(resized, py, th - nh - py, px, tw - nw - px, cv2.BORDER_CONSTANT,
                                 value=LETTERBOX_FILL)
    return out, np.array([nw / w, nh / h, px, py], np.float64)


def map_boxes(boxes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Original-image boxes ``(N, 4)`` -> stored-image boxes."""
    sx, sy, px, py = t
    return np.asarray(boxes, np.float64) * [sx, sy, sx, sy] + [px, py, px, py]


def unmap_boxes(boxes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stored-image boxes -> original-image boxes (the inverse of :func:`map_boxes`)."""
    sx, sy, px, py = t
    return (np.asarray(boxes, np.float64) - [px, py, px, py]) / [sx, sy, sx, sy]


def map_polygons(polygons: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Original-image points ``(..., 2)`` (e.g. ``(N, 4, 2)`` quads) -> stored-image points, as :func:`map_boxes`."""
    sx, sy, px, py = t
    return np.asarray(polygons, np.float64) * [sx, sy] + [px, py]


def unmap_polygons(polygons: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stored-image points -> original-image points (the inverse of :func:`map_polygons`)."""
    sx, sy, px, py = t
    return (np.asarray(polygons, np.float64) - [px, py]) / [sx, sy]
