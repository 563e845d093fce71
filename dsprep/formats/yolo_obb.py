"""YOLO-OBB: the oriented-box variant of YOLO (``class x1 y1 x2 y2 x3 y3 x4 y4``, normalized), same layouts.

Everything is in :mod:`dsprep.formats.yolo`; this module gives the registry the format under its own name.  A data set is
YOLO-OBB when its first label lines have 9 fields.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from . import yolo
from ..core import Dataset, ImageRecord, Problem
from .common import quad_masks
from .spec import EditProtocol, FormatSpec, Holds, ReadContext

NAME = "yolo-obb"
LAYOUT = "YOLO-OBB: YOLO layouts whose label lines have 9 fields"


def detect(path: Path) -> bool:
    return yolo.detect_kind(path) == NAME


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    return yolo.load_yolo(path, split, ctx.policy, ctx.progress, obb=True)


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known: the normalized corners to pixels (quads in ``rec.polygons``)."""
    return yolo.to_pixels(rec, obb=True)


annotation_file = yolo.annotation_file


def load_record(ds: Dataset, rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    return yolo.load_record(ds, rec, obb=True)


def save_record(original: bytes, rec: ImageRecord, source: str) -> bytes:
    return yolo.update_yolo(original, rec, source, obb=True)


class Writer(yolo.Writer):
    """Ultralytics OBB layout (as :class:`dsprep.formats.yolo.Writer`); each object as its four corners."""

    NAME = NAME
    OBB = True
    TITLE = "YOLO-OBB"
    HANDLES_ATTRS = frozenset({"segmentation"})  # rings become quads or rotated rectangles, counted in record_files


object_masks = quad_masks  # DOTA's rule: a pixel is in when its centre is inside the quad or on its outline

FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    edit=EditProtocol(annotation_file, load_record, save_record), needs_records=True,
                    holds=Holds(boxes=True, quads=True, masks=True, splits=True))
