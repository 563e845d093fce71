"""merge-dota against DOTA_devkit's multi-process merge (ResultMerge_multi_process.py), side by side in one run.

Input: 50,000 detections in 15 Task1_<class>.txt files, as a detector run on 1024-px tiles (gap 200) of 20 images of
4,000 x 4,000 px would write them: each object detected in every tile that holds it, with jittered corners, and a
second jittered detection for half of them (valid convex quads, distinct scores).  Timed, each as a whole process,
best of --repeat runs (interleaved):

  * devkit merge: the devkit's algorithm, written here from its description (its code is not copied): one process
    per class file (a Pool of one process per CPU), tile names parsed with its regular expressions, detections
    grouped per image, greedy NMS whose candidates are the detections with a positive box overlap, each candidate's
    polygon IoU computed one pair at a time.  The pair IoU is the devkit's own C++ polyiou when --devkit PATH names a
    DOTA_devkit checkout (compiled here with g++ behind a ctypes shim), else shapely one pair at a time (slower
    than polyiou, so the devkit figure is then pessimistic: say so when quoting it);
  * with --devkit, the real ResultMerge_multi_process.mergebase_parallel (Pool(16), as shipped), polyiou as above;
  * dsprep merge-dota with --workers 1 and --workers 2.

The kept detections are compared (image, score and corners to 1e-6).
Usage: python benchmarks/bench_merge.py [--devkit PATH] [--repeat 2] [--detections 50000] [--thresh 0.1]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
CLASSES = ["plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
           "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
           "swimming-pool", "helicopter"]


def make_detections(out: Path, target: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    size, step, side = 1024, 824, 4000
    origins = [min(v, side - size) for v in range(0, side - size + step, step)]
    per_image = max(1, int(target / 20 / 2.3))
    lines = {c: [] for c in CLASSES}
    scores = rng.permutation(10 ** 7)[: 4 * target] / 10 ** 7 + 1e-8
    k = 0
    for img in range(20):
        cx, cy = rng.uniform(20, side - 20, per_image), rng.uniform(20, side - 20, per_image)
        w, h = rng.uniform(12, 70, per_image), rng.uniform(8, 40, per_image)
        ang = rng.uniform(0, np.pi, per_image)
        cls = rng.integers(0, len(CLASSES), per_image)
        dx, dy = np.stack([np.cos(ang), np.sin(ang)], 1), np.stack([-np.sin(ang), np.cos(ang)], 1)
        corners = np.stack([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])
        quads = (np.stack([cx, cy], 1)[:, None] + corners[None, :, :1] * (w[:, None, None] * dx[:, None])
                 + corners[None, :, 1:] * (h[:, None, None] * dy[:, None]))
        lo, hi = quads.min(1), quads.max(1)
        for left in origins:
            for up in origins:
                inside = np.flatnonzero((lo[:, 0] >= left) & (hi[:, 0] < left + size) & (lo[:, 1] >= up)
                                        & (hi[:, 1] < up + size))
                for o in inside:
                    for copy in range(1 + (rng.random() < 0.5)):
                        q = quads[o] - (left, up) + rng.uniform(-1, 1, (4, 2))
                        xy = " ".join(f"{v:.1f}" for v in q.reshape(-1))
                        lines[CLASSES[cls[o]]].append(f"I{img:02d}__1__{left}___{up} {scores[k]:.8f} {xy}\n")
                        k += 1
    for c, ls in lines.items():
        (out / f"Task1_{c}.txt").write_text("".join(ls))
    return k


# ---- the devkit's algorithm, written from its description --------------------------------------------------------------

def _pair_iou():
    lib = os.environ.get("BENCH_POLYIOU")
    if lib:
        import ctypes
        so = ctypes.CDLL(lib)
        so.dk_iou.restype = ctypes.c_double
        so.dk_iou.argtypes = [ctypes.POINTER(ctypes.c_double)] * 2
        arr = ctypes.c_double * 8
        return (lambda p: arr(*p)), so.dk_iou
    from shapely.geometry import Polygon
    return (lambda p: Polygon(np.asarray(p).reshape(4, 2)).buffer(0)), \
        (lambda a, b: a.intersection(b).area / max(a.union(b).area, 1e-12))


def _nms(dets: np.ndarray, thresh: float, make, iou):
    x1, y1 = dets[:, 0:8:2].min(1), dets[:, 1:8:2].min(1)
    x2, y2 = dets[:, 0:8:2].max(1), dets[:, 1:8:2].max(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    polys = [make(list(d[:8])) for d in dets]
    order = dets[:, 8].argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]))
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        cand = np.where(ovr > 0)[0]
        for j in cand:
            ovr[j] = iou(polys[i], polys[order[j + 1]])
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def _merge_file(args):
    path, dst, thresh = args
    make, iou = _pair_iou()
    per_image = {}
    with open(path) as f:
        for line in f:
            s = line.strip().split(" ")
            name = s[0]
            x, y = (int(v) for v in re.findall(r"\d+", re.findall(r"__\d+___\d+", name)[0]))
            rate = float(re.findall(r"__([\d+\.]+)__\d+___", name)[0])
            poly = [float(v) for v in s[2:]]
            orig = [(poly[i] + (x if i % 2 == 0 else y)) / rate for i in range(8)]
            per_image.setdefault(name.split("__")[0], []).append(orig + [float(s[1])])
    with open(Path(dst) / Path(path).name, "w") as out:
        for img, dets in per_image.items():
            arr = np.array(dets)
            for i in _nms(arr, thresh, make, iou):
                d = dets[i]
                out.write(f"{img} {d[-1]} {' '.join(map(str, d[:-1]))}\n")


def devkit_merge(src: str, dst: str, thresh: float) -> None:
    Path(dst).mkdir(parents=True, exist_ok=True)
    files = sorted(str(p) for p in Path(src).iterdir())
    with Pool(os.cpu_count()) as pool:
        pool.map(_merge_file, [(f, dst, thresh) for f in files])


def build_polyiou(devkit: Path, work: Path) -> Path:
    """DOTA_devkit's polyiou.cpp (from the checkout) with a two-line C shim, compiled to a shared library, and a
    ``polyiou`` module over it for the devkit's own Python code."""
    shim = work / "shim.cpp"
    shim.write_text('#include <vector>\n#include "polyiou.h"\nextern "C" double dk_iou(const double* p, '
                    'const double* q) { return iou_poly(std::vector<double>(p, p + 8), std::vector<double>(q, q + 8)); }\n')
    lib = work / "libpolyiou.so"
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-I", str(devkit), str(devkit / "polyiou.cpp"), str(shim), "-o",
                    str(lib)], check=True)
    (work / "polyiou.py").write_text(textwrap.dedent(f"""
        import ctypes
        _so = ctypes.CDLL({str(lib)!r})
        _so.dk_iou.restype = ctypes.c_double
        _so.dk_iou.argtypes = [ctypes.POINTER(ctypes.c_double)] * 2
        _arr = ctypes.c_double * 8
        def VectorDouble(v):
            return _arr(*v)
        def iou_poly(a, b):
            return _so.dk_iou(a, b)
    """))
    return lib


def real_merge(devkit: str, shim_dir: str, src: str, dst: str, thresh: float) -> None:
    sys.path[:0] = [shim_dir, devkit]
    import ResultMerge_multi_process as rm  # DOTA_devkit's own module, from the checkout given
    rm.nms_thresh = thresh
    Path(dst).mkdir(parents=True, exist_ok=True)
    rm.mergebase_parallel(src, dst, rm.py_cpu_nms_poly_fast)


# ---- timing and comparison ---------------------------------------------------------------------------------------------

def kept(folder: Path):
    out = set()
    for f in folder.glob("Task1_*.txt"):
        for line in f.read_text().splitlines():
            v = line.split()
            out.add((f.stem, v[0], round(float(v[1]), 8)) + tuple(round(float(x), 6) for x in v[2:]))
    return out


def timed(cmd, env) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devkit", type=Path)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--detections", type=int, default=50000)
    ap.add_argument("--thresh", type=float, default=0.1, help="NMS threshold (ResultMerge_multi_process: 0.1)")
    ap.add_argument("--run-devkit", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--run-real", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_devkit:
        return devkit_merge(a.run_devkit[0], a.run_devkit[1], float(a.run_devkit[2]))
    if a.run_real:
        return real_merge(*a.run_real[:4], float(a.run_real[4]))
    print(f"load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = make_detections(tmp / "dets", a.detections)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        th = str(a.thresh)
        runs = {"devkit merge": [sys.executable, str(HERE), "--run-devkit", str(tmp / "dets"), "{out}", th]}
        iou_kind = "shapely pair by pair"
        if a.devkit:
            build_polyiou(a.devkit.resolve(), tmp)
            env["BENCH_POLYIOU"] = str(tmp / "libpolyiou.so")
            iou_kind = "DOTA_devkit's C++ polyiou"
            runs["DOTA_devkit ResultMerge_multi_process"] = [sys.executable, str(HERE), "--run-real",
                                                             str(a.devkit.resolve()), str(tmp), str(tmp / "dets"),
                                                             "{out}", th]
        for j in (1, 2):
            runs[f"dsprep -j {j}"] = [sys.executable, "-m", "dsprep", "merge-dota", str(tmp / "dets"), "--out", "{out}",
                                      "--nms-thresh", th, "--workers", str(j), "--quiet"]
        best = {}
        for r in range(a.repeat):
            for label, cmd in runs.items():
                out = tmp / f"out-{label.replace(' ', '_')}-{r}"
                best[label] = min(best.get(label, float("inf")),
                                  timed([c.replace("{out}", str(out)) for c in cmd], env))
        ref = kept(tmp / "out-devkit_merge-0")
        print(f"{n} detections, 15 classes, 20 images; NMS threshold {a.thresh}; devkit pair IoU: {iou_kind}")
        for label, t in best.items():
            got = kept(tmp / f"out-{label.replace(' ', '_')}-0")
            same = "same kept detections" if got == ref else f"{len(got ^ ref)} kept detections differ"
            extra = f"   {best['devkit merge'] / t:.2f}x faster than the devkit merge" if label.startswith("dsprep") else ""
            if label == "dsprep -j 2":
                extra += f", {best['dsprep -j 1'] / t:.2f}x dsprep -j 1"
            if label.startswith("DOTA_devkit"):
                extra = f"   dsprep -j 1 is {t / best['dsprep -j 1']:.2f}x faster, -j 2 {t / best['dsprep -j 2']:.2f}x"
            print(f"  {label:<40} {t:7.2f} s  ({len(got)} kept; {same}){extra}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
