"""Semantic segmentation scored as FCN's ``score.py`` scores it: one confusion matrix over every pixel of every
image, then pixel accuracy, mean class accuracy, mean IU and frequency-weighted IU.

The matrix ``hist[g, p]`` counts pixels whose ground truth is class ``g`` and prediction ``p`` (rows: ground
truth).  Ground-truth values outside ``[0, n)`` -- VOC's 255 on object borders and ignored regions -- are left out,
as FCN's ``fast_hist`` leaves them out.  A prediction is a network's argmax, so every value must be a class index:
one that is not (255 included) is an error naming the file, never a silently misplaced count.

From the matrix (``nan`` where a ratio is 0 / 0, and ``nanmean`` over classes, as FCN computes it):

* ``pixel_accuracy`` = trace / total;
* per-class accuracy = diagonal / row sums; ``mean_accuracy`` its nanmean;
* per-class IU = diagonal / (row sums + column sums - diagonal); ``mean_iou`` its nanmean: a class absent from the
  ground truth and never predicted does not count, one absent but predicted counts with IU 0;
* ``fw_iou`` = sum over classes present in the ground truth of (row sum / total) x IU.

Pure functions over arrays here; reading the PNGs (through :func:`dsprep.formats.vocmasks.mask_indices`, the one index
decoder) and pairing files is in :mod:`dsprep.jobs.segeval`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np


def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """The ``(n, n) int64`` confusion matrix of one image: ``gt`` and ``pred`` ``(H, W)`` integer index maps of the
    same shape.  Ground-truth pixels outside ``[0, n)`` are ignored.  Raises ``ValueError`` (with the first bad
    value) when a counted prediction is outside ``[0, n)``."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"prediction is {pred.shape[1]}x{pred.shape[0]}, ground truth {gt.shape[1]}x{gt.shape[0]}")
    if gt.dtype == np.uint8 and pred.dtype == np.uint8 and n <= 256:
        # 8-bit maps (what PNG masks are): one table look-up gives each pixel its cell, g * n + p, and sends an
        # ignored ground truth past the matrix; no 64-bit copies of the image
        if int(pred.max(initial=0)) >= n:
            _check_counted(gt, pred, n)
        row = np.where(np.arange(256) < n, np.arange(256) * n, n * n + 256).astype(np.uint32)
        cell = row[gt]
        cell += pred
        return np.bincount(cell.reshape(-1), minlength=n * n + 512)[: n * n].reshape(n, n).astype(np.int64)
    g = gt.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    counted = (g >= 0) & (g < n)
    g, p = g[counted], p[counted]
    _check_counted(g, p, n)
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


def _check_counted(gt: np.ndarray, pred: np.ndarray, n: int) -> None:
    counted = (gt >= 0) & (gt < n)
    bad = counted & ((pred < 0) | (pred >= n))
    if bad.any():
        raise ValueError(f"prediction value {int(pred[bad].reshape(-1)[0])} is not a class index (0..{n - 1})")


@dataclass(frozen=True)
class SegScores:
    """The FCN figures of one confusion matrix (``hist``, ``(n, n) int64``, rows ground truth)."""

    classes: List[str]
    hist: np.ndarray
    pixel_accuracy: float
    mean_accuracy: float
    mean_iou: float
    fw_iou: float
    accuracy: np.ndarray  # (n,) per class, nan where the class has no ground-truth pixel
    iou: np.ndarray       # (n,) per class, nan where the class is neither in the ground truth nor predicted

    def as_dict(self) -> dict:
        def num(v) -> Optional[float]:
            return None if not np.isfinite(v) else float(v)
        return {
            "pixel_accuracy": num(self.pixel_accuracy), "mean_accuracy": num(self.mean_accuracy),
            "mean_iou": num(self.mean_iou), "fw_iou": num(self.fw_iou),
            "classes": {name: {"iou": num(self.iou[k]), "accuracy": num(self.accuracy[k]),
                               "pixels": int(self.hist[k].sum()), "predicted": int(self.hist[:, k].sum())}
                        for k, name in enumerate(self.classes)},
            "confusion": self.hist.tolist(),
        }


def scores(hist: np.ndarray, classes: Sequence[str]) -> SegScores:
    """FCN's figures from a confusion matrix (see the module's note); ``classes`` names its rows."""
    hist = np.asarray(hist, np.int64)
    n = hist.shape[0]
    if hist.shape != (n, n) or len(classes) != n:
        raise ValueError(f"confusion matrix {hist.shape} does not fit {len(classes)} classes")
    diag = np.diag(hist).astype(np.float64)
    rows = hist.sum(1).astype(np.float64)
    cols = hist.sum(0).astype(np.float64)
    total = float(hist.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag / rows
        iou = diag / (rows + cols - diag)
        pixel = diag.sum() / total if total else float("nan")
    present = rows > 0
    freq = rows / total if total else np.zeros(n)
    return SegScores(list(classes), hist, float(pixel), _nanmean(acc), _nanmean(iou),
                     float((freq[present] * iou[present]).sum()) if total else float("nan"), acc, iou)


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def format_table(s: SegScores) -> str:
    """The figures as a text table: one row per class that has pixels or predictions, then the four means."""
    width = max([len(c) for c in s.classes] + [16])
    lines = [f"{'class':<{width}}  {'IU':>7}  {'accuracy':>8}  {'pixels':>12}"]
    for k, name in enumerate(s.classes):
        if s.hist[k].sum() == 0 and s.hist[:, k].sum() == 0:
            continue
        iou = "-" if not np.isfinite(s.iou[k]) else f"{s.iou[k]:.4f}"
        acc = "-" if not np.isfinite(s.accuracy[k]) else f"{s.accuracy[k]:.4f}"
        lines.append(f"{name:<{width}}  {iou:>7}  {acc:>8}  {int(s.hist[k].sum()):>12,}")
    for label, v in (("pixel accuracy", s.pixel_accuracy), ("mean accuracy", s.mean_accuracy),
                     ("mean IU", s.mean_iou), ("fw IU", s.fw_iou)):
        lines.append(f"{label:<{width}}  {('-' if not np.isfinite(v) else f'{v:.4f}'):>7}")
    return "\n".join(lines)


__all__ = ["confusion", "scores", "SegScores", "format_table"]
