"""Per-image work of ``info``'s mask pass: one record's object masks read through its format, counted and judged
(:mod:`dsprep.ops.maskstats` says how)."""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from ..core import DsprepError, ImageRecord, Problem
from ..geometry import pixel_bounds
from ..ops.boxstats import problem_file
from ..ops.maskstats import MAX_ROUNDS, can_grow, edges_reached, grow_windows, inner, mask_problems, outside_count


def mask_stats_one(args) -> dict:
    """``(record, format)`` -> ``{"pixels": [pixels of each object's mask, None without one] or None (no masks),
    "problems": [Problem]}``.  Masks the format cannot read (a mask image of another size than its image, a broken
    RLE) are a ``mask_unreadable`` finding, returned rather than raised."""
    rec, fmt = args
    from ..dataset import object_masks
    where = problem_file(rec)
    try:
        masks = object_masks(fmt, rec)
    except DsprepError as e:
        text, ann = str(e), rec.meta.get("annotation_path")
        if ann and text.startswith(f"{ann}: "):
            text = text[len(ann) + 2:]
        return {"pixels": None, "problems": [Problem("mask_unreadable", where, text)]}
    if masks is None:
        return {"pixels": None, "problems": []}
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    outside, whole, capped = beyond_boxes(fmt, rec, masks, bounds)
    return {"pixels": [None if m is None else int(np.count_nonzero(m)) for m in masks],
            "problems": mask_problems(rec, where, masks, bounds, outside, whole, capped)}


def beyond_boxes(fmt: str, rec: ImageRecord, masks: List[Optional[np.ndarray]], bounds: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each object: its mask pixels outside its box (beyond the tolerance ring), its mask's pixels in all, and
    whether growing stopped before the mask's end; the windows grow as :mod:`dsprep.ops.maskstats` says, the
    masks over them asked of the format (``object_masks`` of a record whose boxes are the windows)."""
    from ..dataset import object_masks
    w, h = rec.width, rec.height
    n = len(masks)
    windows = np.asarray(bounds, np.int64).reshape(-1, 4).copy()
    current = list(masks)
    reach = np.array([edges_reached(m) if m is not None else np.zeros(4, bool) for m in current]).reshape(n, 4)
    grow = can_grow(windows, reach, w, h)
    for _ in range(MAX_ROUNDS):
        active = np.flatnonzero(grow.any(axis=1))
        if len(active) == 0:
            break
        trial = windows.copy()
        trial[active] = grow_windows(windows[active], grow[active], w, h)
        try:
            got = object_masks(fmt, dataclasses.replace(rec, boxes=trial.astype(np.float64)))
        except DsprepError:  # (read once already; a reader refusing wider windows ends the growing)
            got = None
        if got is None:
            break
        for k in active.tolist():
            g, before = got[k], current[k]
            if g is None or before is None or not np.array_equal(inner(g, trial[k], windows[k]), before):
                grow[k] = False  # no longer the same mask: keep what the last window showed
                continue
            windows[k], current[k] = trial[k], g
            grow[k] = can_grow(trial[k:k + 1], edges_reached(g)[None], w, h)[0]
    outside = np.zeros(n, np.int64)
    whole = np.zeros(n, np.int64)
    capped = np.zeros(n, bool)
    for k, m in enumerate(current):
        if m is not None:
            outside[k] = outside_count(m, windows[k], bounds[k], w, h)
            whole[k] = np.count_nonzero(m)
            capped[k] = bool(can_grow(windows[k:k + 1], edges_reached(m)[None], w, h).any())
    return outside, whole, capped
