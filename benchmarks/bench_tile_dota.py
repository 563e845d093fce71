"""tile-dota against DOTA_devkit's ImgSplit, side by side in one run, on the same PNG and JPEG inputs.

Inputs: 12 aerial images of 2,500-3,000 px a side, made by mosaicking the real DOTA images in ../shared/data (their
objects moved with them), saved once as PNG and once as JPEG (quality 95).  Timed, each as a whole process
(start-up included), best of --repeat runs:

  * devkit loop: the devkit's ImgSplit algorithm, written here from its description (DOTA_devkit's code is not
    copied): whole-image cv2.imread, labels parsed with int() truncation, every tile scanned with every object
    through shapely (Polygon, intersection, area ratio, 5-to-4-point reduction, best start point), tiles copied and
    written with cv2.imwrite and OpenCV's defaults, one label file per tile, one process;
  * the real ImgSplit.py, when a DOTA_devkit checkout is given with --devkit PATH (run as it is, never copied here);
  * the floor: decoding each image and encoding each of its tiles with OpenCV's defaults (cv2.imread, cv2.imwrite;
    no labels), one process: what any tool that reads and writes these pixels with OpenCV must spend;
  * dsprep tile-dota with --workers 1 and --workers 2 (defaults: --png-compression fast: dsprep.pngenc, ISA-L's
    deflate, with the plain install).

The outputs are compared: every tile's decoded pixels and every label file's bytes must be identical.
Usage: python benchmarks/bench_tile_dota.py [--devkit PATH] [--repeat 2] [--images 12]
"""
import argparse
import copy
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
SHARED = Path(os.environ.get("DSPREP_SHARED_DATA", ROOT.parent / "shared" / "data"))


# ---- inputs ------------------------------------------------------------------------------------------------------------

def _read_labels(path: Path):
    lines = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 9 and not line.startswith(("imagesource", "gsd")):
            lines.append((np.array([float(v) for v in f[:8]]).reshape(4, 2), f[8], f[9] if len(f) > 9 else "0"))
    return lines


def make_inputs(out: Path, n: int) -> None:
    """``out/png`` and ``out/jpg``: n mosaics of the real DOTA images (2,500-3,000 px), with their objects."""
    sources = []
    for folder in ("dota_example", "dota_demo_extra"):
        for img in sorted((SHARED / folder / "images").glob("*.png")):
            sources.append((cv2.imread(str(img)), _read_labels(SHARED / folder / "labelTxt" / f"{img.stem}.txt")))
    rng = np.random.default_rng(12)
    for kind in ("png", "jpg"):
        (out / kind / "images").mkdir(parents=True)
        (out / kind / "labelTxt").mkdir(parents=True)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(2500, 3001, 2))
        canvas = np.zeros((h, w, 3), np.uint8)
        lines = []
        y = 0
        while y < h:
            x, row_h = 0, 0
            while x < w:
                img, objs = sources[int(rng.integers(len(sources)))]
                ih, iw = img.shape[:2]
                canvas[y:y + ih, x:x + iw] = img[:h - y, :w - x]
                for poly, name, diff in objs:
                    q = poly + (x, y)
                    if q[:, 0].min() < w and q[:, 1].min() < h:
                        lines.append(" ".join(f"{v:g}" for v in q.reshape(-1)) + f" {name} {diff}")
                x += iw
                row_h = max(row_h, ih)
            y += row_h
        text = "imagesource:GoogleEarth\ngsd:0.15\n" + "".join(line + "\n" for line in lines)
        for kind in ("png", "jpg"):
            (out / kind / "labelTxt" / f"M{i:02d}.txt").write_text(text)
        cv2.imwrite(str(out / "png" / "images" / f"M{i:02d}.png"), canvas)
        cv2.imwrite(str(out / "jpg" / "images" / f"M{i:02d}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])


# ---- the devkit's algorithm, written from its description ---------------------------------------------------------

def devkit_loop(src: Path, dst: Path, ext: str, size: int = 1024, gap: int = 200, thresh: float = 0.7) -> None:
    """ImgSplit.splitbase(src, dst, gap, size, thresh, ext=ext).splitdata(1), one process, as the devkit works."""
    import shapely.geometry as geo
    from shapely.geometry.polygon import orient
    (dst / "images").mkdir(parents=True)
    (dst / "labelTxt").mkdir(parents=True)
    slide = size - gap

    def fmt(values):
        return " ".join(str(v) for v in values)

    def poly5_to_4(p):
        pts = [(p[2 * i], p[2 * i + 1]) for i in range(5)]
        d = [math.hypot(pts[i][0] - pts[(i + 1) % 5][0], pts[i][1] - pts[(i + 1) % 5][1]) for i in range(5)]
        pos = int(np.array(d).argsort()[0])
        out = []
        for i in range(5):
            if i == pos:
                out += [(pts[i][0] + pts[(i + 1) % 5][0]) / 2, (pts[i][1] + pts[(i + 1) % 5][1]) / 2]
            elif i != (pos + 1) % 5:
                out += [pts[i][0], pts[i][1]]
        return out

    def best_start(p, target):
        combos = [np.array(p[2 * k:] + p[:2 * k]) for k in range(4)]
        return combos[int(np.array([np.sum((c - np.array(target)) ** 2) for c in combos]).argsort()[0])]

    for img_path in sorted((src / "images").iterdir()):
        name = img_path.stem
        img = cv2.imread(str(img_path))
        objects = []
        for line in (src / "labelTxt" / f"{name}.txt").read_text().splitlines():
            f = line.strip().split(" ")
            if len(f) < 9:
                continue
            objects.append({"poly": [int(float(v)) for v in f[:8]], "name": f[8],
                            "difficult": f[9] if len(f) >= 10 else "0"})
        h, w = img.shape[:2]
        left = 0
        while left < w:
            if left + size >= w:
                left = max(w - size, 0)
            up = 0
            while up < h:
                if up + size >= h:
                    up = max(h - size, 0)
                right, down = min(left + size, w - 1), min(up + size, h - 1)
                tile = f"{name}__1__{left}___{up}"
                window = geo.Polygon([(left, up), (right, up), (right, down), (left, down)])
                with open(dst / "labelTxt" / f"{tile}.txt", "w", encoding="utf-8") as out:
                    for obj in objects:
                        p = obj["poly"]
                        gt = geo.Polygon([(p[0], p[1]), (p[2], p[3]), (p[4], p[5]), (p[6], p[7])])
                        if gt.area <= 0:
                            continue
                        inter = gt.intersection(window)
                        ratio = inter.area / gt.area
                        if ratio == 1:
                            vals = [float(int(p[i] - (left if i % 2 == 0 else up))) for i in range(8)]
                            out.write(f"{fmt(vals)} {obj['name']} {obj['difficult']}\n")
                        elif ratio > 0:
                            ring = list(orient(inter, sign=1).exterior.coords)[:-1]
                            if len(ring) < 4 or len(ring) > 5:
                                continue
                            flat = [c for pt in ring for c in pt[:2]]
                            if len(ring) == 5:
                                flat = poly5_to_4(flat)
                            flat = list(best_start(flat, p))
                            vals = [float(int(flat[i] - (left if i % 2 == 0 else up))) for i in range(8)]
                            vals = [1.0 if v <= 1 else (float(size) if v >= size else v) for v in vals]
                            diff = obj["difficult"] if ratio > thresh else "2"
                            out.write(f"{fmt(vals)} {obj['name']} {diff}\n")
                cv2.imwrite(str(dst / "images" / f"{tile}{ext}"), copy.deepcopy(img[up:up + size, left:left + size]))
                if up + size >= h:
                    break
                up += slide
            if left + size >= w:
                break
            left += slide


def floor_loop(src: Path, dst: Path, ext: str, size: int = 1024, gap: int = 200) -> None:
    """Decode every image, encode and write every tile (the devkit's windows) with OpenCV's defaults: no labels."""
    (dst / "images").mkdir(parents=True)
    slide = size - gap
    for img_path in sorted((src / "images").iterdir()):
        img = cv2.imread(str(img_path))
        h, w = img.shape[:2]
        lefts = list(range(0, max(w - size, 0), slide)) + [max(w - size, 0)]
        ups = list(range(0, max(h - size, 0), slide)) + [max(h - size, 0)]
        for left in lefts:
            for up in ups:
                tile = f"{img_path.stem}__1__{left}___{up}"
                cv2.imwrite(str(dst / "images" / f"{tile}{ext}"), img[up:up + size, left:left + size])


def real_imgsplit(devkit: Path, src: Path, dst: Path, ext: str) -> None:
    sys.path.insert(0, str(devkit))
    import ImgSplit  # noqa: E402 - DOTA_devkit's own module, from the checkout given
    ImgSplit.splitbase(str(src), str(dst), gap=200, subsize=1024, thresh=0.7, ext=ext).splitdata(1)


# ---- timing --------------------------------------------------------------------------------------------------------------

def timed(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def digest(folder: Path):
    """``{tile: (sha256 of decoded pixels, label bytes)}``."""
    out = {}
    for p in sorted((folder / "images").iterdir()):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        label = folder / "labelTxt" / f"{p.stem}.txt"
        out[p.stem] = (hashlib.sha256(img.tobytes()).hexdigest(), img.shape, label.read_bytes())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devkit", type=Path, help="a DOTA_devkit checkout: also time its real ImgSplit.py")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--run-devkit-loop", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--run-imgsplit", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--run-floor", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_floor:
        return floor_loop(Path(a.run_floor[0]), Path(a.run_floor[1]), a.run_floor[2])
    if a.run_devkit_loop:
        return devkit_loop(Path(a.run_devkit_loop[0]), Path(a.run_devkit_loop[1]), a.run_devkit_loop[2])
    if a.run_imgsplit:
        return real_imgsplit(Path(a.run_imgsplit[0]), Path(a.run_imgsplit[1]), Path(a.run_imgsplit[2]),
                             a.run_imgsplit[3])
    sys.path.insert(0, str(ROOT))
    from dsprep import pngenc
    print(f"load before: {os.getloadavg()[0]:.2f}; PNG tiles deflated by "
          f"{'ISA-L (isal, a dependency of the plain install)' if pngenc.FAST else 'OpenCV (isal missing)'}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "in", a.images)
        for kind, ext in (("png", ".png"), ("jpg", ".jpg")):
            src = tmp / "in" / kind
            runs = {"devkit loop": [sys.executable, str(HERE), "--run-devkit-loop", str(src), "{out}", ext]}
            if a.devkit:
                runs["DOTA_devkit ImgSplit.py"] = [sys.executable, str(HERE), "--run-imgsplit", str(a.devkit),
                                                   str(src), "{out}", ext]
            runs["floor: OpenCV decode + encode"] = [sys.executable, str(HERE), "--run-floor", str(src), "{out}", ext]
            for j in (1, 2):
                runs[f"dsprep -j {j}"] = [sys.executable, "-m", "dsprep", "tile-dota", str(src), "--out", "{out}",
                                          "--ext", ext, "--workers", str(j), "--quiet"]
            best = {}
            for r in range(a.repeat):
                for label, cmd in runs.items():  # interleaved: drift hits every configuration alike
                    out = tmp / f"out-{kind}-{label.replace(' ', '_')}-{r}"
                    t = timed([c.replace("{out}", str(out)) for c in cmd])
                    best[label] = min(best.get(label, float("inf")), t)
            ref = digest(tmp / f"out-{kind}-devkit_loop-0")
            labelled = [label for label in runs if not label.startswith("floor")]
            same = all(digest(tmp / f"out-{kind}-{label.replace(' ', '_')}-0") == ref for label in labelled)
            n_tiles = len(ref)
            print(f"\n{kind.upper()} inputs: {a.images} images, {n_tiles} tiles (size 1024, gap 200); "
                  f"outputs identical (pixels and label bytes): {'yes' if same else 'NO'}")
            base = best["devkit loop"]
            for label, t in best.items():
                extra = ""
                if label.startswith("dsprep"):
                    extra = f"   {base / t:.2f}x faster than the devkit loop"
                    if "DOTA_devkit ImgSplit.py" in best:
                        extra += f", {best['DOTA_devkit ImgSplit.py'] / t:.2f}x ImgSplit.py"
                    extra += f", {t / best['floor: OpenCV decode + encode']:.2f}x the floor's time"
                if label == "dsprep -j 2":
                    extra += f", {best['dsprep -j 1'] / t:.2f}x dsprep -j 1"
                print(f"  {label:<26} {t:7.2f} s{extra}")
            if not same:
                for label in labelled:
                    got = digest(tmp / f"out-{kind}-{label.replace(' ', '_')}-0")
                    diff = [k for k in ref if got.get(k) != ref[k]]
                    print(f"  {label}: {len(diff)} tiles differ, e.g. {diff[:3]}")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
