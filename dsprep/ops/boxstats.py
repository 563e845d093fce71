"""Box statistics of a data set and the problems they show: duplicate objects, one box with two classes, boxes too
small to train on, rare classes, boxes far from their class's usual size.

Every object of every record is gathered once into flat arrays (:class:`Objects`); the checks are numpy over them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core import Dataset, ImageRecord, Problem

KINDS = ("duplicate_object", "class_conflict", "tiny_box", "rare_class", "size_outlier")  # what this module finds
TINY = 3.0          # boxes narrower or lower than this many pixels are tiny (what trainers drop)
RARE_BELOW = 20     # classes with fewer objects are rare
OUTLIER_MADS = 5.0  # a box whose log area is this many robust deviations from its class's median is a size
OUTLIER_MIN = 20    # outlier, in classes with at least this many objects; the deviation is never taken below
MIN_SPREAD = 0.35   # this (in log area: a factor 1.4), so a tight class flags only boxes 5.8x off in area


@dataclass(frozen=True)
class Objects:
    """Every object of a data set, flat: ``image`` ``(N,)`` int64 record index, ``cls`` ``(N,)`` int64 index
    into ``classes``, ``boxes`` ``(N, 4)`` float64 pixels; ``sizes`` ``(R, 2)`` width and height of each record."""

    image: np.ndarray
    cls: np.ndarray
    boxes: np.ndarray
    classes: List[str]
    sizes: np.ndarray

    @property
    def wh(self) -> np.ndarray:
        return self.boxes[:, 2:4] - self.boxes[:, 0:2]


def gather(records: Sequence[ImageRecord], classes: Sequence[str]) -> Objects:
    classes = list(classes)
    extra = sorted({n for r in records for n in r.names} - set(classes))
    classes += extra
    index = {c: i for i, c in enumerate(classes)}
    counts = np.array([len(r) for r in records], np.int64)
    image = np.repeat(np.arange(len(records), dtype=np.int64), counts)
    cls = np.array([index[n] for r in records for n in r.names], np.int64)
    boxes = np.concatenate([r.boxes for r in records]) if len(image) else np.zeros((0, 4))
    sizes = np.array([(r.width, r.height) for r in records], np.float64).reshape(-1, 2)
    return Objects(image, cls, boxes, classes, sizes)


def problem_file(rec: ImageRecord) -> str:
    """The file a problem names: the record's annotation file, followed by its image when that file holds a whole
    data set (a COCO JSON)."""
    ann = rec.meta.get("annotation_path")
    if not ann:
        return rec.image_path
    if os.path.splitext(os.path.basename(ann))[0] != rec.stem:
        return f"{ann}: {os.path.basename(rec.image_path)}"
    return ann


def _fmt_box(b) -> str:
    return ",".join(f"{v:g}" for v in np.round(b, 1))


def duplicate_problems(obj: Objects, records: Sequence[ImageRecord]) -> List[Problem]:
    """``duplicate_object``: the same class and box (to the pixel) twice in one image; ``class_conflict``: the same
    box with two or more classes."""
    if len(obj.image) == 0:
        return []
    rounded = np.round(obj.boxes).astype(np.int64)
    keys = np.column_stack([obj.image, rounded, obj.cls])
    uniq, counts = np.unique(keys, axis=0, return_counts=True)
    out = []
    for row, n in zip(uniq[counts > 1], counts[counts > 1]):
        rec = records[int(row[0])]
        out.append(Problem("duplicate_object", problem_file(rec),
                           f"'{obj.classes[int(row[5])]}' box {_fmt_box(row[1:5])} {int(n)} times"))
    # one row per distinct (image, box, class): boxes in more than one row carry more than one class
    boxes_of = uniq[:, :5]
    b_uniq, b_inv, b_counts = np.unique(boxes_of, axis=0, return_inverse=True, return_counts=True)
    for g in np.flatnonzero(b_counts > 1):
        rows = uniq[b_inv.reshape(-1) == g]
        rec = records[int(rows[0, 0])]
        names = ", ".join(f"'{obj.classes[int(c)]}'" for c in rows[:, 5])
        out.append(Problem("class_conflict", problem_file(rec), f"box {_fmt_box(rows[0, 1:5])} is {names}"))
    return out


def tiny_problems(obj: Objects, records: Sequence[ImageRecord], tiny: float = TINY) -> List[Problem]:
    """``tiny_box``: under ``tiny`` pixels wide or high."""
    wh = obj.wh
    bad = np.flatnonzero((wh[:, 0] < tiny) | (wh[:, 1] < tiny))
    return [Problem("tiny_box", problem_file(records[int(obj.image[k])]),
                    f"'{obj.classes[int(obj.cls[k])]}' box {_fmt_box(obj.boxes[k])} is "
                    f"{wh[k, 0]:.3g} x {wh[k, 1]:.3g} px (under {tiny:g})") for k in bad]


def rare_problems(obj: Objects, root: str, rare_below: int = RARE_BELOW) -> List[Problem]:
    """``rare_class``: a class (of the class list) with fewer than ``rare_below`` objects."""
    counts = np.bincount(obj.cls, minlength=len(obj.classes))
    return [Problem("rare_class", root, f"'{c}': {int(counts[i])} objects (fewer than {rare_below})")
            for i, c in enumerate(obj.classes) if counts[i] < rare_below]


def _robust_z(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``|v - median of its group| / max(1.4826 * MAD of its group, MIN_SPREAD)`` for every value (0 in groups
    of fewer than ``OUTLIER_MIN``)."""
    z = np.zeros(len(values))
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
    for g in range(n_groups):  # one numpy step per class, not per object
        idx = order[bounds[g]:bounds[g + 1]]
        if len(idx) < OUTLIER_MIN:
            continue
        v = values[idx]
        med = np.median(v)
        z[idx] = np.abs(v - med) / max(1.4826 * np.median(np.abs(v - med)), MIN_SPREAD)
    return z


def outlier_problems(obj: Objects, records: Sequence[ImageRecord], mads: float = OUTLIER_MADS) -> List[Problem]:
    """``size_outlier``: a box whose area is far (``mads`` robust deviations, in log scale) from the rest of its
    class (classes of ``OUTLIER_MIN`` objects or more).  The aspect ratio is not judged: the axis-aligned box of
    a turned object (a ship seen from above) takes any."""
    wh = np.maximum(obj.wh, 1e-6)
    area = wh[:, 0] * wh[:, 1]
    z = _robust_z(np.log(area), obj.cls, len(obj.classes))
    out = []
    for k in np.flatnonzero(z > mads):
        c = obj.cls[k]
        median = np.median(area[obj.cls == c])
        out.append(Problem("size_outlier", problem_file(records[int(obj.image[k])]),
                           f"'{obj.classes[int(c)]}' box {_fmt_box(obj.boxes[k])} ({wh[k, 0]:.3g} x {wh[k, 1]:.3g} "
                           f"px) is {area[k] / median:.3g}x the class's median area"))
    return out


def box_problems(ds: Dataset, rare_below: int = RARE_BELOW, obj: Optional[Objects] = None) -> List[Problem]:
    obj = obj if obj is not None else gather(ds.records, ds.classes)
    return (duplicate_problems(obj, ds.records) + tiny_problems(obj, ds.records)
            + outlier_problems(obj, ds.records) + rare_problems(obj, str(ds.root), rare_below))


def _spread(v: np.ndarray) -> dict:
    p25, med, p75 = np.percentile(v, [25, 50, 75])
    return {"median": round(float(med), 2), "p25": round(float(p25), 2), "p75": round(float(p75), 2)}


def class_statistics(obj: Objects) -> Dict[str, dict]:
    """Per class: object count, and width, height and area (pixels) as median with the 25th and 75th
    percentiles."""
    wh = obj.wh
    out = {}
    for i, c in enumerate(obj.classes):
        sel = obj.cls == i
        n = int(sel.sum())
        if n == 0:
            continue
        w, h = wh[sel, 0], wh[sel, 1]
        out[c] = {"count": n, "width": _spread(w), "height": _spread(h), "area": _spread(w * h)}
    return out
