"""Plane geometry of annotations, one tested copy each: boxes and quads converted, shoelace areas, segment crossings,
box IoU kernels and the pixel bounds of boxes.  Pure numpy over arrays (no dsprep imports): formats, evaluation,
merging, tiling and review all use these.

Conventions: boxes are ``(N, 4)`` float64 ``x0, y0, x1, y1`` in continuous pixel coordinates; quads ``(N, 4, 2)``;
rings ``(..., K, 2)``.  Each vectorized kernel has an obviously-correct loop beside it in ``tests/test_geometry.py``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def as_boxes(values, name: str = "boxes") -> np.ndarray:
    """``values`` as an ``(N, 4)`` float64 array (empty input: ``(0, 4)``); ``ValueError`` naming ``name`` for any
    other shape."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), but got shape {arr.shape}")
    return arr


def polygons_to_boxes(polygons: np.ndarray) -> np.ndarray:
    """``(N, 4, 2)`` quads -> ``(N, 4)`` axis-aligned ``xmin, ymin, xmax, ymax``."""
    poly = np.asarray(polygons, dtype=np.float64).reshape(-1, 4, 2)
    return np.concatenate([poly.min(axis=1), poly.max(axis=1)], axis=1)


def boxes_to_polygons(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` boxes -> ``(N, 4, 2)`` quads, corners clockwise on screen (y down): TL, TR, BR, BL."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = b.T
    return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1),
                     np.stack([x1, y1], 1), np.stack([x0, y1], 1)], axis=1)


def signed_area(rings: np.ndarray) -> np.ndarray:
    """Shoelace signed area of rings ``(..., K, 2)`` (positive counter-clockwise in x-right, y-up axes)."""
    x, y = rings[..., 0], rings[..., 1]
    return 0.5 * (x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y).sum(axis=-1)


def polygon_area(rings: np.ndarray) -> np.ndarray:
    """Unsigned shoelace area of rings ``(..., K, 2)``."""
    return np.abs(signed_area(rings))


def ring_area(ring: np.ndarray) -> float:
    """Unsigned shoelace area of one ``(K, 2)`` ring as two dot products: the arithmetic of the COCO ``area`` dsprep
    writes for a segmentation (:func:`polygon_area` sums per-edge terms, which differs in the last bits; kept so
    written files stay byte for byte what they were)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The sign of the turn a -> b -> c for arrays of points ``(N, 2)``."""
    return np.sign((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def segments_cross(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, p4: np.ndarray) -> np.ndarray:
    """Proper crossing of segments p1-p2 and p3-p4 (arrays of points, ``(N, 2)``): each segment's ends strictly on
    both sides of the other's line (touching or collinear is no crossing)."""
    return (_orient(p1, p2, p3) * _orient(p1, p2, p4) < 0) & (_orient(p3, p4, p1) * _orient(p3, p4, p2) < 0)


def crossing_point(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(crosses, point)``: whether segment a-b properly crosses c-d (:func:`segments_cross`), and where (only
    meaningful where it crosses)."""
    crosses = segments_cross(a, b, c, d)
    r, s = b - a, d - c
    denom = r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((c[:, 0] - a[:, 0]) * s[:, 1] - (c[:, 1] - a[:, 1]) * s[:, 0]) / np.where(crosses, denom, 1.0)
    return crosses, a + t[:, None] * r


def self_intersecting(polys: np.ndarray) -> np.ndarray:
    """Bow-tie quads: edge 0-1 crosses edge 2-3, or edge 1-2 crosses edge 3-0."""
    p = np.asarray(polys, np.float64).reshape(-1, 4, 2)
    return segments_cross(p[:, 0], p[:, 1], p[:, 2], p[:, 3]) | segments_cross(p[:, 1], p[:, 2], p[:, 3], p[:, 0])


def pixel_bounds(boxes: np.ndarray, width: int, height: int, pad: int = 0) -> np.ndarray:
    """``(N, 4)`` continuous boxes -> integer ``x0, y0, x1, y1`` slices covering every touched pixel, padded and
    clipped to the image."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = np.floor(b[:, :2]) - pad
    hi = np.ceil(b[:, 2:]) + pad
    out = np.concatenate([lo, hi], axis=1)
    return np.clip(out, 0, [width, height, width, height]).astype(np.int64)


# ---- box IoU ---------------------------------------------------------------------------------------------------

def _overlap_terms(a: np.ndarray, b: np.ndarray, plus_one: bool):
    """Intersection and the two areas of boxes ``a`` and ``b`` (broadcast against each other)."""
    e = 1.0 if plus_one else 0.0
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + e, 0.0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + e, 0.0)
    area_a = (a[..., 2] - a[..., 0] + e) * (a[..., 3] - a[..., 1] + e)
    area_b = (b[..., 2] - b[..., 0] + e) * (b[..., 3] - b[..., 1] + e)
    return iw * ih, area_a, area_b


def box_iou(a, b, plus_one: bool = False) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): an (N, M) float64 array.

    ``plus_one``: the VOC/DOTA devkits' pixel convention (width ``x1 - x0 + 1``) on the numbers as given.
    Two empty boxes give NaN (0 / 0), as the reference evaluators' arithmetic does.
    """
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    inter, area_a, area_b = _overlap_terms(a[:, None, :], b[None, :, :], plus_one)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def box_iou_pairs(a, b, plus_one: bool = False) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` ((P, 4) each): (P,) float64, same arithmetic as :func:`box_iou`.

    The union is computed as ``area(a) + area(b) - intersection``, the devkits' order of operations (pass the
    detection as ``a``)."""
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    inter, area_a, area_b = _overlap_terms(a, b, plus_one)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def coco_iou_pairs(det, gt, crowd, det_area=None, gt_area=None) -> np.ndarray:
    """pycocotools' box IoU of ``det[i]`` with ``gt[i]`` ((P, 4) ``x0, y0, x1, y1`` each): (P,) float64.

    Boxes that do not overlap (width or height of the intersection <= 0) give 0; for a crowd object the union is
    the detection's own area.  ``det_area``/``gt_area``: the ``w * h`` of the original ``[x, y, w, h]`` (computed
    from the corners when not given)."""
    det, gt = as_boxes(det, "det"), as_boxes(gt, "gt")
    crowd = np.asarray(crowd, bool).reshape(-1)
    da = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]) if det_area is None else np.asarray(det_area, np.float64)
    ga = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) if gt_area is None else np.asarray(gt_area, np.float64)
    w = np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0])
    h = np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1])
    hit = (w > 0) & (h > 0)
    inter = np.where(hit, w * h, 0.0)
    union = np.where(crowd, da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hit, inter / np.where(hit, union, 1.0), 0.0)
