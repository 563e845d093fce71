"""Splitting aerial images into tiles, DOTA_devkit ``ImgSplit.py`` compatible, object-sparse.

The devkit intersects every object with every tile.  Here the tile geometry is a pure function
(:func:`tile_origins`) and each tile only looks at the objects whose bounding box reaches it (numpy, all objects at
once).  Objects entirely inside a tile are written from their coordinates; only objects crossing the tile border
are intersected (shapely, one vectorized call per tile), then reduced exactly as the devkit does:

* coordinates are first truncated to integers (the devkit's ``parse_dota_poly2``), then multiplied by the rate;
* tile origins step by ``size - gap``; the last one is moved back so the tile ends at the border;
* the clipping window is ``[left, min(left + size, W - 1)] x [up, min(up + size, H - 1)]``;
* inside objects: ``int(v - offset)``; cut objects: the intersection ring oriented counter-clockwise, a 5-point ring
  loses its shortest edge (replaced by its midpoint), 3- or 6+-point rings are dropped, the 4 points are rotated to
  the start that best fits the original quad, then ``int(v - offset)`` clamped to ``[1, size]``;
* a cut object keeps its difficult flag when the kept area fraction is above ``thresh``, else gets ``2``;
* numbers are written like Python's ``str(float)`` (``807.0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from ..core import DsprepError


def tile_origins(length: int, size: int, gap: int) -> List[int]:
    """Start offsets of the tiles along one axis (devkit rule)."""
    if size <= 0 or gap < 0 or gap >= size:
        raise DsprepError(f"tile size must be positive and gap must be in [0, size): got size={size}, gap={gap}")
    slide = size - gap
    out = []
    pos = 0
    while pos < length:
        if pos + size >= length:
            pos = max(length - size, 0)
        out.append(pos)
        if pos + size >= length:
            break
        pos += slide
    return out


def tile_grid(width: int, height: int, size: int, gap: int) -> List[Tuple[int, int]]:
    """``(left, up)`` of every tile, in the devkit's order (columns outer, rows inner)."""
    return [(left, up) for left in tile_origins(width, size, gap) for up in tile_origins(height, size, gap)]


def rate_name(rate: float) -> str:
    """The rate as it appears in tile names: Python's ``str`` of the rate, integral rates as integers (``1``)."""
    r = float(rate)
    return str(int(r)) if r.is_integer() else str(r)


def tile_name(stem: str, rate: float, left: int, up: int) -> str:
    return f"{stem}__{rate_name(rate)}__{left}___{up}"


@dataclass
class TileStats:
    whole: int = 0        # objects written with their own coordinates
    cut: int = 0          # objects cut by the tile border and kept
    difficult2: int = 0   # cut objects marked difficult 2 (kept fraction <= thresh)
    dropped: int = 0      # cut pieces that are not 4- or 5-point rings (or not one polygon)
    invalid: int = 0      # objects GEOS could not intersect


@dataclass
class TileObjects:
    """The objects of one (resized) image, prepared once for all its tiles."""

    polys: np.ndarray            # (N, 4, 2) float64, devkit coordinates: trunc(original) * rate
    names: Sequence[str]
    difficult: Sequence[str]     # the difficult token as written
    geoms: np.ndarray = field(init=False)
    area: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)
    simple: np.ndarray = field(init=False)  # inside test by coordinates is exact for these

    def __post_init__(self):
        p = self.polys
        self.geoms = shapely.polygons(p) if len(p) else np.empty(0, object)
        self.area = shapely.area(self.geoms) if len(p) else np.zeros(0)
        self.lo = p.min(axis=1) if len(p) else np.zeros((0, 2))
        self.hi = p.max(axis=1) if len(p) else np.zeros((0, 2))
        # Areas of polygons with small dyadic coordinates are computed exactly in floating point, so "all vertices
        # inside the window" is exactly the devkit's "intersection area / area == 1".  Other objects (odd rates,
        # invalid rings) go through the same shapely intersection as the devkit.
        scaled = p.reshape(len(p), 8) * 256.0
        dyadic = (scaled == np.round(scaled)).all(axis=1) & (np.abs(p).reshape(len(p), 8).max(axis=1, initial=0)
                                                              < 2 ** 20)
        self.simple = dyadic & (shapely.is_valid(self.geoms) if len(p) else np.zeros(0, bool))


def prepare_objects(polys: np.ndarray, names: Sequence[str], difficult: Sequence, rate: float) -> TileObjects:
    """Devkit coordinates: integer-truncated originals (``int()``), times the rate."""
    p = np.trunc(np.asarray(polys, np.float64).reshape(-1, 4, 2))
    if rate != 1:
        p = p * rate
    return TileObjects(p, list(names), [str(int(d)) for d in difficult])


def _fmt(values) -> str:
    """Numbers as the devkit writes them: ``str`` of a float (``807.0``); ``+ 0.0`` turns a ``-0.0`` (from
    truncating a value in (-1, 0)) into ``0.0``, as the devkit's ``int()`` does."""
    return " ".join(str(float(v) + 0.0) for v in values)


def _poly4_from_poly5(ring: np.ndarray) -> np.ndarray:
    """Drop the shortest edge of a 5-point ring, replacing its two ends by their midpoint (devkit rule)."""
    nxt = np.roll(ring, -1, axis=0)
    d = ring - nxt
    lengths = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    pos = int(np.argmin(lengths))
    out = []
    for i in range(5):
        if i == pos:
            out.append((ring[i] + ring[(i + 1) % 5]) / 2)
        elif i == (pos + 1) % 5:
            continue
        else:
            out.append(ring[i])
    return np.array(out)


def _best_start(quad: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate the 4 points to the start that minimises the squared distance to ``target`` (first minimum)."""
    combos = np.stack([np.roll(quad, -k, axis=0).reshape(-1) for k in range(4)])
    dist = np.sum((combos - target.reshape(-1)) ** 2, axis=1)
    return combos[int(np.argmin(dist))]


@dataclass
class TileCut:
    """The objects one tile keeps, in object order: ``index`` into the image's objects, ``coords`` ``(k, 8)``
    float64 tile coordinates as the devkit writes them, ``difficult`` tokens, ``cut`` whether the border cut it."""

    index: np.ndarray
    coords: np.ndarray
    difficult: List[str]
    cut: np.ndarray

    def lines(self, names: Sequence[str]) -> List[str]:
        """DOTA label lines (without line ends), numbers written like the devkit (``807.0``)."""
        return [f"{_fmt(self.coords[j])} {names[k]} {self.difficult[j]}" for j, k in enumerate(self.index)]


def tile_objects(objs: TileObjects, left: int, up: int, width: int, height: int, size: int, thresh: float,
                 stats: TileStats) -> TileCut:
    """What one tile keeps of the objects (devkit rules, see the module docstring), in object order."""
    right = min(left + size, width - 1)
    down = min(up + size, height - 1)
    lo, hi = objs.lo, objs.hi
    kept: Dict[int, Tuple[np.ndarray, str, bool]] = {}
    if len(lo):
        reach = (hi[:, 0] > left) & (lo[:, 0] < right) & (hi[:, 1] > up) & (lo[:, 1] < down) & (objs.area > 0)
        inside = reach & objs.simple & (lo[:, 0] >= left) & (hi[:, 0] <= right) & (lo[:, 1] >= up) & \
            (hi[:, 1] <= down)
        cross = np.flatnonzero(reach & ~inside)
        offset = np.array([left, up], np.float64)
        inner = np.flatnonzero(inside)
        if len(inner):
            vals = np.trunc(objs.polys[inner] - offset).reshape(-1, 8)
            for j, k in enumerate(inner):
                kept[int(k)] = (vals[j], objs.difficult[k], False)
        stats.whole += len(inner)
        if len(cross):
            window = Polygon([(left, up), (right, up), (right, down), (left, down)])
            try:
                pieces = shapely.intersection(objs.geoms[cross], window)
            except shapely.errors.GEOSException:
                pieces = [_intersection_or_none(g, window) for g in objs.geoms[cross]]
            for k, piece in zip(cross, pieces):
                got = _cut(objs, int(k), piece, offset, size, thresh, stats)
                if got is not None:
                    kept[int(k)] = got
    order = sorted(kept)
    return TileCut(np.array(order, np.int64), np.array([kept[k][0] for k in order], np.float64).reshape(-1, 8),
                   [kept[k][1] for k in order], np.array([kept[k][2] for k in order], bool))


def _intersection_or_none(geom, window):
    try:
        return geom.intersection(window)
    except shapely.errors.GEOSException:
        return None


def _cut(objs: TileObjects, k: int, piece, offset: np.ndarray, size: int, thresh: float, stats: TileStats):
    """``(coords (8,), difficult token, cut)`` of object ``k`` cut by the tile window, or None when dropped."""
    if piece is None:
        stats.invalid += 1
        return None
    half_iou = piece.area / objs.area[k]
    if half_iou == 1:
        stats.whole += 1
        return np.trunc(objs.polys[k] - offset).reshape(-1), objs.difficult[k], False
    if not half_iou > 0:
        return None
    if piece.geom_type != "Polygon":
        stats.dropped += 1  # the devkit fails on these (MultiPolygon has no exterior); we drop them
        return None
    ring = np.asarray(orient(piece, sign=1).exterior.coords)[:-1, :2]
    if len(ring) < 4 or len(ring) > 5:
        stats.dropped += 1
        return None
    if len(ring) == 5:
        ring = _poly4_from_poly5(ring)
    quad = _best_start(ring, objs.polys[k])
    vals = np.trunc(quad - np.tile(offset, 4))
    vals = np.where(vals <= 1, 1.0, np.where(vals >= size, float(size), vals))
    stats.cut += 1
    if half_iou > thresh:
        diff = objs.difficult[k]
    else:
        diff = "2"
        stats.difficult2 += 1
    return vals, diff, True


def crop_tile(img: np.ndarray, left: int, up: int, size: int, pad: bool = False, pad_value=0) -> np.ndarray:
    """The tile's pixels ``img[up:up+size, left:left+size]``; with ``pad`` filled up to ``size x size``."""
    tile = img[up:up + size, left:left + size]
    if pad and (tile.shape[0] < size or tile.shape[1] < size):
        out = np.full((size, size) + tile.shape[2:], pad_value, dtype=img.dtype)
        out[:tile.shape[0], :tile.shape[1]] = tile
        return out
    return tile
