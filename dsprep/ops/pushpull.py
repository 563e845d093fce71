"""The smooth membrane fill (Gortler et al.'s pull-push) that ``inpaint`` and ``texture`` fills both build on: a
module of its own so that neither imports the other."""
from __future__ import annotations

from typing import List, Tuple

import cv2
import numpy as np


def push_pull(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Every pixel where ``hole`` is set gets a weighted average of the known pixels around it, at the scale where
    there are some (Gortler et al.'s pull-push): known pixels are averaged down a pyramid of half sizes (colour times
    weight, and the weight: :func:`pull`), then on the way back up each level keeps its own weighted colour and takes
    the rest from the level below (:func:`push`): ``c + up * (1 - w)``.  Known pixels are returned as they are.  Same
    dtype as ``img``.  (Of the pyramids tried -- 2 x 2 blocks, Gaussian, area -- area averaging with bilinear
    doubling came closest to the true pixels: benchmarks/bench_fill.py.)"""
    known = (~np.asarray(hole, bool)).astype(np.float32)
    color = img.astype(np.float32)
    if color.ndim == 2:
        color = color[:, :, None]
    levels: List[Tuple[np.ndarray, np.ndarray]] = [(color * known[:, :, None], known)]
    while levels[-1][1].min() <= 0 and max(levels[-1][1].shape) > 1:
        levels.append(pull(*levels[-1]))
    c, w = levels[-1]
    est = c / np.maximum(w, 1e-12)[:, :, None]
    for c, w in reversed(levels[:-1]):
        est = c + push(est, w.shape) * (1.0 - w)[:, :, None]
    out = est.reshape(img.shape) if img.ndim == 3 else est[:, :, 0]
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    out = out.astype(img.dtype)
    out[~np.asarray(hole, bool)] = img[~np.asarray(hole, bool)]
    return out


def pull(c: np.ndarray, w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One level down: ``(h, w, C)`` premultiplied colour and ``(h, w)`` weight -> ``((h+1)//2, (w+1)//2)``, each
    pixel the area-weighted mean of the pixels its footprint covers (OpenCV's area resampling: 2 x 2 blocks for even
    sizes, fractional footprints of ``w / ((w+1)//2)`` pixels for odd ones)."""
    size = ((w.shape[1] + 1) // 2, (w.shape[0] + 1) // 2)
    c2 = cv2.resize(c, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
    return c2, cv2.resize(w, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0])


def push(est: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """One level up: ``(h2, w2, C)`` -> ``(h, w, C)`` (``shape = (h, w)``) bilinearly, pixel centres mapped as
    ``x2 = (x + 0.5) * w2 / w - 0.5`` (OpenCV's convention), borders clamped."""
    return cv2.resize(est, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR).reshape(shape[0], shape[1], -1)
