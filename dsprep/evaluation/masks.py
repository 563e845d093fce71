"""COCO segmentations (as the COCO reader keeps them in ``rec.attrs["segmentation"]``, and as results files give
them) turned into one :class:`dsprep.rle.MaskSet` for the ``coco-segm`` evaluation.

A segmentation is a list of polygon rings (flat ``[x1, y1, ...]`` lists), an RLE with ``counts`` as a list of run
lengths (COCO's crowd objects), or an RLE with COCO's compressed counts string (results files).  All masks of one
kind are converted together: polygons through :func:`dsprep.rle.from_polygons`, strings through
:func:`dsprep.rle.decode_count_strings`.  An RLE whose size is not its image's, or whose runs do not cover it, is
an error naming where it came from (pycocotools would score it -1 or read past its end).
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np

from .. import rle
from ..core import ParseError


def mask_set(segs: Sequence[object], height: np.ndarray, width: np.ndarray,
             where: Callable[[int], str]) -> rle.MaskSet:
    """The masks of ``segs`` (one per object; ``height``/``width`` its image's size; ``where(i)`` names object i
    in an error message).  An object with no segmentation (``[]``, ``None``) has an empty mask."""
    n = len(segs)
    height = np.asarray(height, np.int64).reshape(n)
    width = np.asarray(width, np.int64).reshape(n)
    rle_idx = [i for i, seg in enumerate(segs) if type(seg) is dict]
    poly_idx = [i for i, seg in enumerate(segs) if type(seg) is list and seg]
    other = [i for i, seg in enumerate(segs) if seg and type(seg) not in (dict, list)]
    if other:
        raise ParseError(f"{where(other[0])}: segmentation must be polygons or an RLE, got "
                         f"{type(segs[other[0]]).__name__}")
    parts = []
    if poly_idx:
        parts.append(_polygons(segs, poly_idx, height, width, where))
    if rle_idx:
        parts.extend(_rles(segs, rle_idx, height, width, where))
    return _gather(parts, n, height, width)


def _polygons(segs, idx: List[int], height, width, where):
    rings: List[np.ndarray] = []
    owner: List[int] = []
    for local, i in enumerate(idx):
        for ring in segs[i]:
            try:
                pts = np.asarray(ring, np.float64).reshape(-1, 2)
            except (TypeError, ValueError) as e:
                raise ParseError(f"{where(i)}: a polygon must be a flat list of x, y numbers") from e
            if len(pts) < 3 or not np.isfinite(pts).all():
                raise ParseError(f"{where(i)}: a polygon needs at least 3 finite points")
            rings.append(pts)
            owner.append(local)
    objs = np.asarray(idx, np.int64)
    return objs, rle.from_polygons(rings, np.asarray(owner, np.int64), height[objs], width[objs])


def _rles(segs, idx: List[int], height, width, where):
    objs = np.asarray(idx, np.int64)
    sizes = [segs[i].get("size") for i in idx]
    try:
        hw = np.array(sizes, np.int64).reshape(len(idx), 2)
    except (TypeError, ValueError, OverflowError):
        hw = np.full((len(idx), 2), -1, np.int64)
    wrong = np.flatnonzero((hw[:, 0] != height[objs]) | (hw[:, 1] != width[objs]))
    if len(wrong):
        i = idx[int(wrong[0])]
        raise ParseError(f"{where(i)}: RLE size {sizes[int(wrong[0])]!r:.40} is not the image's "
                         f"[{height[i]}, {width[i]}]")
    counts = [segs[i].get("counts") for i in idx]
    counts = [c.decode("ascii", "replace") if type(c) is bytes else c for c in counts]
    str_local = [k for k, c in enumerate(counts) if type(c) is str]
    list_local = [k for k, c in enumerate(counts) if type(c) is not str]
    parts = []
    if str_local:
        sub = objs[str_local]
        decoded = _decoded([counts[k] for k in str_local], lambda j: where(idx[str_local[j]]))
        parts.append((sub, _checked(decoded, sub, height, width, where)))
    if list_local:
        for k in list_local:
            c = counts[k]
            if not (isinstance(c, list) and all(type(v) is int for v in c)):
                raise ParseError(f"{where(idx[k])}: RLE counts must be a string or a list of whole numbers")
        sub = objs[list_local]
        joined = _joined([np.asarray(counts[k], np.int64) for k in list_local])
        parts.append((sub, _checked(joined, sub, height, width, where)))
    return parts


def _checked(decoded, objs: np.ndarray, height, width, where) -> rle.MaskSet:
    counts, first = decoded
    bad = rle.check_counts(counts, first, height[objs], width[objs])
    if bad is not None:
        i = int(objs[bad])
        raise ParseError(f"{where(i)}: RLE runs do not cover its {height[i]}x{width[i]} pixels exactly")
    return rle.from_counts(counts, first, height[objs], width[objs])


def _decoded(strings: List[str], where: Callable[[int], str]) -> Tuple[np.ndarray, np.ndarray]:
    try:
        return rle.decode_count_strings(strings)
    except ValueError as e:
        msg = str(e)
        k = int(msg.split()[2]) if msg.startswith("RLE string ") and msg.split()[2].isdigit() else None
        raise ParseError(f"{where(k if k is not None else 0)}: {msg}") from e


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
