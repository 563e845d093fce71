"""COCO segmentations (as the COCO reader keeps them in ``rec.attrs["segmentation"]``, and as results files give
them) turned into one :class:`dsprep.rle.MaskSet` for the ``coco-segm`` evaluation.

A segmentation is a list of polygon rings (flat ``[x1, y1, ...]`` lists), an RLE with ``counts`` as a list of run
lengths (COCO's crowd objects), or an RLE with COCO's compressed counts string (results files).  All masks of one
kind are converted together: polygons through :func:`dsprep.rle.from_polygons`, strings through
:func:`dsprep.rle.decode_count_strings`.  An RLE whose size is not its image's, or whose runs do not cover it, is
an error naming where it came from (pycocotools would score it -1 or read past its end).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from . import rle
from .core import ParseError


def mask_set(segs: Sequence[object], height: np.ndarray, width: np.ndarray, where: Sequence[str]) -> rle.MaskSet:
    """The masks of ``segs`` (one per object; ``height``/``width`` its image's size; ``where[i]`` names the object
    in error messages).  An object with no segmentation (``[]``, ``None``) has an empty mask."""
    n = len(segs)
    height = np.asarray(height, np.int64).reshape(n)
    width = np.asarray(width, np.int64).reshape(n)
    poly_rings: List[np.ndarray] = []
    poly_owner: List[int] = []
    str_idx: List[int] = []
    strings: List[str] = []
    list_idx: List[int] = []
    lists: List[np.ndarray] = []
    for i, seg in enumerate(segs):
        if not seg:
            continue
        if isinstance(seg, dict):
            size = seg.get("size")
            if not (isinstance(size, (list, tuple)) and len(size) == 2 and [int(v) for v in size] == [height[i],
                                                                                                      width[i]]):
                raise ParseError(f"{where[i]}: RLE size {size!r:.40} is not the image's [{height[i]}, {width[i]}]")
            counts = seg.get("counts")
            if isinstance(counts, (str, bytes)):
                str_idx.append(i)
                strings.append(counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts)
            elif isinstance(counts, list) and all(type(v) is int for v in counts):
                list_idx.append(i)
                lists.append(np.asarray(counts, np.int64))
            else:
                raise ParseError(f"{where[i]}: RLE counts must be a string or a list of whole numbers")
        elif isinstance(seg, list):
            for ring in seg:
                try:
                    pts = np.asarray(ring, np.float64).reshape(-1, 2)
                except (TypeError, ValueError) as e:
                    raise ParseError(f"{where[i]}: a polygon must be a flat list of x, y numbers") from e
                if len(pts) < 3 or not np.isfinite(pts).all():
                    raise ParseError(f"{where[i]}: a polygon needs at least 3 finite points")
                poly_rings.append(pts)
                poly_owner.append(i)
        else:
            raise ParseError(f"{where[i]}: segmentation must be polygons or an RLE, got {type(seg).__name__}")
    parts = []
    if poly_rings:
        owner = np.asarray(poly_owner, np.int64)
        objs, local = np.unique(owner, return_inverse=True)
        parts.append((objs, rle.from_polygons(poly_rings, local, height[objs], width[objs])))
    for idx, (counts, first) in ((str_idx, _decoded(strings, [where[i] for i in str_idx])),
                                 (list_idx, _joined(lists))):
        if not idx:
            continue
        idx = np.asarray(idx, np.int64)
        bad = rle.check_counts(counts, first, height[idx], width[idx])
        if bad is not None:
            i = int(idx[bad])
            raise ParseError(f"{where[i]}: RLE runs do not cover its {height[i]}x{width[i]} pixels exactly")
        parts.append((idx, rle.from_counts(counts, first, height[idx], width[idx])))
    return _gather(parts, n, height, width)


def _decoded(strings: List[str], where: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    try:
        return rle.decode_count_strings(strings)
    except ValueError as e:
        msg = str(e)
        k = int(msg.split()[2]) if msg.startswith("RLE string ") and msg.split()[2].isdigit() else None
        raise ParseError(f"{where[k] if k is not None else where[0]}: {msg}") from e


def _joined(lists: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(v) for v in lists), np.int64, len(lists))
    counts = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    return counts, np.r_[0, np.cumsum(lengths)].astype(np.int64)


def _gather(parts, n: int, height: np.ndarray, width: np.ndarray) -> rle.MaskSet:
    """One MaskSet in object order from sets holding some of the objects (``(objects, set)`` pairs)."""
    per = np.zeros(n, np.int64)
    pieces_s, pieces_e, pieces_o = [], [], []
    for objs, ms in parts:
        k = np.diff(ms.first)
        per[objs] = k
        pieces_s.append(ms.start)
        pieces_e.append(ms.end)
        pieces_o.append(np.repeat(objs, k))
    if not pieces_s:
        return rle.MaskSet(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(n + 1, np.int64), height, width)
    owner = np.concatenate(pieces_o)
    order = np.argsort(owner, kind="stable")
    return rle.MaskSet(np.concatenate(pieces_s)[order], np.concatenate(pieces_e)[order],
                       np.r_[0, np.cumsum(per)].astype(np.int64), height, width)
