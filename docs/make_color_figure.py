"""Make docs/color_before_after.jpg: a generated scene under dim, warm light, corrected by `dsprep color`.

Runs the real command (python -m dsprep color reference-white ...) on the generated image.
Usage: python docs/make_color_figure.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dsprep.demo import make_scene


def main():
    here = Path(__file__).resolve().parent
    rng = np.random.default_rng(7)
    img, _, _ = make_scene(rng, 480, 320, 6)
    cast = np.clip(img * np.array([0.45, 0.62, 0.8]) + 10, 0, 255).astype(np.uint8)  # BGR: dim and warm
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dusk.png"
        cv2.imwrite(str(src), cast)
        subprocess.run([sys.executable, "-m", "dsprep", "color", "reference-white", str(src), "--out",
                        str(Path(tmp) / "out"), "--quiet"], check=True)
        fixed = cv2.imread(str(Path(tmp) / "out" / "dusk.png"))
    sheet = np.hstack([cast, np.full((320, 8, 3), 255, np.uint8), fixed])
    for text, x in (("before", 10), ("after: dsprep color reference-white", 498)):
        cv2.putText(sheet, text, (x, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.imwrite(str(here / "color_before_after.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
