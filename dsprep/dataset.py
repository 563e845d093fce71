"""The one registry of data-set formats: which module reads (and writes) which layout.

Every format module (``voc.py``, ``dota.py``, ``hdf5.py`` ...) exposes the same few names:

* ``NAME``                          the format's name (``--format``, ``--to``);
* ``LAYOUT``                        a few words on what it looks for (for the "no data set found" error);
* ``detect(path: Path) -> bool``    whether ``path`` (a folder or a file) is in this format (cheap: names and a
                                    few bytes, never a full parse);
* ``load(path, split, policy, wrap) -> Dataset``  every record of the data set (``split`` already applied, the
                                    class list decided from *all* annotation files, see :func:`decide_classes`);
                                    image headers are not read here (``width == 0`` where the annotation has no size);
* ``RECORDS_SIZE``                  whether annotations state the image size (then a header that disagrees is a
                                    ``size_mismatch``); ``HAS_IMAGE_FILES = False`` for packed files;
* ``check_record(rec) -> (rec, problems)``  checks that need the size (clipping, objects outside the image);
* ``Writer`` (formats dsprep can write): see :class:`dsprep.core.FormatWriter`;
* ``object_masks(rec) -> Optional[List[Optional[np.ndarray]]]`` (optional; formats that know object shapes): for
                                    each object of the record, in object order, ``None`` or a ``bool`` mask of shape
                                    ``(y1 - y0, x1 - x0)`` over the object's pixel bounds
                                    ``x0, y0, x1, y1 = dsprep.crop.pixel_bounds(rec.boxes, rec.width, rec.height)[k]``
                                    (no pad), True on the object's pixels, in the pixels
                                    :func:`dsprep.images.read_record_image` returns for the record (its decided EXIF
                                    orientation applied); ``None`` for the whole record when the image has no masks.
                                    Raises a ``DsprepError`` naming the file for a broken mask.  Call it through
                                    :func:`object_masks` (which checks the answer), never directly.

Formats whose files can be edited in place (``dsprep review``) also expose the edit protocol:

* ``annotation_file(ds, rec) -> str | None``  the file holding ``rec``'s objects;
* ``load_record(ds, rec) -> (ImageRecord, [Problem])``  that file read again as ``load`` reads it (its objects
                                    in file order: all those ``load`` keeps; image headers are then read by
                                    :func:`reload_record`, as by :func:`load_dataset`);
* ``save_record(original: bytes, rec, source: str) -> bytes``  pure: the file's new content, ``original`` with
                                    ``rec``'s objects written in.  ``rec.attrs["source_index"]`` gives, for each
                                    object, the object of ``original`` it was loaded as (its index in
                                    ``load_record``'s order) or ``-1`` for a new one; objects of ``original`` it
                                    does not name are deleted; an object's fields equal to what ``load`` gives for
                                    it, and everything that is not an object (unknown tags, header lines, comments,
                                    encoding, line endings), stay byte for byte.  The caller writes the result
                                    through :mod:`dsprep.outputs`.
* ``split_lists(ds) -> {split: [annotation file]}``  optional, for formats whose splits are lists of files: the
                                    files each split names, for a data set loaded whole (an image may be in several).

Adding a format is one new module and one line in :data:`FORMATS`.  Modules are imported only when used, so the
command line starts fast.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, List, Optional, Sequence

from .core import Dataset, DatasetError, ErrorPolicy, UsageError, decide_classes

# Detection order matters: the first module whose detect() says yes reads the data set.
FORMATS = {
    "h5": "dsprep.hdf5",
    "dota": "dsprep.dota",
    "coco": "dsprep.coco",
    "yolo": "dsprep.yolo",
    "yolo-obb": "dsprep.yolo_obb",
    "labelme": "dsprep.labelme",
    "voc": "dsprep.voc",
}


def format_module(name: str) -> ModuleType:
    if name not in FORMATS:
        raise UsageError(f"--format: unknown format '{name}' (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[name])


def detect_format(path: Path) -> str:
    """The name of the format ``path`` is in; :class:`DatasetError` when none recognises it."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: data set not found")
    for name in FORMATS:
        if format_module(name).detect(path):
            return name
    if path.is_file():
        raise DatasetError(f"{path}: not a data set folder or a file format dsprep reads")
    looked = "; ".join(format_module(n).LAYOUT for n in FORMATS)
    raise DatasetError(f"{path}: no data set found (looked for {looked})")


def load_dataset(path, split: Optional[str] = None, on_error: str = "fail",
                 progress: Optional[Callable[[Iterable], Iterable]] = None, fmt: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None, exif: str = "auto") -> Dataset:
    """Read every annotation of a data set, and every image's header (pixels are not decoded).

    ``fmt`` forces a format (``--format``); ``classes`` pins the class list (``--classes``): objects of other
    classes are then an error (or skipped and listed with ``on_error="skip"``); ``exif`` is the orientation
    policy (``--exif``, see :func:`dsprep.images.decide_orientation`), decided here once per record.
    """
    path = Path(path)
    name = fmt or detect_format(path)
    module = format_module(name)
    if fmt and not path.exists():
        raise DatasetError(f"{path}: data set not found")
    policy = ErrorPolicy(on_error)
    with bulk():
        ds = module.load(path, split, policy, progress or (lambda it: it))
        if getattr(module, "HAS_IMAGE_FILES", True):
            attach_images(ds, module, exif)
    if classes is not None:
        ds.classes = decide_classes((), pinned=classes)
        ds.records = [_pin(rec, ds, policy) for rec in ds.records]
    ds.skipped = policy.skipped + ds.skipped
    if not ds.records and not ds.skipped:
        raise DatasetError(f"{path}: data set is empty (no annotated images found)")
    return ds


def _pin(rec, ds: Dataset, policy: ErrorPolicy):
    """Objects of a class outside the pinned list: an error, or dropped and listed under ``--on-error skip``."""
    from .core import ClassError
    known = set(ds.classes)
    bad = [k for k, n in enumerate(rec.names) if n not in known]
    if not bad:
        return rec
    where = rec.meta.get("annotation_path") or rec.image_path
    for k in bad:
        policy.handle(ClassError(f"{where}: object {k} has class '{rec.names[k]}', which is not in --classes "
                                 f"({', '.join(ds.classes)})"), f"{where}#object{k}")
    keep = [k for k in range(len(rec)) if rec.names[k] in known]
    return rec.select(keep)


def attach_images(ds: Dataset, module: ModuleType, exif: str = "auto") -> None:
    """Read every record's image header once: decide its orientation (``rec.meta["orient"]``), fill a size the
    annotation lacks, report what would hurt training (empty, truncated, unreadable image; size mismatch; EXIF
    orientation), then run the format's own size-dependent checks."""
    import os
    from .core import ImageError, Problem
    from .images import ORIENTATION_NAMES, decide_orientation, probe
    records_size = getattr(module, "RECORDS_SIZE", True)
    check = getattr(module, "check_record", None)
    out = []
    for rec in ds.records:
        where = rec.meta.get("annotation_path") or rec.image_path
        info = None
        if rec.image_path and os.path.isfile(rec.image_path):
            try:
                info = probe(rec.image_path)
            except ImageError as e:
                ds.problems.append(Problem("image_unreadable", rec.image_path, str(e).split(": ", 1)[-1]))
        if info is None:
            if rec.width <= 0:
                ds.problems.append(Problem("size_unknown", where, "no size in the annotation and no readable image"))
            out.append(rec)
            continue
        if info.complete is False:
            ds.problems.append(Problem("truncated_image", rec.image_path,
                                       f"{info.kind.upper()} file without its end marker (cut short)"))
        annotated = (rec.width, rec.height) if (records_size and rec.width > 0 and rec.height > 0) else None
        orient, mismatch = decide_orientation(exif, info, annotated)
        rec.meta["orient"] = orient
        rec.meta["exif"] = info.orientation
        if info.orientation != 1:
            ds.problems.append(Problem("exif_orientation", rec.image_path,
                                       f"EXIF orientation {info.orientation} ({ORIENTATION_NAMES[info.orientation]})"
                                       f": {'applied' if orient else 'ignored'} (--exif {exif})"))
        if annotated is None:
            if records_size and rec.width <= 0:
                ds.problems.append(Problem("size_from_image", where, "no size in the annotation: read from the "
                                                                      "image header"))
            rec.width, rec.height = info.size(orient)
            rec.depth = info.channels
        elif mismatch:
            ds.problems.append(Problem("size_mismatch", where, mismatch))
        if check is not None and rec.width > 0:
            rec, probs = check(rec)
            ds.problems.extend(probs)
        out.append(rec)
    ds.records = out


@contextlib.contextmanager
def bulk():
    """Pause the cyclic garbage collector while building many small records: nothing cyclic is made, and its
    repeated full scans of a growing list otherwise cost ~15% of the reading time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def object_masks(ds_format: str, rec) -> Optional[List[Optional["np.ndarray"]]]:
    """Each object's own mask, from the format module's optional ``object_masks`` (the protocol is in the module
    docstring), or ``None`` when the format or the image has none.  The answer is checked against the protocol: a
    wrong length, shape or dtype is a bug of the format module (``ValueError``)."""
    fn = getattr(format_module(ds_format), "object_masks", None)
    if fn is None:
        return None
    masks = fn(rec)
    if masks is None:
        return None
    from .crop import pixel_bounds
    if len(masks) != len(rec):
        raise ValueError(f"{ds_format}.object_masks: {len(masks)} masks for {len(rec)} objects ({rec.image_path})")
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    for k, (m, (x0, y0, x1, y1)) in enumerate(zip(masks, bounds.tolist())):
        if m is not None and (m.dtype != bool or m.shape != (y1 - y0, x1 - x0)):
            raise ValueError(f"{ds_format}.object_masks: object {k} of {rec.image_path}: expected a bool mask of "
                             f"shape {(y1 - y0, x1 - x0)}, but got {m.dtype} {m.shape}")
    return list(masks)


def writable_formats() -> List[str]:
    return [name for name in FORMATS if hasattr(format_module(name), "Writer")]


def reload_record(ds: Dataset, rec, exif: str = "auto"):
    """``(record, problems)``: the annotation file of ``rec`` (a record of ``ds``) read again exactly as
    :func:`load_dataset` read it: the format's ``load_record``, then its image header (:func:`attach_images`)."""
    module = format_module(ds.format)
    new, problems = module.load_record(ds, rec)
    one = Dataset(ds.root, ds.format, [new], list(problems))
    if getattr(module, "HAS_IMAGE_FILES", True):
        attach_images(one, module, exif)
    return one.records[0], one.problems


def editable_formats() -> List[str]:
    """Formats implementing the edit protocol (see the module docstring)."""
    return [name for name in FORMATS if hasattr(format_module(name), "save_record")]
