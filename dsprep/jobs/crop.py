"""Per-image work of ``crop``: cut the objects of one image out, and write its blanked (filled) background."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from .. import crop as cropmod
from ..core import OutputError, boxes_to_polygons
from ..images import read_record_image, write_image
from ..outputs import inside, safe_name


@dataclass(frozen=True)
class CropOptions:
    out: str
    fmt: str = "voc"                       # the data set's format: where object masks come from
    classes: Sequence[str] = ()
    pad: int = 0
    min_size: int = 1
    backgrounds: Optional[str] = None
    blank: Optional[Sequence[str]] = None  # None: the cropped classes
    mask: str = "auto"                     # auto: the data set's masks/polygons | grabcut: also GrabCut | none
    upright: bool = False
    fill: str = "texture"                  # how blanked regions are filled (dsprep.fill.FILLS)
    blank_margin: int = 3                  # pixels around an object's own mask that are blanked too
    max_blanked: float = 0.5               # backgrounds with more of their pixels blanked are not written
    min_free: float = 0.25                 # fill "none": the object-free part cut out must be this share of the image


def _target(root: str, *parts: str) -> Path:
    path = Path(root).joinpath(*parts)
    if not inside(root, path):  # cannot happen after safe_name; kept as the last line of defence
        raise OutputError(f"{path}: output name escapes {root}")
    return path


def crop_one(args) -> dict:
    """Write every selected object of one image to ``out/<class>/<stem>_<k>.png`` (+ a blanked background)."""
    from ..dataset import object_masks
    rec, opts = args
    img = read_record_image(rec, "unchanged")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    h, w = img.shape[:2]
    names = np.array(rec.names, dtype=object)
    sel = np.array([not opts.classes or n in opts.classes for n in rec.names], bool)
    bounds = cropmod.pixel_bounds(rec.boxes, w, h, opts.pad)
    tight = cropmod.pixel_bounds(rec.boxes, w, h)
    size_ok = ((bounds[:, 2] - bounds[:, 0]) >= max(1, opts.min_size)) & \
              ((bounds[:, 3] - bounds[:, 1]) >= max(1, opts.min_size))
    take = np.flatnonzero(sel & size_ok)
    polygons = opts.mask != "none" and rec.polygons is not None
    own = None
    if opts.mask != "none" and not polygons and len(rec) and (len(take) or opts.backgrounds):
        own = object_masks(opts.fmt, rec)
    stem = safe_name(rec.stem)
    written = masked = grabcut = 0
    files = []  # relative paths of the crops, for the split lists
    for k in take:
        if polygons:
            piece, _ = cropmod.crop_polygon_rgba(img, rec.polygons[k], upright=opts.upright, pad=opts.pad)
            masked += 1
        elif own is not None and own[k] is not None:
            piece = cropmod.mask_rgba(img, tight[k], own[k], opts.pad)
            masked += 1
        else:
            found = cropmod.grabcut_mask(img, tight[k]) if opts.mask == "grabcut" else None
            if found is not None:
                piece = cropmod.mask_rgba(img, tight[k], found, opts.pad)
                grabcut += 1
            else:
                x0, y0, x1, y1 = bounds[k]
                piece = img[y0:y1, x0:x1]
        folder = _target(opts.out, safe_name(names[k]))
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / f"{stem}_{k}.png", piece)
        files.append(f"{safe_name(names[k])}/{stem}_{k}.png")
        written += 1
    result = {"images": 1, "crops": written, "masked": masked, "grabcut": grabcut,
              "too_small": int((sel & ~size_ok).sum()), "files": files}
    if opts.backgrounds:
        result.update(_background(img, rec, opts, sel, own, tight, stem))
    return result


def _background(img, rec, opts: CropOptions, sel, own, tight, stem: str) -> dict:
    """Blank the --blank objects (their own masks grown by the margin, or their boxes/polygons), fill the blanked
    pixels, and write the background with its sidecar (where objects were); too blanked a background is not
    written."""
    from ..fill import fill_regions, format_sidecar, region_outlines, sidecar_path
    from ..outputs import atomic_write_bytes
    blank = set(opts.blank) if opts.blank is not None else set(np.array(rec.names, dtype=object)[sel])
    chosen = np.array([n in blank for n in rec.names], bool)
    has_own = np.array([own is not None and own[k] is not None for k in range(len(rec))], bool)
    polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
    by_mask = np.flatnonzero(chosen & has_own)
    mask = cropmod.blank_mask(img.shape[:2], polys[chosen & ~has_own], [own[k] for k in by_mask], tight[by_mask],
                              opts.blank_margin)
    blanked = float(np.count_nonzero(mask)) / mask.size
    if opts.fill == "none":  # no fill: the largest part without an object, cut out as it is
        from ..freeregion import largest_free_rect
        rect = largest_free_rect(mask)
        x0, y0, x1, y1 = rect if rect is not None else (0, 0, 0, 0)
        if (x1 - x0) * (y1 - y0) < max(opts.min_free * mask.size, 1):
            return {"backgrounds": 0, "no_free_region": 1}
        write_image(_target(opts.backgrounds, f"{stem}.png"), img[y0:y1, x0:x1])
        return {"backgrounds": 1, "no_free_region": 0, "background": f"{stem}.png"}
    if blanked > opts.max_blanked or blanked >= 1.0:
        return {"backgrounds": 0, "too_blanked": 1}
    bg = fill_regions(img, mask, opts.fill)
    path = _target(opts.backgrounds, f"{stem}.png")
    write_image(path, bg)
    if blanked > 0:
        h, w = mask.shape
        atomic_write_bytes(sidecar_path(str(path)), format_sidecar((w, h), region_outlines(mask), opts.fill))
    return {"backgrounds": 1, "too_blanked": 0, "background": f"{stem}.png"}
