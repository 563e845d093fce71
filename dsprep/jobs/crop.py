"""Per-image work of ``crop``: cut the objects of one image out, and write its blanked background."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from .. import crop as cropmod
from ..core import OutputError, boxes_to_polygons
from ..images import read_record_image, write_image
from ..outputs import inside, safe_name


@dataclass(frozen=True)
class CropOptions:
    out: str
    classes: Sequence[str] = ()
    pad: int = 0
    min_size: int = 1
    backgrounds: Optional[str] = None
    blank: Optional[Sequence[str]] = None  # None: the cropped classes
    rgba: bool = False       # polygon alpha (DOTA records)
    upright: bool = False


def _target(root: str, *parts: str) -> Path:
    path = Path(root).joinpath(*parts)
    if not inside(root, path):  # cannot happen after safe_name; kept as the last line of defence
        raise OutputError(f"{path}: output name escapes {root}")
    return path


def crop_one(args) -> dict:
    """Write every selected object of one image to ``out/<class>/<stem>_<k>.png`` (+ a blanked background)."""
    rec, opts = args
    img = read_record_image(rec, "unchanged")
    if img.ndim == 3 and img.shape[2] == 4 and not opts.rgba:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    h, w = img.shape[:2]
    names = np.array(rec.names, dtype=object)
    sel = np.array([not opts.classes or n in opts.classes for n in rec.names], bool)
    bounds = cropmod.pixel_bounds(rec.boxes, w, h, opts.pad)
    size_ok = ((bounds[:, 2] - bounds[:, 0]) >= max(1, opts.min_size)) & \
              ((bounds[:, 3] - bounds[:, 1]) >= max(1, opts.min_size))
    take = np.flatnonzero(sel & size_ok)
    stem = safe_name(rec.stem)
    written = 0
    for k in take:
        if opts.rgba and rec.polygons is not None:
            piece, _ = cropmod.crop_polygon_rgba(img, rec.polygons[k], upright=opts.upright, pad=opts.pad)
        else:
            x0, y0, x1, y1 = bounds[k]
            piece = img[y0:y1, x0:x1]
        folder = _target(opts.out, safe_name(names[k]))
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / f"{stem}_{k}.png", piece)
        written += 1
    result = {"images": 1, "crops": written, "too_small": int((sel & ~size_ok).sum())}
    if opts.backgrounds:
        blank = set(opts.blank) if opts.blank is not None else set(names[sel])
        mask = np.array([n in blank for n in rec.names], bool)
        polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
        base = img if img.ndim == 2 or img.shape[2] != 4 else cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        bg = cropmod.blank_regions(base, polys[mask])
        write_image(_target(opts.backgrounds, f"{stem}.png"), bg)
        result["backgrounds"] = 1
    return result
