"""Merging per-tile detections back onto their source images (the inverse of tiling), with polygon NMS.

Input: DOTA task-1 result files ``Task1_<class>.txt``, lines ``tile_name score x1 y1 ... x4 y4``.  Every detection is
mapped back with the tile's offsets and rate, read from its name (``P0706__0.5__824___412``), as DOTA_devkit's
ResultMerge does: ``x_orig = (x + left) / rate``.  Then greedy non-maximum suppression runs per image and class,
with exact polygon IoU (shapely) after a vectorized bounding-box pre-filter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import shapely

from .core import ParseError

TILE_NAME = re.compile(r"^(?P<stem>.+?)__(?P<rate>\d+(?:\.\d+)?(?:e-?\d+)?)__(?P<left>\d+)___(?P<up>\d+)$")


def parse_tile_name(name: str, source: str = "") -> Tuple[str, float, int, int]:
    """``P0706__0.5__824___412`` -> ``("P0706", 0.5, 824, 412)``."""
    m = TILE_NAME.match(name)
    if not m:
        raise ParseError(f"{source}'{name}' is not a tile name (expected NAME__RATE__LEFT___UP)")
    return m.group("stem"), float(m.group("rate")), int(m.group("left")), int(m.group("up"))


@dataclass
class Detections:
    """Detections of one class: image stems, scores ``(N,)`` and quads ``(N, 4, 2)``, all in one set of arrays."""

    stems: List[str]
    scores: np.ndarray
    polys: np.ndarray
    score_text: List[str]


def parse_task1(text: str, source: str = "<task1>") -> Detections:
    """Parse a task-1 file and map every detection back to its source image."""
    stems, scores, polys, score_text = [], [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 10:
            raise ParseError(f"{source}:{lineno}: expected 10 fields (tile score x1 y1 ... x4 y4), got {len(f)}")
        stem, rate, left, up = parse_tile_name(f[0], f"{source}:{lineno}: ")
        try:
            vals = [float(v) for v in f[1:]]
        except ValueError as e:
            raise ParseError(f"{source}:{lineno}: non-numeric score or coordinate ({e})") from e
        if not np.isfinite(vals).all():
            raise ParseError(f"{source}:{lineno}: score or coordinate is not finite")
        xy = (np.array(vals[1:]).reshape(4, 2) + (left, up)) / rate
        stems.append(stem)
        scores.append(vals[0])
        polys.append(xy)
        score_text.append(f[1])
    return Detections(stems, np.array(scores, np.float64), np.array(polys, np.float64).reshape(-1, 4, 2), score_text)


def box_iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with ``(N, 4)`` boxes."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(polys: np.ndarray, scores: np.ndarray, thresh: float = 0.3, iou: str = "poly") -> np.ndarray:
    """Greedy NMS: indices kept, highest score first.  A detection is suppressed when its IoU with a kept one is
    above ``thresh``.  ``iou="poly"``: exact polygon IoU, computed only where the boxes overlap."""
    polys = np.asarray(polys, np.float64).reshape(-1, 4, 2)
    boxes = np.concatenate([polys.min(1), polys.max(1)], 1)
    geoms = shapely.polygons(polys) if iou == "poly" else None
    if geoms is not None:
        geoms = shapely.make_valid(geoms)
        areas = shapely.area(geoms)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ov = box_iou_one(boxes[i], boxes[rest])
        if geoms is not None:
            cand = np.flatnonzero(ov > 0)
            poly_iou = np.zeros(len(rest))
            if len(cand):
                inter = shapely.area(shapely.intersection(geoms[i], geoms[rest[cand]]))
                union = areas[i] + areas[rest[cand]] - inter
                poly_iou[cand] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
            ov = poly_iou
        order = rest[ov <= thresh]
    return np.array(keep, dtype=np.int64)


def merge(dets: Detections, thresh: float = 0.3, iou: str = "poly") -> Dict[str, np.ndarray]:
    """Per source image, the indices into ``dets`` kept by NMS (images sorted, detections by score)."""
    stems = np.array(dets.stems, dtype=object)
    out = {}
    for stem in sorted(set(dets.stems)):
        idx = np.flatnonzero(stems == stem)
        out[stem] = idx[nms(dets.polys[idx], dets.scores[idx], thresh, iou)]
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def format_task1(dets: Detections, kept: Dict[str, np.ndarray]) -> str:
    lines = []
    for stem, idx in kept.items():
        for i in idx:
            xy = " ".join(_num(v) for v in dets.polys[i].reshape(-1))
            lines.append(f"{stem} {dets.score_text[i]} {xy}\n")
    return "".join(lines)
