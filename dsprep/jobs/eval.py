"""The picture-writing work of ``dsprep eval``: precision-recall charts (``--plot``) and one image per evaluated
image with its true positives, false positives and missed objects (``--visualize``), worst images first."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..ops.draw import tag_text
from ..evaluation.metrics import TP, coco_iou_thresholds, image_outcome
from ..images import read_image, write_image
from ..outputs import atomic_write_text, safe_name


def write_charts(result, out_dir: Path) -> int:
    """``pr_<class>.png`` for every class with positives and ``pr_all.png``; returns the number of files."""
    from ..evaluation.charts import class_chart, overview_chart
    out_dir = Path(out_dir)
    entries = []
    written = 0
    used = set()
    for k, c in enumerate(result.classes):
        if c.ap is None:
            continue
        extra = []
        if result.coco_precision is not None:
            p = result.coco_precision[:, :, k, 0, -1]
            at75 = np.flatnonzero(coco_iou_thresholds() == 0.75)
            if len(at75) and len(p) == len(coco_iou_thresholds()):
                extra.append(("IoU 0.75", c.recall, p[at75[0]]))
            extra.append(("mean 0.50:0.95", c.recall, p.mean(axis=0)))
        name = safe_name(c.name)
        while name in used:  # two class names that differ only in characters safe_name replaces
            name += "_"
        used.add(name)
        write_image(out_dir / f"pr_{name}.png", class_chart(c.name, k, result.metric, c.ap, c.recall, c.precision,
                                                              extra))
        entries.append((c.name, k, c.ap, c.recall, c.precision))
        written += 1
    write_image(out_dir / "pr_all.png", overview_chart(entries, result.metric, result.mAP))
    return written + 1


@dataclass(frozen=True)
class OutcomeItem:
    """What to draw on one image (picklable: runs in worker processes)."""

    rank: int
    index: int  # the record's position in the evaluation's records
    image_path: str
    stem: str
    det_quads: np.ndarray
    det_status: np.ndarray
    det_labels: Tuple[str, ...]
    det_scores: np.ndarray
    gt_quads: np.ndarray
    gt_state: np.ndarray
    gt_labels: Tuple[str, ...]
    caption: str
    orient: bool = True  # apply the EXIF orientation (decided when the ground truth was read)


def plan_outcomes(ev, min_score: float, limit: Optional[int] = None) -> Tuple[List[OutcomeItem], str]:
    """One item per image with something to draw, worst first (most false positives + missed objects, then more
    false positives, then name), at most ``limit``; and the ``index.tsv`` text listing them."""
    res, gt, dets, records = ev.result, ev.gt, ev.dets, ev.records
    classes = ev.dataset.classes
    n = len(records)
    tp, fp, missed = image_outcome(res, gt, dets, n, min_score)
    shown = (dets.scores >= min_score) & (res.status >= -1)
    found = np.zeros(len(gt), bool)
    hit = shown & (res.status == TP)
    found[res.matched[hit]] = True
    ignored_gt = gt.iscrowd if res.metric.startswith("coco") else (gt.difficult | gt.iscrowd)
    gt_state = np.where(ignored_gt, -1, np.where(found, 1, 0)).astype(np.int8)
    det_count = np.bincount(dets.image[shown], minlength=n)
    has_any = (det_count > 0) | (np.bincount(gt.image, minlength=n) > 0)
    stems = np.array([r.stem for r in records], dtype=object)
    order = [i for i in np.lexsort((stems, -fp, -(fp + missed))) if has_any[i]]
    if limit is not None:
        order = order[:limit]
    det_by_image = np.argsort(dets.image, kind="stable")
    det_cut = np.searchsorted(dets.image[det_by_image], np.arange(n + 1))
    gt_by_image = np.argsort(gt.image, kind="stable")
    gt_cut = np.searchsorted(gt.image[gt_by_image], np.arange(n + 1))
    dq, gq = dets.quads, gt.quads
    names = [tag_text(c, k) for k, c in enumerate(classes)]
    iou = f"IoU {'>=' if res.metric == 'coco' else '>'} {res.iou_threshold:g}"
    items, lines = [], ["rank\timage\ttrue_positives\tfalse_positives\tmissed\n"]
    for rank, i in enumerate(order, 1):
        d = det_by_image[det_cut[i]:det_cut[i + 1]]
        d = d[shown[d]]
        g = gt_by_image[gt_cut[i]:gt_cut[i + 1]]
        rec = records[i]
        caption = (f"#{rank} {tag_text(rec.stem, i)}   TP {tp[i]}  FP {fp[i]}  missed {missed[i]}   "
                   f"(score >= {min_score:g}, {iou})")
        items.append(OutcomeItem(rank, int(i), rec.image_path, rec.stem, dq[d], res.status[d].copy(),
                                 tuple(names[k] for k in dets.label[d]), dets.scores[d].copy(), gq[g],
                                 gt_state[g], tuple(names[k] for k in gt.label[g]), caption,
                                 rec.meta.get("orient", True)))
        lines.append(f"{rank}\t{rec.stem}\t{tp[i]}\t{fp[i]}\t{missed[i]}\n")
    return items, "".join(lines)


@dataclass(frozen=True)
class OutcomeOptions:
    out: str
    ext: str = ".jpg"


def outcome_name(item: OutcomeItem, ext: str) -> str:
    return f"{item.rank:04d}_{safe_name(item.stem)}{ext}"


def draw_one(args) -> dict:
    """Worker task: read one image, draw its outcome, write ``<rank>_<image>.jpg``."""
    from ..evaluation.charts import draw_outcome
    item, image, opts = args  # image: decoded pixels (packed data sets) or None (read from item.image_path)
    img = image if image is not None else read_image(item.image_path, orient=item.orient)
    drawn = draw_outcome(img, item.det_quads, item.det_status, item.det_labels, item.det_scores, item.gt_quads,
                         item.gt_state, item.gt_labels, item.caption)
    write_image(Path(opts.out) / outcome_name(item, opts.ext), drawn, jpeg_quality=92)
    return {"images": 1}


def write_index(out_dir: Path, text: str) -> None:
    atomic_write_text(Path(out_dir) / "index.tsv", text)

