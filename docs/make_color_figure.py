"""Make docs/color_before_after.jpg: a generated scene with a white reference (a sheet of paper) under a warm, dim
light, corrected by `dsprep color reference-white`, beside the same scene under white light.

Reference white takes the brightest pixels as white and scales each channel to make them so: it is for pictures
that hold something white (paper, a grey card, a white wall); on a picture without (a green field) it would turn
the brightest grass grey.  Runs the real command (python -m dsprep color reference-white ...) on the image.
Usage: python docs/make_color_figure.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dsprep.demo import tinted_scene


def main():
    here = Path(__file__).resolve().parent
    rng = np.random.default_rng(7)
    cast, white = tinted_scene(rng, 480, 320, light=(0.45, 0.62, 0.85))  # BGR gains: dim and warm
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dusk.png"
        cv2.imwrite(str(src), cast)
        subprocess.run([sys.executable, "-m", "dsprep", "color", "reference-white", str(src), "--out",
                        str(Path(tmp) / "out"), "--quiet"], check=True)
        fixed = cv2.imread(str(Path(tmp) / "out" / "dusk.png"))
    gap = np.full((320, 8, 3), 255, np.uint8)
    sheet = np.hstack([cast, gap, fixed, gap, white])
    header = np.full((30, sheet.shape[1], 3), 255, np.uint8)
    for text, x in (("before: warm, dim light", 4), ("after: dsprep color reference-white", 492),
                    ("the same scene under white light", 980)):
        cv2.putText(header, text, (x, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.vstack([header, sheet])
    cv2.imwrite(str(here / "color_before_after.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"docs/color_before_after.jpg: mean difference from white light {np.abs(cast.astype(int) - white).mean():.1f}"
          f" before, {np.abs(fixed.astype(int) - white).mean():.1f} after")


if __name__ == "__main__":
    main()
