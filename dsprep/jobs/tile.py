"""Per-image work of ``tile-dota``: the tiles (pixels and labels) of one image at one rate."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..images import read_image, write_image


@dataclass(frozen=True)
class TileOptions:
    out: str
    size: int = 1024
    gap: int = 200
    thresh: float = 0.7
    ext: str = ".png"
    pad: bool = False
    skip_empty: bool = False
    on_error: str = "fail"  # skip: broken label lines are skipped (and listed), not the whole image


@dataclass(frozen=True)
class TileJob:
    """One image at one rate; ``part`` of ``parts`` selects every parts-th tile (huge images are shared out)."""

    stem: str
    image: str
    label: Optional[str]
    rate: float
    part: int = 0
    parts: int = 1


def tile_one(args) -> dict:
    """Write the tiles (images + DOTA labels) of one image at one rate."""
    from .. import tiling
    from ..dota import read_dota
    from ..outputs import atomic_write_text
    job, opts = args
    img = read_image(job.image)
    skipped_lines = []
    if job.label is not None:
        rec, _, skipped_lines = read_dota(job.label, opts.on_error)
        objs = tiling.prepare_objects(rec.polygons, rec.names, rec.difficult, job.rate)
    else:
        objs = tiling.prepare_objects(np.zeros((0, 4, 2)), [], [], job.rate)
    if job.rate != 1:
        img = cv2.resize(img, None, fx=job.rate, fy=job.rate, interpolation=cv2.INTER_CUBIC)
    h, w = img.shape[:2]
    grid = tiling.tile_grid(w, h, opts.size, opts.gap)[job.part::job.parts]
    stats = tiling.TileStats()
    out = Path(opts.out)
    tiles = empty = 0
    for left, up in grid:
        lines = tiling.tile_labels(objs, left, up, w, h, opts.size, opts.thresh, stats)
        if opts.skip_empty and not lines:
            empty += 1
            continue
        name = tiling.tile_name(job.stem, job.rate, left, up)
        pixels = tiling.crop_tile(img, left, up, opts.size, opts.pad)
        write_image(out / "images" / f"{name}{opts.ext}", pixels)
        if job.label is not None:
            atomic_write_text(out / "labelTxt" / f"{name}.txt", "".join(line + "\n" for line in lines))
        tiles += 1
    return {"images": 1 if job.part == 0 else 0, "tiles": tiles, "empty_skipped": empty,
            "objects": stats.whole + stats.cut, "cut": stats.cut, "difficult_2": stats.difficult2,
            "dropped": stats.dropped + stats.invalid, "skipped_lines": skipped_lines if job.part == 0 else []}


def plan_tile_jobs(root: Path, rates: Sequence[float], slots: int, size: int, gap: int) -> list:
    """One job per image and rate; when there are fewer images than worker slots, an image's tiles are shared out
    over several jobs (each decodes the image itself, so it works the same on a cluster)."""
    from ..core import DatasetError
    from ..dota import dota_items
    from ..images import image_size
    from ..tiling import tile_grid
    if (root / "labelTxt").is_dir():
        items, _, _ = dota_items(root)
    elif (root / "images").is_dir():
        items = [(p.stem, None, str(p)) for p in sorted((root / "images").iterdir()) if p.is_file()]
    else:
        raise DatasetError(f"{root}: no images/ folder (expected a DOTA layout: images/ + labelTxt/)")
    items = [(stem, label, image) for stem, label, image in items if image is not None]
    if not items:
        raise DatasetError(f"{root}: data set is empty (no images in images/)")
    jobs = []
    share = max(1, -(-slots // len(items))) if slots > 1 else 1
    for stem, label, image in items:
        for rate in rates:
            parts = 1
            if share > 1:
                w, h, _ = image_size(image)
                parts = max(1, min(share, len(tile_grid(int(w * rate), int(h * rate), size, gap))))
            jobs += [TileJob(stem, image, label, rate, part, parts) for part in range(parts)]
    return jobs
