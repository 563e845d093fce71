"""``dsprep eval`` speed against the reference evaluators and against the floor, measured in one run.

COCO scale (the case of issue 11): 5,000 images, 35,000 ground-truth boxes in 80 categories, 500,000 detections
(100 per image: noisy copies of the objects and random boxes), written as a COCO instances JSON and a results
JSON.  Timed, each from the files on disk:

* dsprep: ``evaluate_paths`` (read both JSON files, build arrays, match, accumulate, the 12 numbers);
* pycocotools: ``COCO`` + ``loadRes`` + ``COCOeval.evaluate/accumulate/summarize``;
* the floor: ``json.load`` of both files, grouping detections and objects by (image, category) and every IoU
  between them in numpy: what any evaluator must at least do.  Measured twice: with a plain ``json.load``, and
  with Python's garbage collector paused while parsing (what dsprep does; the strict floor the ratio is given
  against).

DOTA task1: 50,000 detections (noisy oriented copies of 12,000 objects in 15 classes over 200 images, random
boxes, a few bow ties) against DOTA_devkit's ``dota_evaluation_task1.voc_eval`` per class.  The devkit needs its
``polyiou`` SWIG extension: point ``DOTA_DEVKIT`` at a folder holding DOTA_devkit's ``dota_evaluation_task1.py``
and a built ``_polyiou`` (nothing of it is part of dsprep).  Without it, the comparison is against a
re-statement of the devkit's per-detection loop written for this benchmark (shapely polygons instead of the C
polyiou), and the output says so.

    python benchmarks/bench_eval.py [--quick] [--skip-pycocotools] [--repeats 3]

Each case runs ``--repeats`` times, interleaved with the ones it is compared with, and the best time counts (on a
shared machine the minimum is the time the work takes; pycocotools, at over a minute, runs once).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dsprep.evaluation.results import evaluate_paths  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# COCO

def make_coco(folder: Path, images=5000, objects=35000, detections=500000, categories=80, seed=0):
    rng = np.random.default_rng(seed)
    W, H = 640, 480
    img_ids = np.sort(rng.choice(np.arange(1, images * 20), images, replace=False))
    cats = [{"id": int(c), "name": f"class{c}", "supercategory": "thing"} for c in range(1, categories + 1)]
    obj_img = np.sort(rng.integers(0, images, objects))
    wh = np.exp(rng.uniform(np.log(8), np.log(300), (objects, 2)))
    xy = rng.uniform(0, 1, (objects, 2)) * (np.array([W, H]) - wh).clip(1)
    obj_cat = rng.integers(1, categories + 1, objects)
    crowd = rng.random(objects) < 0.01
    area = wh[:, 0] * wh[:, 1] * rng.uniform(0.55, 0.95, objects)
    anns = [{"id": i + 1, "image_id": int(img_ids[obj_img[i]]), "category_id": int(obj_cat[i]),
             "bbox": [round(float(v), 2) for v in (*xy[i], *wh[i])], "area": round(float(area[i]), 2),
             "iscrowd": int(crowd[i]), "segmentation": []} for i in range(objects)]
    gt = {"info": {}, "licenses": [], "images": [{"id": int(i), "file_name": f"{i:012d}.jpg", "width": W,
                                                   "height": H} for i in img_ids],
          "annotations": anns, "categories": cats}
    # detections: ~3 noisy copies per object, the rest random boxes
    n_copy = min(detections, objects * 3)
    src = rng.integers(0, objects, n_copy)
    jitter = rng.normal(0, 0.12, (n_copy, 4)) * np.repeat(wh[src], 2, axis=0).reshape(n_copy, 4)
    d_xy = xy[src] + jitter[:, :2]
    d_wh = (wh[src] + jitter[:, 2:]).clip(2)
    d_img = obj_img[src]
    d_cat = np.where(rng.random(n_copy) < 0.9, obj_cat[src], rng.integers(1, categories + 1, n_copy))
    n_rand = detections - n_copy
    r_wh = np.exp(rng.uniform(np.log(8), np.log(300), (n_rand, 2)))
    r_xy = rng.uniform(0, 1, (n_rand, 2)) * (np.array([W, H]) - r_wh).clip(1)
    r_img = rng.integers(0, images, n_rand)
    r_cat = rng.integers(1, categories + 1, n_rand)
    all_xywh = np.round(np.concatenate([np.c_[d_xy, d_wh], np.c_[r_xy, r_wh]]), 2)
    all_img = img_ids[np.r_[d_img, r_img]]
    all_cat = np.r_[d_cat, r_cat]
    scores = np.round(np.r_[rng.uniform(0.3, 1, n_copy), rng.uniform(0, 0.7, n_rand)], 4)
    order = rng.permutation(detections)
    dets = [{"image_id": int(all_img[i]), "category_id": int(all_cat[i]),
             "bbox": [float(v) for v in all_xywh[i]], "score": float(scores[i])} for i in order]
    gt_path, det_path = folder / "instances_bench.json", folder / "results_bench.json"
    gt_path.write_text(json.dumps(gt))
    det_path.write_text(json.dumps(dets))
    return gt_path, det_path


def floor(gt_path: Path, det_path: Path, pause_gc: bool = True) -> int:
    """Load both JSON files, group by (image, category), every IoU within a group, in numpy.

    ``pause_gc``: with Python's cyclic garbage collector paused while ``json.load`` builds its million small
    objects (as dsprep does): 2-2.5x faster parsing, so the strict floor."""
    enabled = gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        with open(gt_path) as f:
            gt = json.load(f)
        with open(det_path) as f:
            dets = json.load(f)
    finally:
        if enabled:
            gc.enable()
    anns = gt["annotations"]
    g_key = np.array([a["image_id"] for a in anns], np.int64) * 10000 + np.array([a["category_id"] for a in anns])
    g_box = np.array([a["bbox"] for a in anns], np.float64)
    d_key = np.array([d["image_id"] for d in dets], np.int64) * 10000 + np.array([d["category_id"] for d in dets])
    d_box = np.array([d["bbox"] for d in dets], np.float64)
    _ = np.array([d["score"] for d in dets], np.float64)
    order = np.argsort(g_key, kind="stable")
    gs = g_key[order]
    lo = np.searchsorted(gs, d_key, "left")
    n = np.searchsorted(gs, d_key, "right") - lo
    di = np.repeat(np.arange(len(d_key)), n)
    gi = order[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    a, b = d_box[di], g_box[gi]
    w = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0)
    iou = inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)
    return len(iou)


def pycocotools_stats(gt: Path, res: Path) -> np.ndarray:
    """pycocotools' 12 numbers for ``gt`` and ``res`` (the reference run: tests/helpers.pycocotools_eval)."""
    from helpers import pycocotools_eval  # tests/helpers.py: the one reference runner of the tests and benchmarks
    return np.array(pycocotools_eval(gt, res, "bbox").stats)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def best_of(repeats: int, cases):
    """Run each ``(fn, args)`` of ``cases`` ``repeats`` times, interleaved (so a busy spell on a shared machine hits
    them alike); the minimum wall and CPU time of each, and its last result."""
    wall = [float("inf")] * len(cases)
    cpu = [float("inf")] * len(cases)
    out = [None] * len(cases)
    for _ in range(repeats):
        for i, (fn, args) in enumerate(cases):
            c = time.process_time()
            w, out[i] = timed(fn, *args)
            wall[i], cpu[i] = min(wall[i], w), min(cpu[i], time.process_time() - c)
    return wall, cpu, out


# ----------------------------------------------------------------------------------------------------------------
# DOTA task1

DOTA_CLASSES = ["plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle",
                "ship", "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout",
                "harbor", "swimming-pool", "helicopter"]


def _rects(cx, cy, w, h, angle):
    c, s = np.cos(angle), np.sin(angle)
    dx = np.stack([-w, w, w, -w], 1) / 2
    dy = np.stack([-h, -h, h, h], 1) / 2
    x = cx[:, None] + dx * c[:, None] - dy * s[:, None]
    y = cy[:, None] + dx * s[:, None] + dy * c[:, None]
    return np.stack([x, y], 2)


def make_dota(folder: Path, images=200, objects=12000, detections=50000, seed=1):
    rng = np.random.default_rng(seed)
    S = 4000
    (folder / "labelTxt").mkdir(parents=True)
    (folder / "task1").mkdir()
    names = [f"P{9000 + i:04d}" for i in range(images)]
    o_img = rng.integers(0, images, objects)
    o_cls = rng.integers(0, len(DOTA_CLASSES), objects)
    w, h = rng.uniform(10, 120, objects), rng.uniform(10, 80, objects)
    cx, cy = rng.uniform(100, S - 100, objects), rng.uniform(100, S - 100, objects)
    ang = rng.uniform(0, np.pi, objects)
    quads = np.round(_rects(cx, cy, w, h, ang))
    diff = rng.random(objects) < 0.1
    lines = [[] for _ in range(images)]
    for i in range(objects):
        lines[o_img[i]].append(" ".join(str(int(v)) for v in quads[i].reshape(-1)) +
                               f" {DOTA_CLASSES[o_cls[i]]} {int(diff[i])}\n")
    for i, name in enumerate(names):
        (folder / "labelTxt" / f"{name}.txt").write_text("imagesource:bench\ngsd:0.5\n" + "".join(lines[i]))
    n_copy = int(detections * 0.7)
    src = rng.integers(0, objects, n_copy)
    dq = _rects(cx[src] + rng.normal(0, 4, n_copy), cy[src] + rng.normal(0, 4, n_copy),
                w[src] * rng.normal(1, 0.1, n_copy), h[src] * rng.normal(1, 0.1, n_copy),
                ang[src] + rng.normal(0, 0.1, n_copy))
    bow = rng.random(n_copy) < 0.002  # a few self-intersecting quads, as detectors sometimes emit
    dq[bow] = dq[bow][:, [0, 2, 1, 3]]
    n_rand = detections - n_copy
    rq = _rects(rng.uniform(100, S - 100, n_rand), rng.uniform(100, S - 100, n_rand), rng.uniform(10, 120, n_rand),
                rng.uniform(10, 80, n_rand), rng.uniform(0, np.pi, n_rand))
    d_img = np.r_[o_img[src], rng.integers(0, images, n_rand)]
    d_cls = np.r_[o_cls[src], rng.integers(0, len(DOTA_CLASSES), n_rand)]
    d_q = np.round(np.concatenate([dq, rq]), 1)
    d_s = np.round(rng.random(detections), 6) + np.arange(detections) * 1e-12  # no two scores equal
    per_class = [[] for _ in DOTA_CLASSES]
    for i in rng.permutation(detections):
        per_class[d_cls[i]].append(f"{names[d_img[i]]} {d_s[i]:.12f} " +
                                   " ".join(f"{v:.1f}" for v in d_q[i].reshape(-1)) + "\n")
    for k, c in enumerate(DOTA_CLASSES):
        (folder / "task1" / f"Task1_{c}.txt").write_text("".join(per_class[k]))
    (folder / "imageset.txt").write_text("".join(n + "\n" for n in names))
    return folder


def devkit_aps(folder: Path):
    """DOTA_devkit's own evaluation, when DOTA_DEVKIT points at a folder with it and a built polyiou."""
    where = os.environ.get("DOTA_DEVKIT")
    if not where or not (Path(where) / "dota_evaluation_task1.py").is_file():
        return None
    import types
    if where not in sys.path:
        sys.path.insert(0, where)
    sys.modules.setdefault("matplotlib", types.ModuleType("matplotlib"))  # imported by the devkit, never used
    sys.modules.setdefault("matplotlib.pyplot", types.ModuleType("matplotlib.pyplot"))
    import dota_evaluation_task1 as dk
    aps = []
    with contextlib.redirect_stdout(io.StringIO()):
        for c in DOTA_CLASSES:
            _, _, ap = dk.voc_eval(str(folder / "task1" / "Task1_{:s}.txt"), str(folder / "labelTxt" / "{:s}.txt"),
                                   str(folder / "imageset.txt"), c, ovthresh=0.5, use_07_metric=True)
            aps.append(ap)
    return np.array(aps)


def restated_devkit_aps(folder: Path):
    """The devkit's per-detection loop, restated for this benchmark: one detection at a time in score order, its
    image's objects of the class, a +1 box-overlap prefilter, polygon IoU per candidate (shapely, one call per
    pair, lobes weighted as polyiou does), best object, TP/FP/difficult; VOC07 11-point AP."""
    from dsprep.dota import read_dota
    from dsprep.evaluation.metrics import polygon_iou_pairs, voc_ap
    names = (folder / "imageset.txt").read_text().split()
    recs = {n: read_dota(folder / "labelTxt" / f"{n}.txt")[0] for n in names}
    aps = []
    for c in DOTA_CLASSES:
        gts, npos = {}, 0
        for n, r in recs.items():
            m = [k for k, x in enumerate(r.names) if x == c]
            gts[n] = (r.polygons[m].reshape(-1, 8), r.difficult[m] != 0, [False] * len(m))
            npos += int((r.difficult[m] == 0).sum())
        rows = [ln.split() for ln in (folder / "task1" / f"Task1_{c}.txt").read_text().splitlines()]
        conf = np.array([float(x[1]) for x in rows])
        bb = np.array([[float(z) for z in x[2:]] for x in rows])
        order = np.argsort(-conf)
        tp, fp = np.zeros(len(rows)), np.zeros(len(rows))
        for d, i in enumerate(order):
            g, hard, seen = gts[rows[i][0]]
            q = bb[i]
            ovmax, jmax = -np.inf, -1
            if len(g):
                gx, gy = g[:, 0::2], g[:, 1::2]
                ix = np.maximum(np.minimum(gx.max(1), q[0::2].max()) - np.maximum(gx.min(1), q[0::2].min()) + 1, 0)
                iy = np.maximum(np.minimum(gy.max(1), q[1::2].max()) - np.maximum(gy.min(1), q[1::2].min()) + 1, 0)
                keep = np.flatnonzero(ix * iy > 0)
                if len(keep):
                    ov = [polygon_iou_pairs(g[j].reshape(1, 4, 2), q.reshape(1, 4, 2))[0] for j in keep]
                    ovmax, jmax = np.max(ov), keep[int(np.argmax(ov))]
            if ovmax > 0.5:
                if not hard[jmax]:
                    if not seen[jmax]:
                        tp[d], seen[jmax] = 1, True
                    else:
                        fp[d] = 1
            else:
                fp[d] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        aps.append(voc_ap(tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps), True))
    return np.array(aps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes (a smoke run)")
    ap.add_argument("--skip-pycocotools", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each timed case (the best counts)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt_path, det_path = make_coco(tmp, 5000 // scale, 35000 // scale, 500000 // scale)
        print(f"COCO: {5000 // scale} images, {35000 // scale} objects, {500000 // scale} detections "
              f"({det_path.stat().st_size / 1e6:.0f} MB of results JSON)")
        (t_plain, t_floor, t_ours), (c_plain, c_floor, c_ours), (pairs, _, ev) = best_of(args.repeats, [
            (floor, (gt_path, det_path, False)), (floor, (gt_path, det_path, True)),
            (evaluate_paths, (gt_path, det_path, "coco"))])
        print(f"  (best of {args.repeats}, interleaved; wall / CPU seconds)")
        print(f"  floor, plain json.load (+ group + {pairs:,} IoUs): {t_plain:6.2f} / {c_plain:6.2f}")
        print(f"  floor, json.load with the GC paused:              {t_floor:6.2f} / {c_floor:6.2f}")
        print(f"  dsprep eval:                                      {t_ours:6.2f} / {c_ours:6.2f}  = "
              f"{t_ours / t_floor:.2f}x the strict floor ({c_ours / c_floor:.2f}x in CPU), "
              f"{t_ours / t_plain:.2f}x the plain one")
        if not args.skip_pycocotools:
            c = time.process_time()
            t_ref, stats = timed(pycocotools_stats, gt_path, det_path)
            c_ref = time.process_time() - c
            diff = np.abs(np.array(list(ev.result.coco.values())) - stats).max()
            print(f"  pycocotools (once):                               {t_ref:6.2f} / {c_ref:6.2f}  -> dsprep is "
                  f"{t_ref / t_ours:.1f}x faster ({c_ref / c_ours:.1f}x in CPU; largest difference in the 12 "
                  f"numbers: {diff:.1e})")
        dota = make_dota(tmp / "dota", 200, 12000 // scale, 50000 // scale)
        print(f"DOTA task1: {50000 // scale} detections, {12000 // scale} objects, 15 classes")
        label = "DOTA_devkit (its polyiou extension)"
        reference = devkit_aps
        if not (os.environ.get("DOTA_DEVKIT") and (Path(os.environ["DOTA_DEVKIT"]) / "dota_evaluation_task1.py")
                .is_file()):
            reference = restated_devkit_aps
            label = "devkit loop restated (DOTA_DEVKIT not set: shapely IoU per pair, not the devkit's C polyiou)"
        (t_ours, t_dk), (c_ours, c_dk), (ev, ref) = best_of(args.repeats, [
            (evaluate_paths, (dota, dota / "task1", "dota-task1")), (reference, (dota,))])
        ours = np.array([c.ap for c in ev.result.classes])
        by_name = dict(zip([c.name for c in ev.result.classes], ours))
        diff = np.abs(np.array([by_name[c] for c in DOTA_CLASSES]) - ref).max()
        print(f"  dsprep eval: {t_ours:6.2f} / {c_ours:6.2f}")
        print(f"  {label}: {t_dk:6.2f} / {c_dk:6.2f} -> dsprep is {t_dk / t_ours:.1f}x faster "
              f"({c_dk / c_ours:.1f}x in CPU; largest AP difference {diff:.1e})")


if __name__ == "__main__":
    main()
