"""Duplicate images: a minimal stand-in finding exact copies (the same pixels under another name).

``find_duplicate_groups`` is the interface ``dsprep split --group duplicates`` calls; the full ``dsprep dedup``
(near copies: resized, recompressed, cropped) replaces this module with the same function.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Dict, List, Optional

from .core import Dataset


def pixel_digest(item) -> dict:
    """``(path, orient)`` -> ``{"digest": str}``: a hash of the decoded pixels (shape, type and values)."""
    from .images import read_image
    path, orient = item
    img = read_image(path, "unchanged", orient=orient)
    h = hashlib.sha256(f"{img.shape}{img.dtype}".encode())
    h.update(img.tobytes())
    return {"digest": h.hexdigest()}


def _serial(fn, items, desc):
    for item in items:
        yield item, fn(item)


def find_duplicate_groups(ds: Dataset, run: Optional[Callable] = None, **options) -> List[List[int]]:
    """Groups (2 or more) of indices into ``ds.records`` whose images have exactly the same pixels, each sorted, in
    order of their first index.  ``run(fn, items, desc)`` yields ``(item, result)`` (a command's executor);
    default: this process.  Other options (thresholds of the full version) are accepted and not used."""
    run = run or _serial
    items: Dict[tuple, int] = {}
    for rec in ds.records:
        if rec.image_path:
            items.setdefault((rec.image_path, bool(rec.meta.get("orient", True))), len(items))
    digest = {item: result["digest"] for item, result in run(pixel_digest, list(items), "hashing")
              if result is not None}
    by_digest: Dict[str, List[int]] = {}
    for i, rec in enumerate(ds.records):
        d = digest.get((rec.image_path, bool(rec.meta.get("orient", True))))
        if d is not None:
            by_digest.setdefault(d, []).append(i)
    return [g for g in by_digest.values() if len(g) > 1]
