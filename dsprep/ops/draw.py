"""Drawing boxes, polygons and object masks on images, and contact sheets.  Pure functions: image in, new image
out."""
from __future__ import annotations

import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core import ImageRecord, boxes_to_polygons
from ..geometry import pixel_bounds


def class_color(name: str) -> Tuple[int, int, int]:
    """A stable, saturated BGR colour for a class name (same name -> same colour, in every run)."""
    h = zlib.crc32(name.encode("utf-8"))
    hsv = np.array([[[h % 180, 200 + (h >> 8) % 56, 210 + (h >> 16) % 46]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def drawable(name: str) -> bool:
    """Whether OpenCV's Hershey fonts can draw the text (printable ASCII only)."""
    return all(32 <= ord(c) < 127 for c in name)


def tag_text(name: str, index: int) -> str:
    return name if drawable(name) else f"#{index}"


def _dashes(polys: np.ndarray, dash: float = 6.0) -> List[np.ndarray]:
    """Split the closed outlines ``(N, K, 2)`` into short segments (every other one kept): a dashed line."""
    starts = polys
    ends = np.roll(polys, -1, axis=1)
    seg = (ends - starts).reshape(-1, 2)
    st = starts.reshape(-1, 2)
    length = np.hypot(seg[:, 0], seg[:, 1])
    n = np.maximum(1, np.ceil(length / dash)).astype(int)
    edge = np.repeat(np.arange(len(seg)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    keep = k % 2 == 0
    edge, k = edge[keep], k[keep]
    t0 = k / n[edge]
    t1 = np.minimum(k + 1, n[edge]) / n[edge]
    p0 = st[edge] + seg[edge] * t0[:, None]
    p1 = st[edge] + seg[edge] * t1[:, None]
    return list(np.round(np.stack([p0, p1], axis=1)).astype(np.int32))


MASK_ALPHA = 0.5  # how much of a mask's pixel is its class colour (the rest: the photo)


def fill_masks(img: np.ndarray, bounds: np.ndarray, masks: Sequence[Optional[np.ndarray]],
               colors: Sequence[Tuple[int, int, int]], alpha: float = MASK_ALPHA) -> np.ndarray:
    """A copy of ``img`` (``(H, W, 3) uint8``) with every mask filled, translucent, in its colour.

    ``bounds`` ``(N, 4)`` int: each mask's ``x0, y0, x1, y1`` pixel slices (:func:`dsprep.geometry.pixel_bounds`);
    ``masks``: ``None`` or a ``bool`` array of shape ``(y1 - y0, x1 - x0)`` each; ``colors``: BGR each.  A covered
    pixel becomes ``(1 - alpha) * pixel + alpha * colour`` (rounded), every other pixel stays as it was.  Where masks
    overlap, the smaller mask is on top (a person on a sofa stays visible); each pixel is blended once, with the
    colour of the mask on top, so overlaps do not darken.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], but got {alpha}")
    b = np.asarray(bounds, np.int64).reshape(-1, 4)
    have = [(k, m) for k, m in enumerate(masks) if m is not None and m.size]
    if not have:
        return img.copy()
    h, w = img.shape[:2]
    layer = np.zeros((h, w, 3), np.uint8)
    cover = np.zeros((h, w), bool)
    sizes = np.array([int(np.count_nonzero(m)) for _, m in have])
    for i in np.argsort(-sizes, kind="stable").tolist():  # largest first: the smallest on top
        k, m = have[i]
        x0, y0, x1, y1 = b[k].tolist()
        layer[y0:y1, x0:x1][m] = colors[k]
        cover[y0:y1, x0:x1] |= m
    blended = cv2.addWeighted(img, 1.0 - alpha, layer, alpha, 0.0)
    out = img.copy()
    out[cover] = blended[cover]
    return out


def outline_masks(img: np.ndarray, bounds: np.ndarray, masks: Sequence[Optional[np.ndarray]],
                  colors: Sequence[Tuple[int, int, int]], thickness: int = 1) -> np.ndarray:
    """A copy of ``img`` with the outline of every mask (its outer and hole borders) drawn in its colour, darkened
    to half (so it stands out from the mask's own fill: touching objects of one class stay apart)."""
    out = img.copy()
    b = np.asarray(bounds, np.int64).reshape(-1, 4)
    for k, m in enumerate(masks):
        if m is None or not m.any():
            continue
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(int(b[k, 0]), int(b[k, 1])))
        dark = tuple(int(c) // 2 for c in colors[k])
        cv2.drawContours(out, contours, -1, dark, thickness, cv2.LINE_8)
    return out


def draw_record(img: np.ndarray, rec: ImageRecord, class_index: Dict[str, int], thickness: int = 0,
                classes: Sequence[str] = (), masks: Optional[Sequence[Optional[np.ndarray]]] = None,
                mask_alpha: float = MASK_ALPHA, mask_outlines: bool = False) -> np.ndarray:
    """A copy of ``img`` (BGR) with every object outlined in its class colour and tagged with its class.

    Polygons are drawn when the record has them, boxes otherwise.  Difficult objects get a dashed outline and a
    ``?`` after the tag.  Names OpenCV cannot draw are tagged ``#<class index>`` (see the legend file).
    ``masks`` (each object's mask over its pixel bounds, as :func:`dsprep.dataset.object_masks` gives them) are
    filled first, translucent in the class colour (:func:`fill_masks`), their outlines drawn with
    ``mask_outlines``; the boxes and tags go on top.
    """
    out = img.copy() if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_BGRA2BGR)
    sel = np.array([not classes or n in classes for n in rec.names], bool)
    if not sel.any():
        return out
    thickness = thickness or max(1, round(max(out.shape[:2]) / 500))
    if masks is not None:
        shown = [m if s else None for m, s in zip(masks, sel.tolist())]
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        colors = [class_color(n) for n in rec.names]
        out = fill_masks(out, bounds, shown, colors, mask_alpha)
        if mask_outlines:
            out = outline_masks(out, bounds, shown, colors, thickness)
    polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
    names = np.array(rec.names, dtype=object)
    for name in dict.fromkeys(names[sel]):
        color = class_color(name)
        mine = sel & (names == name)
        solid = mine & (rec.difficult == 0)
        dashed = mine & (rec.difficult != 0)
        if solid.any():
            cv2.polylines(out, list(np.round(polys[solid]).astype(np.int32)), True, color, thickness, cv2.LINE_AA)
        if dashed.any():
            cv2.polylines(out, _dashes(polys[dashed]), False, color, thickness, cv2.LINE_AA)
    scale = max(0.35, thickness * 0.4)
    for k in np.flatnonzero(sel):
        name = rec.names[k]
        text = tag_text(name, class_index.get(name, -1)) + ("?" if rec.difficult[k] else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = int(np.clip(polys[k, :, 0].min(), 0, max(0, out.shape[1] - tw - 2)))
        y = int(polys[k, :, 1].min())
        y = th + base + 1 if y - th - base - 1 < 0 else y
        cv2.rectangle(out, (x, y - th - base - 1), (x + tw + 2, y), class_color(name), -1)
        cv2.putText(out, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def contact_sheet(images: Sequence[np.ndarray], cell: int = 256, cols: int = 0) -> np.ndarray:
    """Tile images (BGR, any size) into one sheet: each fitted into a ``cell x cell`` square on dark gray."""
    n = len(images)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols)) if n else 1
    sheet = np.full((rows * cell, cols * cell, 3), 40, np.uint8)
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        s = cell / max(h, w)
        nw, nh = max(1, int(w * s)), max(1, int(h * s))
        small = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        y0, x0 = r * cell + (cell - nh) // 2, c * cell + (cell - nw) // 2
        sheet[y0:y0 + nh, x0:x0 + nw] = small
    return sheet
