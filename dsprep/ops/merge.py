"""Merging per-tile detections back onto their source images (the inverse of tiling), with polygon NMS.

Input: DOTA task-1 result files ``Task1_<class>.txt``, lines ``tile_name score x1 y1 ... x4 y4``.  Every detection is
mapped back with the tile's offsets and rate, read from its name (``P0706__0.5__824___412``), as DOTA_devkit's
ResultMerge does: ``x_orig = (x + left) / rate``.  Then greedy non-maximum suppression runs per image and class:
candidate pairs from one sweep over the boxes, exact polygon IoU (convex quads in numpy, others through shapely),
the greedy order resolved in vectorized rounds (see :func:`nms`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..core import ParseError
from ..geometry import signed_area

TILE_NAME = re.compile(r"^(?P<stem>.+?)__(?P<rate>\d+(?:\.\d+)?(?:e-?\d+)?)__(?P<left>\d+)___(?P<up>\d+)$")


def parse_tile_name(name: str, source: str = "") -> Tuple[str, float, int, int]:
    """``P0706__0.5__824___412`` -> ``("P0706", 0.5, 824, 412)``."""
    m = TILE_NAME.match(name)
    if not m:
        raise ParseError(f"{source}'{name}' is not a tile name (expected NAME__RATE__LEFT___UP)")
    return m.group("stem"), float(m.group("rate")), int(m.group("left")), int(m.group("up"))


@dataclass
class Task1Detections:
    """The detections of one DOTA task-1 file (one class): image stems, scores ``(N,)`` and quads ``(N, 4, 2)``, all
    in one set of arrays (not :class:`dsprep.evaluation.metrics.Detections`, the arrays a metric scores)."""

    stems: List[str]
    scores: np.ndarray
    polys: np.ndarray
    score_text: List[str]


def parse_task1(text: str, source: str = "<task1>") -> Task1Detections:
    """Parse a task-1 file and map every detection back to its source image.

    Fast path: all tokens at once (ten a line); when a line is not ten fields, or a value is not a number, the
    file is parsed line by line to name the line."""
    toks = text.split()
    if len(toks) % 10 == 0:
        # A line of another length shifts a tile name into a number's place (float() refuses it) or a number into a
        # name's place (not a tile name): both fall to the careful path below, which names the line.
        try:
            table = np.array(toks, dtype=object).reshape(-1, 10)
            return _detections(toks[0::10], table[:, 1:].astype(np.float64), toks[1::10], source, None)
        except (ValueError, ParseError):
            pass
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    for lineno, f in rows:
        if len(f) != 10:
            raise ParseError(f"{source}:{lineno}: expected 10 fields (tile score x1 y1 ... x4 y4), got {len(f)}")
        try:
            [float(v) for v in f[1:]]
        except ValueError as e:
            raise ParseError(f"{source}:{lineno}: non-numeric score or coordinate ({e})") from e
    vals = np.array([[float(v) for v in f[1:]] for _, f in rows], np.float64).reshape(-1, 9)
    return _detections([f[0] for _, f in rows], vals, [f[1] for _, f in rows], source, [n for n, _ in rows])


def _detections(names: List[str], vals: np.ndarray, score_text: List[str], source: str, linenos) -> Task1Detections:
    def where(k):
        return f"{source}:{linenos[k] if linenos else k + 1}: "
    bad = np.flatnonzero(~np.isfinite(vals).all(axis=1))
    if len(bad):
        raise ParseError(f"{where(bad[0])}score or coordinate is not finite")
    code: Dict[str, int] = {}
    idx = np.array([code.setdefault(name, len(code)) for name in names], np.int64)
    first = np.zeros(len(code), np.int64)
    first[idx[::-1]] = np.arange(len(idx))[::-1]  # the first line naming each tile, for error messages
    tiles = [parse_tile_name(name, where(first[k])) for k, name in enumerate(code)]
    table = np.array([(t[2], t[3], t[1]) for t in tiles], np.float64).reshape(-1, 3)
    offsets = table[idx]
    tile_stems = [t[0] for t in tiles]
    stems = [tile_stems[k] for k in idx.tolist()]
    polys = (vals[:, 1:].reshape(-1, 4, 2) + offsets[:, None, :2]) / offsets[:, None, 2:3]
    return Task1Detections(stems, vals[:, 0].copy(), polys, list(score_text))


def overlap_pairs(boxes: np.ndarray, groups: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i < j``, of ``(N, 4)`` boxes of the same group (image) whose intersection has a
    positive area.  Sweep over x in numpy: boxes sorted by left edge; each box's candidates are the boxes whose left
    edge falls inside its x span (groups are first moved apart along x)."""
    n = len(boxes)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x0, x1 = boxes[:, 0], boxes[:, 2]
    if groups is not None and len(groups) and groups.max() > 0:
        span = float(x1.max() - x0.min()) + 16.0
        shift = groups.astype(np.float64) * span
        x0, x1 = x0 + shift, x1 + shift
    order = np.argsort(x0, kind="stable")
    xs = x0[order]
    end = np.searchsorted(xs, x1[order], side="left")
    cnt = np.maximum(end - np.arange(1, n + 1), 0)
    total = int(cnt.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ii = np.repeat(np.arange(n), cnt)
    kk = ii + 1 + np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    i, j = order[ii], order[kk]
    ix = np.minimum(x1[i], x1[j]) - np.maximum(x0[i], x0[j])
    iy = np.minimum(boxes[i, 3], boxes[j, 3]) - np.maximum(boxes[i, 1], boxes[j, 1])
    pos = (ix > 0) & (iy > 0)
    i, j = i[pos], j[pos]
    return np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)


def is_convex(quads: np.ndarray) -> np.ndarray:
    """``(N,)``: convex quads with a positive area (corners turning one way; bow-ties and darts are not)."""
    e = np.roll(quads, -1, axis=1) - quads
    z = e[:, :, 0] * np.roll(e, -1, axis=1)[:, :, 1] - e[:, :, 1] * np.roll(e, -1, axis=1)[:, :, 0]
    return ((z >= 0).all(axis=1) | (z <= 0).all(axis=1)) & (np.abs(signed_area(quads)) > 0)


def convex_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Areas of the intersections of convex quads ``a[k]`` and ``b[k]`` (``(M, 4, 2)`` each), for all pairs at once.

    Green's theorem: the intersection's boundary is made of the parts of ``a``'s edges inside ``b`` and of ``b``'s
    edges inside ``a`` (both counter-clockwise), so its area is half the sum of ``cross(start, end)`` over those
    parts.  Each edge is clipped to the other quad's four half-planes (Cyrus-Beck).  An edge lying on an edge of the
    other quad is counted once: from ``a`` when both run the same way, never when they run opposite ways (quads
    that only touch).  Pairs are processed in blocks of :data:`IOU_BLOCK` with the pair index last (contiguous,
    cache-sized arrays: measured 3.5x faster than one ``(M, 4, 4)`` pass)."""
    m = len(a)
    if m == 0:
        return np.zeros(0)
    a = np.where((signed_area(a) < 0)[:, None, None], a[:, ::-1], a)
    b = np.where((signed_area(b) < 0)[:, None, None], b[:, ::-1], b)
    out = np.empty(m)
    with np.errstate(divide="ignore", invalid="ignore"):  # parallel edges and empty parts are masked out
        for s in range(0, m, IOU_BLOCK):
            ax, ay = np.ascontiguousarray(a[s:s + IOU_BLOCK, :, 0].T), np.ascontiguousarray(a[s:s + IOU_BLOCK, :, 1].T)
            bx, by = np.ascontiguousarray(b[s:s + IOU_BLOCK, :, 0].T), np.ascontiguousarray(b[s:s + IOU_BLOCK, :, 1].T)
            out[s:s + IOU_BLOCK] = _inside_part(ax, ay, bx, by, True) + _inside_part(bx, by, ax, ay, False)
    return out


IOU_BLOCK = 2048
_NEXT = np.array([1, 2, 3, 0])  # the next corner of a quad


def _inside_part(px: np.ndarray, py: np.ndarray, cx: np.ndarray, cy: np.ndarray, shared: bool) -> np.ndarray:
    """Half the sum of ``cross(start, end)`` over the parts of ``p``'s edges inside convex ``c`` (both CCW);
    corners as ``(4, M)`` x and y arrays."""
    dx, dy = px[_NEXT] - px, py[_NEXT] - py      # edges of p
    ex, ey = cx[_NEXT] - cx, cy[_NEXT] - cy      # edges of c
    # [i, k, m]: the point p_i + t d_i is on the inner side of edge k of c where num + t * den >= 0
    num = ex[None] * (py[:, None] - cy[None]) - ey[None] * (px[:, None] - cx[None])
    den = ex[None] * dy[:, None] - ey[None] * dx[:, None]
    t = -num / den
    pos, neg = den > 0, den < 0
    lower = np.where(pos, t, -np.inf)
    upper = np.where(neg, t, np.inf)
    parallel = ~(pos | neg)
    if parallel.any():
        outside = parallel & (num < 0)
        on_edge = parallel & (num == 0)
        if on_edge.any():
            if shared:
                same_way = (ex[None] * dx[:, None] + ey[None] * dy[:, None]) > 0
                outside |= on_edge & ~same_way
            else:
                outside |= on_edge
        lower = np.where(outside, np.inf, lower)
    t0 = np.maximum(lower.max(axis=1), 0.0)
    t1 = np.minimum(upper.min(axis=1), 1.0)
    x0, y0 = px + t0 * dx, py + t0 * dy
    x1, y1 = px + t1 * dx, py + t1 * dy
    return 0.5 * np.where(t1 > t0, x0 * y1 - x1 * y0, 0.0).sum(axis=0)


class PairIoU:
    """IoU of pairs of quads ``polys[i]``, ``polys[j]``: exact polygon IoU (convex quads through
    :func:`convex_intersection_area`, others through shapely after ``make_valid``), or axis-aligned box IoU."""

    def __init__(self, polys: np.ndarray, iou: str = "poly"):
        self.polys, self.kind = polys, iou
        if iou == "box":
            self.lo, self.hi = polys.min(axis=1), polys.max(axis=1)
            self.area = (self.hi[:, 0] - self.lo[:, 0]) * (self.hi[:, 1] - self.lo[:, 1])
        else:
            self.convex = is_convex(polys)
            self.area = np.abs(signed_area(polys))
            self.geoms = None
            if not self.convex.all():
                import shapely  # only for quads that are not convex
                odd = np.flatnonzero(~self.convex)
                self.geoms = np.empty(len(polys), object)
                self.geoms[odd] = shapely.make_valid(shapely.polygons(polys[odd]))
                self.area[odd] = shapely.area(self.geoms[odd])

    def __call__(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        if self.kind == "box":
            lo, hi = self.lo, self.hi
            w = np.clip(np.minimum(hi[i, 0], hi[j, 0]) - np.maximum(lo[i, 0], lo[j, 0]), 0, None)
            h = np.clip(np.minimum(hi[i, 1], hi[j, 1]) - np.maximum(lo[i, 1], lo[j, 1]), 0, None)
            inter = w * h
        else:
            inter = np.zeros(len(i))
            fast = self.convex[i] & self.convex[j]
            inter[fast] = convex_intersection_area(self.polys[i[fast]], self.polys[j[fast]])
            slow = np.flatnonzero(~fast)
            if len(slow):
                import shapely
                geoms = self.geoms.copy()
                need = np.unique(np.concatenate([i[slow], j[slow]]))
                need = need[geoms[need] == None]  # noqa: E711 - object array: the convex ones not built yet
                geoms[need] = shapely.polygons(self.polys[need])
                inter[slow] = shapely.area(shapely.intersection(geoms[i[slow]], geoms[j[slow]]))
        union = self.area[i] + self.area[j] - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def pair_iou(polys: np.ndarray, i: np.ndarray, j: np.ndarray, iou: str = "poly") -> np.ndarray:
    """IoU of quads ``polys[i[k]]`` and ``polys[j[k]]`` (see :class:`PairIoU`)."""
    return PairIoU(np.asarray(polys, np.float64).reshape(-1, 4, 2), iou)(i, j)


def greedy_keep(n: int, a: np.ndarray, b: np.ndarray, iou, thresh: float) -> np.ndarray:
    """Greedy NMS over detections ``0..n-1`` in rank order; ``(a[k], b[k])`` (``a < b``) are the candidate pairs,
    ``iou(a, b)`` their IoU.  Resolved in vectorized rounds: the pairs of newly kept detections get their IoU (and
    suppress), then every undecided detection none of whose candidate suppressors is still undecided is kept.  A
    pair whose first detection is suppressed never gets its IoU computed.  Returns a ``(n,)`` bool mask."""
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 suppressed
    while True:
        sa = state[a]
        kept_a = sa == 1
        if kept_a.any():
            ka, kb = a[kept_a], b[kept_a]
            over = iou(ka, kb) > thresh
            state[kb[over & (state[kb] == 0)]] = 2
        live = (sa == 0) & (state[b] == 0)  # pairs still deciding something
        a, b = a[live], b[live]
        und = state == 0
        if not und.any():
            return state == 1
        wait = np.zeros(n, bool)
        wait[b] = True
        state[und & ~wait] = 1


def nms(polys: np.ndarray, scores: np.ndarray, thresh: float = 0.3, iou: str = "poly",
        groups: Optional[np.ndarray] = None) -> np.ndarray:
    """Greedy NMS: indices kept, highest score first (per ``groups`` value when given: images never suppress
    each other).  A detection is suppressed when its IoU with a kept one is above ``thresh``.

    Vectorized end to end: candidate pairs (boxes overlapping with a positive area, DOTA_devkit's pre-filter) by
    one sweep (:func:`overlap_pairs`), then rounds (:func:`greedy_keep`) that compute the exact IoU of the pairs that
    decide something, all at once per round."""
    polys = np.asarray(polys, np.float64).reshape(-1, 4, 2)
    n = len(polys)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    p = polys[order]
    boxes = np.concatenate([p.min(1), p.max(1)], 1)
    a, b = overlap_pairs(boxes, None if groups is None else np.asarray(groups)[order])
    return order[greedy_keep(n, a, b, PairIoU(p, iou), thresh)]


def group_by_image(stems: List[str]) -> Dict[str, np.ndarray]:
    """``{stem: indices}`` (stems sorted, indices ascending)."""
    if not len(stems):
        return {}
    uniq, inv = np.unique(np.array(stems, dtype=str), return_inverse=True)
    idx = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[idx], np.arange(len(uniq) + 1))
    return {str(u): idx[bounds[k]:bounds[k + 1]] for k, u in enumerate(uniq)}


def merge(dets: Task1Detections, thresh: float = 0.3, iou: str = "poly") -> Dict[str, np.ndarray]:
    """Per source image, the indices into ``dets`` kept by NMS (images sorted, detections by score)."""
    out = {}
    for stem, idx in group_by_image(dets.stems).items():
        out[stem] = idx[nms(dets.polys[idx], dets.scores[idx], thresh, iou)]
    return out


def format_task1(dets: Task1Detections, kept: Dict[str, np.ndarray]) -> str:
    """Lines ``image score x1 y1 ... x4 y4`` (integral coordinates written as integers, others as ``repr``)."""
    parts = []
    for stem, idx in kept.items():
        if not len(idx):
            continue
        vals = dets.polys[idx].reshape(-1) + 0.0  # + 0.0: no "-0"
        text = repr(vals.tolist())[1:-1].split(", ")  # one C call for every number's repr
        for k in np.flatnonzero((vals == np.round(vals)) & (np.abs(vals) < 1e15)):
            text[k] = text[k][:-2]  # "807.0" -> "807"
        table = np.empty((len(idx), 11), object)  # stem, score, 8 numbers, line end: joined at once
        table[:, 0] = stem
        table[:, 1] = [dets.score_text[i] for i in idx]
        table[:, 2:10] = np.array(text, object).reshape(-1, 8)
        table[:, 10] = "\n"
        joined = " ".join(table.ravel().tolist())  # "... x4 y4 \n next ... y4 \n"
        parts.append(joined.replace(" \n ", "\n")[:-2] + "\n")
    return "".join(parts)
