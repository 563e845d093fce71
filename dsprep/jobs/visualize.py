"""Per-image work of ``visualize boxes``: draw one record (its masks too) on its image and write it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import cv2

from ..ops import draw
from ..images import read_record_image, write_image
from ..outputs import safe_name


@dataclass(frozen=True)
class VisualizeOptions:
    out: str
    class_index: Dict[str, int]
    classes: Sequence[str] = ()
    ext: str = ".jpg"
    thumb: int = 0  # >0: also return a thumbnail of this size for the contact sheet
    fmt: str = ""   # the data set's format: where object masks come from
    masks: bool = False  # fill each object's mask (dsprep.dataset.object_masks), translucent, in its class colour
    mask_alpha: float = draw.MASK_ALPHA
    mask_outlines: bool = False


def visualize_one(args) -> dict:
    rec, image, opts = args  # image: a decoded array (packed data sets) or None (read from rec.image_path)
    img = image if image is not None else read_record_image(rec)
    masks = None
    if opts.masks and len(rec):
        from ..dataset import object_masks
        masks = object_masks(opts.fmt, rec)
    drawn = draw.draw_record(img, rec, opts.class_index, classes=opts.classes, masks=masks,
                             mask_alpha=opts.mask_alpha, mask_outlines=opts.mask_outlines)
    name = safe_name(rec.stem) + opts.ext
    path = Path(opts.out) / name
    write_image(path, drawn, jpeg_quality=92)
    thumb = None
    if opts.thumb:
        s = opts.thumb / max(drawn.shape[:2])
        thumb = cv2.resize(drawn, (max(1, int(drawn.shape[1] * s)), max(1, int(drawn.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
    shown = [not opts.classes or n in opts.classes for n in rec.names]
    out = {"images": 1, "objects": sum(shown), "thumb": thumb}
    if opts.masks:
        out["masks"] = sum(1 for m, s in zip(masks or (), shown) if m is not None and s)
    return out
