"""Training input through a real torch DataLoader: images per second for a dsprep pack against what people use today.

Every loader below delivers the same thing to the training loop: batches of 32 RGB uint8 images of 320 x 320 with
their boxes and labels, shuffled, read by 2 worker processes, collated by ``dsprep.torch.collate`` (images stacked,
one target dict per image).  The packs hold the images already resized to 320 x 320 (done once, by ``voc-to-h5
--size 320x320 --resize stretch``); the folder readers resize every image with ``v2.Resize((320, 320))``, the
same stretch.

* raw pack: ``voc-to-h5 --size 320x320`` (raw pixels), ``dsprep.torch.DetectionDataset``
* JPEG pack: ``voc-to-h5 --size 320x320 --encode jpeg``, decoded in the workers
* VOCDetection: ``torchvision.datasets.VOCDetection`` over the JPEG folder, ``wrap_dataset_for_transforms_v2``
* WebDataset: the same JPEG files and their boxes in 8 tar shards, ``webdataset.WebDataset`` with a shuffle buffer
  (when ``webdataset`` is installed)
* ceiling: the same DataLoader moving batches of the same shapes that nothing was read into (its worker makes a
  fresh batch of the same bytes each time): the loader's own cost on this machine

Plus the single-process rate of each pack's reader (no DataLoader).  The data (``--images`` VOC-like JPEGs of
333..500 x 375 with 1..6 boxes) is generated here.  The loaders take turns, one timed epoch each, ``--rounds``
times; rates are medians, and each ratio is the median of the ratios within a round (loaders timed minutes apart
on a shared machine are not comparable; one after the other they mostly are).

    python benchmarks/bench_train_input.py [--images 2000] [--rounds 5] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from dsprep.torch import DetectionBatch, DetectionDataset, collate  # noqa: E402

SIZE = 320
BATCH = 32
WORKERS = 2
CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


# ---- data ----------------------------------------------------------------------------------------------------------

def make_voc(root: Path, n: int, seed: int = 0) -> dict:
    """``root/VOCdevkit/VOC2007`` with n photo-like JPEGs (smooth colour fields plus sensor-like noise, so they
    compress and decode like photographs) and their XML; returns {stem: (w, h, boxes, labels)}."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    noise = [rng.normal(0, 9, (375, 500, 3)).astype(np.int16) for _ in range(8)]
    annotations = {}
    for k in range(n):
        stem = f"{2008000000 + k}"
        w, h = (500, 375) if k % 3 else (int(rng.integers(333, 500)), 375)
        base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
        img = np.clip(base.astype(np.int16) + noise[k % 8][:h, :w], 0, 255).astype(np.uint8)
        m = int(rng.integers(1, 7))
        x0 = rng.uniform(0, w * 0.7, m)
        y0 = rng.uniform(0, h * 0.7, m)
        boxes = np.stack([x0, y0, x0 + rng.uniform(10, w * 0.3, m), y0 + rng.uniform(10, h * 0.3, m)], 1).round()
        boxes = np.minimum(boxes, [w - 1, h - 1, w - 1, h - 1]).astype(int) + 1
        labels = rng.integers(0, len(CLASSES), m)
        for (a, b, c, d), lab in zip(boxes, labels):
            cv2.rectangle(img, (int(a), int(b)), (int(c), int(d)), [int(v) for v in rng.integers(0, 256, 3)], 2)
        cv2.imwrite(str(voc / "JPEGImages" / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        objects = "".join(f"<object><name>{CLASSES[lab]}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin>"
                          f"<ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
                          for (a, b, c, d), lab in zip(boxes, labels))
        (voc / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>")
        annotations[stem] = (w, h, boxes, labels)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{s}\n" for s in annotations))
    return annotations


def make_tars(voc: Path, annotations: dict, out: Path, shards: int = 8) -> list:
    """The same JPEG files and their boxes as WebDataset shards (``key.jpg`` + ``key.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    stems = list(annotations)
    paths = []
    for s in range(shards):
        path = out / f"train-{s:04d}.tar"
        with tarfile.open(path, "w") as tar:
            for stem in stems[s::shards]:
                w, h, boxes, labels = annotations[stem]
                # VOC's 1-based pixel corners, as VOCDetection gives them
                meta = json.dumps({"boxes": boxes.tolist(), "labels": labels.tolist()}).encode()
                for name, data in ((f"{stem}.jpg", (voc / "JPEGImages" / f"{stem}.jpg").read_bytes()),
                                   (f"{stem}.json", meta)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


def pack(voc: Path, out: Path, *extra) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dsprep", "voc-to-h5", str(voc), str(out), "--split", "trainval",
                    "--size", f"{SIZE}x{SIZE}", "--resize", "stretch", "--workers", str(WORKERS), "-q", *extra],
                   check=True, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - t


# ---- the loaders ---------------------------------------------------------------------------------------------------

class Ceiling(Dataset):
    """Batches of the same shapes as the packs', made fresh in the worker with nothing read into them."""

    def __init__(self, n: int, objects_per_image: float):
        self.n, self.k = n, max(1, round(objects_per_image))

    def __len__(self):
        return self.n

    def __getitems__(self, indices):
        n = len(indices)
        images = torch.empty((n, SIZE, SIZE, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
        m = n * self.k
        offsets = np.arange(0, m + 1, self.k, dtype=np.int64)
        per_object = {"boxes": np.zeros((m, 4), np.float32), "labels": np.zeros(m, np.int64),
                      "difficult": np.zeros(m, bool)}
        return DetectionBatch(images, per_object, {k: offsets for k in per_object}, [str(i) for i in indices],
                              np.full((n, 2), SIZE, np.int64), {"boxes": ("XYXY", "soft")})


def pass_through(batch):
    return batch


def voc_detection(root: Path):
    from torchvision.datasets import VOCDetection, wrap_dataset_for_transforms_v2
    resize = v2.Compose([v2.ToImage(), v2.Resize((SIZE, SIZE))])
    return wrap_dataset_for_transforms_v2(VOCDetection(str(root), year="2007", image_set="trainval",
                                                       transforms=resize))


def _wds_sample(sample):
    img = torch.from_numpy(sample["jpg"].copy()).permute(2, 0, 1)  # webdataset's arrays are read-only
    h, w = img.shape[1:]
    meta = sample["json"]
    target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor(meta["boxes"], dtype=torch.float32).reshape(-1, 4),
                                                format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor(meta["labels"], dtype=torch.int64), "image_id": sample["__key__"]}
    return v2.Resize((SIZE, SIZE))(tv_tensors.Image(img), target)


def webdataset_loader(shards: list):
    import webdataset as wds
    return (wds.WebDataset(shards, shardshuffle=len(shards), empty_check=False).shuffle(500).decode("rgb8")
            .map(_wds_sample))


def time_epoch(loader) -> tuple:
    t = time.perf_counter()
    n = objects = 0
    for images, targets in loader:  # what a training loop touches: every image's boxes and labels
        n += len(targets)
        objects += sum(len(t["boxes"]) + len(t["labels"]) for t in targets)
    return n, time.perf_counter() - t


def single_process(ds: DetectionDataset, rng) -> float:
    order = rng.permutation(len(ds))
    t = time.perf_counter()
    for s in range(0, len(order), BATCH):
        images, targets = collate(ds.__getitems__(order[s:s + BATCH].tolist()))
    return len(order) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default=None, help="keep the generated data here (default: a temporary folder)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_train_input_"))
    try:
        run(work, args)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args) -> None:
    torch.set_num_threads(1)
    voc = work / "VOCdevkit" / "VOC2007"
    t = time.perf_counter()
    annotations = make_voc(work, args.images)
    print(f"data: {args.images} JPEGs ({du(voc / 'JPEGImages') / 2**20:.0f} MiB) generated in "
          f"{time.perf_counter() - t:.0f} s; torch {torch.__version__}, {os.cpu_count()} cores")
    raw_h5, jpeg_h5, png_h5 = work / "raw.h5", work / "jpeg.h5", work / "png.h5"
    t_raw = pack(voc, raw_h5)
    t_jpeg = pack(voc, jpeg_h5, "--encode", "jpeg")
    t_png = pack(voc, png_h5, "--encode", "png")
    folder = du(voc / "JPEGImages")
    for name, path, secs in (("raw", raw_h5, t_raw), ("jpeg", jpeg_h5, t_jpeg), ("png", png_h5, t_png)):
        size = path.stat().st_size
        print(f"pack {name:5s}: {size / 2**20:7.1f} MiB ({size / folder:.2f}x the JPEG folder), packed in {secs:.1f} s")

    objects = np.mean([len(a[2]) for a in annotations.values()])
    loaders = {
        "ceiling": DataLoader(Ceiling(args.images, objects), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                              collate_fn=pass_through, persistent_workers=True),
        "raw pack": DataLoader(DetectionDataset(raw_h5), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                               collate_fn=collate, persistent_workers=True),
        "JPEG pack": DataLoader(DetectionDataset(jpeg_h5), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                                collate_fn=collate, persistent_workers=True),
        "PNG pack": DataLoader(DetectionDataset(png_h5), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                               collate_fn=collate, persistent_workers=True),
        "VOCDetection": DataLoader(voc_detection(work), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                                   collate_fn=collate, persistent_workers=True),
    }
    try:
        shards = make_tars(voc, annotations, work / "wds")
        loaders["WebDataset"] = DataLoader(webdataset_loader(shards), batch_size=BATCH, num_workers=WORKERS,
                                           collate_fn=collate, persistent_workers=True)
    except ImportError:
        print("webdataset is not installed: its row is left out (pip install webdataset)")
    rates = {name: [] for name in loaders}
    counts = {}
    workers = {}
    for name, loader in loaders.items():  # warm-up: workers started, page cache filled
        before = {p.pid for p in psutil.Process().children()}
        time_epoch(loader)
        workers[name] = [p for p in psutil.Process().children() if p.pid not in before]
    memory_first = {name: worker_memory(procs) for name, procs in workers.items()}
    for r in range(args.rounds):
        for name, loader in loaders.items():
            n, secs = time_epoch(loader)
            counts[name] = n
            rates[name].append(n / secs)
    rng = np.random.default_rng(0)
    single = {"raw pack": single_process(DetectionDataset(raw_h5), rng),
              "JPEG pack": single_process(DetectionDataset(jpeg_h5), rng)}
    rate = {name: float(np.median(v)) for name, v in rates.items()}
    print(f"\nDataLoader: {WORKERS} workers, batch {BATCH}, shuffled, {SIZE}x{SIZE}; the median of {args.rounds} "
          f"epochs")
    for name in loaders:
        print(f"  {name:13s} {rate[name]:8.0f} images/s  ({counts[name]} images an epoch; epochs: "
              f"{', '.join(f'{v:.0f}' for v in rates[name])})")
    print(f"workers' private memory (USS, MiB, the {WORKERS} summed) after the first epoch -> after "
          f"{args.rounds + 1} epochs:")
    for name in ("raw pack", "JPEG pack", "VOCDetection"):
        print(f"  {name:13s} {memory_first[name]:8.1f} -> {worker_memory(workers[name]):.1f}")
    print("single process, no DataLoader (read a shuffled batch + collate):")
    for name, v in single.items():
        print(f"  {name:13s} {v:8.0f} images/s")
    def ratio(a, b):  # each round's loaders ran one after the other: the median of the rounds' ratios
        return float(np.median(np.array(rates[a]) / np.array(rates[b])))

    print(f"\nratios (median over the {args.rounds} rounds of the ratio within each round):")
    print(f"  raw pack / VOCDetection   {ratio('raw pack', 'VOCDetection'):6.2f}x   (goal >= 8)")
    print(f"  raw pack / ceiling        {ratio('raw pack', 'ceiling'):6.2f}    (goal >= 0.75)")
    print(f"  JPEG pack / VOCDetection  {ratio('JPEG pack', 'VOCDetection'):6.2f}x   (goal >= 1.5)")
    print(f"  PNG pack / VOCDetection   {ratio('PNG pack', 'VOCDetection'):6.2f}x")
    print(f"  ceiling / VOCDetection    {ratio('ceiling', 'VOCDetection'):6.2f}x")
    if "WebDataset" in rates:
        print(f"  WebDataset / VOCDetection {ratio('WebDataset', 'VOCDetection'):6.2f}x")
        print(f"  JPEG pack / WebDataset    {ratio('JPEG pack', 'WebDataset'):6.2f}x")
    for loader in loaders.values():
        del loader


def worker_memory(procs) -> float:
    return sum(p.memory_full_info().uss for p in procs) / 2**20


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


if __name__ == "__main__":
    main()
