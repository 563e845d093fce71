"""Per-image work of ``color``: correct one image file and write it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..images import read_image, write_image


@dataclass(frozen=True)
class ColorOptions:
    method: str
    fraction: Optional[float] = None
    min_pixels: int = 100
    p: float = 6.0
    jpeg_quality: int = 95
    orient: bool = True  # apply EXIF orientation (--exif auto/apply): written as it displays


def color_one(args) -> dict:
    """Correct one image file and write it (same format) to its destination."""
    from ..ops.color import correct
    from ..core import ImageError
    src, dst, opts = args
    img = read_image(src, "unchanged", orient=opts.orient)
    if img.dtype != np.uint8:
        raise ImageError(f"{src}: {img.dtype} image: only 8-bit images are supported")
    out, changed = correct(img, opts.method, opts.fraction, opts.min_pixels, opts.p)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_image(dst, out, jpeg_quality=opts.jpeg_quality)
    return {"images": 1, "unchanged": int(not changed)}


def color_pairs(inputs: Sequence[str], out: Optional[str], in_place: bool) -> list:
    """``[(source, destination)]``: folders are walked (relative names kept), files keep their names."""
    from ..core import DatasetError, OutputError
    from ..images import is_image
    pairs = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and is_image(f))
            pairs += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        else:
            raise DatasetError(f"{p}: not found")
    if not pairs:
        raise DatasetError(f"no images found in {', '.join(inputs)}")
    if in_place:
        return [(str(s), str(s)) for s, _ in pairs]
    dests = {}
    for s, rel in pairs:
        d = Path(out) / rel
        if str(d) in dests:
            raise OutputError(f"{s} and {dests[str(d)]} would both be written to {d}")
        if d.exists() and d.resolve() == s.resolve():
            raise OutputError(f"{d}: would overwrite its input (use --in-place to correct files where they are)")
        dests[str(d)] = s
    return [(str(s), d) for d, s in dests.items()]
