"""Small builders for test fixtures written to tmp_path."""
from pathlib import Path

import cv2
import numpy as np


def voc_xml(filename="a.jpg", width=100, height=80, objects=(), size=True, extra=""):
    objs = []
    for o in objects:
        name, (x0, y0, x1, y1) = o[0], o[1]
        flags = o[2] if len(o) > 2 else ""
        objs.append(f"<object><name>{name}</name>{flags}<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                    f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    sz = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>" if size else ""
    return (f"<annotation><filename>{filename}</filename>{sz}{extra}{''.join(objs)}</annotation>").encode()


def write_voc_tree(root: Path, items, ann="Annotations", img="JPEGImages", sets="ImageSets/Main", splits=None,
                   ext=".jpg"):
    """items: {stem: (width, height, objects)}; writes gradient images and XML; returns root."""
    (root / ann).mkdir(parents=True, exist_ok=True)
    (root / img).mkdir(parents=True, exist_ok=True)
    for stem, (w, h, objects) in items.items():
        (root / ann / f"{stem}.xml").write_bytes(voc_xml(f"{stem}{ext}", w, h, objects))
        cv2.imwrite(str(root / img / f"{stem}{ext}"), gradient(w, h))
    if splits:
        (root / sets).mkdir(parents=True, exist_ok=True)
        for name, ids in splits.items():
            (root / sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def gradient(w, h, channels=3):
    """A deterministic image where every pixel differs from its neighbours (so crops can be checked)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 7) % 256, (y * 5) % 256, (x + y * 3) % 256][:channels], axis=-1).astype(np.uint8)
    return img if channels > 1 else img[:, :, 0]


def die_on(item):
    """A task for the executor tests: kills its worker process on item 'boom', fails on 'bad'."""
    import os
    from dsprep.core import ImageError
    if item == "boom":
        os._exit(3)
    if item == "bad":
        raise ImageError(f"{item}: not a readable image")
    return item.upper()


def slow(item):
    import time
    time.sleep(0.5)
    return item


def run_cli(*args, ok=True):
    """Invoke the dsprep command line in-process; with ``ok`` assert it succeeded."""
    from click.testing import CliRunner
    from dsprep.cli import main
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def start_dask(cwd, workers=2):
    """A real ``dask scheduler`` and ``workers`` single-threaded ``dask worker`` processes on loopback.

    Returns ``(address, [scheduler, worker...])`` once the workers have registered."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import distributed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    opts = dict(cwd=cwd, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], **opts)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nworkers", "1",
                                "--nthreads", "1", "--no-dashboard"], **opts) for _ in range(workers)]
    deadline = time.time() + 90
    while True:
        try:
            with distributed.Client(addr, timeout="5s") as c:
                c.wait_for_workers(workers, timeout=60)
            return addr, procs
        except (OSError, TimeoutError):
            if time.time() > deadline:
                for p in procs:
                    p.kill()
                raise
            time.sleep(0.5)


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG's bytes with an EXIF APP1 segment holding only the orientation tag (as phone cameras write it)."""
    import struct
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + \
        struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def stored_pixels(path):
    """Pixels as stored in the file (no EXIF orientation applied): the reference the tests compare with."""
    data = np.fromfile(str(path), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def write_dota_tree(root: Path, items, with_labels=True):
    """items: {stem: (width, height, label_text or None)}; writes gradient PNGs and label files; returns root."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    if with_labels:
        (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    for stem, (w, h, text) in items.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"), gradient(w, h))
        if with_labels and text is not None:
            (root / "labelTxt" / f"{stem}.txt").write_text(text)
    return root


def coco_from_voc_masks(voc: Path, root: Path, stems=("2011_000003", "2011_000006", "2011_000025")):
    """A COCO set (``root/ann.json`` and the images) of VOC images with masks, made as converters make one: every
    other instance a polygon traced by OpenCV (pixel centres), the others RLE as pycocotools encodes them (needs
    pycocotools and PIL).  Returns the JSON's path."""
    import json
    import shutil
    from PIL import Image
    from pycocotools import mask as mask_util
    from dsprep.formats.vocmasks import VOC_CLASSES
    root.mkdir(parents=True)
    images, anns = [], []
    for i, stem in enumerate(stems, 1):
        shutil.copy(voc / "JPEGImages" / f"{stem}.jpg", root)
        with Image.open(voc / "SegmentationObject" / f"{stem}.png") as im:
            inst = np.array(im)
        with Image.open(voc / "SegmentationClass" / f"{stem}.png") as im:
            cls = np.array(im)
        images.append({"id": i, "file_name": f"{stem}.jpg", "width": inst.shape[1], "height": inst.shape[0]})
        for v in sorted(set(np.unique(inst).tolist()) - {0, 255}):
            m = inst == v
            ys, xs = np.nonzero(m)
            if v % 2:
                seg = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
                seg["counts"] = seg["counts"].decode("ascii")
            else:
                contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                seg = [(c.reshape(-1, 2) + 0.5).reshape(-1).tolist() for c in contours if len(c) >= 3]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(np.bincount(cls[m]).argmax()),
                         "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                  int(ys.max() - ys.min() + 1)], "area": int(m.sum()), "iscrowd": 0,
                         "segmentation": seg})
    cats = [{"id": k, "name": n} for k, n in enumerate(VOC_CLASSES) if k]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "ann.json"



def full_masks(fmt, rec):
    """Each object's mask (dsprep.dataset.object_masks) placed on the whole image (None: no mask)."""
    import numpy as np
    from dsprep.dataset import object_masks
    from dsprep.geometry import pixel_bounds
    masks = object_masks(fmt, rec)
    out = []
    for m, (x0, y0, x1, y1) in zip(masks or [None] * len(rec), pixel_bounds(rec.boxes, rec.width, rec.height).tolist()):
        if m is None:
            out.append(None)
            continue
        f = np.zeros((rec.height, rec.width), bool)
        f[y0:y1, x0:x1] = m
        out.append(f)
    return out


def pycocotools_eval(gt, dets, iou_type: str = "bbox"):
    """pycocotools' own ``COCOeval`` run to its summary (its printing silenced): the reference evaluator, for the
    tests and the benchmarks.  ``gt``: a path, a COCO document (dict) or a ``COCO``; ``dets``: a results path or
    list.  Returns the evaluator (``.stats``: the 12 numbers; ``.eval``: precision and recall arrays)."""
    import contextlib
    import io
    import json
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            doc, gt = gt, COCO()
            gt.dataset = json.loads(json.dumps(doc))
            gt.createIndex()
        elif not isinstance(gt, COCO):
            gt = COCO(str(gt))
        res = gt.loadRes(json.loads(json.dumps(dets)) if isinstance(dets, list) else str(dets))
        e = COCOeval(gt, res, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e
