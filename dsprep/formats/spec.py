"""What a format is, said once: :class:`FormatSpec` (each format module's ``FORMAT``), what it can hold
(:class:`Holds`), its edit protocol (:class:`EditProtocol`), and the :class:`ReadContext` every ``load`` takes.

This module imports nothing of dsprep but the core model, so every format module can import it (and the registry,
:mod:`dsprep.formats`, imports the format modules only by name, when used).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..core import Dataset, ErrorPolicy, ImageRecord, Problem


def _as_is(items: Iterable) -> Iterable:
    return items


@dataclass(frozen=True)
class ReadContext:
    """What a format's ``load`` needs besides the path and the split: the ``--on-error`` policy (it keeps the
    skipped list), a progress wrapper over the items read, the ``--exif`` policy, and ``headers``: when set, a
    function that reads one record's image header (``rec -> (rec, problems)``); readers that fork call it right
    after the annotation, in the same process (:func:`dsprep.formats.common.read_records`)."""

    policy: ErrorPolicy = field(default_factory=ErrorPolicy)
    progress: Callable[[Iterable], Iterable] = _as_is
    exif: str = "auto"
    headers: Optional[Callable[[ImageRecord], Tuple[ImageRecord, List[Problem]]]] = None


@dataclass(frozen=True)
class Holds:
    """What a format's files can hold.  ``quads``: its objects are oriented boxes, four corners each (DOTA, YOLO-OBB:
    ``synth`` gives them each object's rotated rectangle); ``polygons``: objects may be free polygons (a 4-point
    polygon among them); ``masks``: it answers ``object_masks``; ``image_size``: its
    annotations state the image size (a header that disagrees is then a ``size_mismatch``)."""

    boxes: bool = True
    quads: bool = False
    polygons: bool = False
    masks: bool = False
    difficult: bool = False
    truncated: bool = False
    splits: bool = False
    image_size: bool = False


@dataclass(frozen=True)
class EditProtocol:
    """How ``dsprep review`` edits a format's files in place.

    * ``annotation_file(ds, rec) -> str | None``: the file holding ``rec``'s objects;
    * ``load_record(ds, rec) -> (ImageRecord, [Problem])``: that file read again as ``load`` reads it (its objects
      in file order: all those ``load`` keeps); image headers are then read by
      :func:`dsprep.dataset.reload_record`, as by :func:`dsprep.dataset.load_dataset`;
    * ``save_record(original: bytes, rec, source: str) -> bytes``: pure, the file's new content, ``original`` with
      ``rec``'s objects written in.  ``rec.attrs["source_index"]`` gives, for each object, the object of
      ``original`` it was loaded as (its index in ``load_record``'s order) or ``-1`` for a new one; objects of
      ``original`` it does not name are deleted; an object's fields equal to what ``load`` gives for it, and
      everything that is not an object (unknown tags, header lines, comments, encoding, line endings), stay byte
      for byte.  The caller writes the result through :mod:`dsprep.outputs`;
    * ``split_lists(ds) -> {split: [annotation file]}`` (or None): for formats whose splits are lists of files, the
      files each split names, for a data set loaded whole (an image may be in several).
    """

    annotation_file: Callable[[Dataset, ImageRecord], Optional[str]]
    load_record: Callable[[Dataset, ImageRecord], Tuple[ImageRecord, List[Problem]]]
    save_record: Callable[[bytes, ImageRecord, str], bytes]
    split_lists: Optional[Callable[[Dataset], Dict[str, List[str]]]] = None


@dataclass(frozen=True)
class FormatSpec:
    """One format, as the registry and every command see it.

    * ``name``: ``--format`` / ``--to``; ``layout``: a few words on what ``detect`` looks for;
    * ``detect(path) -> bool``: whether ``path`` (a folder or a file) is in this format (cheap: names and a few
      bytes, never a full parse); two formats saying yes for one path is an error naming both;
    * ``load(path, split, ctx: ReadContext) -> Dataset``: every record (``split`` applied, the class list decided
      from *all* annotation files); image headers are not read here (``width == 0`` where the annotation has no
      size) unless ``ctx.headers`` asks for them;
    * ``writer``: a :class:`dsprep.core.FormatWriter` class for formats dsprep writes;
    * ``check_record(rec) -> (rec, problems)``: checks that need the image size (clipping, objects outside);
    * ``object_masks(rec)``: for each object, in object order, ``None`` or a ``bool`` mask of shape
      ``(y1 - y0, x1 - x0)`` over its pixel bounds (:func:`dsprep.geometry.pixel_bounds`, no pad), True on the
      object's pixels in the pixels :func:`dsprep.images.read_record_image` returns; ``None`` for a record without
      masks.  Raises a ``DsprepError`` naming the file for a broken mask.  Called through
      :func:`dsprep.dataset.object_masks`, which checks the answer;
    * ``mask_leftovers(rec) -> {kind: count}``: what the format's mask files hold that the objects' masks do not
      carry (VOC: instances no object matches, the void band), counted when ``convert`` carries the masks;
    * ``image_files``: False for packed files (the pixels are inside the file: no header to read);
    * ``edit``: the :class:`EditProtocol`, for formats ``dsprep review`` edits in place;
    * ``default_metric``: the metric ``dsprep eval`` uses for ground truth in this format;
    * ``reference_order``: a sort key giving the order the format's reference evaluator sees images (COCO: by
      image id), or None for the order read;
    * ``needs_records``: the data-set files its writer writes at the end need every record (a COCO JSON, a
      ``data.yaml``), so adding to an existing output reads that output first;
    * ``append_names(out, split, names, append)``: for formats whose data-set files are plain lists of names, how
      more names are added to one (VOC's ``ImageSets/Main/<split>.txt``).
    """

    name: str
    layout: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, Optional[str], ReadContext], Dataset]
    holds: Holds
    writer: Optional[type] = None
    check_record: Optional[Callable[[ImageRecord], Tuple[ImageRecord, List[Problem]]]] = None
    object_masks: Optional[Callable[[ImageRecord], Any]] = None
    mask_leftovers: Optional[Callable[[ImageRecord], Dict[str, int]]] = None
    image_files: bool = True
    edit: Optional[EditProtocol] = None
    default_metric: str = "voc07"
    reference_order: Optional[Callable[[ImageRecord], Any]] = None
    needs_records: bool = False
    append_names: Optional[Callable[[Path, str, List[str], bool], None]] = None
