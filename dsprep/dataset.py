"""Open any supported data set (VOC folder, DOTA folder, packed HDF5/pickle file) as a list of records."""
from __future__ import annotations

import contextlib
import gc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np

from .core import DatasetError, DsprepError, ImageRecord, Problem, class_list


@dataclass
class Dataset:
    root: Path
    format: str  # "voc" | "dota" | "h5" | "pickle"
    records: List[ImageRecord] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (file, reason)
    classes: List[str] = field(default_factory=list)
    image_getter: Optional[Callable[[ImageRecord], np.ndarray]] = None  # packed files: BGR image of a record


class ErrorPolicy:
    """``--on-error fail|skip``: raise the first error, or record it and go on."""

    def __init__(self, mode: str = "fail"):
        if mode not in ("fail", "skip"):
            raise DsprepError(f"--on-error must be 'fail' or 'skip', not '{mode}'")
        self.mode = mode
        self.skipped: List[Tuple[str, str]] = []

    def handle(self, err: DsprepError, file: str) -> None:
        if self.mode == "fail":
            raise err
        self.skipped.append((file, str(err)))


def detect_format(path: Path) -> str:
    if not path.exists():
        raise DatasetError(f"{path}: data set not found")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".h5", ".hdf5"):
            return "h5"
        if suffix in (".pkl", ".pickle"):
            return "pickle"
        raise DatasetError(f"{path}: not a data set folder or a packed .h5/.pkl file")
    if (path / "labelTxt").is_dir():
        return "dota"
    return "voc"


def load_dataset(path, split: Optional[str] = None, on_error: str = "fail",
                 progress: Optional[Callable[[Iterable], Iterable]] = None) -> Dataset:
    """Read every annotation of a data set (images are not decoded; headers only when sizes are missing)."""
    path = Path(path)
    fmt = detect_format(path)
    policy = ErrorPolicy(on_error)
    wrap = progress or (lambda it: it)
    if fmt == "voc":
        from . import voc
        items = list(voc.iter_voc_items(path, split))
        ds = Dataset(path, "voc")
        with _bulk():
            for item in wrap(items):
                ds.problems.extend(item.problems)
                if item.xml is None:
                    continue
                try:
                    rec, probs = voc.load_voc_item(item)
                except DsprepError as e:
                    policy.handle(e, item.xml)
                    ds.problems.append(Problem("unreadable", item.xml, str(e)))
                    continue
                ds.records.append(rec)
                ds.problems.extend(probs)
    elif fmt == "dota":
        from . import dota
        ds = dota.load_dota_dataset(path, policy, wrap)
    else:
        from . import hdf5
        ds = hdf5.load_packed_dataset(path, split)
    ds.skipped = policy.skipped + ds.skipped
    if not ds.records and not ds.skipped:
        raise DatasetError(f"{path}: data set is empty (no annotated images found)")
    ds.classes = class_list(ds.records, ds.classes)
    return ds


@contextlib.contextmanager
def _bulk():
    """Pause the cyclic garbage collector while building many small records: nothing cyclic is made, and its
    repeated full scans of a growing list otherwise cost ~15% of the reading time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def summarize(ds: Dataset) -> dict:
    """Counts and ranges for ``dsprep info`` (a JSON-ready dict)."""
    per_class = Counter()
    per_class_difficult = Counter()
    n_per_image = np.array([len(r) for r in ds.records], dtype=np.int64)
    for r in ds.records:
        per_class.update(r.names)
        per_class_difficult.update(n for n, d in zip(r.names, r.difficult) if d)
    sizes = np.array([(r.width, r.height) for r in ds.records if r.width > 0 and r.height > 0],
                     dtype=np.int64).reshape(-1, 2)
    kinds = Counter(p.kind for p in ds.problems)
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
        "problem_counts": dict(sorted(kinds.items())),
        "problems": [p.as_dict() for p in ds.problems],
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
