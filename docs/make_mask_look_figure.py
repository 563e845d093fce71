"""Make docs/masks_look.jpg: two photographs of the VOC sample (../shared/data/voc_sample) with their
SegmentationObject masks drawn by the real command, side by side:

  python -m dsprep visualize boxes VOC --out DIR --ext .png --mask-outlines

on a copy of the three sample images that have masks.  Usage: python docs/make_mask_look_figure.py
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
SHOWN = ("2011_000006", "2011_000025")


def main():
    src = SHARED / "voc_sample"
    with tempfile.TemporaryDirectory() as tmp:
        voc = Path(tmp) / "voc"
        for sub, ext in (("Annotations", ".xml"), ("JPEGImages", ".jpg"), ("SegmentationObject", ".png"),
                         ("SegmentationClass", ".png")):
            (voc / sub).mkdir(parents=True)
            for stem in SHOWN:
                shutil.copy(src / sub / f"{stem}{ext}", voc / sub)
        out = Path(tmp) / "drawn"
        subprocess.run([sys.executable, "-m", "dsprep", "visualize", "boxes", str(voc), "--out", str(out), "--ext",
                        ".png", "--mask-outlines", "--quiet"], check=True, cwd=HERE.parent)
        panels = [cv2.imread(str(out / f"{stem}.png")) for stem in SHOWN]
    h = max(p.shape[0] for p in panels)
    panels = [np.vstack([p, np.full((h - p.shape[0], p.shape[1], 3), 255, np.uint8)]) for p in panels]
    gap = np.full((h, 8, 3), 255, np.uint8)
    sheet = np.hstack([panels[0], gap, panels[1]])
    header = np.full((30, sheet.shape[1], 3), 255, np.uint8)
    labels = ("2011_000006: 4 persons (the 2nd one's mask is cut at its box)", "2011_000025: 2 buses, 1 car")
    for text, x in zip(labels, (4, panels[0].shape[1] + 12)):
        cv2.putText(header, text, (x, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(HERE / "masks_look.jpg"), np.vstack([header, sheet]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print("docs/masks_look.jpg")


if __name__ == "__main__":
    main()
