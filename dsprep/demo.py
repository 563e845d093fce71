"""A small procedurally generated data set, so every command can be tried (and tested) without a download."""
from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import numpy as np

from .core import ImageRecord
from .images import encode_image
from .voc import write_voc_dataset

DEMO_CLASSES = ("ball", "box", "cone")


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth random colour field plus mild noise: a stand-in for a real scene."""
    small = rng.integers(40, 200, size=(4, 5, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, w: int, h: int, n_objects: int):
    """One image with non-overlapping shapes; returns ``(bgr, boxes (N,4), names)`` with exact tight boxes."""
    img = _background(rng, w, h)
    boxes: List[List[float]] = []
    names: List[str] = []
    for _ in range(n_objects * 20):
        if len(boxes) == n_objects:
            break
        s = int(rng.integers(min(w, h) // 8, min(w, h) // 3))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        cand = np.array([x, y, x + s, y + s], float)
        if boxes and _overlaps(cand, np.array(boxes)):
            continue
        cls = DEMO_CLASSES[int(rng.integers(len(DEMO_CLASSES)))]
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        color = (color[0], color[1], max(color[2], 60))  # never pure black: crops stay non-black
        if cls == "ball":
            cv2.circle(img, (x + s // 2, y + s // 2), s // 2, color, -1)
            r = s // 2
            box = [x + s // 2 - r, y + s // 2 - r, x + s // 2 + r + 1, y + s // 2 + r + 1]
        elif cls == "box":
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), color, -1)
            box = [x, y, x + s, y + s]
        else:
            pts = np.array([[x + s // 2, y], [x + s - 1, y + s - 1], [x, y + s - 1]], np.int32)
            cv2.fillPoly(img, [pts], color)
            box = [x, y, x + s, y + s]
        boxes.append(box)
        names.append(cls)
    return img, np.array(boxes, float).reshape(-1, 4), names


def _overlaps(b: np.ndarray, others: np.ndarray) -> bool:
    ix = np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0])
    iy = np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1])
    return bool(((ix > -4) & (iy > -4)).any())


def make_voc_demo(out: Path, n_images: int = 24, seed: int = 0) -> List[str]:
    """Write a VOC data set of ``n_images`` 320x240 scenes (train/val split lists) under ``out``."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_images):
        img, boxes, names = make_scene(rng, 320, 240, int(rng.integers(1, 5)))
        difficult = (rng.random(len(names)) < 0.1).astype(np.uint8)
        rec = ImageRecord(image_path=f"demo_{i:04d}.jpg", width=320, height=240, boxes=boxes, names=names,
                          difficult=difficult, meta={"stem": f"demo_{i:04d}"})
        items.append((rec, encode_image(img, ".jpg", 95)))
    ids = write_voc_dataset(out, items, split="trainval")
    cut = (len(ids) * 3) // 4
    from .voc import write_split_list
    write_split_list(out / "ImageSets" / "Main" / "train.txt", ids[:cut])
    write_split_list(out / "ImageSets" / "Main" / "val.txt", ids[cut:])
    return ids
