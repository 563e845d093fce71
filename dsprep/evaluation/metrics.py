"""Detection evaluation: matching and average precision over arrays, as the reference evaluators compute them.

Everything here is pure: ground truth and detections come in as flat arrays (one row per object or detection, each
with an image index and a class index) and numbers come out.  Reading files is done by :mod:`dsprep.evaluation.results`
and the format modules.

Coordinates are dsprep's (0-based continuous pixels).  Each metric re-creates the arithmetic of its reference
evaluator from them:

* ``voc07`` / ``voc12``: the VOC devkit's ``voc_eval.py``.  It works on 1-based pixel indices with the "+1" pixel
  convention (a box from pixel 1 to pixel 10 is 10 wide); dsprep's ``(x0, y0, x1, y1)`` are those indices as
  ``(x0 + 1, y0 + 1, x1, y1)``, which is how the boxes are handed to the +1 kernel, so the floating-point operations
  are the devkit's own.  Difficult objects make a matching detection neither a true nor a false positive, a second
  detection of an object is a false positive, a match needs IoU > threshold, and each detection is judged against
  the object it overlaps most (already matched or not).  VOC07: 11-point interpolated AP; VOC12: the area under
  the interpolated precision envelope.
* ``dota-task2``: DOTA_devkit's ``dota_evaluation_task2``: the same rules, boxes taken as they are with the +1
  convention; ground-truth boxes truncated to integers (its reader does ``int(float(v))``).  VOC07 11-point AP.
* ``dota-task1``: DOTA_devkit's ``dota_evaluation_task1``: polygon IoU (no +1), tried only on objects whose
  horizontal boxes overlap the detection's (+1 convention there).  A self-intersecting quad ("bow tie") is measured
  as the devkit measures it: its polyiou sums signed triangle areas, so the two lobes of a bow tie count with
  opposite signs (see :func:`polygon_iou_pairs`).  VOC07 11-point AP.
* ``coco``: pycocotools' ``COCOeval`` for boxes: 10 IoU thresholds 0.50:0.05:0.95, crowd objects (IoU over the
  detection's own area, matched any number of times, ignored), area ranges from the ground truth's ``area`` field
  (the detection's ``w * h``), at most 1 / 10 / 100 detections per image and class, 101-point interpolated
  precision, and the twelve summary numbers.
* ``coco-segm``: the same with ``iouType="segm"``: IoU of the instance masks (:func:`dsprep.rle.pair_iou`), a
  detection's area its mask's pixels; the ground truth's ``area`` field still sets its area range.

Why one module: the VOC, DOTA and COCO metrics share the matching, the IoU kernels' dispatch and the result
types; side by side they are checked against the reference evaluators line by line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import (as_boxes, box_iou_pairs, boxes_to_polygons, coco_iou_pairs, crossing_point, polygons_to_boxes,
                       signed_area)

METRICS = ("voc07", "voc12", "coco", "coco-segm", "dota-task1", "dota-task2")
PASCAL_METRICS = ("voc07", "voc12", "dota-task1", "dota-task2")
POLYGON_IOU = ("devkit", "valid")

# per-detection status in EvalResult.status
TP, FP, IGNORED, NOT_EVALUATED = 1, 0, -1, -2

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_iou_thresholds() -> np.ndarray:
    """0.50, 0.55 ... 0.95 exactly as COCOeval builds them (``linspace``: 0.75 is exact, so AP75 can select it)."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def coco_recall_thresholds() -> np.ndarray:
    """0.00, 0.01 ... 1.00 (101 points), as COCOeval builds them."""
    return np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)


COCO_AREAS = (("all", 0.0, 1e5 ** 2), ("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2),
              ("large", 96.0 ** 2, 1e5 ** 2))
COCO_MAX_DETS = (1, 10, 100)


# ----------------------------------------------------------------------------------------------------------------
# Inputs and results

def _column(values, n: int, dtype, name: str, default) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype) if not callable(default) else default()
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{name} must have length {n} (one per row), but got {len(arr)}")
    return arr


def _polygons(values, n: int, name: str) -> Optional[np.ndarray]:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        arr = np.zeros((0, 4, 2), np.float64)
    if arr.shape != (n, 4, 2):
        raise ValueError(f"{name} must have shape {(n, 4, 2)}, but got shape {arr.shape}")
    return arr


class _Rows:
    """What ground truth and detections share: one row per object, its quadrilateral (the box's corners when the
    rows have no polygons)."""

    boxes: np.ndarray
    polygons: Optional[np.ndarray]

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def quads(self) -> np.ndarray:
        return self.polygons if self.polygons is not None else boxes_to_polygons(self.boxes)

    def _common_columns(self) -> int:
        """Normalize boxes, image, label and polygons; return the row count."""
        self.boxes = as_boxes(self.boxes, "boxes")
        n = len(self.boxes)
        self.image = _column(self.image, n, np.int64, "image", 0)
        self.label = _column(self.label, n, np.int64, "label", 0)
        self.polygons = _polygons(self.polygons, n, "polygons")
        return n

    def _box_area(self) -> np.ndarray:
        b = self.boxes
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


@dataclass
class GroundTruth(_Rows):
    """Every ground-truth object of the evaluated images, one row each.

    ``image`` (M,) int image index; ``label`` (M,) int class index; ``boxes`` (M, 4) float64 ``x0, y0, x1, y1``;
    ``polygons`` (M, 4, 2) or None (then the boxes' corners); ``difficult`` (M,) bool (VOC/DOTA: ignored);
    ``iscrowd`` (M,) bool (COCO crowd regions); ``area`` (M,) float64 (COCO's ``area`` field; default the box
    area); ``ids`` (M,) int64 (COCO annotation ids; default 1..M).  Rows of one image keep the order of its
    annotation file: ties are broken by it, as the reference evaluators do.
    """

    image: np.ndarray
    label: np.ndarray
    boxes: np.ndarray
    polygons: Optional[np.ndarray] = None
    difficult: Optional[np.ndarray] = None
    iscrowd: Optional[np.ndarray] = None
    area: Optional[np.ndarray] = None
    ids: Optional[np.ndarray] = None

    def __post_init__(self):
        n = self._common_columns()
        self.difficult = _column(self.difficult, n, bool, "difficult", False)
        self.iscrowd = _column(self.iscrowd, n, bool, "iscrowd", False)
        self.area = _column(self.area, n, np.float64, "area", self._box_area)
        self.ids = _column(self.ids, n, np.int64, "ids", lambda: np.arange(1, n + 1, dtype=np.int64))


@dataclass
class Detections(_Rows):
    """Every detection, one row each, in the order of the detection files.

    ``image`` (N,) int image index; ``label`` (N,) int class index; ``scores`` (N,) float64; ``boxes`` (N, 4)
    float64; ``polygons`` (N, 4, 2) or None; ``area`` (N,) float64 or None (COCO: the ``w * h`` of the file's
    ``bbox``; default the box area).
    """

    image: np.ndarray
    label: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    polygons: Optional[np.ndarray] = None
    area: Optional[np.ndarray] = None

    def __post_init__(self):
        n = self._common_columns()
        self.scores = _column(self.scores, n, np.float64, "scores", 0.0)
        self.area = _column(self.area, n, np.float64, "area", self._box_area)


@dataclass
class ClassResult:
    """One class: ``ap`` (None when the class has no positive object), counts, and the curve behind the AP.

    ``recall``/``precision``: VOC/DOTA: the devkit's ``rec``/``prec`` arrays (one point per detection, in score
    order); COCO: the 101 recall thresholds and the interpolated precision at IoU 0.50 (area all, 100 detections).
    """

    name: str
    ap: Optional[float]
    ground_truths: int
    ignored: int
    detections: int
    max_recall: Optional[float]
    recall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: Dict[str, Optional[float]] = field(default_factory=dict)


@dataclass
class EvalResult:
    """The outcome of one evaluation.

    ``status`` (N,) int8 per detection (``TP``, ``FP``, ``IGNORED``, ``NOT_EVALUATED``: beyond COCO's 100 per
    image and class); ``matched`` (N,) the ground-truth row a detection matched (-1: none); ``found`` (M,) whether
    each ground-truth object was matched.  For COCO these are at IoU 0.50, area "all".
    """

    metric: str
    classes: List[ClassResult]
    mAP: Optional[float]
    status: np.ndarray
    matched: np.ndarray
    found: np.ndarray
    iou_threshold: float
    coco: Optional[Dict[str, float]] = None
    coco_precision: Optional[np.ndarray] = None  # (T, R, K, A, M) as COCOeval.eval["precision"]
    coco_recall: Optional[np.ndarray] = None  # (T, K, A, M)


# ----------------------------------------------------------------------------------------------------------------
# IoU kernels

def quad_lobes(quads) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each quad as at most two simple pieces with a winding weight, the way DOTA_devkit's polyiou sees it.

    Returns ``lobes`` (N, 2, 4, 2), ``weights`` (N, 2) float64 (0: no piece) and the signed area (N,).  A simple
    quad (convex or not) is one piece of weight +1.  A bow tie whose edges cross at X is two triangles
    (``X p1 p2`` and ``X p3 p0`` when edge 0-1 crosses edge 2-3), weighted by the sign of their own area in the
    quad's orientation after polyiou's turn to positive total area: the bigger lobe +1, the other -1.
    """
    p = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    n = len(p)
    area = signed_area(p)
    lobes = np.repeat(p[:, None], 2, axis=1)
    weights = np.zeros((n, 2), np.float64)
    weights[:, 0] = 1.0
    for (i, j, k, m), (a0, a1), (b0, b1) in (((0, 1, 2, 3), (1, 2), (3, 0)), ((1, 2, 3, 0), (2, 3), (0, 1))):
        crosses, x = crossing_point(p[:, i], p[:, j], p[:, k], p[:, m])
        if not crosses.any():
            continue
        c = np.flatnonzero(crosses)
        xc = x[c]
        lobes[c, 0] = np.stack([xc, p[c, a0], p[c, a1], xc], axis=1)
        lobes[c, 1] = np.stack([xc, p[c, b0], p[c, b1], xc], axis=1)
        turn = np.where(area[c] < 0, -1.0, 1.0)  # polyiou reverses a polygon of negative area
        weights[c, 0] = np.sign(signed_area(lobes[c, 0])) * turn
        weights[c, 1] = np.sign(signed_area(lobes[c, 1])) * turn
    return lobes, weights, area


def _geometries(rings: np.ndarray):
    """Shapely polygons of (N, 4, 2) rings; invalid ones (zero area, spikes) repaired by ``make_valid``."""
    import shapely
    geoms = shapely.polygons(rings)
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def polygon_iou_pairs(a, b, ia=None, ib=None, mode: str = "devkit") -> np.ndarray:
    """IoU of quads ``a[ia[k]]`` and ``b[ib[k]]`` (``a`` (N, 4, 2), ``b`` (M, 4, 2)): (P,) float64.

    Shapes are built once per quad and intersected pairwise by shapely 2 (one vectorized call per piece pairing).

    * ``mode="devkit"``: DOTA_devkit's ``polyiou.iou_poly``.  It adds up signed triangle intersections, which is
      the integral of the product of the two quads' winding numbers: exact for simple quads, and for a bow tie
      its two lobes count with opposite signs (the IoU can even be negative).  Union: ``|area(a)| + |area(b)| -
      intersection`` with signed (shoelace) areas.  0 / 0 gives NaN, as in the devkit.
    * ``mode="valid"``: the IoU of the shapes themselves (each quad repaired by shapely's ``make_valid``).
    """
    import shapely
    a = np.asarray(a, np.float64).reshape(-1, 4, 2)
    b = np.asarray(b, np.float64).reshape(-1, 4, 2)
    ia = np.arange(len(a)) if ia is None else np.asarray(ia, np.intp)
    ib = np.arange(len(b)) if ib is None else np.asarray(ib, np.intp)
    if len(ia) != len(ib):
        raise ValueError(f"ia and ib must have the same length, but got {len(ia)} and {len(ib)}")
    if mode not in POLYGON_IOU:
        raise ValueError(f"mode must be one of {POLYGON_IOU}, but got {mode!r}")
    if len(ia) == 0:
        return np.zeros(0, np.float64)
    # only the quads that take part
    ua, ia = np.unique(ia, return_inverse=True)
    ub, ib = np.unique(ib, return_inverse=True)
    a, b = a[ua], b[ub]
    if mode == "valid":
        ga, gb = _geometries(a), _geometries(b)
        inter = shapely.area(shapely.intersection(ga[ia], gb[ib]))
        union = shapely.area(ga)[ia] + shapely.area(gb)[ib] - inter
    else:
        la, wa, sa = quad_lobes(a)
        lb, wb, sb = quad_lobes(b)
        ga = _geometries(la.reshape(-1, 4, 2)).reshape(-1, 2)
        gb = _geometries(lb.reshape(-1, 4, 2)).reshape(-1, 2)
        inter = np.zeros(len(ia), np.float64)
        for x in (0, 1):
            for y in (0, 1):
                w = wa[ia, x] * wb[ib, y]
                m = np.flatnonzero(w != 0)
                if len(m):
                    inter[m] += w[m] * shapely.area(shapely.intersection(ga[ia[m], x], gb[ib[m], y]))
        union = np.abs(sa)[ia] + np.abs(sb)[ib] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


# ----------------------------------------------------------------------------------------------------------------
# Grouping

def group_pairs(det_key, gt_key) -> Tuple[np.ndarray, np.ndarray]:
    """Every ``(detection, ground truth)`` index pair whose keys are equal (keys: e.g. ``image * classes + label``).

    Pairs come ordered by detection index, then by ground-truth index."""
    det_key = np.asarray(det_key, np.int64).reshape(-1)
    gt_key = np.asarray(gt_key, np.int64).reshape(-1)
    order = np.argsort(gt_key, kind="stable")
    sorted_keys = gt_key[order]
    lo = np.searchsorted(sorted_keys, det_key, "left")
    n = np.searchsorted(sorted_keys, det_key, "right") - lo
    total = int(n.sum())
    d = np.repeat(np.arange(len(det_key), dtype=np.intp), n)
    starts = np.cumsum(n) - n
    within = np.arange(total, dtype=np.intp) - np.repeat(starts, n)
    return d, order[np.repeat(lo, n) + within]


def _segments(sorted_ids: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal values in a sorted array."""
    if len(sorted_ids) == 0:
        return np.zeros(0, np.intp)
    return np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])


# ----------------------------------------------------------------------------------------------------------------
# VOC / DOTA

def voc_ap(rec, prec, use_07_metric: bool) -> float:
    """AP from the recall and precision arrays (one point per detection, in score order).

    ``use_07_metric``: VOC2007's 11 points (the mean over recall 0, 0.1 ... 1 of the highest precision at a recall
    at least that, 0 when none); otherwise VOC2010+'s area under the precision envelope."""
    rec = np.asarray(rec, np.float64)
    prec = np.asarray(prec, np.float64)
    if use_07_metric:
        thresholds = np.arange(0.0, 1.1, 0.1)
        best = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
        first = np.searchsorted(rec, thresholds, side="left")  # rec never decreases
        ap = 0.0
        for i in first:  # summed in the devkit's order
            ap = ap + (best[i] if i < len(rec) else 0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _voc_pixels(boxes: np.ndarray) -> np.ndarray:
    """dsprep boxes as the VOC devkit's 1-based pixel indices (``xmin = x0 + 1``): exact, it undoes the reader's
    ``- 1``."""
    out = boxes.copy()
    out[:, :2] += 1.0
    return out


def pascal_ious(gt: GroundTruth, dets: Detections, n_classes: int, metric: str, polygon_iou: str = "devkit"
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(det_index, gt_index, iou)`` for every detection and object of the same image and class; ``-inf`` where the
    devkit does not try the pair (task1: horizontal boxes that do not overlap)."""
    d, g = group_pairs(dets.image * n_classes + dets.label, gt.image * n_classes + gt.label)
    if metric in ("voc07", "voc12"):
        iou = box_iou_pairs(_voc_pixels(dets.boxes)[d], _voc_pixels(gt.boxes)[g], plus_one=True)
    elif metric == "dota-task2":
        iou = box_iou_pairs(dets.boxes[d], np.trunc(gt.boxes)[g], plus_one=True)
    elif metric == "dota-task1":
        dq, gq = dets.quads, gt.quads
        tried = box_iou_pairs(polygons_to_boxes(dq)[d], polygons_to_boxes(gq)[g], plus_one=True) > 0
        iou = np.full(len(d), -np.inf)
        iou[tried] = polygon_iou_pairs(dq, gq, d[tried], g[tried], polygon_iou)
    else:
        raise ValueError(f"metric must be one of {PASCAL_METRICS}, but got {metric!r}")
    return d, g, iou


def evaluate_pascal(gt: GroundTruth, dets: Detections, classes: Sequence[str], metric: str,
                    iou_threshold: float = 0.5, polygon_iou: str = "devkit") -> EvalResult:
    """VOC07 / VOC12 / DOTA task1 / DOTA task2 AP per class, as the devkits compute it (see the module docstring).

    A detection is judged against the object of its image and class it overlaps most (the first in file order on
    a tie), whether already matched or difficult: IoU > ``iou_threshold`` on a difficult object ignores it; on an
    object already taken by a higher-scored detection it is a false positive.  Detections of a class are ranked
    by ``numpy.argsort(-scores)`` over the class's detections in file order: the devkit's own call, so even equal
    scores come out in the devkit's order."""
    n_classes = len(classes)
    n_det = len(dets)
    d, g, iou = pascal_ious(gt, dets, n_classes, metric, polygon_iou)
    # the best object of each detection (NaN propagates, as numpy's max does in the devkit; NaN is no match)
    ovmax = np.full(n_det, -np.inf)
    jmax = np.full(n_det, -1, np.int64)
    starts = _segments(d)
    if len(starts):
        best = np.maximum.reduceat(iou, starts)
        seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(d)]))
        hits = np.flatnonzero(iou == best[seg])
        segs, first = np.unique(seg[hits], return_index=True)
        ovmax[d[starts]] = best
        jmax[d[starts[segs]]] = g[hits[first]]
    rank = np.zeros(n_det, np.int64)
    orders = []
    for k in range(n_classes):
        idx = np.flatnonzero(dets.label == k)
        order = idx[np.argsort(-dets.scores[idx])]
        rank[order] = np.arange(len(order))
        orders.append(order)
    with np.errstate(invalid="ignore"):
        over = ovmax > iou_threshold
    status = np.full(n_det, FP, np.int8)
    hard = over & np.r_[gt.difficult, False][jmax]  # jmax -1 (no object) reads the padding
    status[hard] = IGNORED
    cand = np.flatnonzero(over & ~hard)
    cand = cand[np.lexsort((rank[cand], jmax[cand]))]
    first = cand[np.r_[True, jmax[cand][1:] != jmax[cand][:-1]]] if len(cand) else cand
    status[first] = TP
    matched = np.full(n_det, -1, np.int64)
    matched[over] = jmax[over]
    found = np.zeros(len(gt), bool)
    found[jmax[first]] = True

    use_07 = metric != "voc12"
    results = []
    aps = []
    for k, name in enumerate(classes):
        order = orders[k]
        positives = int(np.count_nonzero((gt.label == k) & ~gt.difficult))
        hard_k = int(np.count_nonzero((gt.label == k) & gt.difficult))
        s = status[order]
        tp = np.cumsum(s == TP).astype(np.float64)
        fp = np.cumsum(s == FP).astype(np.float64)
        if positives == 0:
            results.append(ClassResult(name, None, 0, hard_k, len(order), None))
            continue
        rec = tp / float(positives)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap = voc_ap(rec, prec, use_07)
        aps.append(ap)
        results.append(ClassResult(name, ap, positives, hard_k, len(order), float(rec[-1]) if len(rec) else 0.0,
                                   rec, prec))
    mean = float(np.mean(aps)) if aps else None
    return EvalResult(metric, results, mean, status, matched, found, iou_threshold)


# ----------------------------------------------------------------------------------------------------------------
# COCO

def _stable_order(keys: Sequence[Tuple[np.ndarray, int]]) -> np.ndarray:
    """A stable sort order by several non-negative integer keys ``(values, bound)``, most significant first:
    one argsort of a combined key when it fits in 62 bits, else a lexsort."""
    total = 1
    for _, bound in keys:
        total *= max(int(bound), 1)
    if total < 2 ** 62:
        combined = np.zeros(len(keys[0][0]), np.int64)
        for values, bound in keys:
            combined = combined * max(int(bound), 1) + values
        return np.argsort(combined, kind="stable")
    return np.lexsort([values for values, _ in reversed(keys)])


def _score_rank(scores: np.ndarray) -> np.ndarray:
    """Dense rank of each score, highest first (equal scores share a rank)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    return np.unique(-scores, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _rank_in_group(group: np.ndarray, score_rank: np.ndarray) -> np.ndarray:
    """Each detection's place in its group when sorted by score, highest first, file order on ties."""
    n = len(group)
    if n == 0:
        return np.zeros(0, np.int64)
    order = _stable_order([(group, group.max() + 1), (score_rank, score_rank.max() + 1)])
    starts = _segments(group[order])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    return rank


def coco_match(gt: GroundTruth, dets: Detections, n_classes: int, keep: np.ndarray, rank: np.ndarray,
               iou_thrs: np.ndarray, area_rngs: np.ndarray, pair_iou=None) -> Tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching for every image, class, area range and IoU threshold at once.

    For each detection (within its image and class, by rank), at each threshold t and area range: among the
    objects not yet matched (crowds: always available) with IoU >= min(t, 1 - 1e-10), an object inside the area
    range and not a crowd wins over an ignored one; among equals the highest IoU, the later object on a tie.
    The loop runs over ranks (at most 100), each step vectorized over every image and class.

    Returns ``(rows, match)``: the detections that overlap some object enough to match (the others match nothing)
    and ``match`` (A, T, len(rows)): the ground-truth row each one matched, or -1."""
    n_area, n_thr = len(area_rngs), len(iou_thrs)
    kd = np.flatnonzero(keep)
    d, g = group_pairs(dets.image[kd] * n_classes + dets.label[kd], gt.image * n_classes + gt.label)
    d = kd[d]
    caps = np.minimum(iou_thrs, 1 - 1e-10)
    if pair_iou is None:
        iou = coco_iou_pairs(dets.boxes[d], gt.boxes[g], gt.iscrowd[g], dets.area[d], _box_area(gt.boxes[g]))
    else:
        iou = pair_iou(d, g)
    useful = iou >= caps.min()
    d, g, iou = d[useful], g[useful], iou[useful]
    rows, d = np.unique(d, return_inverse=True)  # d: now the compact row of each pair's detection
    match = np.full((n_area, n_thr, len(rows)), -1, np.int64)
    if len(d) == 0:
        return rows, match
    r_pair = rank[rows[d]]
    order = np.lexsort((g, iou, d, r_pair))
    d, g, iou, r_pair = d[order], g[order], iou[order], r_pair[order]
    ignore = _gt_ignore(gt, area_rngs)
    taken = np.zeros((n_area, n_thr, len(gt)), bool)
    bounds = np.searchsorted(r_pair, np.arange(r_pair[-1] + 2))
    for r in range(len(bounds) - 1):
        s, e = bounds[r], bounds[r + 1]
        if s == e:
            continue
        dd, gg, vv = d[s:e], g[s:e], iou[s:e]
        starts = _segments(dd)
        ok = (vv[None, :] >= caps[:, None])[None] & (~taken[:, :, gg] | gt.iscrowd[gg])  # (A, T, P)
        ign = ignore[:, gg][:, None, :]
        pos = np.arange(1, e - s + 1)
        last_reg = np.maximum.reduceat(np.where(ok & ~ign, pos, 0), starts, axis=2)
        last_ign = np.maximum.reduceat(np.where(ok & ign, pos, 0), starts, axis=2)
        pick = np.where(last_reg > 0, last_reg, last_ign) - 1  # (A, T, S): the chosen pair of each detection
        ai, ti, si = np.nonzero(pick >= 0)
        p = pick[ai, ti, si]
        taken[ai, ti, gg[p]] = True
        match[ai, ti, dd[p]] = gg[p]
    return rows, match


def _gt_ignore(gt: GroundTruth, area_rngs: np.ndarray) -> np.ndarray:
    """(areas, objects): crowd objects, and objects whose ``area`` is outside each range (bounds included)."""
    return gt.iscrowd[None, :] | (gt.area[None, :] < area_rngs[:, :1]) | (gt.area[None, :] > area_rngs[:, 1:])


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def evaluate_coco(gt: GroundTruth, dets: Detections, classes: Sequence[str], iou_thrs=None, rec_thrs=None,
                  max_dets: Sequence[int] = COCO_MAX_DETS, areas=COCO_AREAS, pair_iou=None,
                  metric: str = "coco") -> EvalResult:
    """pycocotools ``COCOeval`` (``iouType="bbox"``, ``useCats=1``): precision (T, R, K, A, M), recall (T, K, A, M)
    and the twelve summary numbers, with every class of ``classes`` evaluated.

    Image indices give the order COCOeval sees images in (ascending image id): with equal scores, detections of a
    lower image index rank first.  A matched object whose annotation id is 0 leaves its detection counted as
    unmatched, as in COCOeval (it stores the matched id and tests it for non-zero).

    ``pair_iou(d, g) -> (P,)``: the IoU of detection rows ``d`` with ground-truth rows ``g`` instead of the boxes'
    (``coco-segm``: the masks', with ``dets.area`` the masks' pixel counts)."""
    iou_thrs = coco_iou_thresholds() if iou_thrs is None else np.asarray(iou_thrs, np.float64)
    rec_thrs = coco_recall_thresholds() if rec_thrs is None else np.asarray(rec_thrs, np.float64)
    max_dets = sorted(int(m) for m in max_dets)
    area_rngs = np.array([[lo, hi] for _, lo, hi in areas], np.float64)
    n_classes = len(classes)
    T, R, K, A, M = len(iou_thrs), len(rec_thrs), n_classes, len(area_rngs), len(max_dets)
    n_det = len(dets)
    score_rank = _score_rank(dets.scores)
    rank = _rank_in_group(dets.image * n_classes + dets.label, score_rank)
    keep = rank < max_dets[-1]
    rows, match = coco_match(gt, dets, n_classes, keep, rank, iou_thrs, area_rngs, pair_iou)
    # Only detections in ``rows`` (those overlapping an object enough) can match; every other detection is a
    # false positive at every threshold, or ignored when its area is outside the range.
    gt_ignore = _gt_ignore(gt, area_rngs)
    ignore_pad = np.concatenate([gt_ignore, np.zeros((A, 1), bool)], axis=1)  # column -1: "no object"
    nonzero_id = np.r_[gt.ids != 0, False]
    det_out = (dets.area[None, :] < area_rngs[:, :1]) | (dets.area[None, :] > area_rngs[:, 1:])  # (A, N)
    hit = match >= 0
    row_tp = hit & nonzero_id[match]  # COCOeval tests the stored annotation id for non-zero
    row_ig = ignore_pad[np.arange(A)[:, None, None], match] | (~row_tp & det_out[:, None, rows])
    is_row = np.zeros(n_det, bool)
    is_row[rows] = True
    row_of = np.full(n_det, -1, np.int64)
    row_of[rows] = np.arange(len(rows))
    npig = np.stack([np.bincount(gt.label[~gt_ignore[a]], minlength=K)[:K] for a in range(A)])  # (A, K)
    has_gt = np.bincount(gt.label, minlength=K)[:K] > 0

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    # per class, detections in COCOeval's accumulation order: score, then image, then file order
    n_img = int(max(dets.image.max(initial=-1), gt.image.max(initial=-1))) + 1
    by_class = _stable_order([(dets.label, K), (score_rank, score_rank.max(initial=0) + 1), (dets.image, n_img)])
    cut = np.searchsorted(dets.label[by_class], np.arange(K + 1))
    eps = np.spacing(1)
    md = np.array(max_dets)
    for k in range(K):
        if not has_gt[k]:
            continue  # COCOeval: no ground truth -> precision and recall stay -1
        idx = by_class[cut[k]:cut[k + 1]]
        r_k = rank[idx]
        row_pos = np.flatnonzero(is_row[idx])
        rr = row_of[idx[row_pos]]
        inside = r_k[None, :] < md[:, None]  # (M, n): within each maxDets
        inside_r = inside[:, row_pos][:, None, :]  # (M, 1, rows)
        for a in range(A):
            n_pos = npig[a, k]
            if n_pos == 0:
                continue
            plain_valid = ~is_row[idx] & ~det_out[a, idx]
            # valid detections (true + false positives) up to each candidate row, per maxDets and threshold
            before = np.cumsum(plain_valid[None, :] & inside, axis=1, dtype=np.int64)[:, row_pos]  # (M, rows)
            valid = ~row_ig[a][:, rr][None] & inside_r  # (M, T, rows)
            tp = row_tp[a][:, rr][None] & valid
            n_tp = np.cumsum(tp, axis=2, dtype=np.int64)
            total = n_tp[:, :, -1] if len(rr) else np.zeros((M, T), np.int64)
            recall[:, k, a, :] = (total / n_pos).T
            width = int(total.max(initial=0))
            if width == 0:
                precision[:, :, k, a, :] = 0
                continue
            n_valid = before[:, None, :] + np.cumsum(valid, axis=2, dtype=np.int64)
            # precision only changes upwards at true positives: the k-th one has recall k / n_pos and precision
            # k / (tp + fp + eps), exactly COCOeval's float operations
            mi, ti, ji = np.nonzero(tp)
            kth = n_tp[mi, ti, ji]
            pr = np.full((M, T, width), -1.0)
            pr[mi, ti, kth - 1] = kth / (n_valid[mi, ti, ji].astype(np.float64) + eps)
            pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
            at = np.searchsorted(np.arange(1, width + 1) / n_pos, rec_thrs, side="left")
            q = np.where(at[None, None, :] < total[:, :, None], pr[:, :, np.minimum(at, width - 1)], 0.0)
            precision[:, :, k, a, :] = q.transpose(1, 2, 0)
    stats = _coco_stats(precision, recall, iou_thrs, max_dets, [n for n, _, _ in areas])

    a_all, m_last = 0, M - 1
    t50 = int(np.flatnonzero(iou_thrs == 0.5)[0]) if (iou_thrs == 0.5).any() else 0
    results, n_per_class = [], np.bincount(dets.label, minlength=K)
    for k, name in enumerate(classes):
        mine = gt.label == k
        positives = int(np.count_nonzero(mine & ~gt.iscrowd))
        p = precision[:, :, k, a_all, m_last]
        if not (p > -1).any():
            results.append(ClassResult(name, None, positives, int(np.count_nonzero(mine & gt.iscrowd)),
                                       int(n_per_class[k]), None))
            continue
        extra = {"ap50": _mean_valid(precision[t50, :, k, a_all, m_last])}
        if (iou_thrs == 0.75).any():
            extra["ap75"] = _mean_valid(precision[int(np.flatnonzero(iou_thrs == 0.75)[0]), :, k, a_all, m_last])
        extra["ar100"] = _mean_valid(recall[:, k, a_all, m_last])
        results.append(ClassResult(name, _mean_valid(p), positives, int(np.count_nonzero(mine & gt.iscrowd)),
                                   int(n_per_class[k]), float(recall[t50, k, a_all, m_last]), rec_thrs.copy(),
                                   precision[t50, :, k, a_all, m_last].copy(), extra))

    # per-detection outcome at IoU 0.50, area "all", for pictures
    status = np.where(keep, np.where(det_out[a_all], IGNORED, FP), NOT_EVALUATED).astype(np.int8)
    status[rows] = np.where(row_ig[a_all, t50], IGNORED, np.where(row_tp[a_all, t50], TP, FP))
    m50 = np.full(n_det, -1, np.int64)
    m50[rows] = match[a_all, t50]
    found = np.zeros(len(gt), bool)
    found[m50[status == TP]] = True
    mean = stats["AP"] if stats["AP"] > -1 else None
    return EvalResult(metric, results, mean, status, m50, found, float(iou_thrs[t50]), coco=stats,
                      coco_precision=precision, coco_recall=recall)


def _mean_valid(s: np.ndarray) -> Optional[float]:
    v = s[s > -1]
    return float(np.mean(v)) if len(v) else None


def _coco_stats(precision: np.ndarray, recall: np.ndarray, iou_thrs: np.ndarray, max_dets: Sequence[int],
                area_names: Sequence[str]) -> Dict[str, float]:
    """The twelve numbers of ``COCOeval.summarize()`` (-1 where nothing was evaluated)."""
    names = list(area_names)
    top = max_dets[-1]

    def one(ap: bool, thr=None, area="all", md=top) -> float:
        if area not in names or md not in max_dets:
            return -1.0
        a, m = names.index(area), list(max_dets).index(md)
        s = precision if ap else recall
        if thr is not None:
            s = s[np.flatnonzero(thr == iou_thrs)]
        s = s[..., a, m]
        v = s[s > -1]
        return float(np.mean(v)) if len(v) else -1.0

    md = list(max_dets) + [top] * 3
    values = [one(True), one(True, 0.5), one(True, 0.75), one(True, area="small"), one(True, area="medium"),
              one(True, area="large"), one(False, md=md[0]), one(False, md=md[1]), one(False, md=md[2]),
              one(False, area="small"), one(False, area="medium"), one(False, area="large")]
    return dict(zip(COCO_STAT_NAMES, values))


# ----------------------------------------------------------------------------------------------------------------
# Per image outcome and reports

def image_outcome(result: EvalResult, gt: GroundTruth, dets: Detections, n_images: int, min_score: float = 0.0
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image ``(true positives, false positives, missed objects)`` among detections scored ``>= min_score``.

    A missed object is one no such detection matched (difficult and crowd objects are never missed).  Greedy
    matching never lets a lower-scored detection change a higher-scored one's outcome, so this is the evaluation
    itself seen at that score."""
    shown = dets.scores >= min_score
    tp = np.bincount(dets.image[shown & (result.status == TP)], minlength=n_images)
    fp = np.bincount(dets.image[shown & (result.status == FP)], minlength=n_images)
    found = np.zeros(len(gt), bool)
    hit = shown & (result.status == TP)
    found[result.matched[hit]] = True
    missed = np.bincount(gt.image[~found & ~gt.difficult & ~gt.iscrowd], minlength=n_images) \
        if not result.metric.startswith("coco") else np.bincount(gt.image[~found & ~gt.iscrowd], minlength=n_images)
    return tp[:n_images], fp[:n_images], missed[:n_images]


def _finite_or_none(v: Optional[float]) -> Optional[float]:
    return None if v is None or not np.isfinite(v) else float(v)


def result_document(result: EvalResult, **extra) -> dict:
    """The ``--json`` document: metric, mAP, per-class numbers (AP as a fraction, ``None`` for a class with no
    positives), COCO's twelve numbers for ``coco``, then ``extra`` keys."""
    classes = {}
    for c in result.classes:
        entry = {"ap": _finite_or_none(c.ap), "ground_truths": c.ground_truths, "detections": c.detections,
                 "max_recall": _finite_or_none(c.max_recall), "ignored": c.ignored}
        entry.update({k: _finite_or_none(v) for k, v in c.extra.items()})
        classes[c.name] = entry
    doc = {"metric": result.metric, "mAP": _finite_or_none(result.mAP), "classes": classes}
    if result.coco is not None:
        doc["coco"] = {k: float(v) for k, v in result.coco.items()}
    else:
        doc["iou_threshold"] = result.iou_threshold
    doc.update(extra)
    return doc


_COCO_LINES = tuple(
    (("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")) + (iou, area, md)
    for ap, iou, area, md in ((1, "0.50:0.95", "all", 100), (1, "0.50", "all", 100), (1, "0.75", "all", 100),
                              (1, "0.50:0.95", "small", 100), (1, "0.50:0.95", "medium", 100),
                              (1, "0.50:0.95", "large", 100), (0, "0.50:0.95", "all", 1), (0, "0.50:0.95", "all", 10),
                              (0, "0.50:0.95", "all", 100), (0, "0.50:0.95", "small", 100),
                              (0, "0.50:0.95", "medium", 100), (0, "0.50:0.95", "large", 100)))


def format_table(result: EvalResult) -> str:
    """The per-class table (class, ground truths, detections, AP, max recall) and the mean; for COCO the twelve
    summary lines too (laid out as ``COCOeval.summarize()`` prints them)."""
    width = max([len("class")] + [len(c.name) for c in result.classes])

    def f(v):
        return "     -" if v is None or not np.isfinite(v) else f"{v:6.4f}"
    ap_name = "AP" if result.coco is None else "AP@[.5:.95]"
    rec_name = "max recall" if result.coco is None else "recall@.5"
    lines = [f"{'class':<{width}}  {'GT':>7}  {'dets':>8}  {ap_name:>11}  {rec_name:>10}"]
    for c in result.classes:
        lines.append(f"{c.name:<{width}}  {c.ground_truths:>7}  {c.detections:>8}  {f(c.ap):>11}  "
                     f"{f(c.max_recall):>10}")
    total_gt = sum(c.ground_truths for c in result.classes)
    total_det = sum(c.detections for c in result.classes)
    label = {"voc07": "mAP (VOC07 11-point)", "voc12": "mAP (VOC12 all-point)",
             "dota-task1": "mAP (DOTA task1)", "dota-task2": "mAP (DOTA task2)", "coco": "mAP",
             "coco-segm": "mask mAP"}[result.metric]
    lines.append(f"{'mean':<{width}}  {total_gt:>7}  {total_det:>8}  {f(result.mAP):>11}  {label}")
    if result.coco is not None:
        lines.append("")
        for (title, kind, iou, area, md), v in zip(_COCO_LINES, result.coco.values()):
            lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={md:>3d} ] = {v:0.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------

def evaluate(gt: GroundTruth, dets: Detections, classes: Sequence[str], metric: str, iou_threshold: float = 0.5,
             polygon_iou: str = "devkit", masks=None) -> EvalResult:
    """Evaluate ``dets`` against ``gt`` with ``metric`` (one of :data:`METRICS`).  ``coco-segm`` needs ``masks``:
    one :class:`dsprep.rle.MaskSet` holding the ground truth's masks (rows of ``gt``) then the detections'."""
    if metric == "coco":
        return evaluate_coco(gt, dets, classes)
    if metric == "coco-segm":
        if masks is None:
            raise ValueError("coco-segm needs the instance masks")
        from ..rle import pair_iou
        n_gt = len(gt)
        return evaluate_coco(gt, dets, classes, pair_iou=lambda d, g: pair_iou(masks, d + n_gt, g, gt.iscrowd[g]),
                             metric="coco-segm")
    if metric in PASCAL_METRICS:
        return evaluate_pascal(gt, dets, classes, metric, iou_threshold, polygon_iou)
    raise ValueError(f"metric must be one of {METRICS}, but got {metric!r}")
