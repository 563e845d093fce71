"""Backgrounds without any fill: the largest part of an image that holds no object, cut out as it is.

Pure functions over numpy arrays; ``dsprep crop --backgrounds DIR --fill none`` writes these.

:func:`largest_free_rect` finds the largest axis-aligned rectangle without a blanked pixel on a grid of cells
(``GRID`` cells along the longer side): a cell is free when no blanked pixel touches it (area resampling: any
blanked pixel in its footprint makes it non-zero), every rectangle of whole cells is tested at once from the grid's
summed-area table, and the largest free one (in pixels) is returned in pixel coordinates, shrunk to whole pixels
inside its cells -- so it never holds a blanked pixel.
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

GRID = 32  # cells along the image's longer side


def largest_free_rect(mask: np.ndarray, grid: int = GRID) -> Optional[Tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` (pixel indices, exclusive ends) of the largest rectangle of grid cells holding no
    non-zero pixel of ``mask`` (``(H, W)``), or None when every cell holds one.  Ties: the first in row-major order
    of its top-left corner (deterministic)."""
    m = (np.asarray(mask) != 0).astype(np.float32)
    H, W = m.shape
    gx = max(1, min(W, int(round(grid * W / max(W, H)))))
    gy = max(1, min(H, int(round(grid * H / max(W, H)))))
    blocked = cv2.resize(m, (gx, gy), interpolation=cv2.INTER_AREA) > 0
    table = np.zeros((gy + 1, gx + 1), np.int64)
    table[1:, 1:] = blocked.cumsum(0).cumsum(1)
    # every rectangle [r0, r1) x [c0, c1) of cells at once: (r0, c0, r1, c1) axes
    r0 = np.arange(gy + 1)[:, None, None, None]
    c0 = np.arange(gx + 1)[None, :, None, None]
    r1 = np.arange(gy + 1)[None, None, :, None]
    c1 = np.arange(gx + 1)[None, None, None, :]
    count = (table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0])
    # pixel extent of each rectangle: whole pixels inside its cells
    px0 = np.ceil(c0 * W / gx).astype(np.int64)
    px1 = np.floor(c1 * W / gx).astype(np.int64)
    py0 = np.ceil(r0 * H / gy).astype(np.int64)
    py1 = np.floor(r1 * H / gy).astype(np.int64)
    area = np.maximum(px1 - px0, 0) * np.maximum(py1 - py0, 0)
    area = np.where((count == 0) & (r1 > r0) & (c1 > c0), area, 0)
    best = int(np.argmax(area))
    if area.flat[best] <= 0:
        return None
    i0, j0, i1, j1 = np.unravel_index(best, area.shape)
    return (int(np.ceil(j0 * W / gx)), int(np.ceil(i0 * H / gy)), int(np.floor(j1 * W / gx)),
            int(np.floor(i1 * H / gy)))
