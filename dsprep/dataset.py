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
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .core import Dataset, DatasetError, DsprepError, ErrorPolicy, ImageRecord, UsageError, decide_classes

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
                 classes: Optional[Sequence[str]] = None, exif: str = "auto", images_outside: bool = False) -> Dataset:
    """Read every annotation of a data set, and every image's header (pixels are not decoded).

    ``fmt`` forces a format (``--format``); ``classes`` pins the class list (``--classes``): objects of other
    classes are then an error (or skipped and listed with ``on_error="skip"``); ``exif`` is the orientation
    policy (``--exif``, see :func:`dsprep.images.decide_orientation`), decided here once per record;
    ``images_outside`` (``--images-outside``) accepts image paths that annotation files name outside the data set
    (refused otherwise: :mod:`dsprep.datapaths`).
    """
    from .datapaths import allow_outside
    allow_outside(images_outside)
    path = Path(path)
    name = fmt or detect_format(path)
    module = format_module(name)
    if fmt and not path.exists():
        raise DatasetError(f"{path}: data set not found")
    policy = ErrorPolicy(on_error)
    global _HEADERS
    with bulk():
        has_images = getattr(module, "HAS_IMAGE_FILES", True)
        _HEADERS = (module, exif) if has_images else None  # forked readers read headers with the annotations
        try:
            ds = module.load(path, split, policy, progress or (lambda it: it))
        finally:
            _HEADERS = None
        if has_images:
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
    orientation), then run the format's own size-dependent checks.  Many records are shared out over processes
    (:func:`read_records`)."""
    n = reading_processes(len(ds.records))
    done = [rec.meta.pop(_DONE, None) for rec in ds.records]
    if n <= 1 or all(d is not None for d in done):
        out = []
        for rec, problems in zip(ds.records, done):
            if problems is None:  # not read yet by a forked reader (see read_records)
                rec, problems = _attach_one(rec, module, exif)
            ds.problems.extend(problems)
            out.append(rec)
        ds.records = out
        return
    from .parallel import fork_map

    def chunk(recs):
        """What each record's header changed (sizes, orientation), not the records: a compact answer."""
        changes = []
        for rec in recs:
            new, problems = _attach_one(rec, module, exif)
            meta = {k: rec.meta[k] for k in ("orient", "exif") if k in rec.meta}
            changes.append(((rec.width, rec.height, rec.depth), meta, problems,
                            None if new is rec else pack_records([new])))
        return changes

    bounds = np.linspace(0, len(ds.records), n + 1).astype(int)
    parts = [ds.records[bounds[k]:bounds[k + 1]] for k in range(n)]
    out = []
    for recs, changes in zip(parts, fork_map(chunk, parts)):  # (the first part ran here, on these very records)
        for rec, (size, meta, problems, replaced) in zip(recs, changes):
            rec.width, rec.height, rec.depth = size
            rec.meta.update(meta)
            ds.problems.extend(problems)
            out.append(rec if replaced is None else unpack_records(replaced)[0])
    ds.records = out


def _attach_one(rec: ImageRecord, module: ModuleType, exif: str) -> Tuple[ImageRecord, list]:
    from .core import ImageError, Problem
    from .images import ORIENTATION_NAMES, decide_orientation, probe
    records_size = getattr(module, "RECORDS_SIZE", True)
    check = getattr(module, "check_record", None)
    problems = []
    where = rec.meta.get("annotation_path") or rec.image_path
    info = None
    if rec.image_path and os.path.isfile(rec.image_path):
        try:
            info = probe(rec.image_path)
        except ImageError as e:
            problems.append(Problem("image_unreadable", rec.image_path, str(e).split(": ", 1)[-1]))
    if info is None:
        if rec.width <= 0:
            problems.append(Problem("size_unknown", where, "no size in the annotation and no readable image"))
        return rec, problems
    if info.complete is False:
        problems.append(Problem("truncated_image", rec.image_path,
                                f"{info.kind.upper()} file without its end marker (cut short)"))
    annotated = (rec.width, rec.height) if (records_size and rec.width > 0 and rec.height > 0) else None
    orient, mismatch = decide_orientation(exif, info, annotated)
    rec.meta["orient"] = orient
    rec.meta["exif"] = info.orientation
    if info.orientation != 1:
        problems.append(Problem("exif_orientation", rec.image_path,
                                f"EXIF orientation {info.orientation} ({ORIENTATION_NAMES[info.orientation]})"
                                f": {'applied' if orient else 'ignored'} (--exif {exif})"))
    if annotated is None:
        if records_size and rec.width <= 0 and not rec.meta.get("no_annotation"):
            problems.append(Problem("size_from_image", where, "no size in the annotation: read from the image "
                                                              "header"))
        rec.width, rec.height = info.size(orient)
        rec.depth = info.channels
    elif mismatch:
        problems.append(Problem("size_mismatch", where, mismatch))
    if check is not None and rec.width > 0:
        rec, probs = check(rec)
        problems.extend(probs)
    return rec, problems


# ---- reading many files: in forked processes where it pays ------------------------------------------------------

# Set by load_dataset while a format module reads its files: (module, exif policy).  Forked readers then read each
# record's image header right after its annotation (one trip for both), leaving the header's problems under
# _DONE in the record's meta for attach_images, which reports them in its usual order.
_HEADERS: Optional[Tuple[ModuleType, str]] = None
_DONE = "_dsprep_header_problems"

# Below this many files one process reads them all: forking and sending the records back costs more than it saves.
PARALLEL_MIN = 2000


def reading_processes(n_items: int) -> int:
    """How many processes read ``n_items`` files: four per CPU for many files (reading blocks on the disk when the
    files are not in the page cache: measured on 20,000 VOC files and their images, cold, one process 6.5 s, two
    4.7 s, eight 3.1 s on 2 CPUs; warm, two 1.6 s, eight 1.5 s), else one.  ``DSPREP_READERS`` sets it (``1``: one
    process)."""
    env = os.environ.get("DSPREP_READERS")
    if env:
        return max(1, int(env))
    if n_items < PARALLEL_MIN:
        return 1
    return max(1, min(32, 4 * (os.cpu_count() or 1), n_items // (PARALLEL_MIN // 2)))


def read_records(fn: Callable[[Any], Tuple[ImageRecord, list]], items: Sequence[Any],
                 wrap: Callable[[Iterable], Iterable] = lambda it: it
                 ) -> Iterator[Tuple[Any, Optional[Tuple[ImageRecord, list]], Optional[DsprepError]]]:
    """``(item, fn(item) or None, error or None)`` for every item, in order; ``fn`` returns ``(record, problems)``
    or raises :class:`DsprepError` for a bad item (returned, so the caller applies its ``--on-error`` policy).

    Many items are read in as many chunks as there are CPUs, each by its own process
    (:func:`dsprep.parallel.fork_map`); the records come back packed in a few arrays (:func:`pack_records`)."""
    n = reading_processes(len(items))
    if n <= 1:
        for item in wrap(items):
            try:
                yield item, fn(item), None
            except DsprepError as e:
                yield item, None, e
        return
    from .parallel import fork_map
    bounds = np.linspace(0, len(items), n + 1).astype(int)
    chunks = [items[bounds[k]:bounds[k + 1]] for k in range(n)]

    headers = _HEADERS

    def read_chunk(chunk):
        recs, problems, errors = [], [], {}
        for k, item in enumerate(chunk):
            try:
                rec, probs = fn(item)
            except DsprepError as e:
                errors[k] = e
                continue
            if headers is not None:  # the image header too, while in this process (attach_images keeps its problems)
                rec, header_problems = _attach_one(rec, *headers)
                rec.meta[_DONE] = header_problems
            recs.append(rec)
            problems.append(probs)
        return pack_records(recs), problems, errors

    for chunk, (packed, problems, errors) in zip(chunks, wrap(fork_map(read_chunk, chunks))):
        recs = iter(unpack_records(packed))
        probs = iter(problems)
        for k, item in enumerate(chunk):
            if k in errors:
                yield item, None, errors[k]
            else:
                yield item, (next(recs), next(probs)), None


def pack_records(recs: Sequence[ImageRecord]) -> tuple:
    """Records as a few concatenated arrays and lists (pickling them is ~10x faster than pickling each record)."""
    counts = np.array([len(r.boxes) for r in recs], np.int64)
    def cat(arrs, shape, dtype):
        return np.concatenate(arrs) if arrs else np.zeros(shape, dtype)
    boxes = cat([r.boxes for r in recs], (0, 4), np.float64)
    difficult = cat([r.difficult for r in recs], (0,), np.uint8)
    truncated = cat([r.truncated for r in recs], (0,), bool)
    has_poly = [r.polygons is not None for r in recs]
    polys = cat([r.polygons for r in recs if r.polygons is not None], (0, 4, 2), np.float64)
    names = [n for r in recs for n in r.names]
    scalars = [(r.image_path, r.width, r.height, r.depth, r.split, r.meta, r.attrs or None) for r in recs]
    return counts, boxes, difficult, truncated, has_poly, polys, names, scalars


def unpack_records(packed: tuple) -> List[ImageRecord]:
    counts, boxes, difficult, truncated, has_poly, polys, names, scalars = packed
    out = []
    off = poff = 0
    for n, poly, (path, w, h, d, split, meta, attrs) in zip(counts.tolist(), has_poly, scalars):
        p = None
        if poly:
            p = polys[poff:poff + n]
            poff += n
        out.append(ImageRecord.trusted(path, w, h, d, boxes[off:off + n], names[off:off + n], difficult[off:off + n],
                                       truncated[off:off + n], p, split, meta, attrs))
        off += n
    return out


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
