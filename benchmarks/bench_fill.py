"""Filling blanked regions: quality against the true pixels, and speed, measured in one run.

Quality: real scenes with a known truth.  Each VOC sample photo gets a real silhouette (an object cut from another
photo along its SegmentationObject mask) pasted in at a random place; the hole crop would blank (the silhouette
grown by 3 pixels) is filled by every method, and the fill is compared with the photo's own pixels there (mean
absolute error per channel, 0-255; lower is closer).  OpenCV's Telea inpainting alone is measured beside ours.
Speed: the same fills, in ms per 500x375 scene, and on the DOTA example P0706 (1111x1182) with its 536 vehicles
blanked, in ms per image.  Needs ../shared/data (voc_sample, dota_example) or pass the data folder.
Usage: python benchmarks/bench_fill.py [N_SCENES] [DATA_FOLDER]
"""
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dsprep.ops.crop import blank_mask
from dsprep.geometry import pixel_bounds
from dsprep.dataset import load_dataset, object_masks
from dsprep.ops.inpaint import FILLS, fill_regions
from dsprep.images import read_record_image


def silhouettes(voc):
    out = []
    for rec in load_dataset(voc).records:
        masks = object_masks("voc", rec)
        if masks is None:
            continue
        img = read_record_image(rec)
        for (x0, y0, x1, y1), m in zip(pixel_bounds(rec.boxes, rec.width, rec.height), masks):
            if m is not None:
                out.append((img[y0:y1, x0:x1], m))
    return out


def scenes(voc, n, seed=0):
    """``[(scene with the object pasted, hole to fill, the true photo)]``."""
    rng = np.random.default_rng(seed)
    photos = [read_record_image(r) for r in load_dataset(voc).records]
    objs = silhouettes(voc)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        crop, m = objs[int(rng.integers(len(objs)))]
        h, w = photo.shape[:2]
        s = min(1.0, float(rng.uniform(0.25, 0.6)) * min(w / m.shape[1], h / m.shape[0]))
        crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        m = cv2.resize(m.astype(np.uint8), (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        x, y = int(rng.integers(0, w - m.shape[1] + 1)), int(rng.integers(0, h - m.shape[0] + 1))
        scene = photo.copy()
        scene[y:y + m.shape[0], x:x + m.shape[1]][m] = crop[m]
        bounds = np.array([[x, y, x + m.shape[1], y + m.shape[0]]])
        hole = blank_mask((h, w), np.zeros((0, 4, 2)), [m], bounds, margin=3) > 0
        out.append((scene, hole, photo))
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    data = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared" / "data"
    items = scenes(data / "voc_sample", n)
    methods = {m: (lambda s, h, m=m: fill_regions(s, h, m)) for m in FILLS}
    methods["opencv telea"] = lambda s, h: cv2.inpaint(s, h.view(np.uint8), 3, cv2.INPAINT_TELEA)
    methods["opencv ns"] = lambda s, h: cv2.inpaint(s, h.view(np.uint8), 3, cv2.INPAINT_NS)
    results = {}
    for name, fn in methods.items():
        errors, took = [], 0.0
        for scene, hole, photo in items:
            t = time.perf_counter()
            out = fn(scene, hole)
            took += time.perf_counter() - t
            errors.append(np.abs(out[hole].astype(np.int64) - photo[hole]))
        results[name] = (float(np.concatenate(errors).mean()), took / len(items) * 1e3)
    rec = load_dataset(data / "dota_example").records[0]
    img = read_record_image(rec)
    hole = blank_mask(img.shape[:2], rec.polygons) > 0
    print(f"{n} VOC scenes with a real silhouette pasted in (hole mean {np.mean([h.mean() for _, h, _ in items]):.1%}"
          f" of the image); error = mean absolute difference from the true pixels (0-255)")
    telea = results["opencv telea"][0]
    for name, (err, ms) in results.items():
        line = f"  {name:14s} error {err:6.2f} ({err / telea:4.2f}x Telea's)   {ms:7.1f} ms per scene"
        if name in FILLS:
            t = time.perf_counter()
            fill_regions(img, hole, name)
            line += f"   P0706 {img.shape[1]}x{img.shape[0]}, {hole.mean():.0%} blanked: " \
                    f"{(time.perf_counter() - t) * 1e3:6.0f} ms"
        print(line)


if __name__ == "__main__":
    main()
