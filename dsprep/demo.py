"""A small procedurally generated data set, so every command can be tried (and tested) without a download.

Scenes are textured backgrounds (grass-like noise, tiles, wood grain, woven cloth) with shaded objects whose shapes
are not their boxes (balls, turned boxes, cones), written as a VOC tree with the objects' masks
(``SegmentationObject/`` instance ids in object order, ``SegmentationClass/`` class indices, ``labelmap.txt``), so
``crop`` cuts silhouettes and fills the backgrounds, and ``synth`` pastes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from .core import ImageRecord
from .images import encode_image
from .voc import write_voc_dataset

DEMO_CLASSES = ("ball", "box", "cone")
TEXTURES = ("grass", "tiles", "wood", "cloth")


def _noise(rng: np.random.Generator, w: int, h: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids of doubling resolution, smoothly upscaled and summed."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells * h // max(w, h) + 2, cells * w // max(w, h) + 2)).astype(np.float32)
        weight = 0.55 ** o
        out += weight * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += weight
    return np.clip(out / total, 0, 1)


def _palette_blend(t: np.ndarray, dark, light) -> np.ndarray:
    """``t`` in [0, 1] (H, W) -> BGR uint8 between two colours."""
    dark, light = np.asarray(dark, np.float32), np.asarray(light, np.float32)
    return np.clip(dark + t[..., None] * (light - dark), 0, 255).astype(np.uint8)


def textured_background(rng: np.random.Generator, w: int, h: int, kind: str = "") -> np.ndarray:
    """A BGR scene background with texture at several scales (what inpainting and blending must cope with)."""
    kind = kind or TEXTURES[int(rng.integers(len(TEXTURES)))]
    n = _noise(rng, w, h)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "grass":
        blades = _noise(rng, w, h, 7)
        img = _palette_blend(0.6 * n + 0.4 * blades, (20, 70, 40), (60, 170, 120))
    elif kind == "tiles":
        size = int(rng.integers(28, 56))
        row = (y // size).astype(np.int64)
        xx = x + (row % 2) * size / 2
        grout = ((xx % size) < 3) | ((y % size) < 3)
        shade = rng.random((h // size + 2, w // size + 3)).astype(np.float32)
        base = 0.55 + 0.25 * shade[row, (xx // size).astype(np.int64)] + 0.2 * n
        img = _palette_blend(np.where(grout, 0.15, base), (40, 50, 90), (150, 170, 220))
    elif kind == "wood":
        cx, cy = rng.uniform(-w, 2 * w), rng.uniform(-h, 2 * h)
        r = np.hypot((x - cx) * 0.35, y - cy) + 25 * n
        rings = 0.5 + 0.5 * np.sin(r / rng.uniform(3.0, 6.0))
        img = _palette_blend(0.7 * rings + 0.3 * n, (20, 50, 90), (90, 150, 200))
    else:  # cloth: two crossing thread directions
        a = rng.uniform(0, np.pi)
        u, v = x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)
        weave = 0.5 + 0.25 * np.sin(u / 1.6) + 0.25 * np.sin(v / 1.6)
        img = _palette_blend(0.6 * weave + 0.4 * n, tuple(rng.integers(20, 90, 3)), tuple(rng.integers(140, 230, 3)))
    grain = rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def _shape_mask(cls: str, w: int, h: int, x: int, y: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: the object's pixels (drawn without anti-aliasing, so the mask is exact)."""
    m = np.zeros((h, w), np.uint8)
    if cls == "ball":
        cv2.circle(m, (x + s // 2, y + s // 2), s // 2, 1, -1)
    elif cls == "box":  # a square turned by a random angle: its box is not its shape
        rect = ((x + s / 2.0, y + s / 2.0), (s * 0.68, s * 0.68), float(rng.uniform(10, 80)))
        cv2.fillPoly(m, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 1)
    else:
        cv2.fillPoly(m, [np.array([[x + s // 2, y], [x + s - 1, y + s - 1], [x, y + s - 1]], np.int32)], 1)
    return m.astype(bool)


def _shaded(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """An object's colour over its ``w x h`` box: a base colour lit from a random side, with a little texture."""
    base = rng.integers(40, 256, 3).astype(np.float32)
    base[2] = max(base[2], 60.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    light = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(w, h, 1)
    tone = np.clip(0.85 + 0.6 * light, 0.45, 1.25)[..., None]
    return np.clip(base * tone + rng.normal(0, 5, (h, w, 1)), 1, 255).astype(np.uint8)


def make_scene_with_masks(rng: np.random.Generator, w: int, h: int, n_objects: int
                          ) -> Tuple[np.ndarray, np.ndarray, List[str], np.ndarray]:
    """One scene with non-overlapping objects: ``(bgr, boxes (N, 4), names, instance (H, W) uint8)`` where boxes
    are the exact tight boxes of the objects' pixels and ``instance`` holds ``k + 1`` on object k's pixels."""
    img = textured_background(rng, w, h)
    instance = np.zeros((h, w), np.uint8)
    boxes: List[List[float]] = []
    names: List[str] = []
    for _ in range(n_objects * 20):
        if len(boxes) == n_objects:
            break
        s = int(rng.integers(min(w, h) // 6, min(w, h) // 3))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        if boxes and _overlaps(np.array([x, y, x + s, y + s], float), np.array(boxes)):
            continue
        cls = DEMO_CLASSES[int(rng.integers(len(DEMO_CLASSES)))]
        mask = _shape_mask(cls, w, h, x, y, s, rng)
        bx, by, bw, bh = cv2.boundingRect(mask.view(np.uint8))
        sub, inside = np.s_[by:by + bh, bx:bx + bw], mask[by:by + bh, bx:bx + bw]
        img[sub][inside] = _shaded(rng, bw, bh)[inside]
        instance[mask] = len(boxes) + 1
        boxes.append([bx, by, bx + bw, by + bh])
        names.append(cls)
    return img, np.array(boxes, float).reshape(-1, 4), names, instance


def make_scene(rng: np.random.Generator, w: int, h: int, n_objects: int):
    """One image with non-overlapping shapes; returns ``(bgr, boxes (N,4), names)`` with exact tight boxes."""
    img, boxes, names, _ = make_scene_with_masks(rng, w, h, n_objects)
    return img, boxes, names


LIGHTS = ((0.55, 0.75, 1.0), (1.0, 0.8, 0.6), (0.7, 1.0, 0.75), (0.6, 0.62, 0.7))  # BGR: warm, cold, green, dim


def tinted_scene(rng: np.random.Generator, w: int, h: int, light=None) -> Tuple[np.ndarray, np.ndarray]:
    """A scene with a white reference in it -- a sheet of paper lying on the textured ground, a sixth of the
    picture -- under white light and under a tinted light (per-channel gains, ``light`` BGR, a random one of
    :data:`LIGHTS` by default): ``(tinted, white_light)``, BGR uint8.  What reference-white correction is for: it
    takes the brightest pixels (the paper) as white and scales each channel to make them so."""
    img, _, _ = make_scene(rng, w, h, int(rng.integers(2, 5)))
    pw, ph = w * 2 // 5, h * 2 // 5
    x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    paper = ((x + pw / 2, y + ph / 2), (pw, ph), float(rng.uniform(-20, 20)))
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(cv2.boxPoints(paper)).astype(np.int32)], 255)
    m = cv2.GaussianBlur(m, (3, 3), 0).astype(np.float32)[..., None] / 255.0  # its edge anti-aliased
    sheet = np.clip(rng.normal(244, 3, (h, w, 1)), 0, 255).astype(np.float32)  # white, not quite 255: paper
    white = np.clip(img * (1 - m) + sheet * m, 0, 255)
    gains = np.asarray(light if light is not None else LIGHTS[int(rng.integers(len(LIGHTS)))], np.float32)
    tinted = np.clip(white * gains + rng.normal(0, 1.5, (h, w, 1)), 0, 255)
    return tinted.astype(np.uint8), white.astype(np.uint8)


def make_tinted_scenes(out: Path, n_images: int = 4, seed: int = 0) -> List[str]:
    """Write ``n_images`` 320x240 JPEG scenes, each with a white reference (a sheet of paper) under a tinted light
    (:func:`tinted_scene`, the lights in turn), as ``out/tinted_<k>.jpg``: what `dsprep color reference-white`
    corrects."""
    from .outputs import atomic_write_bytes
    rng = np.random.default_rng([seed, 2])
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n_images):
        tinted, _ = tinted_scene(rng, 320, 240, LIGHTS[k % len(LIGHTS)])
        names.append(f"tinted_{k}.jpg")
        atomic_write_bytes(out / names[-1], encode_image(tinted, ".jpg", 95))
    return names


def _overlaps(b: np.ndarray, others: np.ndarray) -> bool:
    ix = np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0])
    iy = np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1])
    return bool(((ix > -4) & (iy > -4)).any())


def make_voc_demo(out: Path, n_images: int = 24, seed: int = 0) -> List[str]:
    """Write a VOC data set of ``n_images`` 320x240 scenes (train/val split lists, object masks) under ``out``."""
    from .outputs import atomic_write_bytes, atomic_write_text
    from .vocmasks import encode_palette_png, voc_palette
    rng = np.random.default_rng(seed)
    pal = voc_palette()
    cls_lut = {c: i + 1 for i, c in enumerate(DEMO_CLASSES)}
    items, masks = [], []
    for i in range(n_images):
        img, boxes, names, instance = make_scene_with_masks(rng, 320, 240, int(rng.integers(1, 5)))
        difficult = (rng.random(len(names)) < 0.1).astype(np.uint8)
        stem = f"demo_{i:04d}"
        rec = ImageRecord(image_path=f"{stem}.jpg", width=320, height=240, boxes=boxes, names=names,
                          difficult=difficult, meta={"stem": stem})
        items.append((rec, encode_image(img, ".jpg", 95)))
        lut = np.zeros(256, np.uint8)
        lut[1:len(names) + 1] = [cls_lut[n] for n in names]
        masks.append((stem, instance, lut[instance]))
    ids = write_voc_dataset(out, items, split="trainval")
    for folder, k in (("SegmentationObject", 1), ("SegmentationClass", 2)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for m in masks:
            atomic_write_bytes(out / folder / f"{m[0]}.png", encode_palette_png(m[k], pal))
    atomic_write_text(out / "labelmap.txt", "# label:color_rgb:parts:actions\n" + "".join(
        f"{name}:{','.join(str(int(v)) for v in pal[i])}::\n" for i, name in enumerate(("background",) + DEMO_CLASSES)))
    cut = (len(ids) * 3) // 4
    from .voc import write_split_list
    write_split_list(out / "ImageSets" / "Main" / "train.txt", ids[:cut])
    write_split_list(out / "ImageSets" / "Main" / "val.txt", ids[cut:])
    return ids


def make_demo_detections(voc: Path, out: Path, split: str = "val", seed: int = 0) -> Path:
    """A pretend detector's output for ``dsprep eval``: VOC results files ``comp4_det_<split>_<class>.txt``
    (``image_id score xmin ymin xmax ymax``, VOC's 1-based corners) for the images of ``split``.  Most objects are
    found with jittered boxes and high scores, some are missed, some found twice, and false positives score low,
    so the AP is good but not perfect."""
    from .outputs import atomic_write_text
    from .voc import read_voc
    rng = np.random.default_rng([seed, 1])
    ids = (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    lines = {c: [] for c in DEMO_CLASSES}
    for stem in ids:
        rec, _ = read_voc(voc / "Annotations" / f"{stem}.xml")
        size = np.concatenate([rec.boxes[:, 2:] - rec.boxes[:, :2]] * 2, axis=1) if len(rec) else np.zeros((0, 4))
        found = rng.random(len(rec)) < 0.85
        twice = found & (rng.random(len(rec)) < 0.1)
        idx = np.concatenate([np.flatnonzero(found), np.flatnonzero(twice)])
        boxes = rec.boxes[idx] + rng.normal(0, 0.06, (len(idx), 4)) * size[idx]
        for k, score, box in zip(idx.tolist(), rng.uniform(0.55, 1.0, len(idx)).tolist(), boxes):
            lines[rec.names[k]].append((stem, score, box))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            x, y = rng.uniform(0, rec.width - 40), rng.uniform(0, rec.height - 40)
            w, h = rng.uniform(20, 60, 2)
            lines[DEMO_CLASSES[int(rng.integers(len(DEMO_CLASSES)))]].append(
                (stem, rng.uniform(0.05, 0.7), np.array([x, y, x + w, y + h])))
    out.mkdir(parents=True, exist_ok=True)
    for cls, dets in lines.items():
        atomic_write_text(out / f"comp4_det_{split}_{cls}.txt", "".join(
            f"{stem} {score:.3f} {b[0] + 1:.1f} {b[1] + 1:.1f} {b[2]:.1f} {b[3]:.1f}\n" for stem, score, b in dets))
    return out
