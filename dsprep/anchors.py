"""Anchor boxes for a data set: k-means on 1 - IoU (darknet's measure), refined by random perturbation, and how well
a set of anchors fits (mean best IoU, YOLOv5's best possible recall).

All functions are pure over ``(N, 2)`` float64 arrays of box widths and heights in training pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .core import ImageRecord

RATIO_THRESHOLD = 4.0   # YOLOv5's autoanchor ``thr``: a box and an anchor match when no side differs by more than 4x
MIN_SIDE = 2.0          # boxes with both sides under this many training pixels are left out (as YOLOv5 does)
REFINE_SAMPLE = 20000   # the refinement scores at most this many boxes (a fixed random sample) per generation


def training_sizes(records: Sequence[ImageRecord], size: int) -> np.ndarray:
    """``(N, 2)`` widths and heights of every box after its image is scaled so that its long side is ``size``
    pixels (as YOLO trainers letterbox it).  Records without a known image size are left out."""
    parts = []
    for rec in records:
        if len(rec) and rec.width > 0 and rec.height > 0:
            wh = rec.boxes[:, 2:4] - rec.boxes[:, 0:2]
            parts.append(wh * (size / max(rec.width, rec.height)))
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(N, K)`` IoU of boxes and anchors placed at the same centre (only their sizes matter)."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    area = wh[:, 0] * wh[:, 1]
    union = area[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def ratio_metric(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(N, K)`` YOLOv5's ratio metric: the smaller of ``w/aw, aw/w, h/ah, ah/h`` (1: same size)."""
    r = wh[:, None, :] / anchors[None, :, :]
    return np.minimum(r, 1.0 / r).min(axis=2)


@dataclass(frozen=True)
class Fit:
    """How well anchors fit a set of boxes."""

    mean_iou: float   # mean over boxes of the IoU with the best anchor
    bpr: float        # best possible recall: boxes whose best anchor is within RATIO_THRESHOLD on both sides
    aat: float        # anchors above threshold: anchors within RATIO_THRESHOLD of a box, on average

    def as_dict(self) -> dict:
        return {"mean_iou": round(self.mean_iou, 4), "bpr": round(self.bpr, 4), "aat": round(self.aat, 3)}


def fit(wh: np.ndarray, anchors: np.ndarray, thr: float = RATIO_THRESHOLD) -> Fit:
    if len(wh) == 0:
        return Fit(0.0, 0.0, 0.0)
    x = ratio_metric(wh, anchors)
    ok = x > 1.0 / thr
    return Fit(float(wh_iou(wh, anchors).max(axis=1).mean()), float(ok.any(axis=1).mean()),
               float(ok.sum(axis=1).mean()))


def _seed_centres(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with the distance 1 - IoU."""
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1.0 - wh_iou(wh, np.array(centres)).max(axis=1)
        p = d ** 2
        total = p.sum()
        centres.append(wh[rng.choice(len(wh), p=p / total)] if total > 0 else wh[rng.integers(len(wh))])
    return np.array(centres, np.float64)


def kmeans_iou(wh: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 300) -> np.ndarray:
    """``(k, 2)`` cluster centres of ``wh`` under the distance 1 - IoU: each box joins the centre it overlaps most,
    each centre moves to the median size of its boxes; an emptied centre restarts at the box worst served."""
    centres = _seed_centres(wh, k, rng)
    assign = None
    for _ in range(iterations):
        iou = wh_iou(wh, centres)
        new = iou.argmax(axis=1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for c in range(k):
            members = wh[assign == c]
            if len(members):
                centres[c] = np.median(members, axis=0)
            else:
                centres[c] = wh[int(iou.max(axis=1).argmin())]
    return centres


def refine(wh: np.ndarray, anchors: np.ndarray, rng: np.random.Generator, generations: int = 500,
           sigma: float = 0.1) -> np.ndarray:
    """Random multiplicative perturbations of the anchors (each side by ``exp(N(0, sigma))`` with probability 0.5),
    kept when they raise the mean best IoU: k-means on medians only finds a local optimum of it."""
    sample = wh if len(wh) <= REFINE_SAMPLE else wh[rng.choice(len(wh), REFINE_SAMPLE, replace=False)]
    best = anchors.copy()
    score = wh_iou(sample, best).max(axis=1).mean()
    for _ in range(generations):
        mask = rng.random(best.shape) < 0.5
        step = np.exp(rng.normal(0.0, sigma, best.shape) * mask)
        trial = np.maximum(best * step, MIN_SIDE)
        s = wh_iou(sample, trial).max(axis=1).mean()
        if s > score:
            best, score = trial, s
    return best


def compute_anchors(wh: np.ndarray, n: int, rng: np.random.Generator, generations: int = 500) -> np.ndarray:
    """``(n, 2)`` anchors for the box sizes ``wh`` (already at training scale), sorted by area.  Boxes with both
    sides under ``MIN_SIDE`` pixels are left out; with fewer distinct sizes than ``n`` the anchors repeat some."""
    wh = wh[(wh >= MIN_SIDE).any(axis=1)]
    if len(wh) == 0:
        raise ValueError("no boxes of 2 training pixels or more to fit anchors to")
    wh = np.maximum(wh, 1e-3)
    k = min(n, len(np.unique(wh, axis=0)))
    centres = refine(wh, kmeans_iou(wh, k, rng), rng, generations)
    if k < n:
        centres = np.concatenate([centres, centres[np.arange(n - k) % k]])
    return centres[np.argsort(centres[:, 0] * centres[:, 1], kind="stable")]


def parse_anchors(text: str) -> np.ndarray:
    """``--anchors``: ``10,13, 16,30, 33,23`` (darknet / YOLOv5 cfg order: w,h pairs) or ``10x13,16x30`` ->
    ``(K, 2)``.  Raises ``ValueError`` for anything else."""
    tokens = [t for t in text.replace("x", ",").replace("X", ",").replace(";", ",").replace(" ", ",").split(",")
              if t.strip()]
    try:
        values = [float(t) for t in tokens]
    except ValueError as e:
        raise ValueError(f"'{text}' is not a list of numbers (w,h pairs: 10,13,16,30 or 10x13,16x30)") from e
    if not values or len(values) % 2:
        raise ValueError(f"'{text}' has {len(values)} numbers: anchors are w,h pairs")
    arr = np.array(values, np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(arr)) or (arr <= 0).any():
        raise ValueError(f"'{text}': anchor sides must be positive")
    return arr


def anchors_report(wh: np.ndarray, n: int, seed: int, given=None, generations: int = 500) -> dict:
    """The JSON-ready result of ``dsprep anchors``."""
    rng = np.random.default_rng(seed)
    usable = wh[(wh >= MIN_SIDE).any(axis=1)]
    anchors = compute_anchors(wh, n, rng, generations)
    out = {"anchors": [[round(float(a), 1), round(float(b), 1)] for a, b in anchors], **fit(usable, anchors).as_dict(),
           "boxes": int(len(wh)), "boxes_too_small": int(len(wh) - len(usable)), "n": n, "seed": seed,
           "ratio_threshold": RATIO_THRESHOLD}
    if given is not None:
        out["given"] = {"anchors": [[float(a), float(b)] for a, b in given], **fit(usable, given).as_dict()}
    return out


def format_report(r: dict, size: int) -> str:
    lines = [f"{r['n']} anchors for {r['boxes']} boxes at training size {size} (long side), sorted by area:",
             "  " + ",  ".join(f"{w:g},{h:g}" for w, h in r["anchors"]),
             f"mean best IoU {r['mean_iou']:.3f}   best possible recall {r['bpr']:.3f} (ratio threshold "
             f"{r['ratio_threshold']:g})   {r['aat']:.2f} anchors per box"]
    if r["boxes_too_small"]:
        lines.append(f"  ({r['boxes_too_small']} boxes under 2 px on both sides left out)")
    if "given" in r:
        g = r["given"]
        lines.append(f"given anchors: mean best IoU {g['mean_iou']:.3f}   best possible recall {g['bpr']:.3f}   "
                     f"{g['aat']:.2f} anchors per box")
    return "\n".join(lines)

