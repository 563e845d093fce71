"""Object masks as ``info`` judges them: pixel counts, masks that disagree with their boxes.

A format's masks come through :func:`dsprep.dataset.object_masks`, each over its object's pixel bounds: pixels of
the mask beyond the box are cut away there.  To see them, the masks are asked for again over *windows* grown past
the boxes (a record whose boxes are the windows): a window grows on each side where its mask reaches the window's
edge, by a tenth of its size (at least 2 px) a round, until no mask reaches an edge that can grow (or
``MAX_ROUNDS``).  Growing a little at a time keeps formats that pair masks with boxes by overlap (VOC's instance
masks, see :mod:`dsprep.formats.vocmasks`) pairing the same mask; a grown mask that is not the same mask inside
the previous window ends its object's growth (its count so far is kept).  Masks that do not depend on the boxes
(polygons, RLE) grow the same way, so every format is judged by one rule.

Pure functions over arrays here; reading the masks is :mod:`dsprep.jobs.masks`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core import ImageRecord, Problem, UsageError

KINDS = ("mask_outside_box", "mask_empty", "mask_unreadable")  # what this module finds (stable names)
RING = 1             # mask pixels within this many pixels of the box's pixel bounds are never outside (rounding)
OUTSIDE_SHARE = 0.01  # a mask with more than this share of its pixels beyond the ring is ``mask_outside_box``
GROW_SHARE = 0.1     # a window grows by this share of its size on a side its mask reaches...
GROW_MIN = 2         # ...and at least this many pixels
MAX_ROUNDS = 8       # growing stops after this many rounds (the count is then a lower bound)


def has_masks(fmt: str) -> bool:
    """Whether data sets of format ``fmt`` carry object masks of their own: the format answers ``object_masks``
    and its objects are not oriented boxes (the "mask" of a DOTA or YOLO-OBB quad is the quad: its box, already
    drawn and checked)."""
    from ..formats import FORMATS, format_spec
    if fmt not in FORMATS:  # (a packed pickle's data set says "pickle": packed files hold no masks)
        return False
    spec = format_spec(fmt)
    return spec.object_masks is not None and not spec.holds.quads


def masks_wanted(flag: Optional[bool], fmt: str, default: Optional[bool] = None) -> bool:
    """``--masks/--no-masks`` (``flag``; None: not given) for a data set of format ``fmt``: whether to read its
    masks.  Not given: ``default``, else :func:`has_masks`; ``--masks`` for a format without masks is a usage
    error."""
    from ..formats import FORMATS, format_spec
    if flag is None:
        return has_masks(fmt) if default is None else default
    if flag and (fmt not in FORMATS or format_spec(fmt).object_masks is None):
        raise UsageError(f"--masks: {fmt} data sets have no object masks (only boxes)")
    return flag


def edges_reached(mask: np.ndarray) -> np.ndarray:
    """``(4,) bool``: whether ``mask`` has a pixel in its first column, first row, last column, last row (the
    window sides ``x0, y0, x1, y1``)."""
    if mask.size == 0:
        return np.zeros(4, bool)
    return np.array([mask[:, 0].any(), mask[0, :].any(), mask[:, -1].any(), mask[-1, :].any()])


def grow_windows(windows: np.ndarray, reach: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(N, 4)`` int windows grown on the sides ``reach`` ``(N, 4) bool`` says (by ``GROW_SHARE`` of the window's
    width or height, at least ``GROW_MIN`` px), clipped to the ``width x height`` image."""
    win = np.asarray(windows, np.int64).reshape(-1, 4)
    size = np.concatenate([win[:, 2:4] - win[:, 0:2]] * 2, axis=1)
    step = np.maximum(GROW_MIN, np.ceil(GROW_SHARE * size)).astype(np.int64)
    sign = np.array([-1, -1, 1, 1])
    grown = win + np.where(np.asarray(reach, bool), sign * step, 0)
    return np.clip(grown, 0, [width, height, width, height])


def can_grow(windows: np.ndarray, reach: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(N, 4) bool``: the sides a mask reaches that are not already on the image's border."""
    win = np.asarray(windows, np.int64).reshape(-1, 4)
    open_side = np.column_stack([win[:, 0] > 0, win[:, 1] > 0, win[:, 2] < width, win[:, 3] < height])
    return np.asarray(reach, bool) & open_side


def inner(mask: np.ndarray, window: Sequence[int], part: Sequence[int]) -> np.ndarray:
    """The pixels of ``mask`` (over ``window``) that lie in ``part`` (a window inside it), as a view."""
    x0, y0 = int(part[0]) - int(window[0]), int(part[1]) - int(window[1])
    return mask[y0:y0 + int(part[3]) - int(part[1]), x0:x0 + int(part[2]) - int(part[0])]


def outside_count(mask: np.ndarray, window: Sequence[int], bounds: Sequence[int], width: int, height: int) -> int:
    """Pixels of ``mask`` (over ``window``) farther than ``RING`` px from the box's pixel ``bounds``."""
    b = np.asarray(bounds, np.int64)
    ring = np.clip(b + np.array([-RING, -RING, RING, RING]), 0, [width, height, width, height])
    ring = np.clip(ring, [window[0], window[1], window[0], window[1]], [window[2], window[3], window[2], window[3]])
    return int(np.count_nonzero(mask)) - int(np.count_nonzero(inner(mask, window, ring)))


def object_label(rec: ImageRecord, k: int) -> str:
    """How a problem names object ``k``: its annotation id where the format has ids (COCO), else its place."""
    ids = rec.attrs.get("id")
    what = f"annotation id {ids[k]}" if ids is not None else f"object {k}"
    return f"{what} ({rec.names[k]})"


def mask_problems(rec: ImageRecord, where: str, masks: Sequence[Optional[np.ndarray]], bounds: np.ndarray,
                  outside: np.ndarray, whole: np.ndarray, capped: np.ndarray) -> List[Problem]:
    """``mask_empty`` for objects whose mask (over a box of at least one pixel) has no pixel; ``mask_outside_box``
    for objects with more than ``OUTSIDE_SHARE`` of their ``whole`` mask ``outside`` (``capped``: growing stopped
    before the mask's end: "at least")."""
    out = []
    b = np.asarray(bounds, np.int64).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    for k, m in enumerate(masks):
        if m is None or area[k] == 0:
            continue
        box = ", ".join(str(v) for v in b[k].tolist())
        if not m.any():
            out.append(Problem("mask_empty", where, f"{object_label(rec, k)}: its mask has no pixel inside its box "
                                                    f"({box}, pixels x0, y0, x1, y1)"))
        elif outside[k] > OUTSIDE_SHARE * whole[k]:
            out.append(Problem("mask_outside_box", where,
                               f"{object_label(rec, k)}: {'at least ' if capped[k] else ''}{int(outside[k])} mask "
                               f"pixels ({100.0 * outside[k] / whole[k]:.1f}% of its mask) lie more than {RING} px "
                               f"outside its box ({box}, pixels x0, y0, x1, y1)"))
    return out


def class_pixels(names: Sequence[str], pixels: Sequence[Optional[int]], classes: Sequence[str]
                 ) -> Dict[str, Dict[str, int]]:
    """Per class (in ``classes`` order, then others by name), the objects with a mask and their mask pixels:
    ``{name: {"objects": n, "mask_pixels": p}}``; classes without masked objects are left out."""
    have = [(n, int(p)) for n, p in zip(names, pixels) if p is not None]
    order = list(classes) + sorted({n for n, _ in have} - set(classes))
    index = {c: i for i, c in enumerate(order)}
    cls = np.array([index[n] for n, _ in have], np.int64)
    px = np.array([p for _, p in have], np.int64)
    objects = np.bincount(cls, minlength=len(order))
    total = np.zeros(len(order), np.int64)
    np.add.at(total, cls, px)
    return {c: {"objects": int(objects[i]), "mask_pixels": int(total[i])}
            for i, c in enumerate(order) if objects[i]}
