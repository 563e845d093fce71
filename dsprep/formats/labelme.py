"""labelme JSON: one file per image, parse and format (pure, over bytes), and read/write folders of them.

A labelme file is ``{"version", "flags", "shapes": [...], "imagePath", "imageData", "imageHeight", "imageWidth"}``;
each shape is ``{"label", "points": [[x, y], ...], "group_id", "shape_type", "flags", "description"}``.  Points are
pixel coordinates on the image as labelme shows it, the same continuous 0-based system as dsprep's boxes, so they
are used as they are.

Objects, one per shape, or one per ``(label, group_id)`` when shapes share a ``group_id`` (labelme's way of drawing
one object in several parts, as labelme2coco merges them):

* ``rectangle`` (2 corners, any order) -> its box;
* ``polygon`` (3 points or more) -> its box, the ring in ``rec.attrs["segmentation"]`` (COCO-style flat lists,
  see :mod:`dsprep.formats.shapes`);
* ``circle`` (centre and a point on the circle) -> its box, a 64-gon in the segmentation;
* ``mask`` (labelme 5.3+: 2 corners and a PNG) -> its box (the PNG is kept for writing labelme again);
* ``point``, ``line``, ``linestrip``, ``points`` are no objects: reported (``not_an_object``) and kept in
  ``rec.meta`` only to be written back to labelme.

Every object's original shapes are kept in ``rec.attrs["labelme"]``, so labelme -> labelme loses nothing.  Shape
flags ``difficult``/``truncated`` map to the model's flags.  A data set whose objects are all single 4-point polygons
(DOTA-like data) gets them as quadrilaterals (``rec.polygons``), every record of it; other data sets none.

Why one module: reading, the image it names (``imagePath``, embedded ``imageData``), writing and the review edits
all translate the same file format, shape by shape; split apart, each half would need the other's shape rules.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, NoReturn, Optional, Sequence, Tuple

import numpy as np

from ..core import (MAX_COORDINATE, Dataset, DatasetError, DsprepError, FormatWriter, ImageRecord, ParseError, Problem,
                   decide_classes)
from ..images import IMAGE_EXTS
from ..inputs import json_object_with_keys
from .common import clip_boxes, shape_masks, source_indices
from .spec import EditProtocol, FormatSpec, Holds, ReadContext

NAME = "labelme"
LAYOUT = "labelme: *.json files with 'shapes' and 'imagePath'"
VERSION = "5.5.0"    # the labelme version written files claim (the 5.x file layout)

OBJECT_TYPES = ("rectangle", "polygon", "circle", "mask")
OTHER_TYPES = ("point", "points", "line", "linestrip")
_SPLIT_PREFIXES = ("train", "val", "valid", "test", "dev")
_CIRCLE_POINTS = 64


def _fail(source: str, doc_text, k: Optional[int], label, what: str) -> NoReturn:
    from .jsonpos import element_line
    if k is None:
        raise ParseError(f"{source}: {what}")
    line = element_line(doc_text, "shapes", k)
    raise ParseError(f"{source}:{line}: shapes[{k}] ({label}): {what}")


def _points(shape: dict, source: str, data, k: int, label) -> np.ndarray:
    pts = shape.get("points")
    try:
        arr = np.asarray(pts, np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        _fail(source, data, k, label, f"points must be a list of [x, y] number pairs, got {json.dumps(pts)[:60]}")
    if not (np.abs(arr) <= MAX_COORDINATE).all():
        _fail(source, data, k, label, f"points {json.dumps(pts)[:60]} are beyond any image "
                                      f"(|value| > {MAX_COORDINATE:.0e})")
    return arr


def _circle(pts: np.ndarray) -> np.ndarray:
    (cx, cy), (px, py) = pts[0], pts[1]
    r = math.hypot(px - cx, py - cy)
    t = np.arange(_CIRCLE_POINTS) * (2 * math.pi / _CIRCLE_POINTS)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def parse_labelme(data: bytes, source: str = "<labelme>") -> Tuple[ImageRecord, List[Problem]]:
    """Parse one labelme document.  Returns the record (``image_path`` = the file's ``imagePath``, not resolved)
    and the problems found.  A malformed document or shape raises :class:`ParseError` naming the file and the
    shape's line."""
    rec, problems, _, _ = _parse(data, source)
    return rec, problems


def _load_doc(data: bytes, source: str) -> dict:
    from ..inputs import parse_json
    return parse_json(data, source)


def _parse(data: bytes, source: str):
    """``(record, problems, doc, objects)``; each object lists the indices of its shapes in ``doc["shapes"]``."""
    doc = _load_doc(data, source)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise ParseError(f"{source}: not a labelme file (expected an object with a 'shapes' list)")
    size = []
    for key in ("imageWidth", "imageHeight"):
        v = doc.get(key)
        if v is None:
            size.append(0)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not float(v).is_integer():
            raise ParseError(f"{source}: {key} must be a whole number of pixels, got {v!r}")
        else:
            size.append(int(v))
    problems: List[Problem] = []
    groups: Dict[Tuple[str, object], int] = {}
    objects: List[dict] = []   # {"name", "shapes", "rings", "box", "flags"}
    others = []
    for k, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict):
            _fail(source, data, k, "?", f"expected an object, got {json.dumps(shape)[:60]}")
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            _fail(source, data, k, label, "no label")
        label = label.strip()
        kind = shape.get("shape_type") or "polygon"
        if kind in OTHER_TYPES:
            others.append(shape)
            problems.append(Problem("not_an_object", source, f"shapes[{k}] ({label}) is a {kind}: not an object "
                                                             f"(kept only when writing labelme)"))
            continue
        if kind not in OBJECT_TYPES:
            _fail(source, data, k, label, f"unknown shape_type '{kind}'")
        pts = _points(shape, source, data, k, label)
        ring = None
        if kind in ("rectangle", "mask"):
            if len(pts) < 2:
                _fail(source, data, k, label, f"a {kind} needs 2 corner points, got {len(pts)}")
        elif kind == "circle":
            if len(pts) != 2:
                _fail(source, data, k, label, f"a circle needs 2 points (centre, rim), got {len(pts)}")
            ring = _circle(pts)
        elif len(pts) < 3:
            _fail(source, data, k, label, f"a polygon needs 3 points or more, got {len(pts)}")
        else:
            ring = pts
        outline = ring if ring is not None else pts
        box = np.concatenate([outline.min(axis=0), outline.max(axis=0)])
        if not (box[2] > box[0] and box[3] > box[1]):
            problems.append(Problem("degenerate_box", source, f"shapes[{k}] ({label}): zero width or height"))
        raw_flags = shape.get("flags")
        flags = raw_flags if isinstance(raw_flags, dict) else {}
        gid = shape.get("group_id")
        at = groups.get((label, gid)) if gid is not None else None
        if at is None:
            if gid is not None:
                groups[(label, gid)] = len(objects)
            objects.append({"name": label, "shapes": [shape], "rings": [ring] if ring is not None else [],
                            "box": box, "flags": dict(flags), "rect": ring is None, "indices": [k]})
        else:
            obj = objects[at]
            obj["shapes"].append(shape)
            obj["indices"].append(k)
            if ring is not None:
                obj["rings"].append(ring)
            else:
                obj["rect"] = True
            obj["box"] = np.concatenate([np.minimum(obj["box"][:2], box[:2]), np.maximum(obj["box"][2:], box[2:])])
            obj["flags"].update(flags)
    n = len(objects)
    boxes = np.array([o["box"] for o in objects], np.float64).reshape(n, 4)
    segs = []
    for o in objects:
        rings = list(o["rings"])
        if o["rings"] and o["rect"]:  # a group mixing rectangles and polygons: the rectangles as rings too
            for s in o["shapes"]:
                if (s.get("shape_type") or "polygon") in ("rectangle", "mask"):
                    p = np.asarray(s["points"], np.float64)
                    x0, y0 = p.min(axis=0)
                    x1, y1 = p.max(axis=0)
                    rings.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        segs.append([[float(v) for v in r.reshape(-1)] for r in rings] or None)
    quads = None
    if n and all(s is not None and len(s) == 1 and len(s[0]) == 8 for s in segs):
        quads = np.array([s[0] for s in segs if s is not None], np.float64).reshape(n, 4, 2)  # (none is None)
    image_path = doc.get("imagePath") if isinstance(doc.get("imagePath"), str) else ""
    meta = {"labelme": {k: v for k, v in doc.items() if k not in ("shapes", "imageData", "imageHeight",
                                                                  "imageWidth")},
            "has_image_data": bool(doc.get("imageData"))}
    if others:
        meta["labelme_other_shapes"] = others
    rec = ImageRecord.trusted(
        image_path=image_path, width=size[0], height=size[1], depth=3, boxes=boxes,
        names=[o["name"] for o in objects],
        difficult=np.array([bool(o["flags"].get("difficult")) for o in objects], np.uint8),
        truncated=np.array([bool(o["flags"].get("truncated")) for o in objects], bool),
        polygons=quads, meta=meta,
        attrs={"segmentation": segs, "labelme": [o["shapes"] for o in objects]})
    return rec, problems, doc, objects


def read_labelme(path, roots=None) -> Tuple[ImageRecord, List[Problem]]:
    """Read one file; the image is looked for at ``imagePath`` (relative to the file; ``\\`` separators as
    Windows labelme writes them), else beside the file under the file's own name.  An ``imagePath`` outside
    ``roots`` (the data set's folder; default: the file's) is never read (:mod:`dsprep.datapaths`)."""
    from ..datapaths import OutsideDataset, named_path
    from ..inputs import read_bytes
    path = str(path)
    rec, problems = parse_labelme(read_bytes(path), path)
    folder = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    named = rec.image_path.replace("\\", "/")
    image = None
    outside = None
    if named.lower().endswith(".json"):
        # labelme's tutorial files name the JSON itself (the image embedded as imageData): the image is the one
        # beside the file with its stem, never the JSON
        named = ""
    if named:
        try:
            cand = named_path(named, folder, roots or [folder], path, f"imagePath '{rec.image_path}'")
        except OutsideDataset as e:
            cand, outside = None, e
        if cand is not None and os.path.isfile(cand):
            image = cand
        elif os.path.isfile(os.path.join(folder, os.path.basename(named))):
            image = os.path.join(folder, os.path.basename(named))
    if image is None:
        image = next((os.path.join(folder, stem + e) for e in IMAGE_EXTS + tuple(x.upper() for x in IMAGE_EXTS)
                      if os.path.isfile(os.path.join(folder, stem + e))), None)
    if image is None and outside is not None:
        raise outside
    if image is None:
        detail = f"imagePath '{rec.image_path}' not found" + (" (the image is only embedded as imageData: convert "
                                                               "writes it out, other commands do not read it)"
                                                               if rec.meta.get("has_image_data") else "")
        problems.append(Problem("annotation_without_image", path, detail))
        image = os.path.join(folder, os.path.basename(named) if named else stem + ".jpg")
    rec.image_path = image
    rec.meta["stem"] = stem
    rec.meta["annotation_path"] = path
    return rec, problems


def format_labelme(rec: ImageRecord, image_name: Optional[str] = None) -> Tuple[bytes, Dict[str, int]]:
    """The record as a labelme document (UTF-8 JSON, indented as labelme writes it) and what it could not keep.

    Objects read from labelme are written as their original shapes (when their box is unchanged); others as a
    ``rectangle``, a ``polygon`` per segmentation ring (several rings share a ``group_id``), or their quad.  An RLE
    mask becomes the exact outline of each of its parts (``polygon`` shapes sharing a ``group_id``); its holes
    cannot be held (a labelme polygon is one ring) and are counted (``mask_holes_dropped``, once per object)."""
    from .shapes import is_rle, rings, segmentation_rings, unreadable
    lossy: Dict[str, int] = {}
    shapes = []
    originals = rec.attrs.get("labelme")
    segs = rec.attrs.get("segmentation")
    used_groups = {s.get("group_id") for obj in (originals or []) if obj for s in obj
                   if isinstance(s, dict) and isinstance(s.get("group_id"), int)}
    next_group = max([g for g in used_groups if isinstance(g, int)], default=0) + 1
    clipped = int(rec.meta.get("clipped_box", 0))  # boxes clipped to the image when read
    size = (rec.width, rec.height) if clipped else None
    for k in range(len(rec)):
        name = rec.names[k]
        flags = {}
        if rec.difficult[k]:
            flags["difficult"] = True
        if rec.truncated[k]:
            flags["truncated"] = True
        orig = originals[k] if originals is not None else None
        if orig and _same_box(orig, rec.boxes[k], size):
            if size is not None and not _same_box(orig, rec.boxes[k]):
                clipped -= 1  # written as drawn: the clip is undone
            for s in orig:
                s = dict(s)
                s["label"] = name
                fl = dict(s.get("flags") or {})
                for key, on in (("difficult", rec.difficult[k]), ("truncated", rec.truncated[k])):
                    if on:
                        fl[key] = True
                    elif fl.get(key):
                        fl[key] = False
                s["flags"] = fl
                shapes.append(s)
            continue
        seg = segs[k] if segs is not None else None
        try:
            if seg and is_rle(seg):
                rs, holes = segmentation_rings(seg, (int(rec.width), int(rec.height)), filled=True)
                if holes:
                    lossy["mask_holes_dropped"] = lossy.get("mask_holes_dropped", 0) + 1
            else:
                rs = rings(seg) if seg is not None else []
        except (ValueError, KeyError, TypeError) as e:
            raise unreadable(rec, k, e) from e
        if rec.polygons is not None and not rs:
            rs = [rec.polygons[k]]
        if rs:
            gid = None
            if len(rs) > 1:
                gid, next_group = next_group, next_group + 1
            for r in rs:
                shapes.append(_shape(name, [[float(x), float(y)] for x, y in r], "polygon", gid, flags))
        else:
            x0, y0, x1, y1 = (float(v) for v in rec.boxes[k])
            shapes.append(_shape(name, [[x0, y0], [x1, y1]], "rectangle", None, flags))
    if clipped > 0:
        lossy["clipped_box"] = clipped
    shapes += rec.meta.get("labelme_other_shapes", [])
    extra = dict(rec.meta.get("labelme", {}))
    doc = {"version": extra.pop("version", VERSION), "flags": extra.pop("flags", {}), "shapes": shapes}
    extra.pop("imagePath", None)
    doc["imagePath"] = image_name if image_name is not None else os.path.basename(rec.image_path)
    doc["imageData"] = None
    doc["imageHeight"] = int(rec.height)
    doc["imageWidth"] = int(rec.width)
    doc.update({k: v for k, v in extra.items() if k not in doc})
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), lossy


def _shape(label, points, kind, group_id, flags) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "description": "", "shape_type": kind,
            "flags": dict(flags), "mask": None}


def _same_box(shapes: Sequence[dict], box: np.ndarray, clipped_to=None) -> bool:
    """Whether the original shapes still describe this box (a command may have moved or clipped it).  With
    ``clipped_to`` (the image size, when reading clipped boxes to the image) a box that is the shapes' box clipped
    to it is still theirs: the shapes are written as drawn, nothing lost."""
    pts = []
    for s in shapes:
        p = np.asarray(s.get("points"), np.float64).reshape(-1, 2)
        pts.append(_circle(p) if s.get("shape_type") == "circle" else p)
    allp = np.concatenate(pts)
    own = np.concatenate([allp.min(axis=0), allp.max(axis=0)])
    box = np.asarray(box, np.float64)
    if np.array_equal(own, box):
        return True
    return clipped_to is not None and np.array_equal(np.clip(own, 0.0, np.array(clipped_to * 2, np.float64)), box)


# ---- data set layout --------------------------------------------------------------------------------------------

def _is_labelme(path: str) -> bool:
    """A ``.json`` holding the keys ``shapes`` and ``imagePath`` (a scan for the keys, no parse)."""
    return json_object_with_keys(path, (b'"shapes"', b'"imagePath"'))


def json_files(root: Path) -> List[str]:
    out = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(".json")
                and not f.startswith(".")]
    return out


def detect(path: Path) -> bool:
    """A labelme file, or a folder where at least half of its first JSON files (up to 5) are labelme files (so that
    one broken file among them is reported by the reader, not taken for another kind of folder)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".json" and _is_labelme(str(path))
    if not path.is_dir():
        return False
    checked = found = 0
    for dirpath, dirnames, files in os.walk(path):
        depth = os.path.relpath(dirpath, path).count(os.sep) + (dirpath != str(path))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < 2 else []
        for f in sorted(files):
            if f.lower().endswith(".json"):
                checked += 1
                found += _is_labelme(os.path.join(dirpath, f))
                if checked >= 5:
                    return found * 2 >= checked
    return found > 0 and found * 2 >= checked


def split_of(root: Path, json_path: str, split_dirs: bool) -> Optional[str]:
    rel = os.path.relpath(json_path, root).split(os.sep)
    return rel[0] if (split_dirs and len(rel) > 1) else None


def _uses_split_dirs(root: Path, files: Sequence[str]) -> bool:
    """Top-level subfolders are splits when the files sit in subfolders named like splits, or in 2 or more."""
    tops = {os.path.relpath(f, root).split(os.sep)[0] for f in files if os.sep in os.path.relpath(f, root)}
    if any(os.sep not in os.path.relpath(f, root) for f in files) or not tops:
        return False
    return len(tops) >= 2 or any(t.lower().startswith(_SPLIT_PREFIXES) for t in tops)


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    """Every labelme file under ``path`` (recursively); JSON files that are no labelme files are reported."""
    policy, wrap = ctx.policy, ctx.progress
    path = Path(path)
    if path.is_file():
        files, root = [str(path)], path.parent
    else:
        files, root = json_files(path), path
    if not files:
        raise DatasetError(f"{path}: no labelme .json files")
    split_dirs = path.is_dir() and _uses_split_dirs(root, files)
    if split is not None:
        names = sorted(s for s in {split_of(root, f, split_dirs) for f in files} if s is not None)
        if split not in names:
            raise DatasetError(f"{path}: no split '{split}' (available: {', '.join(names) or 'none'})")
    ds = Dataset(path, NAME)
    others: List[ImageRecord] = []
    for f in wrap(files):
        s = split_of(root, f, split_dirs)
        if not _is_labelme(f):
            try:  # another kind of JSON (listed), or a damaged annotation file (an error, like any format's)
                from ..inputs import parse_json, read_bytes
                parse_json(read_bytes(f), f)
            except DsprepError as e:
                if split is None or s == split:
                    policy.handle(e, f)
                    ds.problems.append(Problem.about("unreadable", f, e))
                continue
            ds.problems.append(Problem("not_labelme", f, "a .json file without 'shapes' and 'imagePath'"))
            continue
        try:
            rec, problems = read_labelme(f, [str(root)])
        except DsprepError as e:
            if split is not None and s != split:
                continue
            policy.handle(e, f)
            ds.problems.append(Problem.about("unreadable", f, e))
            continue
        rec.split = s
        if split is not None and s != split:
            others.append(rec)  # read only for its class names
            continue
        ds.records.append(rec)
        ds.problems.extend(problems)
    # quadrilaterals for the whole data set or for none of it (commands and review treat a data set as one or
    # the other): a data set whose objects are all single 4-point polygons is DOTA-like
    ds.meta["labelme_quads"] = any(r.polygons is not None for r in ds.records) and all(
        r.polygons is not None or len(r) == 0 for r in ds.records)
    ds.records = [_quads_or_none(r, ds.meta["labelme_quads"]) for r in ds.records]
    ds.classes = decide_classes(ds.records + others)
    return ds


def _quads_or_none(rec: ImageRecord, quads: bool) -> ImageRecord:
    if quads and rec.polygons is None:  # (an image without objects)
        rec.polygons = np.zeros((0, 4, 2), np.float64)
    elif not quads:
        rec.polygons = None
    return rec


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known: boxes clipped to the image (segmentations stay as drawn), each clipped box
    reported."""
    return clip_boxes(rec, rec.meta.get("annotation_path", rec.image_path))


def object_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """Each object's pixels over its pixel bounds (``crop.pixel_bounds``, no pad): polygons and circles rasterized
    (pixel centres inside), None for rectangles and masks; None when no object has a shape."""
    from .shapes import rings, rings_mask

    def mask_of(k, seg, quad, bounds):
        rs = rings(seg)
        if not rs and quad is not None:
            rs = [quad]
        return rings_mask(rs, bounds) if rs else None
    return shape_masks(rec, mask_of)


# ---- the edit protocol (dsprep review) -------------------------------------------------------------------------

def annotation_file(ds: Dataset, rec: ImageRecord) -> Optional[str]:
    """The labelme file holding ``rec``'s objects."""
    return rec.meta.get("annotation_path")


def embedded_image(path: str) -> Optional[bytes]:
    """The image a labelme file embeds (``imageData``: the image file's bytes in base64), or None."""
    import base64
    import binascii
    from ..inputs import parse_json, read_bytes
    doc = parse_json(read_bytes(path), path)
    data = doc.get("imageData") if isinstance(doc, dict) else None
    if not isinstance(data, str) or not data:
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as e:
        raise ParseError(f"{path}: imageData is not base64 ({e})") from e


def load_record(ds: Dataset, rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Read ``rec``'s file again as :func:`load` reads it (the image is the one ``load`` found)."""
    root = Path(ds.root)
    new, problems = read_labelme(rec.meta["annotation_path"], [str(root if root.is_dir() else root.parent)])
    new = _quads_or_none(new, bool(ds.meta.get("labelme_quads")) and (new.polygons is not None or len(new) == 0))
    new.image_path, new.split = rec.image_path, rec.split
    return new, [p for p in problems if p.kind != "annotation_without_image" or not os.path.isfile(rec.image_path)]


def update_labelme(original: bytes, rec: ImageRecord, source: str = "<labelme>") -> bytes:
    """``original`` (a labelme file) with the objects of ``rec`` written in; everything but the ``shapes`` list
    kept byte for byte (and the list too when nothing changed).

    ``rec.attrs["source_index"]`` names, for each object, the object of ``original`` it was loaded as (the order
    :func:`parse_labelme` gives) or ``-1`` for a new one.  A named object keeps its shapes; when its box moved,
    their points follow the box (scaled and shifted from the old box onto the new one), or take the record's
    quadrilateral when it has one; a new label or difficult/truncated flag is set on all its shapes.  Objects not
    named are removed with their shapes; points, lines and other shapes that are no objects stay.  New objects are
    appended as rectangles (or polygons for quadrilaterals)."""
    from .jsonpos import value_span
    old, _, doc, objects = _parse(original, source)
    src = source_indices(rec, len(objects), source)
    of_old = {int(j): k for k, j in enumerate(src) if j >= 0}
    shapes = list(doc["shapes"])
    keep = [True] * len(shapes)
    changed = False
    for j, obj in enumerate(objects):
        k = of_old.get(j)
        if k is None:
            for i in obj["indices"]:
                keep[i] = False
            changed = True
            continue
        quad = rec.polygons[k] if rec.polygons is not None else None
        same_geometry = np.array_equal(rec.boxes[k], old.boxes[j]) and (
            quad is None or (old.polygons is not None and np.array_equal(quad, old.polygons[j])))
        for i in obj["indices"]:
            s = dict(shapes[i])
            if s.get("label") != rec.names[k]:
                s["label"] = rec.names[k]
            fl = dict(s.get("flags") or {})
            for key, on in (("difficult", rec.difficult[k]), ("truncated", rec.truncated[k])):
                if bool(on) != bool(fl.get(key)):
                    fl[key] = bool(on)
            if fl != (s.get("flags") or {}):
                s["flags"] = fl
            if not same_geometry:
                s["points"] = _moved(s, old.boxes[j], rec.boxes[k], quad if len(obj["indices"]) == 1 else None)
            if s != shapes[i]:
                shapes[i] = s
                changed = True
    added = [k for k in range(len(rec)) if src[k] < 0]
    out_shapes = [s for s, kept in zip(shapes, keep) if kept]
    for k in added:
        flags = {key: True for key, on in (("difficult", rec.difficult[k]), ("truncated", rec.truncated[k])) if on}
        if rec.polygons is not None:
            out_shapes.append(_shape(rec.names[k], rec.polygons[k].tolist(), "polygon", None, flags))
        else:
            x0, y0, x1, y1 = (float(v) for v in rec.boxes[k])
            out_shapes.append(_shape(rec.names[k], [[x0, y0], [x1, y1]], "rectangle", None, flags))
        changed = True
    if not changed:
        return original
    bom = b"\xef\xbb\xbf" if original.startswith(b"\xef\xbb\xbf") else b""
    text = original[len(bom):].decode("utf-8")
    span = value_span(text, "shapes")
    if span is None:
        raise DsprepError(f"{source}: internal: the shapes list was not found; nothing written")
    start, end = span
    line_start = text.rfind("\n", 0, start) + 1
    indent = len(text[line_start:start]) - len(text[line_start:start].lstrip(" "))
    if "\n" in text[start:end]:  # labelme's own layout: indented by 2, nested under the key's indentation
        body = json.dumps(out_shapes, indent=2, ensure_ascii=False).replace("\n", "\n" + " " * indent)
    else:  # a compact file stays compact
        body = json.dumps(out_shapes, ensure_ascii=False)
    result = text[:start] + body + text[end:]
    _verify(result, source, rec, objects, of_old, added)
    return bom + result.encode("utf-8")


def _verify(result: str, source: str, rec: ImageRecord, objects, of_old, added) -> None:
    """The edited file reads back as the edit says: the kept objects in file order, then the new ones, with their
    names and (except circles, which keep their roundness) boxes."""
    check, _, _, after = _parse(result.encode("utf-8"), source)
    order = [of_old[j] for j in range(len(objects)) if j in of_old] + added
    ok = check.names == [rec.names[k] for k in order]
    if ok:
        for got, k, obj in zip(check.boxes, order, after):
            round_ = any((s.get("shape_type") or "polygon") == "circle" for s in obj["shapes"])
            if not round_ and not np.allclose(got, rec.boxes[k], rtol=0, atol=1e-6):
                ok = False
    if not ok:
        raise DsprepError(f"{source}: internal: the edited file does not read back as edited; nothing written")


def _moved(shape: dict, old_box: np.ndarray, new_box: np.ndarray, quad: Optional[np.ndarray]) -> list:
    """A shape's points after its object's box moved: the quad when given (a one-polygon object edited as a
    polygon), else the points mapped from the old box onto the new one."""
    kind = shape.get("shape_type") or "polygon"
    if quad is not None and kind == "polygon":
        return [[float(x), float(y)] for x, y in quad]
    pts = np.asarray(shape["points"], np.float64).reshape(-1, 2)
    if kind == "rectangle" and len(pts) == 2 and np.array_equal(
            np.concatenate([pts.min(0), pts.max(0)]), old_box):
        return [[float(new_box[0]), float(new_box[1])], [float(new_box[2]), float(new_box[3])]]
    size = np.where(old_box[2:] > old_box[:2], old_box[2:] - old_box[:2], 1.0)
    scale = (new_box[2:] - new_box[:2]) / size
    return [[float(x), float(y)] for x, y in (pts - old_box[:2]) * scale + new_box[:2]]


save_record = update_labelme


class Writer(FormatWriter):
    """A labelme folder: ``<split>/<stem>.json`` beside ``<split>/<stem><ext>`` (no split folder for records
    without a split), ``imagePath`` the image's name, ``imageData`` null."""

    NAME = NAME
    KEEPS_FLAGS = frozenset({"difficult", "truncated"})  # shape flags
    KEEPS_IMAGE_FLAGS = True
    # rings kept as polygons, masks as their outlines (holes counted); boxes clipped when read written as drawn (or
    # counted)
    HANDLES_ATTRS = frozenset({"segmentation", "clipped_box"})

    def _base(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        stem = safe_name(rec.stem)
        return f"{safe_name(rec.split)}/{stem}" if rec.split else stem

    def image_path(self, rec: ImageRecord) -> str:
        return self._base(rec) + (os.path.splitext(rec.image_path)[1] or ".jpg")

    def record_files(self, rec: ImageRecord):
        data, lossy = format_labelme(rec, os.path.basename(self.image_path(rec)))
        return {self._base(rec) + ".json": data}, lossy


__all__ = ["parse_labelme", "format_labelme", "read_labelme", "load", "detect", "object_masks", "Writer"]


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    edit=EditProtocol(annotation_file, load_record, save_record), needs_records=True,
                    holds=Holds(boxes=True, polygons=True, masks=True, difficult=True, truncated=True,
                                splits=True, image_size=True))
