"""Per-image work of ``tile-dota``: the tiles (pixels and labels) of one image at one rate."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

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
    orient: bool = True  # apply the EXIF orientation (decided once, by --exif)


def tile_one(args) -> dict:
    """Write the tiles (images + DOTA labels) of one image at one rate."""
    from .. import tiling
    from ..dota import read_dota
    from ..outputs import atomic_write_text
    job, opts = args
    skipped_lines = []
    if job.label is not None:  # labels first: a broken label file fails before the image is decoded
        rec, _, skipped_lines = read_dota(job.label, opts.on_error)
        objs = tiling.prepare_objects(rec.polygons, rec.names, rec.difficult, job.rate)
    else:
        objs = tiling.prepare_objects(np.zeros((0, 4, 2)), [], [], job.rate)
    img = read_image(job.image, orient=job.orient)
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
            "dropped": stats.dropped + stats.invalid, "skipped": skipped_lines if job.part == 0 else []}


def plan_tile_jobs(root: Path, rates: Sequence[float], slots: int, size: int, gap: int, exif: str = "auto"
                   ) -> Tuple[list, List[Tuple[str, str]]]:
    """One job per image and rate, and the inputs that cannot be tiled as ``(file, reason)``.

    A folder without ``labelTxt/`` (DOTA's test split) gives image tiles only.  Where ``labelTxt/`` exists, an image
    without a label file, or a label file without an image, is such a bad input.  Every image header is read here:
    its orientation is decided once (``--exif``), and each rate is checked to give a tileable image that fits in
    memory before any work.  When there are fewer images than worker slots, an image's tiles are shared out over
    several jobs (each decodes the image itself, so it works the same on a cluster)."""
    from ..core import DatasetError, ImageError, UsageError
    from ..dota import dota_items
    from ..images import available_memory, decide_orientation, is_image, probe
    from ..tiling import tile_grid
    bad: List[Tuple[str, str]] = []
    if (root / "labelTxt").is_dir():
        items, labels_dir, _ = dota_items(root)
        for stem, label, image in items:
            if image is None:
                bad.append((label, f"{label}: label file without an image in {root / 'images'}"))
            elif label is None:
                bad.append((image, f"{image}: no label file {labels_dir / (stem + '.txt')} (other images have one)"))
        items = [it for it in items if it[1] is not None and it[2] is not None]
    elif (root / "images").is_dir():
        items = [(p.stem, None, str(p)) for p in sorted((root / "images").iterdir()) if p.is_file() and is_image(p)]
    else:
        raise DatasetError(f"{root}: no images/ folder (expected a DOTA layout: images/ + labelTxt/)")
    if not items and not bad:
        raise DatasetError(f"{root}: data set is empty (no images in images/)")
    jobs = []
    share = max(1, -(-slots // max(1, len(items)))) if slots > 1 else 1
    for stem, label, image in items:
        try:
            info = probe(image)
        except ImageError as e:
            bad.append((image, str(e)))
            continue
        orient, _ = decide_orientation(exif, info, None)
        w, h = info.size(orient)
        for rate in rates:
            rw, rh = int(round(w * rate)), int(round(h * rate))
            if rw < 1 or rh < 1:
                raise UsageError(f"--rate {rate}: {image} ({w}x{h}) would shrink to {rw}x{rh} pixels")
            need = (w * h + rw * rh) * 3
            if need > available_memory():
                raise UsageError(f"--rate {rate}: resizing {image} ({w}x{h}) to {rw}x{rh} needs {need / 1e9:.1f} GB "
                                 f"of memory; {available_memory() / 1e9:.1f} GB are available")
            parts = max(1, min(share, len(tile_grid(rw, rh, size, gap)))) if share > 1 else 1
            jobs += [TileJob(stem, image, label, rate, part, parts, orient) for part in range(parts)]
    return jobs, bad
