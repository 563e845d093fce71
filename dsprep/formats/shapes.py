"""Object shapes beyond boxes and quadrilaterals: COCO-style segmentations, and the pixel masks they cover.

A *segmentation* is what COCO stores per object, and what the COCO and labelme readers keep in
``rec.attrs["segmentation"]`` (one entry per object):

* ``[]`` or ``None`` -- no shape beyond the box;
* a list of polygon rings, each a flat list ``[x1, y1, x2, y2, ...]`` (at least 3 points) in 0-based continuous
  pixel coordinates (the same system as boxes: pixel ``i`` covers ``[i, i+1)``);
* a run-length encoded mask ``{"size": [height, width], "counts": [...] or "compressed string"}``: runs over the
  image in column-major order, starting with a run of 0s (COCO's RLE; the string form is COCO's compressed one).

Everything here is pure: lists and numpy arrays in, new arrays out.  The RLE codec is written from the published
description of COCO's format (pycocotools is used only by the tests, to check that both agree).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..core import MAX_COORDINATE
from ..geometry import ring_area


def is_rle(seg) -> bool:
    return isinstance(seg, dict) and "counts" in seg


def rings(seg) -> List[np.ndarray]:
    """The polygon rings of a segmentation as ``(K, 2) float64`` arrays (``[]`` for none or for an RLE mask)."""
    if not seg or is_rle(seg):
        return []
    if not isinstance(seg, list):
        raise ValueError(f"a segmentation is a list of polygons [[x1, y1, x2, y2, ...], ...] or an RLE mask "
                         f"{{'counts', 'size'}}, got {seg!r:.60}")
    out = []
    for r in seg:
        try:
            ring = np.asarray(r, np.float64)
        except (TypeError, ValueError):
            ring = None
        if ring is None or ring.ndim != 1 or len(ring) < 6 or len(ring) % 2:
            raise ValueError(f"a polygon is a list of at least 3 x, y pairs [x1, y1, x2, y2, x3, y3, ...], got "
                             f"{r!r:.60}")
        if not (np.abs(ring) <= MAX_COORDINATE).all():  # (NaN fails too)
            raise ValueError(f"polygon coordinates must be finite numbers within any image, got {r!r:.60}")
        out.append(ring.reshape(-1, 2))
    return out


def unreadable(rec, k: int, err: Exception):
    """The error for object ``k`` of ``rec`` whose segmentation cannot be used: file, annotation and why."""
    from ..core import ParseError
    where = rec.meta.get("annotation_path") or rec.image_path
    ids = rec.attrs.get("id")
    what = f"annotation id {ids[k]}" if ids is not None else f"object {k}"
    return ParseError(f"{where}: {what} ({rec.names[k]}): unreadable segmentation ({err})")


def quad_of(seg) -> Optional[np.ndarray]:
    """``(4, 2)`` when the segmentation is exactly one ring of 4 points (a DOTA-style quadrilateral), else None."""
    if isinstance(seg, list) and len(seg) == 1 and len(seg[0]) == 8:
        return np.asarray(seg[0], np.float64).reshape(4, 2)
    return None


def segmentation_area(seg) -> Optional[float]:
    """The area COCO stores for a segmentation: the sum of its rings' areas, or the mask's pixel count; None for
    no segmentation."""
    if is_rle(seg):
        counts = rle_counts(seg)
        return float(counts[1::2].sum())
    r = rings(seg)
    return sum(ring_area(x) for x in r) if r else None


# ---- RLE --------------------------------------------------------------------------------------------------------

def decode_counts_string(s: str) -> np.ndarray:
    """COCO's compressed RLE string -> run lengths (``int64``): :func:`dsprep.rle.decode_count_strings` on one
    string (its ``ValueError`` for a broken one)."""
    from ..rle import decode_count_strings
    return decode_count_strings([s])[0]


def encode_counts_string(counts: Sequence[int]) -> str:
    """Run lengths -> COCO's compressed RLE string (the inverse of :func:`decode_counts_string`)."""
    c = [int(v) for v in counts]
    chars = []
    for i, v in enumerate(c):
        x = v - c[i - 2] if i > 2 else v
        while True:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            chars.append(chr((ch | (0x20 if more else 0)) + 48))
            if not more:
                break
    return "".join(chars)


def rle_counts(rle: dict) -> np.ndarray:
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        return decode_counts_string(counts.decode("ascii") if isinstance(counts, bytes) else counts)
    if not (isinstance(counts, list) and all(type(v) is int for v in counts)):
        raise ValueError(f"an RLE mask's counts are a string or a list of whole numbers, got {counts!r:.40}")
    return np.asarray(counts, np.int64).reshape(-1)


def check_rle(rle: dict, image_size: Optional[Tuple[int, int]] = None) -> Tuple[int, int, np.ndarray]:
    """``(height, width, runs)`` of an RLE mask, checked without decoding it: its size is the image's
    (``image_size``, ``(width, height)``, when given; else at most 2^31 pixels), no run is negative or longer than
    the mask, and the runs cover it exactly.  ``ValueError`` otherwise."""
    size = rle.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(type(v) is int and v >= 0 for v in size)):
        raise ValueError(f"an RLE mask's size is [height, width] in pixels, got {size!r:.40}")
    h, w = size
    if image_size is not None and (w, h) != tuple(image_size):
        raise ValueError(f"an RLE mask of size [{h}, {w}] (height, width) on a {image_size[0]}x{image_size[1]} "
                         f"image")
    if image_size is None and h * w > 1 << 31:
        raise ValueError(f"an RLE mask of size [{h}, {w}] (height, width): larger than any image dsprep decodes")
    counts = rle_counts(rle)
    if len(counts) and (counts.min() < 0 or counts.max() > h * w):
        raise ValueError(f"an RLE mask holds a run of {int(counts.min() if counts.min() < 0 else counts.max())} "
                         f"pixels, the mask has {h}x{w} = {h * w}")
    if abs(float(counts.sum(dtype=np.float64)) - h * w) > 0.5 or int(counts.sum()) != h * w:  # (no wrap-around)
        raise ValueError(f"RLE runs cover {int(counts.sum(dtype=np.float64))} pixels, the mask has {h}x{w} = "
                         f"{h * w}")
    return h, w, counts


def rle_decode(rle: dict, image_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """An RLE mask -> ``(height, width) bool`` array, once :func:`check_rle` has found it fits the image."""
    h, w, counts = check_rle(rle, image_size)
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).T


def rle_encode(mask: np.ndarray) -> dict:
    """``(height, width)`` bool mask -> ``{"size": [h, w], "counts": [...]}`` (uncompressed runs, column-major,
    starting with a run of 0s, as COCO stores crowd masks)."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    flat = m.T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges)
    if flat.size and flat[0]:
        runs = np.concatenate([[0], runs])
    return {"size": [int(h), int(w)], "counts": [int(v) for v in runs]}


# ---- masks over an object's pixel bounds --------------------------------------------------------------------------

def ring_mask(ring: np.ndarray, bounds: Tuple[int, int, int, int]) -> np.ndarray:
    """Rasterize one polygon ring into a bool mask over ``bounds = (x0, y0, x1, y1)`` (integer pixel slices): a
    pixel is inside when its centre is (even-odd rule, half-open at edges, so two rings sharing an edge never both
    take a pixel).  Scanline over every row at once: one intersection per row and edge, sorted per row."""
    x0, y0, x1, y1 = (int(v) for v in bounds)
    h, w = max(y1 - y0, 0), max(x1 - x0, 0)
    ring = np.asarray(ring, np.float64).reshape(-1, 2)
    if h == 0 or w == 0 or len(ring) < 3:
        return np.zeros((h, w), bool)
    xa, ya = ring[:, 0] - x0, ring[:, 1] - y0
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    yc = np.arange(h, dtype=np.float64)[:, None] + 0.5                       # (h, 1) row centres
    crosses = ((ya <= yc) & (yc < yb)) | ((yb <= yc) & (yc < ya))            # (h, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = xa + (yc - ya) * (xb - xa) / (yb - ya)
    x = np.sort(np.where(crosses, x, np.inf), axis=1)
    n = crosses.sum(axis=1)                                                  # even for a closed ring
    pairs = x[:, : 2 * (int(n.max()) // 2)].reshape(h, -1, 2)
    valid = np.isfinite(pairs[..., 1])
    # column c is inside a span [xl, xr) when xl <= c + 0.5 < xr
    start = np.clip(np.ceil(pairs[..., 0] - 0.5), 0, w).astype(np.int64)
    stop = np.clip(np.ceil(pairs[..., 1] - 0.5), 0, w).astype(np.int64)
    rows = np.broadcast_to(np.arange(h)[:, None], start.shape)
    diff = np.zeros((h, w + 1), np.int64)
    np.add.at(diff, (rows[valid], start[valid]), 1)
    np.add.at(diff, (rows[valid], stop[valid]), -1)
    return np.cumsum(diff[:, :w], axis=1) > 0


def rings_mask(polys: Sequence[np.ndarray], bounds: Tuple[int, int, int, int]) -> np.ndarray:
    """The union of :func:`ring_mask` over an object's rings (COCO's rule for the polygons of one object)."""
    x0, y0, x1, y1 = (int(v) for v in bounds)
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool)
    for ring in polys:
        out |= ring_mask(ring, bounds)
    return out


def segmentation_mask(seg, bounds: Tuple[int, int, int, int],
                      image_size: Optional[Tuple[int, int]] = None) -> Optional[np.ndarray]:
    """The object's pixels over ``bounds`` as a bool mask, or None when the segmentation has no shape.  An RLE mask
    must be of ``image_size`` (``(width, height)``, when given)."""
    if is_rle(seg):
        x0, y0, x1, y1 = (int(v) for v in bounds)
        full = rle_decode(seg, image_size)
        out = np.zeros((y1 - y0, x1 - x0), bool)
        part = full[y0:y1, x0:x1]
        out[:part.shape[0], :part.shape[1]] = part
        return out
    r = rings(seg)
    return rings_mask(r, bounds) if r else None


# ---- shapes in other formats' terms -------------------------------------------------------------------------------

def axis_aligned(polys: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N,) bool``: whether each ``(4, 2)`` quad is its own box (every corner on the box's corners), i.e. writing
    the box loses nothing."""
    p = np.asarray(polys, np.float64).reshape(-1, 4, 2)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    on_x = (p[..., 0] == b[:, None, 0]) | (p[..., 0] == b[:, None, 2])
    on_y = (p[..., 1] == b[:, None, 1]) | (p[..., 1] == b[:, None, 3])
    return (on_x & on_y).all(axis=1)


def obb_of_segmentation(seg) -> Tuple[Optional[np.ndarray], str]:
    """The oriented box an oriented-box format writes for a segmentation, and what that loses:

    * one 4-point ring: that quad, nothing lost (``""``);
    * other rings: the minimum-area rotated rectangle of all their points (``"polygon_to_obb"``);
    * an RLE mask: None (the box is written; ``"mask_to_box"``);
    * no segmentation: None, ``""``."""
    if is_rle(seg):
        return None, "mask_to_box"
    q = quad_of(seg)
    if q is not None:
        return q, ""
    r = rings(seg)
    if not r:
        return None, ""
    import cv2
    pts = np.concatenate(r).astype(np.float32)
    return cv2.boxPoints(cv2.minAreaRect(pts)).astype(np.float64), "polygon_to_obb"


# ---- masks as outlines, outlines as one polygon -------------------------------------------------------------------
#
# A mask's outline is traced along pixel *edges* (pixel i covers [i, i+1)), so rasterizing it again -- a pixel is in
# when its centre is, by shapes.ring_mask, pycocotools or dsprep.rle.from_polygons -- gives back exactly the mask.
# OpenCV traces the centres of boundary pixels; on the mask doubled in both directions (each pixel a 2x2 block) a
# boundary pixel u lies at u // 2 in the original's pixel edges (u = 2i, the left half of pixel i: its left edge i;
# u = 2i + 1, the right half: its right edge i + 1), for outer outlines and holes alike.

def mask_rings(mask: np.ndarray, filled: bool = False) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """The exact outline of a bool mask: ``(outer rings, hole rings)``, each ring a ``(K, 2) float64`` array of
    pixel-corner coordinates in the mask's own frame (pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``), only its
    corners kept.  Parts are 8-connected (two pixels touching at a corner are one part, its outline pinched there).
    The even-odd union of all rings is the mask, pixel for pixel (a part inside a hole is another outer ring).

    ``filled=True``: the outline of the mask with its holes filled -- only the outermost rings -- and, as the second
    value, the holes that filling dropped (what a format without holes loses)."""
    import cv2
    m = np.asarray(mask, bool)
    h, w = m.shape
    if h == 0 or w == 0 or not m.any():
        return [], []
    up = np.zeros((2 * h + 2, 2 * w + 2), np.uint8)
    up[1:-1, 1:-1] = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    parent = hierarchy[0][:, 3]
    depth = np.zeros(len(contours), np.int64)
    up_one = parent.copy()
    while (up_one >= 0).any():  # one step per nesting level
        depth += up_one >= 0
        up_one = np.where(up_one >= 0, parent[np.maximum(up_one, 0)], -1)
    outers: List[np.ndarray] = []
    holes: List[np.ndarray] = []
    for c, d in zip(contours, depth.tolist()):
        if filled and d > 1:
            continue  # inside a filled hole
        ring = _corners((c.reshape(-1, 2) // 2).astype(np.float64))  # (the padding cancels the half-pixel shift)
        if len(ring) >= 3:
            (holes if d % 2 else outers).append(ring)
    return outers, holes


def _corners(ring: np.ndarray) -> np.ndarray:
    """A closed ring without repeated points and without points in the middle of a straight edge."""
    ring = ring[np.any(ring != np.roll(ring, 1, axis=0), axis=1)]
    if len(ring) < 3:
        return ring
    d_in = ring - np.roll(ring, 1, axis=0)
    d_out = np.roll(ring, -1, axis=0) - ring
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    straight = (cross == 0) & ((d_in * d_out).sum(axis=1) > 0)
    return ring[~straight]


def rle_of_mask(mask: np.ndarray, x0: int, y0: int, width: int, height: int) -> dict:
    """A bool mask whose top-left pixel is ``(x0, y0)`` of a ``width x height`` image -> COCO's compressed RLE over
    the whole image (``{"size": [height, width], "counts": str}``, what ``pycocotools.mask.encode`` gives), computed
    from the mask's own runs (the whole image is never drawn)."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"a {w}x{h} mask at ({x0}, {y0}) reaches outside the {width}x{height} image")
    cols = np.zeros((w, h + 2), np.int8)
    cols[:, 1:-1] = m.T                                  # column-major, as COCO counts
    step = np.diff(cols, axis=1)
    sc, sr = np.nonzero(step == 1)                       # row-major order: by column, then row
    ec, er = np.nonzero(step == -1)
    start = (x0 + sc).astype(np.int64) * height + y0 + sr
    end = (x0 + ec).astype(np.int64) * height + y0 + er
    total = int(width) * int(height)
    if len(start) == 0:
        counts = np.array([total], np.int64)
    else:
        join = start[1:] == end[:-1]                     # a run going on from the bottom of one column to the next
        start, end = start[np.r_[True, ~join]], end[np.r_[~join, True]]
        counts = np.empty(2 * len(start) + 1, np.int64)
        counts[0] = start[0]
        counts[1::2] = end - start
        counts[2:-1:2] = start[1:] - end[:-1]
        counts[-1] = total - end[-1]
        if counts[-1] == 0:
            counts = counts[:-1]
    return {"size": [int(height), int(width)], "counts": encode_counts_string(counts.tolist())}


def mask_segmentation(mask: np.ndarray, x0: int, y0: int, width: int, height: int) -> Tuple[object, int, int]:
    """A bool mask (its top-left pixel at ``(x0, y0)`` of a ``width x height`` image) as a COCO segmentation in the
    image's pixel coordinates: one polygon ring (its exact outline) when it is one part without holes, else a
    compressed RLE (holes and parts kept); ``[]`` for an empty mask.  Returns ``(segmentation, parts, holes)``."""
    outers, holes = mask_rings(mask)
    if not outers:
        return [], 0, 0
    if len(outers) == 1 and not holes:
        return [(outers[0] + (x0, y0)).reshape(-1).tolist()], 1, 0
    return rle_of_mask(mask, x0, y0, width, height), len(outers), len(holes)


def segmentation_rings(seg, image_size: Tuple[int, int], filled: bool = False
                       ) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """``(outer rings, hole rings)`` of a segmentation in image pixel coordinates: polygon rings as they are (COCO
    joins an object's rings: none is a hole), an RLE mask's exact outline (:func:`mask_rings`, ``filled`` as
    there).  ``image_size`` is ``(width, height)``; an RLE of another size is a ``ValueError``."""
    if not is_rle(seg):
        return rings(seg), []
    full = rle_decode(seg, image_size)
    ys = np.flatnonzero(full.any(axis=1))
    xs = np.flatnonzero(full.any(axis=0))
    if len(xs) == 0:
        return [], []
    x0, y0 = int(xs[0]), int(ys[0])
    outers, holes = mask_rings(full[y0:ys[-1] + 1, x0:xs[-1] + 1], filled)
    return [r + (x0, y0) for r in outers], [r + (x0, y0) for r in holes]


def join_rings(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Several rings as one ring covering the same pixels: each other part is joined to the first by a bridge
    between their nearest vertices, walked there and back (a zero-width cut, as Ultralytics joins an object's
    COCO polygons into its one YOLO-seg polygon).  Rasterized by the even-odd rule or pycocotools', the bridges
    cover nothing."""
    import shapely
    parts = [np.asarray(p, np.float64).reshape(-1, 2) for p in parts]
    if len(parts) == 1:
        return parts[0]
    main = parts[0]
    tree = shapely.STRtree(shapely.points(main))
    links = []
    for part in parts[1:]:  # (one step per part: the nearest pairs come from the tree in one query)
        (b_all, a_all), dist = tree.query_nearest(shapely.points(part), return_distance=True, all_matches=False)
        best = int(np.argmin(dist))
        a, b = int(a_all[best]), int(b_all[best])
        # at main vertex a: over to part vertex b, once round the part back to b, and back to a
        links.append((a, np.concatenate([np.roll(part, -b, axis=0), part[b:b + 1], main[a:a + 1]])))
    links.sort(key=lambda link: link[0])
    pieces, start = [], 0
    for a, bridge in links:
        pieces += [main[start:a + 1], bridge]
        start = a + 1
    pieces.append(main[start:])
    return np.concatenate(pieces)


def object_segmentations(rec) -> Optional[list]:
    """Each object's shape as a COCO segmentation (the convention every writer of shapes reads): its own
    (``rec.attrs["segmentation"][k]``) when it has one, else its quadrilateral (``rec.polygons[k]``) as one 4-point
    ring, else None (a box only).  None when no object has a shape."""
    segs = rec.attrs.get("segmentation")
    quads = rec.polygons
    out = [segs[k] if segs is not None and segs[k] else
           [np.asarray(quads[k], np.float64).reshape(-1).tolist()] if quads is not None else None
           for k in range(len(rec))]
    return out if any(s for s in out) else None
