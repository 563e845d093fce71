"""What ``dsprep info`` reports: counts, ranges and problems of a loaded data set (a JSON-ready dict) and its text."""
from __future__ import annotations

import os
from collections import Counter
from itertools import chain, compress
from typing import Optional

import numpy as np

from .core import Dataset, Problem


def summarize(ds: Dataset, rare_below: int = 20, masks: Optional[dict] = None) -> dict:
    """Counts and ranges for ``dsprep info`` (a JSON-ready dict), with the problems the boxes show
    (:mod:`dsprep.boxstats`: ``rare_below`` objects make a class rare), per-class box statistics, and ``masks``
    (what :func:`check_masks` found, or None when the masks were not read)."""
    from .ops.boxstats import box_problems, class_statistics, gather
    obj = gather(ds.records, ds.classes)
    problems = list(ds.problems) + box_problems(ds, rare_below, obj)
    names = list(chain.from_iterable(r.names for r in ds.records))
    difficult = np.concatenate([r.difficult for r in ds.records]) if ds.records else np.zeros(0, np.uint8)
    per_class = Counter(names)
    per_class_difficult = Counter(compress(names, (difficult != 0).tolist()))
    n_per_image = np.array([len(r.names) for r in ds.records], dtype=np.int64)
    sizes = np.array([(r.width, r.height) for r in ds.records], dtype=np.int64).reshape(-1, 2)
    sizes = sizes[(sizes[:, 0] > 0) & (sizes[:, 1] > 0)]
    kinds = Counter(p.kind for p in problems)
    out = {
        "path": str(ds.root),
        "format": ds.format,
        "images": len(ds.records),
        "objects": int(n_per_image.sum()),
        "classes": {c: per_class[c] for c in ds.classes if per_class[c]},
        "difficult": int(sum(per_class_difficult.values())),
        "difficult_per_class": {c: per_class_difficult[c] for c in ds.classes if per_class_difficult[c]},
        "image_size": None if len(sizes) == 0 else {
            "min_width": int(sizes[:, 0].min()), "max_width": int(sizes[:, 0].max()),
            "min_height": int(sizes[:, 1].min()), "max_height": int(sizes[:, 1].max())},
        "objects_per_image": None if len(n_per_image) == 0 else {
            "min": int(n_per_image.min()), "mean": round(float(n_per_image.mean()), 3),
            "max": int(n_per_image.max()), "empty_images": int((n_per_image == 0).sum())},
        "class_boxes": class_statistics(obj),
        "masks": masks,
        "problem_counts": dict(sorted(kinds.items())),
        "problems": [p.as_dict() for p in problems],
        "skipped": [{"file": f, "reason": r} for f, r in ds.skipped],
    }
    return out


def format_summary(s: dict) -> str:
    lines = [f"{s['path']} ({s['format']})",
             f"images: {s['images']}   objects: {s['objects']}   difficult: {s['difficult']}"]
    if s["image_size"]:
        z = s["image_size"]
        lines.append(f"image size: {z['min_width']}-{z['max_width']} x {z['min_height']}-{z['max_height']} px")
    if s["objects_per_image"]:
        o = s["objects_per_image"]
        lines.append(f"objects per image: min {o['min']}, mean {o['mean']}, max {o['max']} "
                     f"({o['empty_images']} images without objects)")
    if s["classes"]:
        width = max(len(c) for c in s["classes"])
        lines.append("classes:")
        for c, n in sorted(s["classes"].items(), key=lambda kv: (-kv[1], kv[0])):
            d = s["difficult_per_class"].get(c, 0)
            lines.append(f"  {c:<{width}}  {n:>7}" + (f"  ({d} difficult)" if d else ""))
    if s.get("masks"):
        m = s["masks"]
        lines.append(f"masks: {m['objects']} objects in {m['images']} images, {m['pixels']:,} pixels (per class: "
                     f"objects, pixels)")
        if m["classes"]:
            width = max(len(c) for c in m["classes"])
            for c, v in sorted(m["classes"].items(), key=lambda kv: (-kv[1]["mask_pixels"], kv[0])):
                lines.append(f"  {c:<{width}}  {v['objects']:>7}  {v['mask_pixels']:>12,}")
    if s["problem_counts"]:
        lines.append("problems:")
        for kind, n in s["problem_counts"].items():
            lines.append(f"  {kind}: {n}")
        shown = s["problems"][:20]
        for p in shown:
            lines.append(f"    {p['file']}: {p['kind']}" + (f": {p['detail']}" if p["detail"] else ""))
        if len(s["problems"]) > len(shown):
            lines.append(f"    ... {len(s['problems']) - len(shown)} more (use --json for all)")
    else:
        lines.append("problems: none")
    if s["skipped"]:
        lines.append(f"skipped {len(s['skipped'])} files:")
        lines.extend(f"  {x['reason']}" for x in s["skipped"])
    return "\n".join(lines)


def check_images(ds: Dataset, run) -> None:
    """Decode every image of ``ds`` (through ``run(fn, items, desc)``, the command's executor) and add a problem
    for each one that cannot be decoded; the decoder refuses empty, truncated and corrupt files (a JPEG whose data
    is cut short before its end marker included).  A decoder warning that does not change the pixels (extraneous
    bytes before a JPEG marker) is a ``jpeg_warning`` problem."""
    from .jobs.check import check_one
    items = [(rec.image_path, rec.meta.get("orient", True)) for rec in ds.records
             if rec.image_path and os.path.isfile(rec.image_path)]
    already = {p.file for p in ds.problems if p.kind in ("image_unreadable", "truncated_image")}
    for (path, _), result in run(check_one, items, "decoding"):
        if result is not None and result["error"] and path not in already:
            ds.problems.append(Problem(result["kind"], path, result["error"]))
        elif result is not None:
            ds.problems += [Problem("jpeg_warning", path, f"libjpeg: {w} (the pixels decode whole)")
                            for w in result.get("warnings", ())]


def check_masks(ds: Dataset, run) -> Optional[dict]:
    """Read every record's object masks (through ``run(fn, items, desc)``, the command's executor), add the
    problems they show to ``ds.problems`` (:mod:`dsprep.ops.maskstats`: ``mask_outside_box``, ``mask_empty``,
    ``mask_unreadable``), and return what :func:`summarize` reports as ``masks``: ``{"images", "objects",
    "pixels", "classes": {name: {"objects", "mask_pixels"}}}`` (images and objects with a mask; pixels inside the
    boxes, as every command reads them), or None when no image has masks."""
    from .jobs.masks import mask_stats_one
    from .ops.maskstats import class_pixels
    items = [(rec, ds.format) for rec in ds.records if len(rec) and rec.width > 0]  # (no size: reported already)
    names: list = []
    pixels: list = []
    images = 0
    for (rec, _), result in run(mask_stats_one, items, "reading masks"):
        if result is None:  # (--on-error skip: listed by the run)
            continue
        ds.problems.extend(result["problems"])
        if result["pixels"] is not None:
            images += 1
            names += rec.names
            pixels += result["pixels"]
    if not images:
        return None
    classes = class_pixels(names, pixels, ds.classes)
    return {"images": images, "objects": sum(v["objects"] for v in classes.values()),
            "pixels": sum(v["mask_pixels"] for v in classes.values()), "classes": classes}
