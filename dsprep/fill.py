"""Filling the regions of a background where objects were blanked out, and recording where they were.

Pure functions over numpy arrays.

* :func:`fill_regions` replaces the masked pixels: ``texture`` (default) copies the image's own texture into each
  region from shifted places whose surroundings match the region's, blended in the gradient domain
  (:mod:`dsprep.texfill`); ``inpaint`` continues the surrounding structure into
  the region with OpenCV's Telea fast-marching inpainting near its border, blended (over ``INPAINT_BLEND`` pixels)
  into a push-pull membrane deeper inside, where Telea's propagation leaves star-shaped streaks; ``blur`` is the
  push-pull fill alone (a smooth membrane from the region's border colours); ``mean`` the mean colour of the image's
  remaining pixels; ``black`` zeros (the old behaviour).  Images OpenCV cannot inpaint (not 8-bit, or neither grey
  nor colour) get ``blur`` for ``inpaint``.
  Quality and speed are measured by ``benchmarks/bench_fill.py`` and checked by ``tests/test_fill.py`` against the
  true pixels of scenes whose object was pasted in.
* :func:`region_outlines` turns the blanked mask into outlines, the ``<background>.blanked.json`` sidecar ``dsprep
  crop`` writes beside each background; :func:`outline_mask` draws them back (a superset of the blanked pixels), so
  ``dsprep synth`` can keep objects off the places where objects were.
"""
from __future__ import annotations

import json
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

FILLS = ("texture", "inpaint", "blur", "mean", "black")
SIDECAR_SUFFIX = ".blanked.json"
INPAINT_RADIUS = 3  # Telea's neighbourhood; larger radii were no better on real scenes and 10x slower
INPAINT_BLEND = 30.0  # pixels from a region's border over which Telea hands over to the membrane (best of 12/30/60
                      # on VOC scenes with object-shaped holes: benchmarks/bench_fill.py)


def fill_regions(img: np.ndarray, mask: np.ndarray, method: str = "texture") -> np.ndarray:
    """A copy of ``img`` (``(H, W)`` or ``(H, W, C)``, any dtype) whose pixels where ``mask`` (``(H, W)``, non-zero =
    blanked) is set are filled by ``method``.  Raises ``ValueError`` when every pixel is masked (nothing to fill
    from) or for an unknown method."""
    if method not in FILLS:
        raise ValueError(f"unknown fill '{method}' (choose from {', '.join(FILLS)})")
    hole = np.asarray(mask) != 0
    if not hole.any():
        return img.copy()
    if hole.all() and method != "black":
        raise ValueError("every pixel is blanked: nothing to fill from")
    out = img.copy()
    if method == "black":
        out[hole] = 0
        return out
    if method == "mean":
        out[hole] = np.round(img[~hole].mean(axis=0)).astype(img.dtype)
        return out
    if method == "texture":
        from .texfill import texture_fill
        return texture_fill(img, hole)
    # The work is done in a window around the regions: half their size beyond them on each side (the membrane's
    # coarsest levels average about that far; Telea looks INPAINT_RADIUS pixels out).
    x, y, w, h = cv2.boundingRect(hole.view(np.uint8))
    m = max(w, h) // 2 + 8
    win = np.s_[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
    if not hole[win].all():
        sub_img, sub_hole = img[win], hole[win]
    else:  # the regions leave nothing known inside the window: use the whole image
        win, sub_img, sub_hole = np.s_[:, :], img, hole
    if method == "blur" or img.dtype != np.uint8 or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        filled = push_pull(sub_img, sub_hole)
    else:
        hole8 = sub_hole.view(np.uint8)
        filled = cv2.inpaint(sub_img, hole8, INPAINT_RADIUS, cv2.INPAINT_TELEA)  # known pixels are kept as they are
        depth = cv2.distanceTransform(hole8, cv2.DIST_L2, 3)
        deep = depth > 1.0
        if deep.any():
            membrane = push_pull(sub_img, sub_hole)
            wt = np.minimum(depth[deep] / INPAINT_BLEND, 1.0)
            if img.ndim == 3:
                wt = wt[:, None]
            filled[deep] = np.round(filled[deep] * (1.0 - wt) + membrane[deep] * wt).astype(np.uint8)
    out[win][sub_hole] = filled[sub_hole]
    return out


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


# ---- where objects were: outlines (the sidecar) and back ------------------------------------------------------------

def region_outlines(mask: np.ndarray) -> List[np.ndarray]:
    """The outer outlines of the non-zero regions of ``mask`` as ``(K, 2)`` int arrays of pixel indices (column,
    row); every masked pixel lies on or inside one of them (holes inside a region are not kept)."""
    contours, _ = cv2.findContours((np.asarray(mask) != 0).view(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2) for c in contours]


def outline_mask(outlines: Sequence[np.ndarray], size: Tuple[int, int]) -> np.ndarray:
    """``(H, W) uint8``, 255 on and inside every outline (``size = (W, H)``)."""
    w, h = size
    out = np.zeros((h, w), np.uint8)
    if len(outlines):
        pts = [np.asarray(o, np.int32).reshape(-1, 1, 2) for o in outlines]
        cv2.fillPoly(out, pts, 255)
        cv2.polylines(out, pts, True, 255)  # outlines of zero area (a line, a point) are drawn as well
    return out


def format_sidecar(size: Tuple[int, int], outlines: Sequence[np.ndarray], fill: str) -> bytes:
    """The sidecar of one background: its size, the fill used and the outlines of its blanked regions."""
    doc = {"width": int(size[0]), "height": int(size[1]), "fill": fill,
           "blanked": [np.asarray(o, np.int64).reshape(-1, 2).tolist() for o in outlines]}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")


def parse_sidecar(data: bytes, source: str = "<sidecar>") -> Tuple[Tuple[int, int], List[np.ndarray]]:
    """``((width, height), outlines)`` of a sidecar written by :func:`format_sidecar`; ``ValueError`` naming the
    source when it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"))
        size = (int(doc["width"]), int(doc["height"]))
        outlines = [np.asarray(o, np.int64).reshape(-1, 2) for o in doc["blanked"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ValueError(f"{source}: not a blanked-regions file ({e})") from e
    return size, outlines


def sidecar_path(background: str) -> str:
    """Where the sidecar of a background image lives: ``name.png`` -> ``name.blanked.json``."""
    stem, _, _ = background.rpartition(".")
    return (stem or background) + SIDECAR_SUFFIX


def read_keepout(path: str, size: Optional[Tuple[int, int]] = None, background: str = "") -> Optional[np.ndarray]:
    """The blanked pixels recorded in a sidecar (``(H, W) uint8``, 255 = an object was there), or None when it
    records none.  ``size`` (the decoded background's ``(W, H)``) is checked against the sidecar's."""
    from .core import DatasetError
    try:
        with open(path, "rb") as f:
            (w, h), outlines = parse_sidecar(f.read(), path)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
    except ValueError as e:
        raise DatasetError(str(e)) from e
    if size is not None and tuple(size) != (w, h):
        raise DatasetError(f"{path}: says the background is {w}x{h}, but {background or 'it'} is "
                           f"{size[0]}x{size[1]}")
    return outline_mask(outlines, (w, h)) if outlines else None
