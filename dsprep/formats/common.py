"""Helpers every format module shares (and only format modules and the loader need): reading many annotation
files at once (in forked processes where it pays), records packed for the trip between processes, the edit
protocol's ``source_index`` check, box clipping, object masks of quads, and numbers written as text.

Format modules import this module, never the registry (:mod:`dsprep.formats`) nor :mod:`dsprep.dataset`.
"""
from __future__ import annotations

import contextlib
import gc
import os
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..core import DsprepError, ImageRecord, Problem
from ..geometry import pixel_bounds
from .spec import ReadContext

# The key under which a forked reader leaves a record's image-header problems (see read_records).
HEADER_PROBLEMS = "_dsprep_header_problems"

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
                 ctx: Optional[ReadContext] = None) -> Iterator[Tuple[Any, Optional[Tuple[ImageRecord, list]], Optional[DsprepError]]]:
    """``(item, fn(item) or None, error or None)`` for every item, in order; ``fn`` returns ``(record, problems)``
    or raises :class:`DsprepError` for a bad item (returned, so the caller applies its ``--on-error`` policy).

    Many items are read in as many chunks as there are CPUs, each by its own process
    (:func:`dsprep.parallel.fork_map`); the records come back packed in a few arrays (:func:`pack_records`).
    With ``ctx.headers`` set, each forked reader also reads each record's image header right after its annotation
    (one trip for both), leaving the header's problems under :data:`HEADER_PROBLEMS` in the record's meta for
    :func:`dsprep.dataset.attach_images`, which reports them in its usual order."""
    ctx = ctx or ReadContext()
    wrap = ctx.progress
    n = reading_processes(len(items))
    if n <= 1:
        for item in wrap(items):
            try:
                yield item, fn(item), None
            except DsprepError as e:
                yield item, None, e
        return
    from ..parallel import fork_map
    bounds = np.linspace(0, len(items), n + 1).astype(int)
    chunks = [items[bounds[k]:bounds[k + 1]] for k in range(n)]

    headers = ctx.headers

    def read_chunk(chunk):
        recs, problems, errors = [], [], {}
        for k, item in enumerate(chunk):
            try:
                rec, probs = fn(item)
            except DsprepError as e:
                errors[k] = e
                continue
            if headers is not None:  # the image header too, while in this process (attach_images keeps its problems)
                rec, header_problems = headers(rec)
                rec.meta[HEADER_PROBLEMS] = header_problems
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



def source_indices(rec: ImageRecord, n_old: int, source: str) -> np.ndarray:
    """``rec.attrs["source_index"]`` checked against a file holding ``n_old`` objects (all -1 when absent)."""
    src = rec.attrs.get("source_index")
    if src is None:
        return np.full(len(rec), -1, np.int64)
    src = np.asarray(src, np.int64).reshape(-1)
    old = src[src >= 0]
    if (src < -1).any() or (old >= n_old).any() or len(np.unique(old)) != len(old):
        raise DsprepError(f"{source}: source_index must name each of the file's {n_old} objects at most once "
                          f"(or -1 for a new object), got {src.tolist()}")
    return src


def clip_boxes(rec: ImageRecord, source: str) -> Tuple[ImageRecord, List[Problem]]:
    """Clip boxes to ``[0, width] x [0, height]``; report each clipped box.  Needs a known size."""
    if rec.width <= 0 or rec.height <= 0 or len(rec) == 0:
        return rec, []
    w, h = rec.width, rec.height
    if len(rec) <= 16:  # the usual few boxes: plain Python beats two numpy reductions (~3 us against ~10 us)
        if all(x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h for x0, y0, x1, y1 in rec.boxes.tolist()):
            return rec, []
    lim = np.array([w, h, w, h], np.float64)
    if rec.boxes.min() >= 0 and (rec.boxes <= lim).all():
        return rec, []
    clipped = np.clip(rec.boxes, 0.0, lim)
    changed = np.flatnonzero((clipped != rec.boxes).any(axis=1))
    if len(changed) == 0:
        return rec, []
    problems = [Problem("clipped_box", source, f"object {k} ({rec.names[k]}) extends outside the "
                                               f"{rec.width}x{rec.height} image") for k in changed]
    new_degenerate = changed[((clipped[changed, 2] <= clipped[changed, 0]) |
                              (clipped[changed, 3] <= clipped[changed, 1]))]
    problems += [Problem("degenerate_box", source, f"object {k} ({rec.names[k]}) lies outside the image")
                 for k in new_degenerate]
    out = rec.select(np.arange(len(rec)))
    out.boxes = clipped
    out.meta["clipped_box"] = len(changed)  # what a conversion loses (counted by convert, see jobs/convert.py)
    return out, problems


def number_text(v: float, exponent: bool = True) -> str:
    """``v`` as annotation files write it: an integral value (below 1e15) without a decimal point, others as the
    shortest text that reads back exactly (``repr``).  ``exponent=False``: never in exponent notation (``1e-05``
    becomes ``0.00001``, ``1e+15`` ``1000000000000000``), and ``-0`` is ``0``."""
    if exponent:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))
    r = repr(float(v))
    if "e" in r or "E" in r:
        r = np.format_float_positional(float(v), unique=True, trim="-")
    if r.endswith(".0"):
        r = r[:-2]
    return "0" if r == "-0" else r


def json_number(v: float):
    """``v`` for a JSON document: an ``int`` when integral (and exact in binary64), else a ``float``."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2 ** 53 else f


def shape_masks(rec: ImageRecord, mask_of: Callable[[int, Any, Optional[np.ndarray], np.ndarray], Optional[np.ndarray]]
                ) -> Optional[List[Optional[np.ndarray]]]:
    """Object masks of a record whose objects may carry shapes (``rec.attrs["segmentation"]`` or ``rec.polygons``):
    ``mask_of(k, segmentation or None, quad or None, pixel bounds)`` for each object (the bounds of
    :func:`dsprep.geometry.pixel_bounds`, no pad); None when the record has no shapes or no object got a mask."""
    segs = rec.attrs.get("segmentation")
    if segs is None and rec.polygons is None:
        return None
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    out = [mask_of(k, segs[k] if segs is not None else None, rec.polygons[k] if rec.polygons is not None else None,
                   bounds[k]) for k in range(len(rec))]
    return out if any(m is not None for m in out) else None


def quad_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """Each object's quad (``rec.polygons``) as a bool mask over its pixel bounds, all objects at once (one shapely
    call): a pixel belongs to an object when its centre lies inside the quad or on its outline."""
    import shapely
    if rec.polygons is None or len(rec) == 0:
        return None
    b = pixel_bounds(rec.boxes, rec.width, rec.height)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    sizes = w * h
    obj = np.repeat(np.arange(len(rec)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    xs = b[obj, 0] + local % np.maximum(w[obj], 1) + 0.5
    ys = b[obj, 1] + local // np.maximum(w[obj], 1) + 0.5
    polys = shapely.polygons(rec.polygons)
    inside = shapely.intersects_xy(polys[obj], xs, ys)
    parts = np.split(inside, np.cumsum(sizes)[:-1])
    return [p.reshape(int(hk), int(wk)) for p, wk, hk in zip(parts, w.tolist(), h.tolist())]
