"""Masks and segmentations cut with the pixels: what ``tile`` and the packs do to an object's shape when they cut or
resize its image.  Pure functions over numpy arrays and COCO-style segmentations (:mod:`dsprep.formats.shapes`).

**Resizing by nearest neighbour, pixel centres.**  A resized mask takes, for each of its pixels, the source pixel
under its centre: destination pixel ``d`` reads source ``floor((d + 0.5) * n_src / n_dst)`` when an image is fitted
to a size (:func:`resize_index`, in exact integer arithmetic), or ``floor((d + 0.5) / rate)`` when it is scaled by a
rate (:func:`rate_index`; the rate is what ``cv2.resize`` is given as ``fx``, so the mask follows the pixel grid of
the resized image).  OpenCV's ``INTER_NEAREST_EXACT`` and PIL's ``NEAREST`` give the same pixels except where a
centre falls exactly on the border between two source pixels, which their 16-bit fixed point sends to either
side; here it is the pixel starting at that border (pixel ``i`` covers ``[i, i + 1)``).

**Segmentations cut by a window** (:class:`Shapes`, :meth:`Shapes.cut`): polygon rings are intersected with the
tile's pixel rectangle (shapely 2, one call for every ring a tile's border crosses; rings inside are only shifted),
each piece written as its outer ring: a pixel centre is inside a cut ring exactly when it is inside the original
ring and the tile, so the rasterized cut equals the rasterized original cut by the window.  A ring that crosses
itself is first split into the simple pieces its even-odd rule fills (GEOS ``make_valid``, linework method), which
are then cut alike.  A cut piece with a hole (which rings, filled as a union, cannot hold) makes its object an RLE
mask of the tile instead, drawn from the original rings (exact by construction).  RLE masks are decoded once, kept as the part holding
their pixels, and cut (and resized) per tile, then encoded as they came (compressed string or list of runs).
Coordinates in the tile are the source's times the rate minus the tile origin, rounded to 9 decimals (so
``123.456 - 100`` is written ``23.456``, not ``23.456000000000003``; a shift of at most 5e-10 pixel).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

# ---- nearest-neighbour index maps ------------------------------------------------------------------------------------


def resize_index(start: int, stop: int, n_src: int, n_dst: int) -> np.ndarray:
    """Source index of destination pixels ``start .. stop - 1`` when ``n_src`` pixels are resized to ``n_dst``:
    ``floor((d + 0.5) * n_src / n_dst)``, in exact integer arithmetic."""
    d = np.arange(start, stop, dtype=np.int64)
    return np.minimum(((2 * d + 1) * n_src) // (2 * n_dst), max(n_src - 1, 0))


def rate_index(start: int, stop: int, n_src: int, rate: float) -> np.ndarray:
    """Source index of destination pixels ``start .. stop - 1`` of an image scaled by ``rate``:
    ``floor((d + 0.5) / rate)``, clipped to the source."""
    d = np.arange(start, stop, dtype=np.int64)
    if rate == 1:
        return np.minimum(d, max(n_src - 1, 0))
    return np.clip(np.floor((d + 0.5) / float(rate)).astype(np.int64), 0, max(n_src - 1, 0))


def take(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``values[rows][:, cols]`` (one gather)."""
    return values[np.ix_(rows, cols)]


def fit_masks(masks: Sequence[Optional[np.ndarray]], bounds: np.ndarray, src_size: Tuple[int, int],
              fitted: Tuple[int, int], pad: Tuple[int, int]) -> List[Optional[Tuple[Tuple[int, int, int, int],
                                                                                       np.ndarray]]]:
    """Object masks over their pixel ``bounds`` (``(N, 4)`` x0 y0 x1 y1 in the source image of ``src_size`` (W, H)),
    resized by nearest neighbour as the image is fitted to ``fitted`` (W, H) and placed at ``pad`` (x, y): for each
    object ``None`` (no mask) or ``(box, mask)`` with ``box`` its integer rectangle in the stored image (the
    destination pixels whose source pixel lies in the bounds) and ``mask`` the bool values over it."""
    (w, h), (nw, nh), (px, py) = src_size, fitted, pad
    cols = resize_index(0, nw, w, nw)
    rows = resize_index(0, nh, h, nh)
    out: List[Optional[Tuple[Tuple[int, int, int, int], np.ndarray]]] = []
    for m, (x0, y0, x1, y1) in zip(masks, np.asarray(bounds, np.int64).reshape(-1, 4).tolist()):
        if m is None:
            out.append(None)
            continue
        c0, c1 = np.searchsorted(cols, [x0, x1])
        r0, r1 = np.searchsorted(rows, [y0, y1])
        part = take(m, rows[r0:r1] - y0, cols[c0:c1] - x0)
        out.append(((int(px + c0), int(py + r0), int(px + c1), int(py + r1)), part))
    return out


# ---- instance maps of tiles -------------------------------------------------------------------------------------------


def tile_instance_lut(present: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``(256,) uint8`` relabelling of one tile's instance map: the instance of the tile's object ``j``
    (``kept[j]``, its id in the source map; 0 when it has none) becomes ``j + 1``, VOC's convention; the other
    instances present in the tile (``present``: ``(256,) bool``) take the free ids after, in their source order; 0
    (background) and 255 (void) stay.  An object beyond the 254th (a tile of many objects, most without a mask)
    cannot be ``j + 1``: its instance takes a free id as the others (readers match it by class and box then).
    Never more than 254 ids are needed: the source map holds at most 254 instances."""
    lut = np.zeros(256, np.uint8)
    lut[255] = 255
    kept = np.asarray(kept, np.int64).reshape(-1)
    j = np.arange(len(kept))
    own = (kept > 0) & (j < 254)
    lut[kept[own]] = (j[own] + 1).astype(np.uint8)
    taken = np.zeros(256, bool)
    taken[kept[own]] = True
    used = np.zeros(256, bool)
    used[j[own] + 1] = True
    later = kept[(kept > 0) & (j >= 254)]
    rest = np.flatnonzero(np.asarray(present, bool) & ~taken)
    rest = np.concatenate([later, rest[(rest != 0) & (rest != 255) & ~np.isin(rest, later)]])
    free = np.flatnonzero(~used[1:255]) + 1
    lut[rest] = free[:len(rest)].astype(np.uint8)
    return lut


def png_palette(data: bytes) -> Optional[np.ndarray]:
    """The ``(256, 3) uint8`` palette of a palette PNG (entries it lacks taken from the VOC colour map), or None for
    a PNG of another colour type."""
    from ..formats.vocmasks import png_chunks, voc_palette
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33 or data[25] != 3:  # IHDR's colour type: 3 = palette
        return None
    body = next((b for kind, b in png_chunks(data, "<mask>") if kind == b"PLTE"), None)
    if body is None:
        return None
    pal = voc_palette()
    n = min(len(body) // 3, 256)
    pal[:n] = np.frombuffer(body, np.uint8)[:3 * n].reshape(n, 3)
    return pal


# ---- segmentations cut by a window -----------------------------------------------------------------------------------


def _window_box(window):
    import shapely
    x0, y0, x1, y1 = window
    return shapely.box(x0, y0, x1, y1)


@dataclass
class _Rle:
    part: np.ndarray                 # the mask's rows and columns holding set pixels (bool)
    origin: Tuple[int, int]          # (x, y) of part[0, 0] in the source image
    size: Tuple[int, int]            # the source image (W, H)
    compressed: bool                 # counts were a string


class Shapes:
    """The segmentations of one image's objects (``rec.attrs["segmentation"]`` entries, source pixels), prepared
    once for every tile cut from the image resized by ``rate``.  ``image_size`` (W, H) is the source's (RLE masks
    must have it).  Raises ``ValueError`` (with the object's position) for a segmentation that cannot be read."""

    def __init__(self, segs: Sequence, image_size: Tuple[int, int], rate: float = 1.0):
        import shapely
        from ..formats.shapes import is_rle, rings, rle_decode
        self.rate = float(rate)
        self.image_size: Tuple[int, int] = (int(image_size[0]), int(image_size[1]))
        self.kind: List[str] = []      # "" no shape, "rings", "rle"
        self.rle: dict = {}
        coords, ring_owner, ring_len = [], [], []
        for k, seg in enumerate(segs):
            try:
                if seg and is_rle(seg):
                    full = rle_decode(seg, self.image_size)
                    ys, xs = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
                    if len(ys):
                        part = full[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].copy()
                        origin = (int(xs[0]), int(ys[0]))
                    else:
                        part, origin = np.zeros((0, 0), bool), (0, 0)
                    self.rle[k] = _Rle(part, origin, self.image_size, isinstance(seg["counts"], (str, bytes)))
                    self.kind.append("rle")
                    continue
                rs = rings(seg) if seg else []
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"object {k}: unreadable segmentation ({e})") from e
            self.kind.append("rings" if rs else "")
            for r in rs:
                coords.append(r * self.rate)
                ring_owner.append(k)
                ring_len.append(len(r))
        self.ring_owner = np.asarray(ring_owner, np.int64)
        self.ring_start = np.concatenate([[0], np.cumsum(ring_len)]).astype(np.int64)
        self.coords = np.concatenate(coords) if coords else np.zeros((0, 2))
        if len(ring_owner):
            idx = np.repeat(np.arange(len(ring_owner)), ring_len)
            self.polygons = shapely.polygons(shapely.linearrings(self.coords, indices=idx))
            self.area = shapely.area(self.polygons)
            self.simple = shapely.is_valid(self.polygons)
            if not self.simple.all():  # the pieces the even-odd rule fills (cut instead of the ring itself)
                self.polygons[~self.simple] = shapely.make_valid(self.polygons[~self.simple], method="linework")
            self.lo = np.minimum.reduceat(self.coords, self.ring_start[:-1], axis=0)
            self.hi = np.maximum.reduceat(self.coords, self.ring_start[:-1], axis=0)
        else:
            self.polygons = np.empty(0, object)
            self.simple = np.zeros(0, bool)
            self.area = np.zeros(0)
            self.lo = self.hi = np.zeros((0, 2))

    def has_shapes(self) -> bool:
        return any(self.kind)

    def cut(self, objects: np.ndarray, window: Tuple[int, int, int, int], canvas: Tuple[int, int]
            ) -> Tuple[list, np.ndarray, np.ndarray]:
        """The segmentations of ``objects`` (indices) in the tile whose pixels are ``window`` (x0, y0, x1, y1 in the
        resized image, the part of the tile inside it) on a tile of ``canvas`` (W, H; larger when padded), in tile
        coordinates; ``empty`` (bool per object): it had a shape and none of it is left in the tile; and ``boxes``
        ``(k, 4)``: the box of what is left (the cut rings' extent; a mask's pixels), NaN for objects without."""
        import shapely
        from ..formats.shapes import rings_mask
        objects = np.asarray(objects, np.int64).reshape(-1)
        x0, y0, x1, y1 = window
        out: list = [[] for _ in objects]
        empty = np.zeros(len(objects), bool)
        boxes = np.full((len(objects), 4), np.nan)
        slot = {int(k): j for j, k in enumerate(objects.tolist())}
        as_mask = set()
        # rings: those reaching into the window; inside ones are shifted, crossing ones intersected
        if len(self.ring_owner):
            mine = np.isin(self.ring_owner, objects)
            reach = mine & (self.hi[:, 0] > x0) & (self.lo[:, 0] < x1) & (self.hi[:, 1] > y0) & (self.lo[:, 1] < y1)
            inside = reach & (self.lo[:, 0] >= x0) & (self.hi[:, 0] <= x1) & (self.lo[:, 1] >= y0) & \
                (self.hi[:, 1] <= y1)
            cross = np.flatnonzero(reach & ~inside)
            offset = np.array([x0, y0], np.float64)
            pieces: List[Tuple[int, int, np.ndarray]] = []  # (ring, order, ring coordinates)
            for r in np.flatnonzero(inside & ((self.area > 0) | ~self.simple)).tolist():
                pieces.append((r, 0, self.coords[self.ring_start[r]:self.ring_start[r + 1]]))
            if len(cross):
                cut = shapely.intersection(self.polygons[cross], _window_box(window))
                parts, which = shapely.get_parts(cut, return_index=True)
                poly = shapely.get_type_id(parts) == 3  # Polygon (lines, points: where a ring touches the border)
                parts, which = parts[poly], which[poly]
                keep = shapely.area(parts) > 0
                parts, which = parts[keep], which[keep]
                holed = shapely.get_num_interior_rings(parts) > 0
                as_mask |= {int(self.ring_owner[cross[w]]) for w in which[holed]}
                xy, owner = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
                starts = np.searchsorted(owner, np.arange(len(parts)))
                ends = np.append(starts[1:], len(owner))
                for p, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
                    pieces.append((int(cross[which[p]]), p + 1, xy[a:b - 1]))  # (the closing point dropped)
            pieces.sort(key=lambda t: (t[0], t[1]))
            for r, _, ring in pieces:
                k = int(self.ring_owner[r])
                if k in as_mask:
                    continue
                local = np.round(ring - offset, 9) + 0.0  # (+ 0.0: no -0.0)
                out[slot[k]].append(local.reshape(-1).tolist())
                b = boxes[slot[k]]
                boxes[slot[k]] = _grow(b, local)
            for k in as_mask:
                rs = [self.coords[self.ring_start[r]:self.ring_start[r + 1]] - offset
                      for r in np.flatnonzero(self.ring_owner == k)]
                m = rings_mask(rs, (0, 0, canvas[0], canvas[1]))
                m[y1 - y0:] = False  # (padding: background)
                m[:, x1 - x0:] = False
                out[slot[k]] = encode_rle(m, False) if m.any() else []
                boxes[slot[k]] = pixel_box(m)
        for j, k in enumerate(objects.tolist()):
            kind = self.kind[k]
            if kind == "rle":
                m = self._rle_window(self.rle[k], window, canvas)
                out[j] = encode_rle(m, self.rle[k].compressed) if m.any() else []
                boxes[j] = pixel_box(m)
            if kind and not out[j]:
                empty[j] = True
        return out, empty, boxes

    def _rle_window(self, r: _Rle, window, canvas) -> np.ndarray:
        x0, y0, x1, y1 = window
        out = np.zeros((canvas[1], canvas[0]), bool)
        if r.part.size == 0:
            return out
        cols = rate_index(x0, x1, r.size[0], self.rate) - r.origin[0]
        rows = rate_index(y0, y1, r.size[1], self.rate) - r.origin[1]
        c = np.flatnonzero((cols >= 0) & (cols < r.part.shape[1]))
        rr = np.flatnonzero((rows >= 0) & (rows < r.part.shape[0]))
        if len(c) and len(rr):
            out[rr[0]:rr[-1] + 1, c[0]:c[-1] + 1] = take(r.part, rows[rr], cols[c])
        return out


def _grow(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``box`` (x0, y0, x1, y1; NaN: none yet) grown to hold ``points`` ``(K, 2)``."""
    lo, hi = points.min(0), points.max(0)
    return np.array([np.fmin(box[0], lo[0]), np.fmin(box[1], lo[1]), np.fmax(box[2], hi[0]), np.fmax(box[3], hi[1])])


def pixel_box(mask: np.ndarray) -> np.ndarray:
    """The box ``(x0, y0, x1, y1)`` of a bool mask's set pixels (pixel ``i`` covers ``[i, i + 1)``), NaN when it
    has none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return np.full(4, np.nan)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)


def encode_rle(mask: np.ndarray, compressed: bool) -> dict:
    """A bool mask as a COCO RLE: counts as a list, or as COCO's compressed string."""
    from ..formats.shapes import encode_counts_string, rle_encode
    rle = rle_encode(mask)
    if compressed:
        rle["counts"] = encode_counts_string(rle["counts"])
    return rle
