"""Segmentation scoring speed, measured in one run.

* ``eval --metric miou`` (dsprep's ``plan`` + the per-image confusion jobs, one worker) on N index masks of
  500 x 375 (VOC's size) against the plain loop FCN's ``score.py`` stands for: read each ground-truth and predicted
  PNG with PIL (palette indices) and add ``np.bincount`` of ``n * gt + pred`` over the valid pixels.  Goal: within
  1.2x of the loop.
* ``eval --metric coco-segm`` (``evaluate_paths``: read both JSON files, rasterize the polygons, decode the RLE
  strings, match, accumulate) against pycocotools' ``COCO`` + ``loadRes`` + ``COCOeval(..., "segm")``.  Goal: at
  least 5x faster.  Same 12 numbers checked.

    python benchmarks/bench_segmentation.py [--masks 1000] [--images 500] [--repeats 3]

Each case runs ``--repeats`` times, interleaved, and the best time counts (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_masks(root: Path, n: int, seed: int = 0):
    from dsprep.formats.vocmasks import encode_palette_png, voc_palette
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt" / "SegmentationClass", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    pal = voc_palette()
    for i in range(n):
        m = np.zeros((375, 500), np.uint8)
        for _ in range(3):
            c = int(rng.integers(1, 21))
            x, y = rng.integers(0, 400), rng.integers(0, 300)
            cv2.ellipse(m, (int(x), int(y)), (int(rng.integers(20, 120)), int(rng.integers(20, 90))), 0, 0, 360,
                        c, -1)
        edges = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
        gt = m.copy()
        gt[edges] = 255
        pred = np.roll(m, int(rng.integers(-6, 7)), axis=1)
        (gt_dir / f"{i:06d}.png").write_bytes(encode_palette_png(gt, pal))
        (pred_dir / f"{i:06d}.png").write_bytes(encode_palette_png(pred, pal))
    return root / "gt", pred_dir


def plain_loop(gt_root: Path, pred_dir: Path, n_cl: int = 21) -> np.ndarray:
    from PIL import Image
    hist = np.zeros((n_cl, n_cl), np.int64)
    for f in sorted((gt_root / "SegmentationClass").glob("*.png")):
        a = np.array(Image.open(f)).ravel()
        b = np.array(Image.open(pred_dir / f.name)).ravel()
        k = a < n_cl
        hist += np.bincount(n_cl * a[k].astype(int) + b[k], minlength=n_cl ** 2).reshape(n_cl, n_cl)
    return hist


def dsprep_miou(gt_root: Path, pred_dir: Path) -> np.ndarray:
    from dsprep.jobs.segeval import confusion_one, plan
    p = plan(gt_root, pred_dir, None, None, "fail")
    hist = np.zeros((21, 21), np.int64)
    for item in p.items:
        hist += confusion_one(item)["hist"]
    return hist


def make_coco(root: Path, n_images: int, seed: int = 1):
    from pycocotools import mask as M
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    imgs, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        h, w = 480, 640
        imgs.append({"id": i, "file_name": f"{i}.jpg", "height": h, "width": w})
        objects = []
        for _ in range(int(rng.integers(3, 12))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 90)
            ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(6, 30))))
            rad = r * rng.uniform(0.6, 1.0, len(ang))
            poly = np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]
            cat = int(rng.integers(1, 81))
            rl = M.merge(M.frPyObjects([poly.reshape(-1).tolist()], h, w))
            bb = [float(v) for v in M.toBbox(rl)]
            if bb[2] <= 0 or bb[3] <= 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "iscrowd": 0,
                         "segmentation": [poly.reshape(-1).tolist()], "area": float(M.area(rl)), "bbox": bb})
            objects.append((rl, cat))
        for k in range(100):  # a detector's 100 per image: noisy copies of the objects, and strays
            if objects and k < 4 * len(objects):
                rl, cat = objects[k % len(objects)]
                m = np.roll(M.decode(rl), int(rng.integers(-8, 9)), axis=int(rng.integers(0, 2)))
            else:
                cat = int(rng.integers(1, 81))
                m = np.zeros((h, w), np.uint8)
                y, x = int(rng.integers(0, h - 40)), int(rng.integers(0, w - 40))
                m[y:y + int(rng.integers(5, 40)), x:x + int(rng.integers(5, 40))] = 1
            e = M.encode(np.asfortranarray(m))
            dets.append({"image_id": i, "category_id": cat, "score": float(rng.random()),
                         "segmentation": {"size": [h, w], "counts": e["counts"].decode()}})
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, 81)]
    (root / "instances_default.json").write_text(json.dumps({"images": imgs, "annotations": anns,
                                                             "categories": cats}))
    (root / "res.json").write_text(json.dumps(dets))
    return root / "instances_default.json", root / "res.json", len(anns), len(dets)


def pycocotools_segm(gt: Path, res: Path) -> np.ndarray:
    """pycocotools' 12 numbers for ``gt`` and ``res`` (the reference run: tests/helpers.pycocotools_eval)."""
    from helpers import pycocotools_eval  # tests/helpers.py: the one reference runner of the tests and benchmarks
    return np.array(pycocotools_eval(gt, res, "segm").stats)


def dsprep_segm(gt: Path, res: Path) -> np.ndarray:
    from dsprep.evaluation.results import evaluate_paths
    return np.array(list(evaluate_paths(gt, res, "coco-segm").result.coco.values()))


def best(fn, *args, repeats=1):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--masks", type=int, default=1000)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt_root, pred_dir = make_masks(root / "miou", args.masks)
        t_loop = t_ours = float("inf")
        for _ in range(args.repeats):  # interleaved: both see the same machine
            t, h_loop = best(plain_loop, gt_root, pred_dir)
            t_loop = min(t_loop, t)
            t, h_ours = best(dsprep_miou, gt_root, pred_dir)
            t_ours = min(t_ours, t)
        assert np.array_equal(h_loop, h_ours), "the two confusion matrices differ"
        print(f"miou, {args.masks} masks of 500x375: dsprep {t_ours:.2f} s, plain PIL + bincount loop "
              f"{t_loop:.2f} s -> {t_ours / t_loop:.2f}x the loop's time (goal <= 1.2x)")

        gt, res, n_gt, n_det = make_coco(root / "segm", args.images)
        t_ours = float("inf")
        for _ in range(args.repeats):
            t, s_ours = best(dsprep_segm, gt, res)
            t_ours = min(t_ours, t)
        t_ref, s_ref = best(pycocotools_segm, gt, res)  # over a minute: once
        diff = float(np.abs(s_ours - s_ref).max())
        print(f"coco-segm, {args.images} images of 640x480, {n_gt} objects (polygons), {n_det} detections (RLE): "
              f"dsprep {t_ours:.2f} s, pycocotools {t_ref:.2f} s -> {t_ref / t_ours:.1f}x faster (goal >= 5x); "
              f"largest difference in the 12 numbers {diff:.1e}")


if __name__ == "__main__":
    main()
