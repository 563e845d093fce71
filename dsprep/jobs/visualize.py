"""Per-image work of ``visualize boxes``: draw one record on its image and write it."""
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


def visualize_one(args) -> dict:
    rec, image, opts = args  # image: a decoded array (packed data sets) or None (read from rec.image_path)
    img = image if image is not None else read_record_image(rec)
    drawn = draw.draw_record(img, rec, opts.class_index, classes=opts.classes)
    name = safe_name(rec.stem) + opts.ext
    path = Path(opts.out) / name
    write_image(path, drawn, jpeg_quality=92)
    thumb = None
    if opts.thumb:
        s = opts.thumb / max(drawn.shape[:2])
        thumb = cv2.resize(drawn, (max(1, int(drawn.shape[1] * s)), max(1, int(drawn.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
    return {"images": 1, "objects": int(sum(1 for n in rec.names if not opts.classes or n in opts.classes)),
            "thumb": thumb}
