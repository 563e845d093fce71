"""Filling blanked regions: texture, seam, error against the true pixels, and time, for every fill, measured in one run.

Three sets of regions:
* pasted: VOC sample photos, each with a real silhouette (an object cut from another photo along its
  SegmentationObject mask) pasted in at a random place; the hole crop would blank (the silhouette grown by 3
  pixels) is filled and compared with the photo's own pixels there (mean absolute error per channel, 0-255).
* demo: the demo data set's scenes (`dsprep demo`), their objects blanked as `crop --backgrounds` blanks them.
* voc: the VOC sample's photos, their objects blanked as `crop --backgrounds` blanks them (photos more than half
  blanked are skipped, as crop skips them).
For every filled region (dsprep.texfill.region_measures): texture = mean |Laplacian| inside over that in a 12-pixel
band around (1: the surroundings' texture goes on; a smooth blob is near 0.1), seam = mean gradient on the region's
border over that in the band (1: the border does not show; a black fill: 5-20).  Medians over the regions, and the
lowest texture.  Time: ms per region (fill time over the set's regions), per 500 x 375 photo for the VOC sets.
Beside ours: OpenCV's Telea and Navier-Stokes inpainting, and OpenCV-contrib's xphoto shift-map inpainting when
cv2.xphoto is there (opencv-contrib-python-headless: run this script with a Python that has it, e.g. a throw-away
venv; the two OpenCV wheels clash in one environment).
Needs ../shared/data (voc_sample) or pass the data folder.
Usage: python benchmarks/bench_fill.py [N_PASTED] [DATA_FOLDER]
"""
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dsprep.core import boxes_to_polygons
from dsprep.crop import blank_mask, pixel_bounds
from dsprep.dataset import load_dataset, object_masks
from dsprep.fill import FILLS, fill_regions
from dsprep.images import read_record_image
from dsprep.texfill import region_measures


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


def pasted(voc, n, seed=0):
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


def blanked(root, fmt="voc", max_blanked=0.5):
    """``[(image, hole, None)]``: every image of a data set with its objects blanked as crop blanks them."""
    out = []
    for rec in load_dataset(root).records:
        img = read_record_image(rec)
        own = object_masks(fmt, rec) if len(rec) else None
        has = np.array([own is not None and own[k] is not None for k in range(len(rec))], bool)
        tight = pixel_bounds(rec.boxes, rec.width, rec.height)
        hole = blank_mask(img.shape[:2], boxes_to_polygons(rec.boxes)[~has], [own[k] for k in np.flatnonzero(has)],
                          tight[has], 3) > 0
        if 0 < hole.mean() <= max_blanked:
            out.append((img, hole, None))
    return out


def xphoto_shiftmap(img, hole):
    dst = np.zeros_like(img)
    cv2.xphoto.inpaint(img, (~hole).astype(np.uint8) * 255, dst, cv2.xphoto.INPAINT_SHIFTMAP)
    out = img.copy()
    out[hole] = dst[hole]  # it may touch known pixels too: only the hole is taken
    return out


def measure(fn, items):
    """(mean absolute error or None, texture ratios, seam ratios, seconds, regions)."""
    errors, tex, seam, took, regions = [], [], [], 0.0, 0
    for img, hole, truth in items:
        t = time.perf_counter()
        out = fn(img, hole)
        took += time.perf_counter() - t
        if truth is not None:
            errors.append(np.abs(out[hole].astype(np.int64) - truth[hole]))
        te, se = region_measures(out, hole)
        tex.extend(te)
        seam.extend(se)
        regions += cv2.connectedComponents(hole.view(np.uint8))[0] - 1
    err = float(np.concatenate(errors).mean()) if errors else None
    return err, np.array(tex), np.array(seam), took, regions


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    data = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared" / "data"
    from dsprep.demo import make_voc_demo
    with tempfile.TemporaryDirectory() as tmp:
        make_voc_demo(Path(tmp) / "demo", n_images=24, seed=0)
        sets = {"pasted": pasted(data / "voc_sample", n), "demo": blanked(Path(tmp) / "demo"),
                "voc": blanked(data / "voc_sample")}
    # Telea first: the error column is also given relative to it
    methods = {"opencv telea": lambda s, h: cv2.inpaint(s, h.view(np.uint8), 3, cv2.INPAINT_TELEA)}
    methods.update({m: (lambda s, h, m=m: fill_regions(s, h, m)) for m in FILLS})
    methods["opencv ns"] = lambda s, h: cv2.inpaint(s, h.view(np.uint8), 3, cv2.INPAINT_NS)
    if hasattr(cv2, "xphoto"):
        methods["xphoto shiftmap"] = xphoto_shiftmap
    else:
        print("(cv2.xphoto not installed: no shift-map column; run with opencv-contrib-python-headless to add it)")
    print(f"OpenCV {cv2.__version__}; regions: pasted {sum(1 for _ in sets['pasted'])} (VOC photos with a real "
          f"silhouette pasted in), demo {measure(lambda s, h: s, sets['demo'])[4]}, "
          f"voc {measure(lambda s, h: s, sets['voc'])[4]}")
    print(f"{'fill':16s} {'error':>6s} {'vs Telea':>8s} | {'texture: pasted':>15s} {'demo':>5s} {'(min)':>6s} "
          f"{'voc':>5s} {'(min)':>6s} | {'seam: pasted':>12s} {'demo':>5s} {'voc':>5s} | "
          f"{'ms/region: pasted':>17s} {'demo':>6s} {'voc':>6s}")
    rows = {}
    for name, fn in methods.items():
        rows[name] = {k: measure(fn, items) for k, items in sets.items()}
        r = rows[name]
        err, telea = r["pasted"][0], rows["opencv telea"]["pasted"][0]
        vs = f"{err / telea:7.2f}x"

        def med(x):
            return float(np.median(x)) if len(x) else float("nan")

        def ms(k):
            return r[k][3] / max(r[k][4], 1) * 1e3
        print(f"{name:16s} {err:6.1f} {vs} | {med(r['pasted'][1]):15.2f} {med(r['demo'][1]):5.2f} "
              f"{r['demo'][1].min():6.2f} {med(r['voc'][1]):5.2f} {r['voc'][1].min():6.2f} | "
              f"{med(r['pasted'][2]):12.2f} {med(r['demo'][2]):5.2f} {med(r['voc'][2]):5.2f} | "
              f"{ms('pasted'):17.1f} {ms('demo'):6.1f} {ms('voc'):6.1f}", flush=True)
    t = rows["texture"]
    i = rows["inpaint"]
    print(f"texture vs inpaint in this run: time per region {t['voc'][3] / i['voc'][3]:.2f}x on the VOC photos, "
          f"{t['demo'][3] / i['demo'][3]:.2f}x on the demo scenes")
    if "xphoto shiftmap" in rows:
        x = rows["xphoto shiftmap"]
        print(f"xphoto shift-map takes {x['voc'][3] / t['voc'][3]:.0f}x texture's time on the VOC photos, "
              f"{x['pasted'][3] / t['pasted'][3]:.0f}x on the pasted scenes")


if __name__ == "__main__":
    main()
