"""Drawing boxes and polygons on images, and contact sheets.  Pure functions: image in, new image out."""
from __future__ import annotations

import zlib
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..core import ImageRecord, boxes_to_polygons


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


def draw_record(img: np.ndarray, rec: ImageRecord, class_index: Dict[str, int], thickness: int = 0,
                classes: Sequence[str] = ()) -> np.ndarray:
    """A copy of ``img`` (BGR) with every object outlined in its class colour and tagged with its class.

    Polygons are drawn when the record has them, boxes otherwise.  Difficult objects get a dashed outline and a
    ``?`` after the tag.  Names OpenCV cannot draw are tagged ``#<class index>`` (see the legend file).
    """
    out = img.copy() if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_BGRA2BGR)
    sel = np.array([not classes or n in classes for n in rec.names], bool)
    if not sel.any():
        return out
    thickness = thickness or max(1, round(max(out.shape[:2]) / 500))
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
