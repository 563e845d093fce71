"""Parse rate of VOC XML: dsprep against a plain xml.etree.ElementTree loop, measured in one run.

Generates N VOC XML files (default 20,000; 1-8 objects each, some with <part>s) and a 500 x 375 JPEG for each
(the size the XML says), then
times, over the same files (warm page cache, best of 3):
  * in this process, one core: dsprep.voc.read_voc over every file (bytes -> ImageRecord with numpy arrays), and
    dsprep.dataset.load_dataset on the whole folder with one reading process (DSPREP_READERS=1: layout, image
    lookup, image headers, size/clip checks included), against a plain ElementTree loop extracting the same fields;
  * whole processes, start-up included (what a user waits for): `dsprep info FOLDER` (default: many files are read
    by one forked process per CPU), and with DSPREP_READERS=1, against `python -c "<the ElementTree loop>"` (the
    XML only) and against the same loop also reading every image's size from its header with Pillow (the same work
    as `info`: Pillow is needed for that line only).
Usage: python benchmarks/bench_voc_parse.py [N]
"""
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset
from dsprep.voc import format_voc, read_voc
from timing import best as best_of


def make_files(root: Path, n: int) -> list:
    rng = np.random.default_rng(0)
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    images = root / "JPEGImages"
    images.mkdir()
    # images exist, as in a real set, and are the size their XML says (a real 500 x 375 JPEG, the same bytes each)
    tiny = cv2.imencode(".jpg", np.full((375, 500, 3), 128, np.uint8))[1].tobytes()
    classes = ["person", "car", "chair", "dog", "bus", "aeroplane"]
    paths = []
    for i in range(n):
        k = int(rng.integers(1, 9))
        x0 = rng.integers(1, 300, k)
        y0 = rng.integers(1, 200, k)
        boxes = np.stack([x0, y0, x0 + rng.integers(5, 190, k), y0 + rng.integers(5, 170, k)], 1)
        rec = ImageRecord(f"{i:06d}.jpg", 500, 375, boxes=boxes - [1, 1, 0, 0],
                          names=[classes[j] for j in rng.integers(0, 6, k)], difficult=rng.random(k) < 0.1,
                          truncated=rng.random(k) < 0.3)
        p = ann / f"{i:06d}.xml"
        data = format_voc(rec)
        if i % 10 == 0:  # some files carry <part> sub-objects, as VOC person layouts do
            part = (b"<part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax>"
                    b"</bndbox></part></object>")
            data = data.replace(b"</object>", part, 1)
        p.write_bytes(data)
        (images / f"{i:06d}.jpg").write_bytes(tiny)
        paths.append(p)
    return paths


# the plain ElementTree loop, as source: run in this process (exec) and as a whole process of its own, the same code
ET_LOOP = """
def et_loop(paths):
    out = []
    for p in paths:
        root = ET.parse(p).getroot()
        size = root.find("size")
        w, h = int(size.findtext("width")), int(size.findtext("height"))
        objs = []
        for obj in root.findall("object"):
            bb = obj.find("bndbox")
            objs.append((obj.findtext("name"), int(obj.findtext("difficult") or 0),
                         [float(bb.findtext(c)) for c in ("xmin", "ymin", "xmax", "ymax")]))
        out.append((w, h, objs))
    return out
"""
_ns = {"ET": ET}
exec(ET_LOOP, _ns)
et_loop = _ns["et_loop"]


ET_PROCESS = """
import sys, xml.etree.ElementTree as ET
from pathlib import Path
""" + ET_LOOP + """
out = et_loop(sorted(Path(sys.argv[1], "Annotations").glob("*.xml")))
print(len(out), sum(len(o[2]) for o in out))
"""

# the same work as `dsprep info`: the XML, and each image's size from its header (Pillow opens lazily: it reads
# the header, not the pixels), the sizes compared
ET_HEADERS_PROCESS = """
import sys, xml.etree.ElementTree as ET
from pathlib import Path
from PIL import Image
""" + ET_LOOP + """
root = Path(sys.argv[1])
paths = sorted(Path(root, "Annotations").glob("*.xml"))
out = et_loop(paths)
bad = 0
for p, (w, h, objs) in zip(paths, out):
    with Image.open(root / "JPEGImages" / (p.stem + ".jpg")) as im:
        bad += im.size != (w, h)
print(len(out), sum(len(o[2]) for o in out), bad)
"""


def process(cmd, env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))
    return time.perf_counter() - t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(root)}
    print(f"load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), n)
        et_loop(paths)  # warm the page cache
        t_et = best_of(lambda: et_loop(paths))
        t_ours = best_of(lambda: [read_voc(p) for p in paths])
        os.environ["DSPREP_READERS"] = "1"
        t_ds = best_of(lambda: load_dataset(tmp))
        del os.environ["DSPREP_READERS"]
        runs = {"ElementTree loop": [sys.executable, "-c", ET_PROCESS, tmp],
                "ElementTree + headers": [sys.executable, "-c", ET_HEADERS_PROCESS, tmp],
                "dsprep info": [sys.executable, "-m", "dsprep", "info", tmp],
                "dsprep info, 1 reader": [sys.executable, "-m", "dsprep", "info", tmp]}
        best = {k: float("inf") for k in runs}
        for _ in range(5):  # interleaved: drift hits every configuration alike
            for label, cmd in runs.items():
                extra = dict(env, DSPREP_READERS="1") if label.endswith("1 reader") else env
                best[label] = min(best[label], process(cmd, extra))
    print(f"files: {n}")
    print("in this process, one core:")
    print(f"  ElementTree loop:        {n / t_et:10,.0f} files/s")
    print(f"  dsprep read_voc:         {n / t_ours:10,.0f} files/s   ratio to ElementTree: {t_et / t_ours:.2f}x")
    print(f"  dsprep load_dataset:     {n / t_ds:10,.0f} files/s   ratio to ElementTree: {t_et / t_ds:.2f}x")
    print("whole processes (start-up included), best of 5:")
    for label, t in best.items():
        ratio = "" if label == "ElementTree loop" else \
            f"   {t / best['ElementTree loop']:.2f}x the time of the ElementTree loop"
        if label.startswith("dsprep"):
            ratio += f", {t / best['ElementTree + headers']:.2f}x the loop doing the same work (+ image headers)"
        print(f"  {label:<24} {t:6.2f} s{ratio}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
