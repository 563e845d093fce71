"""COCO instances JSON (object detection): reading.

A COCO file is one JSON object with ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
(``id``, ``image_id``, ``category_id``, ``bbox: [x, y, w, h]``, ``area``, ``iscrowd``, ``segmentation``) and
``categories`` (``id``, ``name``).  COCO's pixel coordinates are already dsprep's (0-based, continuous), so a box
``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)`` and nothing else changes.

Each image becomes one :class:`~dsprep.core.ImageRecord` (images without annotations included), with per-object
``attrs``: ``area`` (float64: the file's ``area``, which for COCO is the segmentation's area, not the box's;
``w * h`` when absent), ``iscrowd`` (bool), ``id`` and ``category_id`` (int64); the image id is in
``rec.meta["image_id"]``.  The data set's classes are the categories in their declared order, and
``Dataset.meta["category_ids"]`` maps each name to its id.

:func:`parse_coco` is pure (bytes in); :func:`read_coco` and :func:`load` are the thin path wrappers.
"""
from __future__ import annotations

import json
import math
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .core import Dataset, DatasetError, ErrorPolicy, ImageRecord, ParseError, Problem, decide_classes

NAME = "coco"
LAYOUT = "COCO: an instances .json file (images, annotations, categories)"
_KEYS = (b'"images"', b'"annotations"', b'"categories"')


@dataclass
class CocoFile:
    """What a COCO instances file says: one record per image (``images`` order), the categories in declared
    order (``{name: id}``), and the problems found (annotations naming an unknown image or category)."""

    records: List[ImageRecord]
    categories: Dict[str, int]
    problems: List[Problem] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)


def _int_id(value, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ParseError(f"{where}: {what} must be an integer, got {value!r}")
    return int(value)


def _number(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParseError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _load_json(data: bytes, source: str):
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise ParseError(f"{source}:{e.lineno}: malformed JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def _categories(doc: dict, source: str) -> Dict[str, int]:
    out: Dict[str, int] = {}
    seen_ids: Dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        where = f"{source}: categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise ParseError(f"{where}: expected an object with 'id' and 'name', got {cat!r:.80}")
        cid = _int_id(cat["id"], "id", where)
        name = str(cat["name"])
        if cid in seen_ids:
            raise ParseError(f"{where}: category id {cid} is used twice ('{seen_ids[cid]}' and '{name}')")
        if name in out:
            raise ParseError(f"{where}: category name '{name}' is used twice (ids {out[name]} and {cid})")
        out[name] = cid
        seen_ids[cid] = name
    return out


def _images(doc: dict, source: str) -> List[Tuple[int, str, int, int]]:
    out = []
    seen = set()
    for i, img in enumerate(doc["images"]):
        where = f"{source}: images[{i}]"
        if not isinstance(img, dict) or "id" not in img:
            raise ParseError(f"{where}: expected an object with an 'id', got {img!r:.80}")
        iid = _int_id(img["id"], "id", where)
        if iid in seen:
            raise ParseError(f"{where}: image id {iid} is used twice")
        seen.add(iid)
        name = str(img.get("file_name") or f"{iid}.jpg")
        w = int(_number(img.get("width", 0) or 0, "width", where))
        h = int(_number(img.get("height", 0) or 0, "height", where))
        out.append((iid, name, w, h))
    return out


def _annotation_arrays(anns: list, source: str, policy: ErrorPolicy):
    """``(keep, image_id, category_id, xywh, area, iscrowd, ann_id)`` for the valid annotations, in file order.

    The common case is one pass of list comprehensions; on any irregularity each annotation is checked on its own
    so the error names it."""
    n = len(anns)
    try:
        img = np.array([a["image_id"] for a in anns], np.int64)
        cat = np.array([a["category_id"] for a in anns], np.int64)
        xywh = np.array([a["bbox"] for a in anns], np.float64).reshape(n, 4)
        area = np.array([a.get("area", b[2] * b[3]) for a, b in zip(anns, xywh)], np.float64)
        crowd = np.array([a.get("iscrowd", 0) for a in anns], np.int64) != 0
        ids = np.array([a.get("id", k + 1) for k, a in enumerate(anns)], np.int64)
        if np.isfinite(xywh).all() and np.isfinite(area).all():
            return np.arange(n), img, cat, xywh, area, crowd, ids
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        pass
    rows = []
    for k, a in enumerate(anns):
        where = f"{source}: annotations[{k}]"
        try:
            if not isinstance(a, dict):
                raise ParseError(f"{where}: expected an object, got {a!r:.80}")
            for key in ("image_id", "category_id", "bbox"):
                if key not in a:
                    raise ParseError(f"{where}: no '{key}'")
            bbox = a["bbox"]
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise ParseError(f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r:.80}")
            b = [_number(v, "bbox", where) for v in bbox]
            area = _number(a["area"], "area", where) if "area" in a else b[2] * b[3]
            rows.append((k, _int_id(a["image_id"], "image_id", where), _int_id(a["category_id"], "category_id",
                                                                                   where),
                         b, area, bool(a.get("iscrowd", 0)), _int_id(a.get("id", k + 1), "id", where)))
        except ParseError as e:
            policy.handle(e, f"{source}#annotations[{k}]")
    if not rows:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros((0, 4)), np.zeros(0), np.zeros(0, bool), z
    k, img, cat, b, area, crowd, ids = zip(*rows)
    return (np.array(k), np.array(img, np.int64), np.array(cat, np.int64), np.array(b, np.float64),
            np.array(area, np.float64), np.array(crowd, bool), np.array(ids, np.int64))


def parse_coco(data: bytes, source: str = "<coco>", policy: Optional[ErrorPolicy] = None) -> CocoFile:
    """Parse a COCO instances document (bytes).  Malformed JSON or a malformed image/category entry raises
    :class:`ParseError`; a malformed annotation too, or with ``policy`` in skip mode is left out and listed.
    Annotations naming an image or category the file does not declare are left out and reported as problems
    (COCOeval never looks at them either)."""
    policy = policy or ErrorPolicy("fail")
    doc = _load_json(data, source)
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                     "categories")):
        raise ParseError(f"{source}: not a COCO instances file (expected an object with lists 'images', "
                         f"'annotations' and 'categories')")
    categories = _categories(doc, source)
    name_of = {cid: name for name, cid in categories.items()}
    images = _images(doc, source)
    rows, img, cat, xywh, area, crowd, ids = _annotation_arrays(doc["annotations"], source, policy)
    problems: List[Problem] = []

    image_ids = np.array([i[0] for i in images], np.int64)
    by_id = np.argsort(image_ids, kind="stable")
    pos = np.searchsorted(image_ids[by_id], img)
    pos_c = np.minimum(pos, max(len(images) - 1, 0))
    known_img = (pos < len(images)) & (image_ids[by_id][pos_c] == img) if len(images) else np.zeros(len(img), bool)
    known_cat = np.array([c in name_of for c in cat.tolist()], bool)
    for k in np.flatnonzero(~known_img):
        problems.append(Problem("annotation_without_image", source,
                                f"annotations[{rows[k]}] names image_id {img[k]}, which 'images' does not list"))
    for k in np.flatnonzero(known_img & ~known_cat):
        problems.append(Problem("unknown_category", source,
                                f"annotations[{rows[k]}] names category_id {cat[k]}, which 'categories' does not "
                                f"list"))
    ok = known_img & known_cat
    img_index = by_id[pos_c[ok]] if len(images) else np.zeros(0, np.int64)
    cat, xywh, area, crowd, ids = cat[ok], xywh[ok], area[ok], crowd[ok], ids[ok]
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    degenerate = np.flatnonzero((xywh[:, 2] <= 0) | (xywh[:, 3] <= 0))
    for k in degenerate:
        problems.append(Problem("degenerate_box", source, f"annotation id {ids[k]}: bbox width or height <= 0"))

    order = np.argsort(img_index, kind="stable")  # objects of one image keep their file order
    starts = np.searchsorted(img_index[order], np.arange(len(images) + 1))
    names = np.array([name_of[c] for c in cat.tolist()], dtype=object)
    records = []
    for i, (iid, file_name, w, h) in enumerate(images):
        sel = order[starts[i]:starts[i + 1]]
        records.append(ImageRecord.trusted(
            image_path=file_name, width=w, height=h, depth=3, boxes=boxes[sel], names=list(names[sel]),
            difficult=np.zeros(len(sel), np.uint8), truncated=np.zeros(len(sel), bool),
            meta={"image_id": iid, "file_name": file_name, "stem": os.path.splitext(os.path.basename(file_name))[0],
                  "annotation_path": source},
            attrs={"area": area[sel], "iscrowd": crowd[sel], "id": ids[sel], "category_id": cat[sel]}))
    return CocoFile(records, categories, problems, list(policy.skipped))


def read_coco(path, policy: Optional[ErrorPolicy] = None) -> CocoFile:
    """Read and parse one COCO instances file (image paths left as the file's ``file_name``)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
    return parse_coco(data, path, policy)


def detect(path: Path) -> bool:
    """A ``.json`` file holding the keys ``images``, ``annotations`` and ``categories`` in an object (a scan for
    the three keys, no parse: cheap on a 400 MB file)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
            if not head.startswith(b"{"):
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return all(m.find(k) >= 0 for k in _KEYS)
    except (OSError, ValueError):
        return False


def _image_dir(json_path: Path, records: List[ImageRecord]) -> Optional[Path]:
    """Where the images are: beside the JSON, in ``images/`` beside it or its folder, or in the folder named after
    the file (``annotations/instances_val2017.json`` -> ``val2017/``).  Decided from the first few images."""
    here = json_path.parent
    stem = json_path.stem
    short = stem.split("_", 1)[1] if stem.startswith("instances_") else stem
    candidates = [here, here / "images", here.parent / "images", here.parent / short, here / short,
                  here.parent / "images" / short, here.parent]
    sample = [r.image_path for r in records[:5]]
    if not sample:
        return None
    for c in candidates:
        if c.is_dir() and any((c / s).is_file() for s in sample):
            return c
    return None


def load(path: Path, split: Optional[str], policy: ErrorPolicy, wrap=lambda it: it) -> Dataset:
    """A COCO instances file as a :class:`~dsprep.core.Dataset` (one record per image, images not opened)."""
    path = Path(path)
    if split is not None:
        raise DatasetError(f"{path}: a COCO file holds one split (--split {split}); give that split's JSON file")
    coco = read_coco(path, policy)
    ds = Dataset(path, NAME)
    folder = _image_dir(path, coco.records)
    if folder is None and coco.records:
        ds.problems.append(Problem("images_not_found", str(path), "no folder beside the JSON holds its images"))
    base = folder or path.parent
    for rec in wrap(coco.records):
        rec.image_path = str(base / rec.image_path)
        ds.records.append(rec)
    ds.problems.extend(coco.problems)  # (annotations skipped under --on-error skip are in policy.skipped)
    ds.classes = decide_classes(ds.records, declared=list(coco.categories))
    ds.meta["category_ids"] = dict(coco.categories)
    return ds
