"""Illumination correction: reference white (Hsu, Abdel-Mottaleb & Jain 2002) and relatives.

Every function takes a ``uint8`` image -- ``(H, W)`` grayscale, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA -- and returns
a new ``uint8`` image of the same shape; the input is never modified.  The alpha channel is passed through.

How they work (all statistics are exact, from 256-bin histograms; gains are applied in one ``cv2.LUT`` pass):

* **luma** is OpenCV's BT.601 ``Y = 0.299 R + 0.587 G + 0.114 B`` rounded to uint8 (``cv2.COLOR_BGR2GRAY``, the
  same Y as ``COLOR_BGR2YCrCb``); for grayscale images it is the image itself.
* **top fraction**: the threshold ``t`` is the largest luma value such that at least ``fraction`` of the pixels have
  luma ``>= t``.  *Ties*: every pixel with luma equal to ``t`` is included, so the set can hold more than
  ``fraction`` of the pixels (it never holds less).  The bottom fraction is the mirror image (``<= t``).
* **gate**: when the reference set has fewer than ``min_pixels`` pixels, the image is returned unchanged.  The
  count is taken after ties are included.  ``fraction * pixel count`` is rounded up before comparing.
* **gains**: ``out = saturate(round(v * gain))`` (round to nearest; grayscale ``floor(v * gain + 0.5)``).  A channel whose reference mean is 0 (e.g. no blue at all in
  the reference white) keeps gain 1 instead of dividing by zero.
* **flat images** are returned unchanged: every pixel the same luma (white == black) for the luma-based methods,
  every pixel the same colour for the per-channel ones.  Gray world and shades of gray leave grayscale images as
  they are (there is no colour cast to remove).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

_THREADS = max(1, min(8, os.cpu_count() or 1))
METHODS = ("reference-white", "channel-white", "two-point", "gray-world", "shades-of-gray")


def _split_alpha(img: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, but got {img.dtype}")
    if img.ndim == 2:
        return img, None
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return (img, None) if img.shape[2] == 3 else (img[:, :, :3], img[:, :, 3])
    raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), but got shape {img.shape}")


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma as uint8 (the image itself when grayscale)."""
    color, _ = _split_alpha(img)
    return color if color.ndim == 2 else cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)


def histogram(channel: np.ndarray) -> np.ndarray:
    """256-bin histogram of a uint8 array, as int64."""
    return cv2.calcHist([np.ascontiguousarray(channel)], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def top_threshold(hist: np.ndarray, fraction: float) -> Tuple[int, int]:
    """``(t, count)``: the largest t with at least ``ceil(fraction * N)`` pixels ``>= t``; count includes ties."""
    n = int(hist.sum())
    want = max(1, int(np.ceil(fraction * n)))
    at_or_above = np.cumsum(hist[::-1])[::-1]  # at_or_above[t] = pixels with value >= t
    t = int(np.flatnonzero(at_or_above >= want)[-1])
    return t, int(at_or_above[t])


def bottom_threshold(hist: np.ndarray, fraction: float) -> Tuple[int, int]:
    """``(t, count)``: the smallest t with at least ``ceil(fraction * N)`` pixels ``<= t``; count includes ties."""
    t, count = top_threshold(hist[::-1], fraction)
    return 255 - t, count


def _apply_gains(img: np.ndarray, gains: np.ndarray, offsets: Optional[np.ndarray] = None) -> np.ndarray:
    """One pass: ``out_c = saturate(round((v - offset_c) * gain_c))`` per colour channel.

    Grayscale goes through a 256-entry ``cv2.LUT``; colour through ``cv2.transform`` with a diagonal 3x4 matrix,
    which does all three channels in one pass (a 3-channel LUT is ~1.5x slower) and rounds to nearest.
    """
    color, alpha = _split_alpha(img)
    gains = np.asarray(gains, np.float64).reshape(-1)
    offsets = np.zeros_like(gains) if offsets is None else np.asarray(offsets, np.float64).reshape(-1)
    if color.ndim == 2:
        v = np.arange(256, dtype=np.float64)
        table = np.clip(np.floor((v - offsets[0]) * gains[0] + 0.5), 0, 255).astype(np.uint8)
        out = cv2.LUT(color, table)
    else:
        m = np.zeros((3, 4), np.float64)
        m[np.arange(3), np.arange(3)] = gains
        m[:, 3] = -offsets * gains
        out = cv2.transform(color, m)
    return out if alpha is None else np.dstack([out, alpha])


def _row_chunks(h: int) -> List[slice]:
    n = max(1, min(_THREADS, h // 64))
    edges = np.linspace(0, h, n + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _masked_means(color: np.ndarray, y: np.ndarray, tests: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
    """Per-channel means of the pixels whose luma passes each ``(cmp, threshold)`` test.

    Row chunks run in threads (OpenCV releases the GIL), so both cores work, as they do in ``cv2.LUT``.
    """
    nch = 1 if color.ndim == 2 else 3

    def part(rows: slice):
        out = []
        for cmp, t in tests:
            mask = cv2.compare(y[rows], t, cmp)
            n = cv2.countNonZero(mask)
            mean = cv2.mean(color[rows], mask=mask)[:nch] if n else (0.0,) * nch
            out.append((np.array(mean, np.float64) * n, n))
        return out

    chunks = _row_chunks(color.shape[0])
    if len(chunks) == 1:
        results = [part(chunks[0])]
    else:
        with ThreadPoolExecutor(len(chunks)) as pool:
            results = list(pool.map(part, chunks))
    means = []
    for i in range(len(tests)):
        total = sum(r[i][0] for r in results)
        count = sum(r[i][1] for r in results)
        means.append(total / count if count else np.zeros(nch))
    return means


def _channel_hists(color: np.ndarray) -> List[np.ndarray]:
    """256-bin histograms of each channel; row chunks in threads (as in :func:`_masked_means`)."""
    if color.ndim == 2:
        return [histogram(color)]

    def part(rows: slice):
        return [cv2.calcHist([color[rows]], [c], None, [256], [0, 256]).ravel() for c in range(3)]

    chunks = _row_chunks(color.shape[0])
    with ThreadPoolExecutor(len(chunks)) as pool:
        results = list(pool.map(part, chunks))
    return [np.sum([r[c] for r in results], axis=0).astype(np.int64) for c in range(3)]


def _flat(hist: np.ndarray) -> bool:
    return np.count_nonzero(hist) <= 1


def _gain_to(target: float, means: np.ndarray) -> np.ndarray:
    return np.where(means > 0, target / np.where(means > 0, means, 1.0), 1.0)


def reference_white_gains(img: np.ndarray, fraction: float = 0.05, min_pixels: int = 100) -> Optional[np.ndarray]:
    """The per-channel gains of :func:`reference_white`, or ``None`` when the image is left unchanged."""
    color, _ = _split_alpha(img)
    y = luma(color)
    hist = histogram(y)
    if _flat(hist):
        return None
    t, count = top_threshold(hist, fraction)
    if count < min_pixels:
        return None
    (means,) = _masked_means(color, y, [(cv2.CMP_GE, t)])
    return _gain_to(255.0, means)


def reference_white(img: np.ndarray, fraction: float = 0.05, min_pixels: int = 100) -> np.ndarray:
    """Hsu et al.'s lighting compensation: the pixels in the top ``fraction`` of luma are the reference white;
    each channel is scaled so that their mean becomes 255 (clipped).  Unchanged when fewer than ``min_pixels``
    pixels are in the reference set (see the module docstring for ties and rounding)."""
    gains = reference_white_gains(img, fraction, min_pixels)
    return img.copy() if gains is None else _apply_gains(img, gains)


def channel_white(img: np.ndarray, fraction: float = 0.05, min_pixels: int = 100) -> np.ndarray:
    """Per-channel variant: each channel scaled by 255 / the mean of its own top ``fraction`` values.  A channel
    whose top set is smaller than ``min_pixels`` keeps gain 1; flat images are unchanged."""
    color, _ = _split_alpha(img)
    hists = _channel_hists(color)
    if all(_flat(h) for h in hists):
        return img.copy()
    v = np.arange(256, dtype=np.float64)
    gains = []
    for hist in hists:
        t, count = top_threshold(hist, fraction)
        mean = float((hist[t:] * v[t:]).sum()) / count
        gains.append(255.0 / mean if count >= min_pixels and mean > 0 else 1.0)
    return _apply_gains(img, np.array(gains))


def two_point(img: np.ndarray, fraction: float = 0.03, min_pixels: int = 100) -> np.ndarray:
    """YCrCb two-point correction: luma thresholds at the top and bottom ``fraction``; per channel, the mean of the
    bright set maps to 255 and the mean of the dark set to 0, linearly, clipped.  Unchanged when either set has
    fewer than ``min_pixels`` pixels or the image is flat; a channel with bright mean <= dark mean keeps gain 1."""
    color, _ = _split_alpha(img)
    y = luma(color)
    hist = histogram(y)
    if _flat(hist):
        return img.copy()
    t_hi, n_hi = top_threshold(hist, fraction)
    t_lo, n_lo = bottom_threshold(hist, fraction)
    if min(n_hi, n_lo) < min_pixels:
        return img.copy()
    white, black = _masked_means(color, y, [(cv2.CMP_GE, t_hi), (cv2.CMP_LE, t_lo)])
    span = white - black
    ok = span > 0
    gains = np.where(ok, 255.0 / np.where(ok, span, 1.0), 1.0)
    offsets = np.where(ok, black, 0.0)
    return _apply_gains(img, gains, offsets)


def shades_of_gray(img: np.ndarray, p: float = 6.0) -> np.ndarray:
    """Finlayson & Trezzi's Shades of Gray: the illuminant per channel is the Minkowski p-mean of its values; each
    channel is scaled so the three estimates become equal (their mean).  ``p = 1`` is gray world."""
    color, _ = _split_alpha(img)
    if color.ndim == 2:
        return img.copy()
    hists = _channel_hists(color)
    if all(_flat(h) for h in hists):
        return img.copy()
    v = np.arange(256, dtype=np.float64)
    est = np.array([(float((h * v ** p).sum()) / h.sum()) ** (1.0 / p) for h in hists])
    return _apply_gains(img, _gain_to(float(est.mean()), est))


def gray_world(img: np.ndarray) -> np.ndarray:
    """Buchsbaum's gray world: each channel scaled so its mean equals the mean of the three channel means."""
    color, _ = _split_alpha(img)
    if color.ndim == 2:
        return img.copy()
    mean, std = cv2.meanStdDev(color)
    if not std.any():  # a single colour
        return img.copy()
    means = mean.ravel().astype(np.float64)
    return _apply_gains(img, _gain_to(float(means.mean()), means))


def correct(img: np.ndarray, method: str, fraction: Optional[float] = None, min_pixels: int = 100,
            p: float = 6.0) -> Tuple[np.ndarray, bool]:
    """Apply a method by its CLI name; returns ``(new image, changed)``.  ``changed`` is False when the gate or a
    flat image left it as it was."""
    funcs: Dict[str, Callable[[], np.ndarray]] = {
        "reference-white": lambda: reference_white(img, 0.05 if fraction is None else fraction, min_pixels),
        "channel-white": lambda: channel_white(img, 0.05 if fraction is None else fraction, min_pixels),
        "two-point": lambda: two_point(img, 0.03 if fraction is None else fraction, min_pixels),
        "gray-world": lambda: gray_world(img),
        "shades-of-gray": lambda: shades_of_gray(img, p),
    }
    if method not in funcs:
        raise ValueError(f"unknown colour method '{method}' (one of {', '.join(METHODS)})")
    out = funcs[method]()
    return out, not np.array_equal(out, img)
