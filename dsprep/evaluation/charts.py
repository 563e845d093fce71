"""Pictures of an evaluation: precision-recall charts and detections drawn on their images.  Pure functions:
arrays in, a new BGR uint8 image out (OpenCV only: no plotting library needed)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..ops.draw import class_color, tag_text

# BGR
TP_COLOR = (60, 190, 40)       # green: a detection that found an object
FP_COLOR = (40, 40, 230)       # red: a detection that found nothing (or an object already found)
MISSED_COLOR = (0, 190, 255)   # amber: an object no detection found
IGNORED_COLOR = (150, 150, 150)  # grey: difficult / crowd objects and detections on them (neither right nor wrong)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def envelope(precision: np.ndarray) -> np.ndarray:
    """The interpolated precision: at each point the highest precision at this recall or beyond."""
    p = np.asarray(precision, np.float64)
    return np.maximum.accumulate(p[::-1])[::-1] if len(p) else p


def step_points(recall: np.ndarray, precision: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A step curve through ``(recall[i], precision[i])`` starting at recall 0: what the AP integrates."""
    r = np.asarray(recall, np.float64)
    p = np.asarray(precision, np.float64)
    if len(r) == 0:
        return np.zeros(0), np.zeros(0)
    xs = np.repeat(np.r_[0.0, r], 2)[1:-1]
    ys = np.repeat(p, 2)
    return xs, ys


class _Axes:
    """A unit square (recall x precision) drawn on a canvas, with a grid and labels."""

    def __init__(self, img: np.ndarray, left=70, top=46, right=24, bottom=56):
        self.img = img
        h, w = img.shape[:2]
        self.x0, self.y0, self.x1, self.y1 = left, top, w - right, h - bottom
        grid, ink = (225, 225, 225), (60, 60, 60)
        for k in range(11):
            t = k / 10
            x, y = self.px(t, 0)[0], self.px(0, t)[1]
            cv2.line(img, (x, self.y0), (x, self.y1), grid, 1)
            cv2.line(img, (self.x0, y), (self.x1, y), grid, 1)
            if k % 2 == 0:
                label = f"{t:.1f}"
                (tw, th), _ = cv2.getTextSize(label, _FONT, 0.4, 1)
                cv2.putText(img, label, (x - tw // 2, self.y1 + th + 8), _FONT, 0.4, ink, 1, cv2.LINE_AA)
                cv2.putText(img, label, (self.x0 - tw - 8, y + th // 2), _FONT, 0.4, ink, 1, cv2.LINE_AA)
        cv2.rectangle(img, (self.x0, self.y0), (self.x1, self.y1), ink, 1)
        (tw, _), _ = cv2.getTextSize("recall", _FONT, 0.5, 1)
        cv2.putText(img, "recall", ((self.x0 + self.x1 - tw) // 2, self.y1 + 44), _FONT, 0.5, ink, 1, cv2.LINE_AA)
        cv2.putText(img, "precision", (8, self.y0 - 14), _FONT, 0.5, ink, 1, cv2.LINE_AA)

    def px(self, x, y):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        return (np.round(self.x0 + np.clip(x, 0, 1) * (self.x1 - self.x0)).astype(np.int32),
                np.round(self.y1 - np.clip(y, 0, 1) * (self.y1 - self.y0)).astype(np.int32))

    def curve(self, xs, ys, color, thickness=2):
        if len(xs) == 0:
            return
        x, y = self.px(xs, ys)
        cv2.polylines(self.img, [np.stack([x, y], 1).reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA)


def _title(img: np.ndarray, text: str) -> None:
    cv2.putText(img, text, (110, 24), _FONT, 0.55, (20, 20, 20), 1, cv2.LINE_AA)


def pr_chart(curves: Sequence[Tuple[np.ndarray, np.ndarray, Tuple[int, int, int], int]], title: str,
             size: Tuple[int, int] = (640, 480), legend: Sequence[Tuple[str, Tuple[int, int, int]]] = ()) -> np.ndarray:
    """A white chart of recall (x) against precision (y), each of ``curves`` = ``(xs, ys, colour, thickness)``
    drawn as a polyline, with ``title`` and an optional legend (``(text, colour)``) at the right."""
    w, h = size
    legend_w = 0
    if legend:
        legend_w = max(cv2.getTextSize(t, _FONT, 0.42, 1)[0][0] for t, _ in legend) + 40
    img = np.full((h, w + legend_w, 3), 255, np.uint8)
    axes = _Axes(img, right=24 + legend_w)
    for xs, ys, color, thick in curves:
        axes.curve(xs, ys, color, thick)
    _title(img, title)
    for i, (text, color) in enumerate(legend):
        y = axes.y0 + 14 + 18 * i
        if y > h - 10:
            break
        cv2.line(img, (w - 8, y - 4), (w + 12, y - 4), color, 3, cv2.LINE_AA)
        cv2.putText(img, text, (w + 18, y), _FONT, 0.42, (30, 30, 30), 1, cv2.LINE_AA)
    return img


def class_chart(name: str, index: int, metric: str, ap: Optional[float], recall: np.ndarray,
                precision: np.ndarray, extra_curves: Sequence[Tuple[str, np.ndarray, np.ndarray]] = ()) -> np.ndarray:
    """One class's precision-recall chart.  VOC/DOTA: the raw precision (thin) and its envelope (thick, the curve
    the AP is computed from); COCO: the interpolated precision at the recall thresholds, plus ``extra_curves``."""
    color = class_color(name)
    ap_text = "-" if ap is None else f"{ap:.4f}"
    title = f"{tag_text(name, index)}   AP {ap_text}   ({metric})"
    if metric.startswith("coco"):
        curves = [(recall, precision, color, 2)]
        legend = [("IoU 0.50", color)]
        shades = [(120, 120, 120), (200, 140, 60)]
        for (label, xs, ys), shade in zip(extra_curves, shades):
            curves.append((xs, ys, shade, 1))
            legend.append((label, shade))
        return pr_chart(curves, title, legend=legend)
    light = tuple(int(c + (255 - c) * 0.6) for c in color)
    raw = (np.r_[recall], np.r_[precision], light, 1)
    xs, ys = step_points(recall, envelope(precision))
    return pr_chart([raw, (xs, ys, color, 2)], title, legend=[("precision", light), ("interpolated", color)])


def overview_chart(entries: Sequence[Tuple[str, int, Optional[float], np.ndarray, np.ndarray]], metric: str,
                   mean: Optional[float]) -> np.ndarray:
    """Every class's interpolated curve in one chart, the legend naming each class with its AP."""
    curves, legend = [], []
    for name, index, ap, recall, precision in entries:
        color = class_color(name)
        if metric.startswith("coco"):
            xs, ys = recall, precision
        else:
            xs, ys = step_points(recall, envelope(precision))
        curves.append((xs, ys, color, 2))
        legend.append((f"{tag_text(name, index)} {'-' if ap is None else f'{ap:.3f}'}", color))
    mean_text = "-" if mean is None else f"{mean:.4f}"
    return pr_chart(curves, f"all classes   mAP {mean_text}   ({metric})", legend=legend)


def draw_outcome(img: np.ndarray, det_quads: np.ndarray, det_status: np.ndarray, det_labels: Sequence[str],
                 det_scores: np.ndarray, gt_quads: np.ndarray, gt_state: np.ndarray, gt_labels: Sequence[str],
                 caption: str) -> np.ndarray:
    """A copy of ``img`` (BGR; grey or BGRA converted) with objects and detections drawn in three colours.

    ``det_status``: 1 true positive (green), 0 false positive (red), -1 ignored (grey); ``gt_state``: 0 missed
    (amber, thick), 1 found (not drawn: its detection is), -1 difficult or crowd (grey).  ``caption`` is written on
    a band above the image."""
    out = img.copy() if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_BGRA2BGR)
    t = max(1, round(max(out.shape[:2]) / 600))
    scale = max(0.35, 0.3 * t)

    def outline(quads, mask, color, thick):
        if mask.any():
            pts = [np.round(q).astype(np.int32).reshape(-1, 1, 2) for q in quads[mask]]
            cv2.polylines(out, pts, True, color, thick, cv2.LINE_AA)

    def tags(quads, mask, texts, color):
        for k in np.flatnonzero(mask):
            text = texts[k]
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
            x = int(np.clip(quads[k, :, 0].min(), 0, max(0, out.shape[1] - tw - 2)))
            y = int(quads[k, :, 1].min())
            y = th + base + 1 if y - th - base - 1 < 0 else y
            cv2.rectangle(out, (x, y - th - base - 1), (x + tw + 2, y), color, -1)
            cv2.putText(out, text, (x + 1, y - base), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)

    gt_quads = np.asarray(gt_quads, np.float64).reshape(-1, 4, 2)
    det_quads = np.asarray(det_quads, np.float64).reshape(-1, 4, 2)
    outline(gt_quads, gt_state == -1, IGNORED_COLOR, t)
    outline(gt_quads, gt_state == 0, MISSED_COLOR, t + 1)
    outline(det_quads, det_status == -1, IGNORED_COLOR, t)
    outline(det_quads, det_status == 0, FP_COLOR, t)
    outline(det_quads, det_status == 1, TP_COLOR, t)
    det_text = [f"{n} {s:.2f}" for n, s in zip(det_labels, det_scores)]
    tags(gt_quads, gt_state == 0, list(gt_labels), MISSED_COLOR)
    tags(det_quads, det_status == 0, det_text, FP_COLOR)
    tags(det_quads, det_status == 1, det_text, TP_COLOR)
    band_h = int(22 * max(1.0, scale / 0.45))
    band = np.full((band_h, out.shape[1], 3), 32, np.uint8)
    cv2.putText(band, caption, (6, band_h - 7), _FONT, max(0.45, scale), (240, 240, 240), 1, cv2.LINE_AA)
    return np.concatenate([band, out], axis=0)
