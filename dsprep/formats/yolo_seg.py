"""YOLO-seg: Ultralytics' instance segmentation labels, one normalized polygon per object, in YOLO's layouts::

    class x1 y1 x2 y2 x3 y3 ...          (at least 3 points; each line as long as its polygon)

The layouts (``data.yaml`` + ``images/<split>/`` + ``labels/<split>/``, Roboflow's ``train/images``, CVAT's list
files, flat folders), the class list and the image lookup are YOLO's (:mod:`dsprep.formats.yolo`, whose reader takes
this module's :data:`SYNTAX`).  An object's box is its polygon's bounds; the polygon, in pixels, is its segmentation
(``rec.attrs["segmentation"]``: one ring, COCO-style; :mod:`dsprep.formats.shapes`).

Detection: a YOLO layout whose first label lines have an odd number of fields of 7 or more other than 9 (see
:func:`dsprep.formats.yolo.detect_kind`: 5 fields are YOLO boxes, 9 fields 4 corners, YOLO-OBB's).

Writing: one line per object; what one polygon cannot hold is counted -- an object of several parts is written as
one polygon, its parts joined by zero-width bridges (``mask_parts_joined``: Ultralytics' own COCO converter joins
them so); the holes of a mask are left out (``mask_holes_dropped``).  Objects without a shape are written as their
box's four corners (``box_to_polygon``: a YOLO-seg line has no box-only form, so read back their mask is the box).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import yolo
from ..core import Dataset, DsprepError, ImageRecord, ParseError, Problem
from .common import number_text, shape_masks
from .spec import FormatSpec, Holds, ReadContext

NAME = "yolo-seg"
LAYOUT = "YOLO-seg: YOLO layouts whose label lines are polygons (class x1 y1 x2 y2 x3 y3 ...)"


# ---- label text -----------------------------------------------------------------------------------------------

def parse_yolo_seg(text: str, source: str = "<labels>", n_classes: Optional[int] = None, on_error: str = "fail"
                   ) -> Tuple[np.ndarray, List[np.ndarray], List[Tuple[str, str]]]:
    """Parse a YOLO-seg label file's text: ``(classes (N,) int64, polygons: N (K, 2) float64 arrays of normalized
    points, skipped lines)``.

    A line with fewer than 3 points, an odd count of coordinates, a number that does not parse, a coordinate
    outside ``[0, 1]`` or a class index that is not a whole number in ``0..n_classes-1`` raises
    :class:`ParseError` naming ``source:line``; with ``on_error="skip"`` the line is left out and listed."""
    rows = text.split("\n") if "\r" not in text else text.splitlines()
    fields = [r.split() for r in rows]
    good = [f for f in fields if f]
    if not good:
        return np.zeros(0, np.int64), [], []
    lengths = np.fromiter(map(len, good), np.int64, len(good))
    if (lengths >= 7).all() and (lengths % 2 == 1).all():
        try:
            flat = np.array(text.split(), np.float64)
        except ValueError:
            flat = None
        if flat is not None:  # a few whole-array checks (NaN fails them); any doubt: the line-by-line path
            starts = np.cumsum(lengths) - lengths
            cls_f = flat[starts]
            coords = np.delete(flat, starts)
            if coords.min() >= 0 and coords.max() <= 1 and cls_f.min() >= 0 and (cls_f == np.floor(cls_f)).all() \
                    and (n_classes is None or cls_f.max() < n_classes):
                polys = np.split(coords, np.cumsum(lengths - 1)[:-1])
                return cls_f.astype(np.int64), [p.reshape(-1, 2) for p in polys], []
    return _parse_slow(fields, source, n_classes, on_error)


def _parse_slow(fields: List[List[str]], source: str, n_classes: Optional[int], on_error: str
                ) -> Tuple[np.ndarray, List[np.ndarray], List[Tuple[str, str]]]:
    classes: List[int] = []
    polys: List[np.ndarray] = []
    skipped: List[Tuple[str, str]] = []
    for lineno, f in enumerate(fields, 1):
        if not f:
            continue
        where = f"{source}:{lineno}"
        try:
            c = yolo.class_index(f[0], where, n_classes)
            n = len(f) - 1
            if n % 2:
                raise ParseError(f"{where}: {n} coordinates after the class index: x and y come in pairs "
                                 f"(class x1 y1 x2 y2 x3 y3 ...)")
            if n < 6:
                hint = " (5 fields is a YOLO box line: use --format yolo)" if n == 4 else ""
                raise ParseError(f"{where}: a polygon needs at least 3 points (class x1 y1 x2 y2 x3 y3 ...), got "
                                 f"{n // 2}{hint}")
            pts = [yolo.coordinate(tok, f"{'xy'[i % 2]}{i // 2 + 1}", where) for i, tok in enumerate(f[1:])]
        except ParseError as e:
            if on_error != "skip":
                raise
            skipped.append((where, str(e)))
            continue
        classes.append(c)
        polys.append(np.array(pts, np.float64).reshape(-1, 2))
    return np.array(classes, np.int64), polys, skipped


def format_yolo_seg(classes: Sequence[int], polygons: Sequence[np.ndarray]) -> str:
    """Label text: one ``class x1 y1 x2 y2 ...`` line per object (normalized points, full precision, LF)."""
    return "".join(f"{int(c)} " + " ".join(number_text(v, exponent=False) for v in np.asarray(p).reshape(-1).tolist())
                   + "\n" for c, p in zip(classes, polygons))


def normalized_parts(values: Sequence[List[np.ndarray]]):
    """For each label file's polygons: ``(the polygons, their normalized boxes (N, 4), (False, has a zero-size
    box))``, the boxes of every polygon of every file in one pass (see :class:`dsprep.formats.yolo.LabelSyntax`)."""
    per_file = np.fromiter(map(len, values), np.int64, len(values))
    polys = [p for v in values for p in v]
    box = np.zeros((0, 4))
    if polys:
        k = np.fromiter(map(len, polys), np.int64, len(polys))
        pts = np.concatenate(polys)
        at = np.cumsum(k) - k
        box = np.concatenate([np.minimum.reduceat(pts, at, axis=0), np.maximum.reduceat(pts, at, axis=0)], axis=1)
    flat = (box[:, 2:] <= box[:, :2]).any(axis=1)
    ends = np.cumsum(per_file)
    starts = ends - per_file
    flat_before = np.concatenate([[0], np.cumsum(flat)])
    return [(list(v), box[a:b], (False, bool(flat_before[b] != flat_before[a])))
            for v, a, b in zip(values, starts.tolist(), ends.tolist())]


SYNTAX = yolo.LabelSyntax(NAME, None, parse_yolo_seg, normalized_parts)


# ---- the format ------------------------------------------------------------------------------------------------

def detect(path: Path) -> bool:
    return yolo.detect_kind(path) == NAME


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    return yolo.load_yolo(path, split, ctx.policy, ctx.progress, syntax=SYNTAX)


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known (image header): the normalized polygons in pixels (``attrs["segmentation"]``, one
    ring each) and their bounds as the boxes; polygons of zero width or height reported."""
    polys = rec.attrs.get("normalized")
    if polys is None:
        return rec, []
    size = np.array([rec.width, rec.height], np.float64)
    boxes = rec.attrs["normalized_box"] * np.tile(size, 2)
    attrs = {k: v for k, v in rec.attrs.items() if k not in ("normalized", "normalized_box")}
    attrs["segmentation"] = [[(p * size).reshape(-1).tolist()] for p in polys]
    problems: List[Problem] = []
    if rec.meta.get("yolo_flags", (False, True))[1] and len(boxes):
        source = rec.meta.get("annotation_path", rec.image_path)
        problems = [Problem("degenerate_box", source, f"object {k} ({rec.names[k]}): a polygon of zero width or "
                                                      f"height")
                    for k in np.flatnonzero((boxes[:, 2:] <= boxes[:, :2]).any(axis=1))]
    return ImageRecord.trusted(rec.image_path, rec.width, rec.height, rec.depth, boxes, rec.names, rec.difficult,
                               rec.truncated, None, rec.split, rec.meta, attrs), problems


def object_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """Each object's polygon rasterized over its pixel bounds (pixel centres inside, even-odd)."""
    from .shapes import rings, rings_mask

    def mask_of(k, seg, quad, bounds):
        rs = rings(seg)
        return rings_mask(rs, bounds) if rs else None
    return shape_masks(rec, mask_of)


def polygons_of(rec: ImageRecord) -> Tuple[List[np.ndarray], Dict[str, int]]:
    """Each object's one polygon in pixels, clipped into the image, and what that loses (see the module
    docstring): its segmentation's outline (parts joined, holes left out), its quad, else its box's corners."""
    from .shapes import is_rle, join_rings, object_segmentations, rings, segmentation_rings, unreadable
    W, H = float(rec.width), float(rec.height)
    segs = object_segmentations(rec) or [None] * len(rec)
    lossy: Dict[str, int] = {}

    def count(kind):
        lossy[kind] = lossy.get(kind, 0) + 1

    out = []
    for k, seg in enumerate(segs):  # (one step per object: its outline is traced, its parts joined)
        outers: List[np.ndarray] = []
        try:
            if seg and is_rle(seg):
                outers, holes = segmentation_rings(seg, (rec.width, rec.height), filled=True)
                if holes:
                    count("mask_holes_dropped")
            elif seg:
                outers = rings(seg)
        except (ValueError, KeyError, TypeError) as e:
            raise unreadable(rec, k, e) from e
        if len(outers) > 1:
            count("mask_parts_joined")
        if outers:
            poly = join_rings(outers)
        else:
            count("box_to_polygon")
            x0, y0, x1, y1 = rec.boxes[k].tolist()
            poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        clipped = np.clip(poly, 0.0, (W, H))
        if (clipped != poly).any():
            count("clipped_polygon")
        out.append(clipped)
    return out, lossy


class Writer(yolo.Writer):
    """Ultralytics layout (as :class:`dsprep.formats.yolo.Writer`, ``data.yaml`` included); one polygon per object
    (:func:`polygons_of`)."""

    NAME = NAME
    TITLE = "YOLO-seg"
    HANDLES_ATTRS = frozenset({"segmentation"})  # outlines written, what they lose counted in record_files

    def record_files(self, rec: ImageRecord):
        from ..outputs import safe_name
        where = rec.meta.get("annotation_path") or rec.image_path
        if rec.width <= 0 or rec.height <= 0 or not np.isfinite(rec.boxes).all():
            raise DsprepError(f"{where}: the image size is unknown (no readable image), so its objects cannot be "
                              f"normalized")
        try:
            cls = [self.index[n] for n in rec.names]
        except KeyError as e:
            raise DsprepError(f"{where}: class {e} is not in the class list") from e
        polys, lossy = polygons_of(rec)
        size = np.array([rec.width, rec.height], np.float64)
        text = format_yolo_seg(cls, [p / size for p in polys])
        return {f"labels/{self.split_dir(rec)}/{safe_name(rec.stem)}.txt": text.encode("utf-8")}, lossy


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    needs_records=True, holds=Holds(boxes=True, polygons=True, masks=True, splits=True))
