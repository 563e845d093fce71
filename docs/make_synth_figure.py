"""Make docs/synth_example.jpg: one synthetic image, its boxes, and its instance mask, side by side.

Everything comes from data the project generates and its real commands: the demo data set (textured scenes with
shaded balls, turned boxes and cones, and their masks), then
  python -m dsprep crop DEMO --out crops --backgrounds bgs          (silhouettes; objects filled with the texture)
  python -m dsprep synth --backgrounds bgs --objects crops ... --masks --max-occlusion 0.3
The image shown is the synthetic image with the most objects, several of them partly hidden.
Usage: python docs/make_synth_figure.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dsprep.dataset import load_dataset
from dsprep.demo import make_voc_demo
from dsprep.draw import draw_record
from dsprep.vocmasks import voc_palette
from dsprep.vocmasks import mask_indices


def dsprep(*args):
    subprocess.run([sys.executable, "-m", "dsprep", *[str(a) for a in args], "--quiet"], check=True)


def main():
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_voc_demo(tmp / "voc", n_images=24, seed=0)
        dsprep("crop", tmp / "voc", "--out", tmp / "crops", "--backgrounds", tmp / "bgs")
        dsprep("synth", "--backgrounds", tmp / "bgs", "--objects", tmp / "crops", "--out", tmp / "syn", "-n", "12",
               "--seed", "5", "--canvas", "480x360", "--per-image", "5:9", "--max-occlusion", "0.3", "--masks",
               "--ext", ".png")
        ds = load_dataset(tmp / "syn")
        rec = max(ds.records, key=lambda r: (len(r), int(r.truncated.sum())))
        img = cv2.imread(rec.image_path)
        boxes = draw_record(img, rec, {c: i for i, c in enumerate(ds.classes)})
        inst = mask_indices((tmp / "syn" / "SegmentationObject" / f"{rec.stem}.png").read_bytes())
        mask = voc_palette()[inst][:, :, ::-1].copy()  # the PNG's own colours (VOC palette), as BGR
    gap = np.full((img.shape[0], 8, 3), 255, np.uint8)
    sheet = np.hstack([img, gap, boxes, gap, mask])
    header = np.full((30, sheet.shape[1], 3), 255, np.uint8)
    labels = ("synthetic image", "boxes: tight on the visible pixels", "SegmentationObject: the instances")
    for text, x in zip(labels, (4, img.shape[1] + 12, 2 * img.shape[1] + 20)):
        cv2.putText(header, text, (x, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.vstack([header, sheet])
    cv2.imwrite(str(here / "synth_example.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"docs/synth_example.jpg: {rec.stem}, {len(rec)} objects, {int(rec.truncated.sum())} truncated")


if __name__ == "__main__":
    main()
