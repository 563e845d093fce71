"""Reading speed of the COCO and YOLO readers, against the baselines issue 13 names, measured in one run, one core.

1. COCO: a generated instances file of N annotations (default 100,000) shaped like COCO's own instances files:
   ~7 annotations per image, one polygon each of 8-60 points (mean 34: ~0.7 KB per annotation, as
   instances_val2017.json's 25 MB for 36,781 annotations), 1% crowd masks as RLE, 80 categories with COCO's gapped
   ids, image entries with COCO's keys.  Timed, best of 5 interleaved runs:
     * baseline: ``json.load`` of the file plus numpy grouping of the annotations by image (argsort of the image
       ids, one index array per image);
     * dsprep: ``dsprep.formats.coco.read_coco`` (file -> one ImageRecord per image with boxes, names, areas, crowd flags,
       ids, segmentations kept).
   Both as run by default, and both with the garbage collector paused throughout (the strict floor: what is left
   is parsing work).  The ratio dsprep / baseline is the number the issue bounds (at most 1.5).
2. YOLO: M label files (default 20,000; 1-8 objects each) in the Ultralytics layout, and the same objects as VOC
   XML, each with a tiny JPEG.  Timed, best of 3: ``load_dataset`` on each folder (layout, parsing, image headers,
   checks), and the per-file parsers alone (``yolo.read_labels`` / ``voc.read_voc``).

Usage: python benchmarks/bench_formats.py [N_ANNOTATIONS] [N_LABEL_FILES]
"""
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dsprep.formats.coco import read_coco
from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset
from dsprep.voc import format_voc, read_voc
from dsprep.formats.yolo import format_yolo, read_labels

ROOT = Path(__file__).resolve().parents[1]
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
            62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def make_coco(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    n_img = max(1, n // 7)
    images = [{"license": 1, "file_name": f"{i:012d}.jpg", "coco_url": f"http://images.cocodataset.org/x/{i:012d}.jpg",
               "height": 480, "width": 640, "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": int(i)}
              for i in rng.permutation(10 * n_img)[:n_img]]
    anns = []
    for k in range(n):
        im = images[int(rng.integers(n_img))]
        x, y = rng.random(2) * [560, 400]
        w, h = 2 + rng.random(2) * [78, 78]
        if rng.random() < 0.01:
            seg = {"counts": [int(v) for v in rng.integers(1, 400, 40)], "size": [480, 640]}
            crowd = 1
        else:
            m = int(rng.integers(8, 61))
            t = np.sort(rng.random(m)) * 2 * np.pi
            pts = np.stack([x + w / 2 + np.cos(t) * w / 2, y + h / 2 + np.sin(t) * h / 2], 1)
            seg = [[round(float(v), 2) for v in pts.reshape(-1)]]
            crowd = 0
        anns.append({"segmentation": seg, "area": round(float(w * h * 0.7), 4), "iscrowd": crowd,
                     "image_id": im["id"], "bbox": [round(float(x), 2), round(float(y), 2), round(float(w), 2),
                                                    round(float(h), 2)],
                     "category_id": COCO_IDS[int(rng.integers(80))], "id": 100000 + 3 * k})
    doc = {"info": {"description": "generated", "year": 2017}, "licenses": [{"id": 1, "name": "x", "url": ""}],
           "images": images, "annotations": anns,
           "categories": [{"supercategory": "s", "id": c, "name": f"class{c}"} for c in COCO_IDS]}
    path.write_text(json.dumps(doc))


def baseline(path: Path):
    with open(path, "rb") as f:
        doc = json.load(f)
    img = np.array([a["image_id"] for a in doc["annotations"]], np.int64)
    order = np.argsort(img, kind="stable")
    _, starts = np.unique(img[order], return_index=True)
    return doc, np.split(order, starts[1:])


def timed(fn) -> float:
    """Seconds ``fn`` takes; its result is freed afterwards, outside the timing, so every run starts from the same
    heap (a previous result still alive would make the next run fetch fresh memory from the system)."""
    gc.collect()
    t = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t
    del out
    gc.collect()
    return elapsed


def paused(fn):
    """``fn`` with the cyclic garbage collector paused for the whole timed call (and its aftermath: objects made
    meanwhile are scanned only when it is enabled again, outside the timing)."""
    def run():
        gc.disable()
        try:
            return fn()
        finally:
            gc.enable()
    return run


# whole processes: the baseline as a program of its own, without and with each image's header read (Pillow opens
# lazily: the header, not the pixels) -- `dsprep info` reads the headers too (sizes checked against the file's)
BASE_PROCESS = """
import json, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    doc = json.load(f)
img = np.array([a["image_id"] for a in doc["annotations"]], np.int64)
order = np.argsort(img, kind="stable")
_, starts = np.unique(img[order], return_index=True)
groups = np.split(order, starts[1:])
if len(sys.argv) > 2:
    from pathlib import Path
    from PIL import Image
    bad = 0
    for im in doc["images"]:
        with Image.open(Path(sys.argv[2], im["file_name"])) as f:
            bad += f.size != (im["width"], im["height"])
    print(bad)
print(len(groups))
"""


def process(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - t


def bench_coco_info(n: int) -> None:
    """`dsprep info --json` on the file with its images (one small 640 x 480 JPEG, hard-linked under every name),
    as a whole process, against the baseline program without and with the image headers."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "instances_bench.json"
        make_coco(path, n)
        (root / "images").mkdir()
        jpeg = root / "one.jpg"
        jpeg.write_bytes(cv2.imencode(".jpg", np.full((480, 640, 3), 90, np.uint8))[1].tobytes())
        for im in json.loads(path.read_bytes())["images"]:
            os.link(jpeg, root / "images" / im["file_name"])
        runs = {"json.load + grouping": [sys.executable, "-c", BASE_PROCESS, str(path)],
                "json.load + grouping + image headers": [sys.executable, "-c", BASE_PROCESS, str(path),
                                                         str(root / "images")],
                "dsprep info --json": [sys.executable, "-m", "dsprep", "info", str(path), "--json"]}
        best = {k: float("inf") for k in runs}
        for _ in range(3):  # interleaved
            for label, cmd in runs.items():
                best[label] = min(best[label], process(cmd))
    print(f"COCO, whole processes (start-up included), best of 3, {n:,} annotations with their images:")
    for label, t in best.items():
        extra = ""
        if label.startswith("dsprep"):
            extra = (f"   {t / best['json.load + grouping']:.2f}x json.load + grouping (bound: 1.5x), "
                     f"{t / best['json.load + grouping + image headers']:.2f}x the same work (+ image headers)")
        print(f"  {label:<38} {t:6.2f} s{extra}")


def bench_coco(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instances_bench.json"
        make_coco(path, n)
        baseline(path)  # warm the page cache
        times = {"base": [], "ours": [], "base_paused": [], "ours_paused": []}
        for _ in range(5):  # interleaved: all see the same machine state
            times["base"].append(timed(lambda: baseline(path)))
            times["ours"].append(timed(lambda: read_coco(path)))
            times["base_paused"].append(timed(paused(lambda: baseline(path))))
            times["ours_paused"].append(timed(paused(lambda: read_coco(path))))
        size = path.stat().st_size / 1e6
        coco = read_coco(path)
    t = {k: min(v) for k, v in times.items()}
    objects = sum(len(r) for r in coco.records)
    print(f"COCO: {n:,} annotations, {len(coco.records):,} images, {size:.0f} MB ({size * 1000 / n:.2f} KB per "
          f"annotation); {objects:,} objects read")
    print("  as run by default (dsprep pauses the collector while parsing, then the collector scans the result):")
    print(f"    json.load + numpy grouping by image:  {t['base']:.3f} s")
    print(f"    dsprep read_coco (records):           {t['ours']:.3f} s   ratio {t['ours'] / t['base']:.2f}x "
          f"(bound: 1.5x)")
    print("  both with the collector paused throughout (the parsing work alone):")
    print(f"    json.load + numpy grouping by image:  {t['base_paused']:.3f} s")
    print(f"    dsprep read_coco (records):           {t['ours_paused']:.3f} s   ratio "
          f"{t['ours_paused'] / t['base_paused']:.2f}x (bound: 1.5x)")


def make_label_sets(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    tiny = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    yolo, voc = root / "yolo", root / "voc"
    for d in (yolo / "images" / "train", yolo / "labels" / "train", voc / "Annotations", voc / "JPEGImages"):
        d.mkdir(parents=True)
    names = ["person", "car", "chair", "dog", "bus", "aeroplane"]
    (yolo / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [" + ", ".join(names) + "]\n")
    for i in range(n):
        k = int(rng.integers(1, 9))
        x0, y0 = rng.integers(0, 300, k), rng.integers(0, 200, k)
        boxes = np.stack([x0, y0, x0 + rng.integers(5, 190, k), y0 + rng.integers(5, 170, k)], 1).astype(float)
        cls = rng.integers(0, 6, k)
        # the image is 8x8 on disk; the VOC <size> says 500x375, so YOLO numbers use 8x8 to describe the same
        # relative boxes (both readers then do the same work: parse, probe the header, check)
        rec = ImageRecord(f"{i:06d}.jpg", 500, 375, boxes=boxes, names=[names[c] for c in cls])
        (voc / "Annotations" / f"{i:06d}.xml").write_bytes(format_voc(rec))
        vals = np.stack([(boxes[:, 0] + boxes[:, 2]) / 1000, (boxes[:, 1] + boxes[:, 3]) / 750,
                         (boxes[:, 2] - boxes[:, 0]) / 500, (boxes[:, 3] - boxes[:, 1]) / 375], 1)
        (yolo / "labels" / "train" / f"{i:06d}.txt").write_text(format_yolo(cls, vals))
        (yolo / "images" / "train" / f"{i:06d}.jpg").write_bytes(tiny)
        (voc / "JPEGImages" / f"{i:06d}.jpg").write_bytes(tiny)


def best(fn, repeat=3):
    return min(timed(fn) for _ in range(repeat))


def bench_yolo(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_label_sets(root, n)
        labels = sorted(str(p) for p in (root / "yolo" / "labels" / "train").iterdir())
        xmls = sorted(str(p) for p in (root / "voc" / "Annotations").iterdir())
        load_dataset(root / "voc")
        load_dataset(root / "yolo")  # warm the page cache
        t_voc = best(lambda: load_dataset(root / "voc"))
        t_yolo = best(lambda: load_dataset(root / "yolo"))
        p_voc = best(lambda: [read_voc(p) for p in xmls])
        p_yolo = best(lambda: [read_labels(p, False, 6, "fail") for p in labels])
    print(f"YOLO vs VOC: {n:,} label files / XML files, each with its image")
    print(f"  load_dataset VOC:   {n / t_voc:10,.0f} files/s")
    print(f"  load_dataset YOLO:  {n / t_yolo:10,.0f} files/s   YOLO / VOC rate: {t_voc / t_yolo:.2f}x (bound: >= 1)")
    print(f"  parse only, VOC read_voc:      {n / p_voc:10,.0f} files/s")
    print(f"  parse only, YOLO read_labels:  {n / p_yolo:10,.0f} files/s   ratio {p_voc / p_yolo:.2f}x")


def main():
    n_ann = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    n_files = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    print(f"load before: {os.getloadavg()[0]:.2f}")
    bench_coco(n_ann)
    bench_coco_info(n_ann)
    bench_yolo(n_files)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
