"""COCO instances JSON (object detection): parse and format, read and write data sets of one or several splits.

A COCO file is one JSON object with ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
(``id``, ``image_id``, ``category_id``, ``bbox: [x, y, w, h]``, ``area``, ``iscrowd``, ``segmentation``) and
``categories`` (``id``, ``name``, ``supercategory``).  COCO's pixel coordinates are already dsprep's (0-based,
continuous), so a box ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)`` and nothing else changes.

Each image becomes one :class:`~dsprep.core.ImageRecord` (images without annotations included), with per-object
``attrs``: ``area`` (float64: the file's ``area``, which for COCO is the segmentation's area, not the box's;
``w * h`` when absent), ``iscrowd`` (bool), ``id`` and ``category_id`` (int64), ``segmentation`` (as in the file:
polygon rings, an RLE mask, or ``[]``; see :mod:`dsprep.formats.shapes`) and, when the file has them, ``coco_extra`` (the
annotation's other keys, e.g. CVAT's ``attributes``).  The image id is in ``rec.meta["image_id"]``, the image
entry itself (for its other keys) in ``rec.meta["coco_image"]``.  A record whose objects are all single 4-point
polygons also gets them as quadrilaterals (``rec.polygons``: DOTA-like data converted to COCO comes back as it
was).  The arrays of one file's records are slices of shared arrays (nothing modifies a record's arrays in place).

The data set's classes are the categories in their declared order, and ``Dataset.meta`` keeps ``category_ids``
(name -> id, ids as in the file: neither 0- nor 1-based nor contiguous is assumed), ``supercategories`` and the
category entries, ``info`` and ``licenses``, so writing COCO again keeps them.

Layouts (:func:`find_files`): one ``.json`` file; ``annotations/instances_<split>.json`` (COCO 2017, CVAT,
Datumaro; images in ``<split>/``, ``images/<split>/`` or ``images/``); Roboflow's ``<split>/_annotations.coco.json``
with the images beside it; Label Studio's ``result.json`` beside ``images/``.  Several files are several splits.

:func:`parse_coco` is pure (bytes in); :func:`read_coco` and :func:`load` are the thin path wrappers.

Why one module: one format -- the parser (with its error positions), the loader, object masks and the writer share
the document's id tables.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from ..core import (MAX_COORDINATE, Dataset, DatasetError, DsprepError, ErrorPolicy, FormatWriter, ImageRecord,
                   ParseError, Problem, decide_classes)
from ..datapaths import OutsideDataset, named_path
from ..inputs import json_object_with_keys
from .common import bulk, json_number, shape_masks
from .spec import FormatSpec, Holds, ReadContext

NAME = "coco"
LAYOUT = "COCO: an instances .json file (images, annotations, categories), or annotations/instances_*.json"
_KEYS = (b'"images"', b'"annotations"', b'"categories"')
_ANN_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"})
_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_NUMBERS = itemgetter("image_id", "category_id", "area", "iscrowd", "id")


@dataclass
class CocoFile:
    """What a COCO instances file says: one record per image (``images`` order), the categories in declared
    order (``{name: id}``), and the problems found."""

    records: List[ImageRecord]
    categories: Dict[str, int]
    problems: List[Problem] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    category_entries: List[dict] = field(default_factory=list)  # the file's category objects, declared order
    info: Optional[dict] = None
    licenses: Optional[list] = None


def _int_id(value, what: str, where) -> int:
    """``where``: the place for the message, or a function giving it (computed only on error)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ParseError(f"{where() if callable(where) else where}: {what} must be an integer, got {value!r}")
    if not -2 ** 63 <= value < 2 ** 63:  # ids are int64 (a larger one may even reach us as a float: not exact)
        raise ParseError(f"{where() if callable(where) else where}: {what} {value!r} is too large (ids are below 2^63)")
    return int(value)


def _number(value, what: str, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParseError(f"{where() if callable(where) else where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _load_json(data: bytes, source: str):
    from ..inputs import parse_json
    return parse_json(data, source)


def _where(data: bytes, source: str, key: str, k: int) -> str:
    from .jsonpos import element_line
    return f"{source}:{element_line(data, key, k)}: {key}[{k}]"


def _categories(doc: dict, source: str, data: bytes) -> Tuple[Dict[str, int], List[dict]]:
    out: Dict[str, int] = {}
    seen_ids: Dict[int, str] = {}
    entries = []
    for i, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise ParseError(f"{_where(data, source, 'categories', i)}: expected an object with 'id' and 'name', "
                             f"got {cat!r:.80}")
        where = _where(data, source, "categories", i) if False else f"{source}: categories[{i}]"
        cid = _int_id(cat["id"], "id", where)
        name = str(cat["name"])
        if cid in seen_ids:
            raise ParseError(f"{_where(data, source, 'categories', i)}: category id {cid} is used twice "
                             f"('{seen_ids[cid]}' and '{name}')")
        if name in out:
            raise ParseError(f"{_where(data, source, 'categories', i)}: category name '{name}' is used twice (ids "
                             f"{out[name]} and {cid})")
        out[name] = cid
        seen_ids[cid] = name
        entries.append(cat)
    return out, entries


def _images(doc: dict, source: str, data: bytes) -> List[Tuple[int, str, int, int, dict]]:
    imgs = doc["images"]
    n = len(imgs)
    try:  # the common case in C-level passes; any irregularity is found and named by the checked loop below
        ids = np.fromiter(map(itemgetter("id"), imgs), np.int64, n)
        raw_ids = list(map(itemgetter("id"), imgs))
        names = list(map(methodcaller("get", "file_name"), imgs))
        wh = np.array([list(map(methodcaller("get", "width", 0), imgs)),
                       list(map(methodcaller("get", "height", 0), imgs))], np.float64).reshape(2, n)
        if all(type(v) is int for v in raw_ids) and len(np.unique(ids)) == n and np.isfinite(wh).all() and \
                (wh >= 0).all() and None not in names and all(type(v) is str for v in names):
            return list(zip(ids.tolist(), names, wh[0].astype(np.int64).tolist(), wh[1].astype(np.int64).tolist(),
                            imgs))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        pass
    out = []
    seen = set()
    for i, img in enumerate(imgs):
        if not isinstance(img, dict) or "id" not in img:
            raise ParseError(f"{_where(data, source, 'images', i)}: expected an object with an 'id', got {img!r:.80}")
        where = lambda: _where(data, source, "images", i)  # noqa: E731, B023 (computed only on error, in this turn)
        iid = _int_id(img["id"], "id", where)
        if iid in seen:
            raise ParseError(f"{_where(data, source, 'images', i)}: image id {iid} is used twice")
        seen.add(iid)
        name = str(img.get("file_name") or f"{iid}.jpg")
        w = int(_number(img.get("width", 0) or 0, "width", where))
        h = int(_number(img.get("height", 0) or 0, "height", where))
        if w < 0 or h < 0:
            raise ParseError(f"{where()}: width and height must not be negative, got {w}x{h}")
        out.append((iid, name, w, h, img))
    return out


def _annotation_arrays(anns: list, source: str, policy: ErrorPolicy, data: bytes):
    """``(rows, image_id, category_id, xywh, area, iscrowd, ann_id, segmentation, complete)`` for the valid
    annotations, in file order (``rows``: their indices in ``annotations``; ``complete``: every annotation has all
    seven standard keys).

    The common case is a few C-level passes (``map`` with ``itemgetter``); on any irregularity each annotation is
    checked on its own so the error names it (and its line)."""
    n = len(anns)
    try:
        bboxes = list(map(itemgetter("bbox"), anns))
        if (np.fromiter(map(len, bboxes), np.int64, n) != 4).any():
            raise ValueError("a bbox without 4 numbers")
        xywh = np.fromiter(chain.from_iterable(bboxes), np.float64, 4 * n).reshape(n, 4)
        complete = True
        try:  # every key present: one C-level pass for the five numbers (integers exact below 2**53, checked)
            num = np.fromiter(chain.from_iterable(map(_NUMBERS, anns)), np.float64, 5 * n).reshape(n, 5)
            whole = num[:, [0, 1, 3, 4]]
            if np.abs(whole).max(initial=0) >= 2 ** 53 or (whole != np.floor(whole)).any():
                raise ValueError("an id or crowd flag that is not an integer")
            img, cat, crowd_raw, ids = (num[:, i].astype(np.int64) for i in (0, 1, 3, 4))
            area = num[:, 2]
            segs = list(map(itemgetter("segmentation"), anns))
        except (KeyError, TypeError):  # some missing (or null): defaults, w * h and k + 1 as documented
            complete = False
            img = np.fromiter(map(itemgetter("image_id"), anns), np.int64, n)
            cat = np.fromiter(map(itemgetter("category_id"), anns), np.int64, n)
            area_raw = list(map(methodcaller("get", "area"), anns))
            if None in area_raw:
                area_raw = [xywh[k, 2] * xywh[k, 3] if a is None else a for k, a in enumerate(area_raw)]
            area = np.array(area_raw, np.float64)
            crowd_raw = np.array([0 if c is None else c for c in map(methodcaller("get", "iscrowd", 0), anns)],
                                 np.int64)
            id_raw = list(map(methodcaller("get", "id"), anns))
            if None in id_raw:
                id_raw = [k + 1 if a is None else a for k, a in enumerate(id_raw)]
            ids = np.array(id_raw, np.int64)
            segs = list(map(methodcaller("get", "segmentation"), anns))
        crowd = crowd_raw != 0
        if area.shape == (n,) and ids.shape == (n,) and (np.abs(xywh) <= MAX_COORDINATE).all() and \
                np.isfinite(area).all() and ((crowd_raw == 0) | (crowd_raw == 1)).all():
            return np.arange(n), img, cat, xywh, area, crowd, ids, segs, complete
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
            if not all(abs(v) <= MAX_COORDINATE for v in b):
                raise ParseError(f"{where}: bbox {bbox!r:.80} is beyond any image (|value| > {MAX_COORDINATE:.0e})")
            ann_area = _number(a["area"], "area", where) if a.get("area") is not None else b[2] * b[3]
            crowd = a.get("iscrowd", 0)
            if crowd not in (0, 1, True, False, None):
                raise ParseError(f"{where}: iscrowd must be 0 or 1, got {crowd!r:.20}")
            rows.append((k, _int_id(a["image_id"], "image_id", where),
                         _int_id(a["category_id"], "category_id", where), b, ann_area, bool(crowd),
                         _int_id(a["id"], "id", where) if a.get("id") is not None else k + 1,
                         a.get("segmentation")))
        except ParseError as e:
            msg = str(e).replace(f"{source}: annotations[{k}]", _where(data, source, "annotations", k), 1)
            policy.handle(ParseError(msg), f"{source}#object{k}")
    if not rows:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros((0, 4)), np.zeros(0), np.zeros(0, bool), z, [], False
    c_k, c_img, c_cat, c_b, c_area, c_crowd, c_ids, c_segs = zip(*rows)  # the rows' columns
    return (np.array(c_k), np.array(c_img, np.int64), np.array(c_cat, np.int64), np.array(c_b, np.float64),
            np.array(c_area, np.float64), np.array(c_crowd, bool), np.array(c_ids, np.int64), list(c_segs), False)


def _quads(segs: list) -> np.ndarray:
    """``(N,) bool``: which segmentations are exactly one 4-point ring (C-level passes; types checked only on the
    few candidates)."""
    n = len(segs)
    try:
        rings = np.fromiter(map(len, segs), np.int64, n)
    except TypeError:  # a missing segmentation (None)
        rings = np.fromiter((len(s) if s is not None else 0 for s in segs), np.int64, n)
    out = np.zeros(n, bool)
    one = rings == 1
    if one.any():
        firsts = list(compress(segs, one.tolist()))
        try:
            inner = np.fromiter(map(len, map(itemgetter(0), firsts)), np.int64, len(firsts))
        except (TypeError, KeyError):
            inner = np.fromiter((len(s[0]) if isinstance(s, list) and isinstance(s[0], list) else 0 for s in firsts),
                                np.int64, len(firsts))
        cand = np.flatnonzero(one)[inner == 8]
        out[cand] = [type(segs[k]) is list and type(segs[k][0]) is list for k in cand.tolist()]
    return out


def _lookup(keys: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(index into keys, found)`` for each value (keys need not be sorted)."""
    if len(keys) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    order = np.argsort(keys, kind="stable")
    pos = np.minimum(np.searchsorted(keys[order], values), len(keys) - 1)
    idx = order[pos]
    return idx, keys[idx] == values


def parse_coco(data: bytes, source: str = "<coco>", policy: Optional[ErrorPolicy] = None) -> CocoFile:
    """Parse a COCO instances document (bytes).

    Malformed JSON or a malformed image/category entry raises :class:`ParseError` naming the file and line.  A
    malformed annotation, or one naming an image or category the file does not declare, raises too, or with
    ``policy`` in skip mode is left out and listed (``file#objectK``).

    The cyclic garbage collector is paused meanwhile (as :func:`dsprep.dataset.load_dataset` does): the document
    and the records hold no cycles, and its repeated scans of the growing heap would cost a third of the time."""
    with bulk():
        return _parse(data, source, policy or ErrorPolicy("fail"))


def _parse(data: bytes, source: str, policy: ErrorPolicy) -> CocoFile:
    doc = _load_json(data, source)
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                     "categories")):
        raise ParseError(f"{source}: not a COCO instances file (expected an object with lists 'images', "
                         f"'annotations' and 'categories')")
    categories, cat_entries = _categories(doc, source, data)
    cat_names = np.array(list(categories), dtype=object)
    cat_ids = np.array(list(categories.values()), np.int64)
    images = _images(doc, source, data)
    anns = doc["annotations"]
    rows, img, cat, xywh, area, crowd, ids, segs, complete = _annotation_arrays(anns, source, policy, data)
    problems: List[Problem] = []

    image_ids = np.array([i[0] for i in images], np.int64)
    img_index, known_img = _lookup(image_ids, img)
    cat_index, known_cat = _lookup(cat_ids, cat)
    bad = np.flatnonzero(~(known_img & known_cat))
    if len(bad):
        from .jsonpos import element_lines
        lines = element_lines(data, "annotations", rows[bad].tolist())
        for k in bad:
            r = int(rows[k])
            what = (f"names image_id {img[k]}, which 'images' does not list" if not known_img[k] else
                    f"names category_id {cat[k]}, which 'categories' does not list")
            policy.handle(ParseError(f"{source}:{lines.get(r, 1)}: annotations[{r}] (id {ids[k]}) {what}"),
                          f"{source}#object{r}")
    ok = known_img & known_cat
    if not ok.all():
        keep = np.flatnonzero(ok)
        img_index, cat_index, xywh, area, crowd, ids = (img_index[keep], cat_index[keep], xywh[keep], area[keep],
                                                        crowd[keep], ids[keep])
        segs = [segs[k] for k in keep.tolist()]
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    degenerate = np.flatnonzero((xywh[:, 2] <= 0) | (xywh[:, 3] <= 0))
    for k in degenerate:
        problems.append(Problem("degenerate_box", source, f"annotation id {ids[k]}: bbox width or height <= 0"))
    quad = _quads(segs)
    extras = None
    sizes = np.fromiter(map(len, anns), np.int64, len(anns)) if anns and isinstance(anns[0], dict) else None
    # 7 keys, all of them read above: nothing else in that annotation (the usual case, found without a key scan)
    if sizes is not None and not (complete and (sizes == len(_ANN_KEYS)).all()) and \
            set().union(*(a.keys() for a in anns if isinstance(a, dict))) - _ANN_KEYS:
        kept = rows if ok.all() else rows[np.flatnonzero(ok)]
        extras = [{k: v for k, v in anns[r].items() if k not in _ANN_KEYS} or None for r in kept.tolist()]

    # One stable sort by image, then every per-image array is a slice (a view: records of one file share their
    # arrays' memory, which nothing modifies in place) -- no per-image fancy indexing.
    order = np.argsort(img_index, kind="stable")  # objects of one image keep their file order
    bounds = np.searchsorted(img_index[order], np.arange(len(images) + 1)).tolist()
    boxes, area, crowd, ids = boxes[order], area[order], crowd[order], ids[order]
    cat_sorted = cat_ids[cat_index[order]]
    names = cat_names[cat_index[order]].tolist()
    order_list = order.tolist()
    segs = list(map(segs.__getitem__, order_list))
    if extras is not None:
        extras = list(map(extras.__getitem__, order_list))
    all_quads = np.zeros(len(images), bool)
    if quad.any():
        bad_before = np.concatenate([[0], np.cumsum(~quad[order])])
        lo, hi = np.array(bounds[:-1]), np.array(bounds[1:])
        all_quads = (bad_before[hi] == bad_before[lo]) & (hi > lo)
    zeros_u8, zeros_b = np.zeros(len(order), np.uint8), np.zeros(len(order), bool)
    if extras is not None:  # difficult / truncated kept in an annotation's "attributes" (CVAT, Datumaro, dsprep)
        zeros_u8, zeros_b = _flags_from_attributes(extras, zeros_u8, zeros_b)
    records = []
    all_quads_list = all_quads.tolist()
    for i, (iid, file_name, w, h, extra) in enumerate(images):
        a, b = bounds[i], bounds[i + 1]
        seg_sel = segs[a:b]
        polygons = np.array([s[0] for s in seg_sel], np.float64).reshape(b - a, 4, 2) if all_quads_list[i] else None
        attrs = {"area": area[a:b], "iscrowd": crowd[a:b], "id": ids[a:b], "category_id": cat_sorted[a:b],
                 "segmentation": seg_sel}
        if extras is not None:
            attrs["coco_extra"] = extras[a:b]
        base = file_name.rpartition("/")[2].rpartition("\\")[2]
        stem, dot, _ = base.rpartition(".")
        meta = {"image_id": iid, "file_name": file_name, "stem": stem if dot and stem else base,
                "annotation_path": source}
        if len(extra) > 4:
            meta["coco_image"] = extra  # the image entry itself: its other keys are written back (not copied here)
        records.append(ImageRecord.trusted(file_name, w, h, 3, boxes[a:b], names[a:b], zeros_u8[a:b], zeros_b[a:b],
                                           polygons, None, meta, attrs))
    info = doc.get("info") if isinstance(doc.get("info"), dict) else None
    licenses = doc.get("licenses") if isinstance(doc.get("licenses"), list) else None
    return CocoFile(records, categories, problems, list(policy.skipped), cat_entries, info, licenses)


def _flag_value(v) -> int:
    """An attribute's value as a flag: true/1/"true"/"1" -> 1, a DOTA-style 2 stays 2, anything else 0."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return 2 if v == 2 else int(v != 0)
    if isinstance(v, str):
        return int(v.strip().lower() in ("1", "true", "yes"))
    return 0


def _flags_from_attributes(extras: list, difficult: np.ndarray, truncated: np.ndarray):
    """``(difficult, truncated)`` with the values an annotation's ``attributes`` dict states (new arrays)."""
    difficult, truncated = difficult.copy(), truncated.copy()
    for k, e in enumerate(extras):
        a = e.get("attributes") if e else None
        if isinstance(a, dict):
            if "difficult" in a:
                difficult[k] = _flag_value(a["difficult"])
            if "truncated" in a:
                truncated[k] = bool(_flag_value(a["truncated"]))
    return difficult, truncated


def _with_flags(extra: Optional[dict], difficult: int, truncated: bool) -> Optional[dict]:
    """The annotation's other keys with ``attributes.difficult`` / ``attributes.truncated`` stated where set (or
    already stated): where CVAT and Datumaro keep per-object attributes, which pycocotools ignores."""
    attrs = dict((extra or {}).get("attributes") or {}) if isinstance((extra or {}).get("attributes"), dict) else {}
    for key, value in (("difficult", (True if difficult == 1 else int(difficult)) if difficult else False),
                       ("truncated", bool(truncated))):
        if (value or key in attrs) and _flag_value(attrs.get(key)) != _flag_value(value):
            attrs[key] = value  # (a value already meaning the same, e.g. "true", is left as written)
    if not attrs:
        return extra
    return {**(extra or {}), "attributes": attrs}


def read_coco(path, policy: Optional[ErrorPolicy] = None) -> CocoFile:
    """Read and parse one COCO instances file (image paths left as the file's ``file_name``)."""
    from ..inputs import read_bytes
    path = str(path)
    return parse_coco(read_bytes(path), path, policy)


# ---- layouts ------------------------------------------------------------------------------------------------------

def is_coco_file(path: Path) -> bool:
    """A ``.json`` file holding the keys ``images``, ``annotations`` and ``categories`` in an object (a scan for
    the three keys, no parse: cheap on a 400 MB file)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() == ".json" and json_object_with_keys(path, _KEYS)


# COCO's own task files, ``<task>_<split>.json``; the first ones have boxes, in the order a folder is read
TASKS_WITH_BOXES = ("instances", "person_keypoints", "stuff")
TASKS = TASKS_WITH_BOXES + ("panoptic", "captions", "image_info", "densepose")


def task_of(json_path: Path) -> Optional[str]:
    """``person_keypoints_val2017.json`` -> ``person_keypoints``; None for a name that is not ``<task>_<split>``."""
    stem = Path(json_path).stem
    return next((t for t in TASKS if stem.startswith(t + "_") and len(stem) > len(t) + 1), None)


def split_name(json_path: Path, several: bool) -> Optional[str]:
    """``instances_val2017.json`` (and ``person_keypoints_val2017.json``, ``stuff_val2017.json`` ...) ->
    ``val2017``; Roboflow's ``train/_annotations.coco.json`` -> ``train``; other names -> their stem when the
    data set has several files, else None."""
    stem = json_path.stem
    task = task_of(json_path)
    if task is not None:
        return stem[len(task) + 1:]
    if json_path.name == "_annotations.coco.json":
        return json_path.parent.name
    return stem if several else None


def find_files(root: Path) -> List[Path]:
    """The COCO instances files of a data set folder (see the module docstring), or ``[root]`` for a file."""
    root = Path(root)
    if root.is_file():
        return [root] if is_coco_file(root) else []
    if not root.is_dir():
        return []
    ann = root / "annotations"
    # files named as COCO names them are COCO files even when damaged (truncated, not UTF-8, a key missing): the
    # reader then says what is wrong with them, where a key scan would pass the folder on to another format
    if ann.is_dir():
        found = sorted(p for p in ann.glob("*.json") if p.name.startswith("instances_") or is_coco_file(p))
        # one task per data set (the same images annotated again would count their objects twice): instances,
        # else the keypoints, else the stuff files; the other files are named by unread_files
        for task in TASKS_WITH_BOXES:
            of_task = [p for p in found if task_of(p) == task]
            if of_task:
                return of_task
        found = [p for p in found if task_of(p) is None]
        if found:
            return found
    roboflow = sorted(p for p in root.glob("*/_annotations.coco.json") if p.is_file())
    if roboflow:
        return roboflow
    here = sorted(root.glob("*.json"))
    if here and all(is_coco_file(p) for p in here):
        return here
    return []


def detect(path: Path) -> bool:
    return bool(find_files(Path(path)))


def unread_files(root: Path, files: Sequence[Path]) -> List[Problem]:
    """One ``coco_files_not_read`` problem naming the other ``.json`` files of ``annotations/`` that may hold boxes
    (another task's files beside the instances: give a file's path to read it).  Captions, image info and
    panoptic files hold no boxes of their own: not named."""
    ann = Path(root) / "annotations"
    if Path(root).is_file() or not ann.is_dir():
        return []
    chosen = {Path(f) for f in files}
    rest = sorted(p.name for p in ann.glob("*.json")
                  if p not in chosen and task_of(p) in TASKS_WITH_BOXES + (None,))
    if not rest:
        return []
    return [Problem("coco_files_not_read", str(ann),
                    f"{len(rest)} other JSON file{'s' if len(rest) > 1 else ''} not read ({', '.join(rest)}): read "
                    f"{', '.join(sorted(p.name for p in chosen))}; give another file's path to read it instead")]


def _image_dir(json_path: Path, records: List[ImageRecord], split: Optional[str]) -> Optional[Path]:
    """Where the images are: beside the JSON, in ``images/`` beside it or its folder, or in the folder named after
    the split (``annotations/instances_val2017.json`` -> ``val2017/`` or ``images/val2017/``).  Decided from the
    first few images."""
    here = json_path.parent
    shorts = [split or json_path.stem]
    stem = json_path.stem  # <task>_<split>: person_keypoints_val2017 -> keypoints_val2017, val2017
    shorts += [stem[i + 1:] for i, c in enumerate(stem) if c == "_" and stem[i + 1:] not in shorts]
    candidates = [here, here / "images"]
    for short in shorts:
        candidates += [here.parent / short, here.parent / "images" / short]
    candidates += [here.parent / "images"] + [here / short for short in shorts] + [here.parent]
    sample = [r.image_path.replace("\\", "/") for r in records[:5]]
    if not sample:
        return None
    from ..datapaths import is_inside, lexical
    for c in candidates:  # (a name reaching outside the candidate folder says nothing about it)
        if c.is_dir() and any(((c / s).is_file() and is_inside(lexical(s, str(c)), [str(c)]))
                              or (c / os.path.basename(s)).is_file() for s in sample):
            return c
    return None


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    """A COCO data set (one file, or one file per split) as a :class:`~dsprep.core.Dataset`; images not opened.

    The class list is every file's categories in declared order (the first file's first); a category name with
    different ids in different files keeps the first id (reported as ``category_id_conflict``)."""
    policy, wrap = ctx.policy, ctx.progress
    path = Path(path)
    files = find_files(path)
    if not files:
        raise DatasetError(f"{path}: no COCO instances file found ({LAYOUT})")
    several = len(files) > 1
    names = {f: split_name(f, several) for f in files}
    if split is not None:
        avail = sorted(n for n in names.values() if n)
        if split not in avail:
            raise DatasetError(f"{path}: no split '{split}' (available: {', '.join(avail) or 'none'}; a COCO file "
                               f"holds one split: give that split's JSON file)")
    ds = Dataset(path, NAME)
    ds.problems.extend(unread_files(path, files))
    category_ids: Dict[str, int] = {}
    entries: Dict[str, dict] = {}
    other_names: List[ImageRecord] = []
    for f in files:
        if split is not None and names[f] != split:
            try:
                other = read_coco(f, ErrorPolicy("skip"))
            except DsprepError:
                continue
            _merge_categories(ds, other, category_ids, entries, f)
            other_names += other.records
            continue
        coco = read_coco(f, policy)
        _merge_categories(ds, coco, category_ids, entries, f)
        folder = _image_dir(f, coco.records, names[f])
        if folder is None and coco.records:
            ds.problems.append(Problem("images_not_found", str(f), "no folder beside the JSON holds its images"))
        base = folder or f.parent
        roots = [str(path if path.is_dir() else f.parent), str(base)]
        for rec in wrap(coco.records):
            named = rec.image_path.replace("\\", "/")
            try:
                image = Path(named_path(named, str(base), roots, str(f),
                                        f"image id {rec.meta['image_id']}: file_name '{rec.image_path}'"))
            except OutsideDataset as e:
                image = base / os.path.basename(named)
                if not image.is_file():
                    policy.handle(e, f"{f}#image{rec.meta['image_id']}")
                    continue
            if not image.is_file():
                alt = base / os.path.basename(named)
                if alt.is_file():
                    image = alt
                elif folder is not None:
                    ds.problems.append(Problem("annotation_without_image", str(f),
                                               f"image id {rec.meta['image_id']}: {named} not found in {base}"))
            rec.image_path = str(image)
            rec.split = names[f]
            ds.records.append(rec)
        ds.problems.extend(coco.problems)
        if coco.info is not None:
            ds.meta.setdefault("info", coco.info)
        if coco.licenses is not None:
            ds.meta.setdefault("licenses", coco.licenses)
    ds.classes = decide_classes(ds.records + other_names, declared=list(category_ids))
    ds.meta["category_ids"] = dict(category_ids)
    ds.meta["supercategories"] = {n: e.get("supercategory") for n, e in entries.items()
                                  if e.get("supercategory") is not None}
    ds.meta["coco_categories"] = entries
    return ds


def _merge_categories(ds: Dataset, coco: CocoFile, ids: Dict[str, int], entries: Dict[str, dict], f: Path) -> None:
    for name, cid in coco.categories.items():
        if name not in ids:
            ids[name] = cid
            entries[name] = next(e for e in coco.category_entries if str(e["name"]) == name)
        elif ids[name] != cid:
            ds.problems.append(Problem("category_id_conflict", str(f),
                                       f"category '{name}' has id {cid} here and {ids[name]} in an earlier file "
                                       f"(kept {ids[name]})"))


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known: boxes reaching outside the image reported (kept as they are, so COCO -> COCO loses
    nothing)."""
    if rec.width <= 0 or len(rec) == 0:
        return rec, []
    b = rec.boxes
    out = np.flatnonzero((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > rec.width) | (b[:, 3] > rec.height))
    source = rec.meta.get("annotation_path", rec.image_path)
    ids = rec.attrs.get("id")
    return rec, [Problem("box_outside_image", source,
                         f"annotation id {ids[k] if ids is not None else k} ({rec.names[k]}) extends outside the "
                         f"{rec.width}x{rec.height} image {rec.meta.get('file_name', '')}".rstrip())
                 for k in out]


def object_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """Each object's pixels over its pixel bounds (``crop.pixel_bounds``, no pad): polygon rings rasterized (pixel
    centres inside), RLE masks decoded; None for box-only objects; None when no object has a shape."""
    from .shapes import segmentation_mask, unreadable

    def mask_of(k, seg, quad, bounds):
        if not seg and quad is not None:
            seg = [[float(v) for v in quad.reshape(-1)]]
        try:
            return segmentation_mask(seg, bounds, (rec.width, rec.height)) if seg else None
        except (ValueError, KeyError, TypeError) as e:
            raise unreadable(rec, k, e) from e
    return shape_masks(rec, mask_of)


# ---- writing --------------------------------------------------------------------------------------------------

def _extent(lo: float, hi: float) -> float:
    """The width to write for a box from ``lo`` to ``hi``: the shortest decimal ``w`` with ``lo + w == hi`` in
    floating point (so reading it back gives ``hi`` exactly, and ``[10.26, 4.9, 14.04, 28.22]`` stays as written
    rather than becoming ``14.039999999999997``), else ``hi - lo``."""
    w = hi - lo
    if lo + w != hi or w == 0 or float(w).is_integer():
        return w
    for digits in range(1, 17):
        c = round(w, digits)
        if lo + c == hi:
            return c
    return w


def _unique_ids(wanted: Sequence[Optional[int]], start: int = 1) -> Tuple[List[int], int]:
    """Keep each wanted id that is set and not yet taken; give the others new ids above every wanted one.
    Returns ``(ids, how many were changed)``."""
    taken = set()
    out: List[Optional[int]] = []
    for w in wanted:
        if w is not None and w not in taken:
            taken.add(w)
            out.append(w)
        else:
            out.append(None)
    nxt = max([start - 1] + [w for w in wanted if w is not None]) + 1
    changed = 0
    for i, v in enumerate(out):
        if v is None:
            out[i] = nxt
            nxt += 1
            changed += wanted[i] is not None
    return cast(List[int], out), changed  # every None was replaced above


class Writer(FormatWriter):
    """``annotations/instances_<split>.json`` + ``images/<split>/`` (the Datumaro / CVAT layout; records without a
    split are ``default``).

    Ids: category ids are kept from the source (``options["dataset_meta"]["category_ids"]``), new categories get
    ids from 1 (never 0) above the kept ones; image and annotation ids are kept when unique across every split
    written, else renumbered and counted (``image_id_renumbered``, ``annotation_id_renumbered``).  ``area``,
    ``iscrowd``, ``segmentation`` (polygons and RLE), supercategories, ``info``/``licenses`` and the entries' other
    keys are written back as read; quadrilaterals become 4-point polygons."""

    NAME = NAME
    HANDLES_ATTRS = frozenset({"segmentation", "iscrowd"})
    KEEPS_FLAGS = frozenset({"difficult", "truncated"})  # in the annotation's "attributes" (as CVAT, Datumaro)

    def __init__(self, classes, options=None):
        super().__init__(classes, options)
        self.meta = dict(self.options.get("dataset_meta") or {})
        self.lossy: Dict[str, int] = {}

    def split_of(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        return safe_name(rec.split or "default")

    def image_path(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        return f"images/{self.split_of(rec)}/{safe_name(rec.stem)}{os.path.splitext(rec.image_path)[1] or '.jpg'}"

    def record_files(self, rec: ImageRecord):
        return {}, {}

    def categories(self) -> List[dict]:
        known = self.meta.get("category_ids") or {}
        entries = self.meta.get("coco_categories") or {}
        supers = self.meta.get("supercategories") or {}
        wanted = [known.get(c) for c in self.classes]
        ids, _ = _unique_ids(wanted, start=1)
        out = []
        for name, cid in zip(self.classes, ids):
            entry = {k: v for k, v in (entries.get(name) or {}).items() if k not in ("id", "name")}
            entry.setdefault("supercategory", supers.get(name, ""))
            out.append({"id": cid, "name": name, **entry})
        return out

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        from .shapes import check_rle, is_rle, segmentation_area, unreadable
        cats = self.categories()
        cat_id = {c["name"]: c["id"] for c in cats}
        image_ids, renamed = _unique_ids([r.meta.get("image_id") for r in records])
        if renamed:
            self.lossy["image_id_renumbered"] = renamed
        wanted_ann: List[Optional[int]] = []
        for r in records:
            a = r.attrs.get("id")
            wanted_ann += [int(v) for v in a] if a is not None else [None] * len(r)
        ann_ids, renamed = _unique_ids(wanted_ann)
        if renamed:
            self.lossy["annotation_id_renumbered"] = renamed
        splits: Dict[str, dict] = {}
        pos = 0
        for rec, iid in zip(records, image_ids):
            split = self.split_of(rec)
            doc = splits.get(split)
            if doc is None:
                doc = splits[split] = {"info": self.meta.get("info") or {"description": "written by dsprep"},
                                       "licenses": self.meta.get("licenses") or [], "images": [],
                                       "annotations": [], "categories": cats}
            image = {"id": iid, "file_name": os.path.basename(self.image_path(rec)), "width": int(rec.width),
                     "height": int(rec.height)}
            image.update({k: v for k, v in (rec.meta.get("coco_image") or {}).items()
                          if k not in image and k not in _IMAGE_KEYS})
            doc["images"].append(image)
            segs = rec.attrs.get("segmentation")
            areas = rec.attrs.get("area")
            crowd = rec.attrs.get("iscrowd")
            extra = rec.attrs.get("coco_extra")
            b = rec.boxes
            for k in range(len(rec)):
                seg = segs[k] if segs is not None else None
                if not seg and rec.polygons is not None:
                    seg = [[json_number(v) for v in rec.polygons[k].reshape(-1)]]
                try:
                    if seg and is_rle(seg):
                        check_rle(seg, (int(rec.width), int(rec.height)))
                    area = float(areas[k]) if areas is not None else segmentation_area(seg) if seg else \
                        float((b[k, 2] - b[k, 0]) * (b[k, 3] - b[k, 1]))
                except (ValueError, KeyError, TypeError) as e:
                    raise unreadable(rec, k, e) from e
                assert area is not None  # a non-empty segmentation has an area (rings() raises or gives >= 1 ring)
                ann = {"id": ann_ids[pos + k], "image_id": iid, "category_id": cat_id[rec.names[k]],
                       "segmentation": seg if seg else [], "area": json_number(area),
                       "bbox": [json_number(b[k, 0]), json_number(b[k, 1]), json_number(_extent(b[k, 0], b[k, 2])),
                                json_number(_extent(b[k, 1], b[k, 3]))],
                       "iscrowd": int(bool(crowd[k])) if crowd is not None else 0}
                more = _with_flags(extra[k] if extra is not None else None, int(rec.difficult[k]),
                                   bool(rec.truncated[k]))
                if more:
                    ann.update({key: v for key, v in more.items() if key not in ann})
                doc["annotations"].append(ann)
            pos += len(rec)
        if not splits:
            splits["default"] = {"info": {"description": "written by dsprep"}, "licenses": [], "images": [],
                                 "annotations": [], "categories": cats}
        return {f"annotations/instances_{split}.json":
                json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                for split, doc in splits.items()}


__all__ = ["parse_coco", "read_coco", "find_files", "detect", "load", "object_masks", "Writer"]


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    default_metric="coco", reference_order=lambda rec: rec.meta["image_id"], needs_records=True,
                    holds=Holds(boxes=True, polygons=True, masks=True, splits=True, image_size=True))
