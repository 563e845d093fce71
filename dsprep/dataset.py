"""Opening a data set: :func:`load_dataset` (any registered format, see :mod:`dsprep.formats`), every image's header
read once (orientation, size, what would hurt training), the class list pinned by ``--classes``; and the few calls
around a format's description that commands need (:func:`object_masks`, :func:`reload_record`).

The registry's names (``FORMATS``, ``detect_format``, ``format_spec``, ``writable_formats``, ``editable_formats``)
live in :mod:`dsprep.formats` and are importable from here too.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .core import Dataset, DatasetError, ErrorPolicy, ImageRecord, decide_classes
from .formats import FORMATS, detect_format, editable_formats, format_spec, writable_formats  # noqa: F401
from .formats.common import HEADER_PROBLEMS, bulk, pack_records, reading_processes, unpack_records
from .formats.spec import FormatSpec, ReadContext

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
    spec = format_spec(name)
    if fmt and not path.exists():
        raise DatasetError(f"{path}: data set not found")
    policy = ErrorPolicy(on_error)
    # forked readers read each image's header with its annotation (one trip for both)
    headers = functools.partial(_attach_one, spec=spec, exif=exif) if spec.image_files else None
    ctx = ReadContext(policy, progress or (lambda it: it), exif, headers)
    with bulk():
        ds = spec.load(path, split, ctx)
        if spec.image_files:
            attach_images(ds, spec, exif)
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


def attach_images(ds: Dataset, spec: FormatSpec, exif: str = "auto") -> None:
    """Read every record's image header once: decide its orientation (``rec.meta["orient"]``), fill a size the
    annotation lacks, report what would hurt training (empty, truncated, unreadable image; size mismatch; EXIF
    orientation), then run the format's own size-dependent checks.  Many records are shared out over processes
    (:func:`read_records`)."""
    n = reading_processes(len(ds.records))
    done = [rec.meta.pop(HEADER_PROBLEMS, None) for rec in ds.records]
    if n <= 1 or all(d is not None for d in done):
        out = []
        for rec, problems in zip(ds.records, done):
            if problems is None:  # not read yet by a forked reader (see read_records)
                rec, problems = _attach_one(rec, spec, exif)
            ds.problems.extend(problems)
            out.append(rec)
        ds.records = out
        return
    from .parallel import fork_map

    def chunk(recs):
        """What each record's header changed (sizes, orientation), not the records: a compact answer; the records a
        check replaced (YOLO's, given pixel boxes) packed together, once per chunk."""
        changes, replaced = [], []
        for rec in recs:
            new, problems = _attach_one(rec, spec, exif)
            meta = {k: rec.meta[k] for k in ("orient", "exif") if k in rec.meta}
            changes.append(((rec.width, rec.height, rec.depth), meta, problems, new is not rec))
            if new is not rec:
                replaced.append(new)
        return changes, pack_records(replaced) if replaced else None

    bounds = np.linspace(0, len(ds.records), n + 1).astype(int)
    parts = [ds.records[bounds[k]:bounds[k + 1]] for k in range(n)]
    out = []
    for recs, (changes, packed) in zip(parts, fork_map(chunk, parts)):  # (the first part ran here, on these records)
        new_recs = iter(unpack_records(packed) if packed is not None else ())
        for rec, (size, meta, problems, was_replaced) in zip(recs, changes):
            rec.width, rec.height, rec.depth = size
            rec.meta.update(meta)
            ds.problems.extend(problems)
            out.append(next(new_recs) if was_replaced else rec)
    ds.records = out


def _attach_one(rec: ImageRecord, spec: FormatSpec, exif: str) -> Tuple[ImageRecord, list]:
    from .core import ImageError, Problem
    from .images import ORIENTATION_NAMES, decide_orientation, probe
    records_size = spec.holds.image_size
    check = spec.check_record
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


def object_masks(ds_format: str, rec) -> Optional[List[Optional["np.ndarray"]]]:
    """Each object's own mask, from the format's ``object_masks`` (the protocol: :class:`dsprep.formats.spec.FormatSpec`),
    or ``None`` when the format or the image has none.  The answer is checked against the protocol: a
    wrong length, shape or dtype is a bug of the format module (``ValueError``)."""
    fn = format_spec(ds_format).object_masks
    if fn is None:
        return None
    masks = fn(rec)
    if masks is None:
        return None
    from .geometry import pixel_bounds
    if len(masks) != len(rec):
        raise ValueError(f"{ds_format}.object_masks: {len(masks)} masks for {len(rec)} objects ({rec.image_path})")
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    for k, (m, (x0, y0, x1, y1)) in enumerate(zip(masks, bounds.tolist())):
        if m is not None and (m.dtype != bool or m.shape != (y1 - y0, x1 - x0)):
            raise ValueError(f"{ds_format}.object_masks: object {k} of {rec.image_path}: expected a bool mask of "
                             f"shape {(y1 - y0, x1 - x0)}, but got {m.dtype} {m.shape}")
    return list(masks)


def keeps_mask_files(ds_format: str) -> bool:
    """Whether data sets of format ``ds_format`` keep their masks in VOC's mask files (its ``object_masks`` is
    :func:`dsprep.formats.vocmasks.object_masks`: read only for the images that have one), rather than as shapes
    every object carries."""
    from .formats.vocmasks import object_masks as from_mask_files
    return ds_format in FORMATS and format_spec(ds_format).object_masks is from_mask_files


def reload_record(ds: Dataset, rec, exif: str = "auto"):
    """``(record, problems)``: the annotation file of ``rec`` (a record of ``ds``) read again exactly as
    :func:`load_dataset` read it: the format's ``load_record``, then its image header (:func:`attach_images`)."""
    spec = format_spec(ds.format)
    if spec.edit is None:
        raise ValueError(f"{ds.format} files cannot be read again record by record (no edit protocol)")
    new, problems = spec.edit.load_record(ds, rec)
    one = Dataset(ds.root, ds.format, [new], list(problems))
    if spec.image_files:
        attach_images(one, spec, exif)
    return one.records[0], one.problems
