"""How close ``dsprep split`` divides each class's objects to the asked fractions, against a random split.

    python benchmarks/bench_split.py [--seeds 5] [--images 5000] [--classes 40]
    DATUMARO_PYTHON=/path/to/python-with-datumaro python benchmarks/bench_split.py   # also Datumaro's split

Data sets:
  * a generated long-tailed detection set (class frequencies falling as 1/rank^1.1, one to three classes per image,
    one to eight objects of each, 5% images without objects) -- the shape of COCO, Objects365 or a custom set;
  * ``voc_sample`` of the shared test data (13 real VOC images: tiny, every class in few images).

For each seed and method: the mean and the worst absolute deviation of a class's fraction of objects in a split
from the asked fraction (in percentage points), the worst deviation of a split's fraction of images, how many
(class, split) pairs lack a class that has at least as many images as there are splits, and the time.  Methods:
``random`` (shuffle, cut by image counts: what most scripts and FiftyOne's ``random_split`` do), ``stage 1``
(our iterative stratification alone), ``dsprep`` (stage 1 + refinement: what ``dsprep split`` does), and with
DATUMARO_PYTHON Datumaro's task-aware ``split -t detection`` run on the same boxes.  Ratios are measured within one
run; times are noisy on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsprep.ops.stratify import class_counts, random_split, split_quality, stratified_split  # noqa: E402

FRACTIONS = [0.7, 0.2, 0.1]
SHARED = Path(os.environ.get("DSPREP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# run by DATUMARO_PYTHON: read counts (N, C) from argv[1], split with Datumaro's detection splitter, print the
# subset of every image as JSON
DATUMARO_SCRIPT = r"""
import json, sys
import numpy as np
from datumaro.components.annotation import AnnotationType, Bbox, LabelCategories
from datumaro.components.dataset import Dataset
from datumaro.components.dataset_base import DatasetItem
from datumaro.plugins.splitter import Split
counts = np.load(sys.argv[1])
seed = int(sys.argv[2])
ratios = json.loads(sys.argv[3])
items = []
for i, row in enumerate(counts):
    anns = [Bbox(0, 0, 1, 1, label=int(c)) for c in np.flatnonzero(row) for _ in range(int(row[c]))]
    items.append(DatasetItem(id=str(i), annotations=anns))
cats = {AnnotationType.label: LabelCategories.from_iterable([f"c{k}" for k in range(counts.shape[1])])}
ds = Dataset.from_iterable(items, categories=cats)
names = ["train", "val", "test"][:len(ratios)]
out = Split(ds, "detection", list(zip(names, ratios)), seed=seed)
where = {item.id: item.subset for item in out}
print(json.dumps([names.index(where[str(i)]) if where[str(i)] in names else -1 for i in range(len(counts))]))
"""


def long_tailed(n: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, c + 1) ** 1.1
    p /= p.sum()
    out = np.zeros((n, c), np.int64)
    k = rng.integers(1, 4, n)
    for i in range(n):
        if rng.random() < 0.05:
            continue
        cls = rng.choice(c, size=int(k[i]), replace=False, p=p)
        out[i, cls] = rng.integers(1, 9, len(cls))
    return out


def voc_sample() -> np.ndarray:
    from dsprep.dataset import load_dataset
    ds = load_dataset(SHARED / "voc_sample")
    return class_counts([r.names for r in ds.records], ds.classes)


def datumaro_split(counts, seed, fractions):
    py = os.environ.get("DATUMARO_PYTHON")
    if not py:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "counts.npy")
        np.save(path, counts)
        res = subprocess.run([py, "-c", DATUMARO_SCRIPT, path, str(seed), json.dumps(fractions)],
                             capture_output=True, text=True)
        if res.returncode:
            print(f"  (Datumaro failed: {res.stderr.strip().splitlines()[-1:]})")
            return None
        return np.array(json.loads(res.stdout.strip().splitlines()[-1]))


def measure(name, counts, seeds):
    n = len(counts)
    print(f"\n{name}: {n} images, {counts.shape[1]} classes, {int(counts.sum())} objects; asked "
          f"{'/'.join(f'{f:g}' for f in FRACTIONS)}; {len(seeds)} seeds")
    methods = {
        "random": lambda s: random_split(n, FRACTIONS, np.random.default_rng(s)),
        "stage 1": lambda s: stratified_split(counts, FRACTIONS, np.random.default_rng(s), max_moves=0),
        "dsprep": lambda s: stratified_split(counts, FRACTIONS, np.random.default_rng(s)),
        "datumaro": lambda s: datumaro_split(counts, s, FRACTIONS),
    }
    results = {}
    print(f"  {'method':<10} {'class dev mean':>15} {'class dev worst':>16} {'image dev worst':>16} "
          f"{'missing':>8} {'seconds':>8}")
    for label, fn in methods.items():
        rows = []
        for s in seeds:
            t = time.perf_counter()
            assign = fn(s)
            dt = time.perf_counter() - t
            if assign is None:
                break
            unplaced = int((assign < 0).sum())
            q = split_quality(counts[assign >= 0], assign[assign >= 0], FRACTIONS)
            rows.append((q["mean_class_deviation"], q["max_class_deviation"],
                         float(np.abs(q["image_fractions"] * (n - unplaced) / n - FRACTIONS).max()),
                         len(q["missing"]) + unplaced, dt))
        if not rows:
            continue
        m = np.array(rows).mean(0)
        results[label] = m
        print(f"  {label:<10} {100 * m[0]:>13.2f} pt {100 * m[1]:>14.2f} pt {100 * m[2]:>14.2f} pt "
              f"{m[3]:>8.1f} {m[4]:>8.2f}")
    base = results["random"]
    for label in ("dsprep", "datumaro"):
        if label in results:
            r = results[label]
            print(f"  random / {label}: mean class deviation {base[0] / max(r[0], 1e-12):.1f}x smaller, worst "
                  f"{base[1] / max(r[1], 1e-12):.1f}x smaller")
    if "datumaro" in results:
        d, r = results["datumaro"], results["dsprep"]
        print(f"  datumaro / dsprep: mean class deviation {d[0] / max(r[0], 1e-12):.1f}x, worst "
              f"{d[1] / max(r[1], 1e-12):.1f}x; images per split off by {100 * d[2]:.2f} against "
              f"{100 * r[2]:.2f} points, {d[4] / max(r[4], 1e-12):.1f}x the time")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=40)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    measure("long-tailed (generated)", long_tailed(args.images, args.classes, 12345), seeds)
    if (SHARED / "voc_sample").is_dir():
        measure("voc_sample (real VOC)", voc_sample(), seeds)


if __name__ == "__main__":
    main()
