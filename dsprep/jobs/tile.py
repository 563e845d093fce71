"""Per-image work of ``tile-dota`` and ``tile``: the tiles (pixels and labels) of one image at one rate, or of one
rectangle of a huge image.

A job names the tile origins it writes.  Ordinary images are decoded whole, once per job (an image's tiles are
shared out over several jobs only when there are fewer images than workers).  Tiled or striped TIFFs are read by
windows (:mod:`dsprep.rasters`): their tiles are grouped in bands of up to ``band`` tiles side by side, and each job
reads only its band's rectangle.  Labels of ordinary images are parsed in the job; for windowed images they are parsed
once, in the planning process, and each job receives the objects that reach its rectangle.  Masks go with the
pixels: VOC mask files through :mod:`dsprep.jobs.tilemasks`, segmentations through :class:`dsprep.ops.maskcut.Shapes`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..images import as_bgr, write_image

# bytes of source pixels one windowed job reads at most (its band rectangle)
REGION_BUDGET = 48 << 20


@dataclass(frozen=True)
class TileOptions:
    out: str
    size: int = 1024
    gap: int = 200
    thresh: float = 0.7
    ext: str = ".png"
    pad: bool = False
    skip_empty: bool = False
    on_error: str = "fail"  # skip: broken label lines are skipped (and listed), not the whole image
    png_compression: object = "fast"  # images.PNG_FAST, or a zlib level
    keep_gray: bool = False  # write gray tiles as one channel (tile); tile-dota writes BGR like the devkit


@dataclass(frozen=True)
class Objects:
    """Objects handed to a job: ``polys`` ``(N, 4, 2)`` float64 as annotated, class ``names``, ``difficult``;
    ``segs`` their segmentations (``rec.attrs["segmentation"]`` entries, cut with the tiles); ``source`` their
    indices in the image's objects when these are some of them (a windowed job's), else None."""

    polys: np.ndarray
    names: Tuple[str, ...]
    difficult: np.ndarray
    truncated: Optional[np.ndarray] = None
    segs: Optional[tuple] = None
    source: Optional[np.ndarray] = None

    def select(self, keep: np.ndarray) -> "Objects":
        idx = np.flatnonzero(keep)
        return Objects(self.polys[idx], tuple(self.names[i] for i in idx), self.difficult[idx],
                       None if self.truncated is None else self.truncated[idx],
                       None if self.segs is None else tuple(self.segs[i] for i in idx),
                       idx if self.source is None else self.source[idx])


@dataclass(frozen=True)
class TileJob:
    """The tiles at ``origins`` (in the image resized by ``rate``) of one image."""

    stem: str
    image: str
    label: Optional[str]
    rate: float
    origins: Tuple[Tuple[int, int], ...]
    width: int            # the resized image's size
    height: int
    first: bool = True    # counts the image, reports its skipped label lines
    orient: bool = True   # apply the EXIF orientation (decided once, by --exif)
    layout: object = None  # rasters.TiffLayout: read by windows
    objects: Optional[Objects] = None  # objects given (else parsed from ``label`` by the job)
    skipped: Tuple[Tuple[str, str], ...] = ()
    record: Optional[tuple] = None  # tile: the source record's split, whether it has polygons, and all its splits
    ext: Optional[str] = None  # tile: the tiles' image extension (None: TileOptions.ext)
    masks: object = None  # tilemasks.MaskFiles: the image's VOC mask files, cut with it
    source_size: Tuple[int, int] = (0, 0)  # the image's own size (W, H), before ``rate``
    where: Optional[str] = None  # the annotation file (named in errors about its objects)


def _objects_of(job: TileJob, on_error: str):
    """``(TileObjects, skipped lines, source, originals)`` of a job: ``source`` maps its objects to the image's
    (None: they are all of them, in order); ``originals`` is ``(boxes, names)`` of the image's objects as read when
    the job parsed them itself (else None)."""
    from ..ops import tiling
    from ..formats.dota import read_dota
    if job.objects is not None:
        o = job.objects
        return tiling.prepare_objects(o.polys, o.names, o.difficult, job.rate), list(job.skipped), o.source, None
    if job.label is not None:  # labels first: a broken label file fails before the image is decoded
        rec, _, skipped = read_dota(job.label, on_error)
        return (tiling.prepare_objects(rec.polygons, rec.names, rec.difficult, job.rate), skipped, None,
                (rec.boxes, rec.names))
    return tiling.prepare_objects(np.zeros((0, 4, 2)), [], [], job.rate), [], None, (np.zeros((0, 4)), [])


def _tile_masks(job: TileJob, opts: "TileOptions", originals):
    """The job's :class:`~dsprep.jobs.tilemasks.TileMasks` (None without mask files).  The instances are matched
    against every object of the image: the planner's list, or the objects the job read itself."""
    from .tilemasks import TileMasks
    files = job.masks
    if files is None:
        return None
    boxes, names = (files.boxes, files.names) if files.boxes is not None else originals
    return TileMasks(files, job.rate, _region(job, opts.size), boxes, names)


def _source(source, index: np.ndarray) -> np.ndarray:
    index = np.asarray(index, np.int64)
    return index if source is None else np.asarray(source, np.int64)[index]


def _region(job: TileJob, size: int) -> Tuple[int, int, int, int]:
    xs = [left for left, _ in job.origins]
    ys = [up for _, up in job.origins]
    return min(xs), min(ys), min(max(xs) + size, job.width), min(max(ys) + size, job.height)


def _tiles(job: TileJob, opts: TileOptions, objs, stats):
    """``(name, left, up, pixels or None, cut, geo)`` for each tile of the job; pixels are read only for tiles that
    are written (with ``skip_empty``, empty tiles give None)."""
    from ..ops import tiling
    from ..rasters import ScaledRaster, open_raster
    cuts = [(left, up, tiling.tile_objects(objs, left, up, job.width, job.height, opts.size, opts.thresh, stats))
            for left, up in job.origins]
    wanted = [(left, up, cut) for left, up, cut in cuts if not (opts.skip_empty and len(cut.index) == 0)]
    if not wanted:
        for left, up, cut in cuts:
            yield tiling.tile_name(job.stem, job.rate, left, up), left, up, None, cut, None
        return
    with ScaledRaster(open_raster(job.image, job.orient, job.layout), job.rate) as raster:
        if (raster.width, raster.height) != (job.width, job.height):
            from ..core import ImageError
            raise ImageError(f"{job.image}: the image is {raster.width}x{raster.height} at rate {job.rate}, its "
                             f"header said {job.width}x{job.height}")
        x0, y0, x1, y1 = _region(job, opts.size)
        block = raster.read(x0, y0, x1, y1)
        for left, up, cut in cuts:
            name = tiling.tile_name(job.stem, job.rate, left, up)
            if opts.skip_empty and len(cut.index) == 0:
                yield name, left, up, None, cut, raster.geo
                continue
            pixels = block[up - y0:up - y0 + opts.size, left - x0:left - x0 + opts.size]
            pixels = tiling.crop_tile(pixels, 0, 0, opts.size, opts.pad)
            yield name, left, up, (pixels if opts.keep_gray else as_bgr(pixels)), cut, raster.geo


def _write_pixels(path: Path, pixels: np.ndarray, opts: TileOptions, geo, job: TileJob, left: int, up: int) -> None:
    write_image(path, pixels, png_compression=opts.png_compression)
    if geo is not None:
        from ..outputs import atomic_write_text
        from ..rasters import world_file_ext
        atomic_write_text(path.with_suffix(world_file_ext(path.suffix)), geo.world_file(left, up, job.rate))


def tile_one(args) -> dict:
    """``tile-dota``: write the tiles (images + DOTA labels, devkit text) of one job."""
    from ..ops import tiling
    from ..outputs import atomic_write_text
    job, opts = args
    objs, skipped_lines, source, originals = _objects_of(job, opts.on_error)
    stats = tiling.TileStats()
    out = Path(opts.out)
    tiles = empty = 0
    masks = _Lazy(lambda: _tile_masks(job, opts, originals))
    written = []
    for name, left, up, pixels, cut, geo in _tiles(job, opts, objs, stats):
        if pixels is None:
            empty += 1
            continue
        files = {}
        if masks.get() is not None:  # DOTA keeps every object the devkit keeps: the masks are renumbered only
            instance, classes = masks.get().window(left, up, opts.size, opts.pad)
            files = masks.get().files(name, instance, classes, _source(source, cut.index))
            written.append((job.masks.root, job.masks.stem, name))
        _write_pixels(out / "images" / f"{name}{opts.ext}", pixels, opts, geo, job, left, up)
        if job.label is not None:
            atomic_write_text(out / "labelTxt" / f"{name}.txt", "".join(line + "\n" for line in cut.lines(objs.names)))
        _write_files(out, files)
        tiles += 1
    return {"images": 1 if job.first else 0, "tiles": tiles, "empty_skipped": empty,
            "objects": stats.whole + stats.cut, "cut": stats.cut, "difficult_2": stats.difficult2,
            "dropped": stats.dropped + stats.invalid, "skipped": skipped_lines if job.first else [],
            "masks_written": written, **({"mask_tiles": len(written)} if written else {})}


class _Lazy:
    """A value made on first use (mask files are decoded only when a tile is written)."""

    def __init__(self, make):
        self._make, self._done, self._value = make, False, None

    def get(self):
        if not self._done:
            self._value, self._done = self._make(), True
        return self._value


def _write_files(out: Path, files: Dict[str, bytes]) -> None:
    from ..outputs import atomic_write_bytes
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / rel, data)


def tile_record(args) -> dict:
    """``tile``: write the tiles of one job in a data-set format (its ``FormatWriter``); returns the tiles' records
    under ``records`` for the writer's data-set files.

    Shapes go with the objects: segmentations (``attrs["segmentation"]``) are cut by each tile
    (:class:`dsprep.ops.maskcut.Shapes`); VOC mask files are cut into the tile's mask files when the target keeps
    masks in such files, else into each object's segmentation as an RLE of the tile.  An object whose shape leaves
    nothing in a tile is a remnant there (dropped, ``remnant_dropped``) however its box is cut."""
    from ..ops import tiling
    from ..core import ImageRecord, ParseError
    from .convert import account_attrs, lost_flags
    from ..dataset import keeps_mask_files
    job, opts, writer = args
    objs, _, source, originals = _objects_of(job, opts.on_error)
    stats = tiling.TileStats()
    out = Path(opts.out)
    split, has_polygons = job.record[:2] if job.record is not None else (None, False)
    splits = job.record[2] if job.record is not None and len(job.record) > 2 else None
    ext = job.ext or opts.ext
    shapes = None
    if job.objects is not None and job.objects.segs is not None:
        from ..ops.maskcut import Shapes
        try:
            shapes = Shapes(job.objects.segs, job.source_size, job.rate)
        except ValueError as e:
            raise ParseError(f"{job.where or job.image}: {e}") from e
        if not shapes.has_shapes():
            shapes = None
    masks = _Lazy(lambda: _tile_masks(job, opts, originals))
    mask_files = job.masks is not None and keeps_mask_files(writer.NAME)
    records, written = [], []
    lossy: Dict[str, int] = {}

    def lose(kind: str, n: int) -> None:
        if n:
            lossy[kind] = lossy.get(kind, 0) + int(n)

    tiles = empty = 0
    for name, left, up, pixels, cut, geo in _tiles(job, opts, objs, stats):
        if pixels is None:
            empty += 1
            continue
        if tiles == 0 and job.first and masks.get() is not None and not mask_files and \
                "segmentation" in getattr(writer, "HANDLES_ATTRS", frozenset()):
            for k, v in masks.get().leftovers().items():  # (once per source image)
                lose(k, v)
        quads = cut.coords.reshape(-1, 4, 2)
        truncated = cut.cut.copy()
        if job.objects.truncated is not None and len(cut.index):
            truncated |= job.objects.truncated[cut.index]
        difficult = np.array([int(d) for d in cut.difficult], np.uint8)
        index = np.asarray(cut.index, np.intp)
        boxes = np.concatenate([quads.min(1), quads.max(1)], 1) if len(quads) else np.zeros((0, 4))
        h, w = pixels.shape[:2]
        remnants = writer.NAME != "dota"  # DOTA keeps the devkit's objects and its difficult 2 ("mostly cut away")
        keep = np.ones(len(index), bool)
        if remnants:  # a remnant under a pixel is no box a data set format can hold
            keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        instance = classes = None
        shape_boxes = np.full((len(index), 4), np.nan)  # the box of each object's shape in the tile
        parts = None
        if masks.get() is not None:
            instance, classes = masks.get().window(left, up, opts.size, opts.pad)
            parts = masks.get().parts(instance, left, up, _source(source, index))
            shape_boxes = masks.get().boxes(parts)
            if remnants:  # nor is an object whose mask has no pixel in the tile
                keep &= masks.get().present(parts)
        segs = None
        if shapes is not None:
            window = (left, up, min(left + opts.size, job.width), min(up + opts.size, job.height))
            segs, gone, shape_boxes = shapes.cut(index, window, (w, h))
            if remnants:
                keep &= ~gone
        if not has_polygons:  # an object's box is its shape's in the tile (so box and mask agree, as cut)
            tight = ~np.isnan(shape_boxes[:, 0])
            boxes = np.where(tight[:, None], shape_boxes, boxes)
            if remnants:
                keep &= ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        if not keep.all():
            lose("remnant_dropped", (~keep).sum())
            quads, boxes, truncated, difficult, index = (quads[keep], boxes[keep], truncated[keep], difficult[keep],
                                                         index[keep])
            segs = None if segs is None else [x for x, k in zip(segs, keep) if k]
            parts = None if parts is None else [x for x, k in zip(parts, keep) if k]
        if remnants:
            two = difficult == 2  # cut by the tile border: truncated, with the object's own difficult flag
            if two.any():
                own = np.array([int(objs.difficult[k]) for k in index], np.uint8)
                difficult = np.where(two, own, difficult).astype(np.uint8)
                truncated = truncated | two
        attrs = {}
        if parts is not None and not mask_files:
            segs = masks.get().segmentations(parts, (h, w))
        if segs is not None:
            attrs["segmentation"] = segs
        rec = ImageRecord(f"{name}{ext}", w, h, 1 if pixels.ndim == 2 else pixels.shape[2],
                          boxes=boxes, names=[objs.names[k] for k in index],
                          difficult=difficult, truncated=truncated,
                          polygons=quads if has_polygons else None, split=split, meta={"stem": name}, attrs=attrs)
        if splits and len(splits) > 1:
            rec.meta["splits"] = splits
        for k, v in lost_flags(rec, writer).items():
            lose(k, v)
        for k, v in account_attrs(rec, writer)[1].items():
            lose(k, v)
        files, lost = writer.record_files(rec)
        for k, v in lost.items():
            lose(k, v)
        if mask_files:
            files = {**files, **masks.get().files(name, instance, classes, _source(source, index))}
            written.append((job.masks.root, job.masks.stem, name))
        _write_files(out, files)
        image = out / writer.image_path(rec)
        image.parent.mkdir(parents=True, exist_ok=True)
        _write_pixels(image, pixels, opts, geo, job, left, up)
        records.append(rec)  # for the writer's data-set files (a COCO JSON holds every object)
        tiles += 1
    return {"images": 1 if job.first else 0, "tiles": tiles, "empty_skipped": empty,
            "objects": stats.whole + stats.cut, "cut": stats.cut, "difficult_2": stats.difficult2,
            "dropped": stats.dropped + stats.invalid, "records": records, "masks_written": written,
            **({"mask_tiles": len(written)} if written else {}), **lossy}


# ---- planning --------------------------------------------------------------------------------------------------------

@dataclass
class ImagePlan:
    """How one image is read: its stored size, channels, orientation, and its window layout (None: whole)."""

    width: int
    height: int
    channels: int
    orient: bool
    layout: object = None
    why_whole: str = ""
    exif: int = 1  # the EXIF orientation code of the file


def plan_image(image: str, exif: str = "auto", annotated=None) -> ImagePlan:
    """Read an image's header: orientation (``--exif``), size, and whether it is read by windows."""
    from ..images import decide_orientation, is_plain_gray, probe
    from ..rasters import tiff_layout
    info = probe(image)
    orient, _ = decide_orientation(exif, info, annotated)
    w, h = info.size(orient)
    channels = 1 if is_plain_gray(info) else 3
    layout, why = (None, "")
    if info.kind == "tiff" and not (orient and info.orientation not in (0, 1)):
        layout, why = tiff_layout(image)
        if layout is not None:
            channels = 1 if layout.samples == 1 else 3
    return ImagePlan(w, h, channels, orient, layout, why, info.orientation)


def image_jobs(stem: str, image: str, label: Optional[str], plan: ImagePlan, rates: Sequence[float], share: int,
               size: int, gap: int, objects: Optional[Objects] = None, record=None,
               load_objects=None, ext: Optional[str] = None, masks=None, where: Optional[str] = None
               ) -> List[TileJob]:
    """The jobs of one image at every rate.  Raises :class:`ImageError` when the image cannot be tiled within the
    memory available (with what to do about it).  ``load_objects()`` gives the image's :class:`Objects` (and the
    skipped label lines) when windowed jobs need them and ``objects`` is None.  ``masks``: the image's
    :class:`~dsprep.jobs.tilemasks.MaskFiles`, cut with it."""
    from dataclasses import replace
    from ..core import UsageError
    from ..images import available_memory, check_memory_for
    from ..rasters import TIFF_EXTRA, exact_window_rate, scaled_size
    from ..ops.tiling import tile_grid
    jobs: List[TileJob] = []
    skipped: Tuple = ()
    for rate in rates:
        rw, rh = scaled_size(plan.width, plan.height, rate)
        if rw < 1 or rh < 1:
            raise UsageError(f"--rate {rate}: {image} ({plan.width}x{plan.height}) would shrink to {rw}x{rh} pixels")
        grid = tile_grid(rw, rh, size, gap)
        windowed = plan.layout is not None and (rate == 1 or exact_window_rate(rate))
        if not windowed:
            need = (plan.width * plan.height + (rw * rh if rate != 1 else 0)) * plan.channels
            if need > available_memory():
                if plan.layout is not None:
                    why = f"--rate {rate} is not a power of two, so the whole image is resized at once"
                elif image.lower().endswith((".tif", ".tiff")):
                    why = (f"it is not read by windows ({plan.why_whole})" if plan.why_whole != "no tifffile" else
                           f"reading it by windows needs tifffile ({TIFF_EXTRA})")
                else:
                    why = "PNG, JPEG and the other whole-image formats are decoded whole"
                check_memory_for(need, image, f"a {plan.width}x{plan.height} image"
                                 + (f" at rate {rate}" if rate != 1 else ""), "to tile", why)
            parts = max(1, min(share, len(grid))) if share > 1 else 1
            jobs += [TileJob(stem, image, label, rate, tuple(grid[p::parts]), rw, rh, p == 0, plan.orient,
                             objects=objects, record=record, ext=ext, masks=masks,
                             source_size=(plan.width, plan.height), where=where) for p in range(parts)]
            continue
        if objects is None and load_objects is not None:
            objects, skipped = load_objects()
            skipped = tuple(skipped)
        if masks is not None and masks.boxes is None and objects is not None:  # each band has some of the objects
            p = objects.polys
            masks = replace(masks, boxes=np.concatenate([p.min(1), p.max(1)], 1) if len(p) else np.zeros((0, 4)),
                            names=tuple(objects.names))
        first = True
        boxes = None
        if objects is not None and len(objects.polys):
            p = np.trunc(objects.polys) * rate  # devkit coordinates, as tiling.prepare_objects makes them
            boxes = (p.min(axis=1), p.max(axis=1))
        for origins in _bands(grid, size, gap, rate, plan.channels):
            sub = objects
            if boxes is not None:
                sub = _objects_reaching(objects, boxes, origins, size, rw, rh)
            jobs.append(TileJob(stem, image, label, rate, origins, rw, rh, first, plan.orient, plan.layout, sub,
                                skipped if first else (), record, ext, masks, (plan.width, plan.height), where))
            first = False
    return jobs


def _bands(grid: List[Tuple[int, int]], size: int, gap: int, rate: float, channels: int):
    """Tile origins grouped by row (same ``up``), in runs whose source rectangle fits :data:`REGION_BUDGET`."""
    rows: Dict[int, List[int]] = {}
    for left, up in grid:
        rows.setdefault(up, []).append(left)
    src_row = size / rate * channels * (size / rate)  # bytes of one tile's source rectangle
    per = max(1, int(REGION_BUDGET / max(1.0, src_row) * size / max(1, size - gap)) - 1)
    for up in sorted(rows):
        lefts = sorted(rows[up])
        for i in range(0, len(lefts), per):
            yield tuple((left, up) for left in lefts[i:i + per])


def _objects_reaching(objects: Objects, boxes, origins, size: int, width: int, height: int) -> Objects:
    """The objects whose box (``boxes = (lo, hi)`` in devkit coordinates: truncated, times the rate) reaches the
    tiles' rectangle."""
    lo, hi = boxes
    x0 = min(left for left, _ in origins)
    y0 = min(up for _, up in origins)
    x1 = min(max(left for left, _ in origins) + size, width - 1)
    y1 = min(max(up for _, up in origins) + size, height - 1)
    keep = (hi[:, 0] >= x0) & (lo[:, 0] <= x1) & (hi[:, 1] >= y0) & (lo[:, 1] <= y1)
    return objects.select(keep)


def plan_tile_jobs(root: Path, rates: Sequence[float], slots: int, size: int, gap: int, exif: str = "auto",
                   on_error: str = "fail") -> Tuple[list, List[Tuple[str, str]]]:
    """``tile-dota``: the jobs of every image and rate, and the inputs that cannot be tiled as ``(file, reason)``.

    A folder without ``labelTxt/`` (DOTA's test split) gives image tiles only.  Where ``labelTxt/`` exists, an image
    without a label file, or a label file without an image, is such a bad input.  Every image header is read here:
    its orientation is decided once (``--exif``), and each rate is checked to give a tileable image that fits in
    memory before any work.  When there are fewer images than worker slots, an image's tiles are shared out over
    several jobs (each decodes the image itself, so it works the same on a cluster); images read by windows are
    always shared out by bands.  VOC mask files beside them (``SegmentationClass/<stem>.png``,
    ``SegmentationObject/<stem>.png``) are cut with the images (:mod:`dsprep.jobs.tilemasks`)."""
    from ..core import DatasetError, DsprepError, ImageError, UsageError
    from ..formats.dota import dota_items, read_dota
    from ..images import is_image
    from .tilemasks import find_mask_files
    bad: List[Tuple[str, str]] = []
    if (root / "labelTxt").is_dir():
        items, labels_dir, _ = dota_items(root)
        for stem, label, image in items:
            if image is None:
                bad.append((label, f"{label}: label file without an image in {root / 'images'}"))
            elif label is None:
                bad.append((image, f"{image}: no label file {labels_dir / (stem + '.txt')} (other images have one)"))
        items = [it for it in items if it[1] is not None and it[2] is not None]
    elif (root / "images").is_dir():
        items = [(p.stem, None, str(p)) for p in sorted((root / "images").iterdir()) if p.is_file() and is_image(p)]
    else:
        raise DatasetError(f"{root}: no images/ folder (expected a DOTA layout: images/ + labelTxt/)")
    if not items and not bad:
        raise DatasetError(f"{root}: data set is empty (no images in images/)")
    jobs = []
    share = max(1, -(-slots // max(1, len(items)))) if slots > 1 else 1
    for stem, label, image in items:
        def load_objects(label=label):
            if label is None:
                return Objects(np.zeros((0, 4, 2)), (), np.zeros(0, np.uint8)), []
            rec, _, skipped = read_dota(label, on_error)
            return Objects(rec.polygons, tuple(rec.names), rec.difficult), skipped
        try:
            plan = plan_image(image, exif)
            masks = find_mask_files(root, stem, (plan.width, plan.height), plan.exif, plan.orient)
            jobs += image_jobs(stem, image, label, plan, rates, share, size, gap, load_objects=load_objects,
                               masks=masks, where=label)
        except ImageError as e:
            bad.append((image, str(e)))
        except DsprepError as e:
            if isinstance(e, (DatasetError, UsageError)):
                raise
            bad.append((label or image, str(e)))
    return by_work(jobs, slots), bad


def by_work(jobs: List[TileJob], slots: int) -> List[TileJob]:
    """With several workers, the largest jobs first (longest-processing-time order): the last jobs to finish are
    short ones, so no worker is left alone with a big image at the end.  Outputs do not depend on the order."""
    if slots <= 1:
        return jobs
    return sorted(jobs, key=lambda j: -(len(j.origins) if j.layout is not None else j.width * j.height))


def plan_record_jobs(records, rates: Sequence[float], slots: int, size: int, gap: int, ext: Optional[str],
                     lossy: Optional[Dict[str, int]] = None, fmt: Optional[str] = None
                     ) -> Tuple[list, List[Tuple[str, str]]]:
    """``tile``: the jobs of every record of a loaded data set (orientation and size decided when it was read),
    and the records that cannot be tiled as ``(file, reason)``.  Tiles carry boxes or quadrilaterals and the
    objects' segmentations, cut; COCO crowd regions are left out (``crowd_skipped``, counted in ``lossy``).  When
    the records' format ``fmt`` keeps masks in VOC's mask files (:func:`~dsprep.dataset.keeps_mask_files`)
    each record's mask files are cut with it."""
    import os
    from ..core import DsprepError, ImageError, UsageError, boxes_to_polygons
    from ..splits import splits_of
    from ..dataset import keeps_mask_files
    from .tilemasks import find_mask_files
    mask_files = fmt is not None and keeps_mask_files(fmt)
    bad: List[Tuple[str, str]] = []
    jobs: List[TileJob] = []
    share = max(1, -(-slots // max(1, len(records)))) if slots > 1 else 1
    for rec in records:
        where = rec.meta.get("annotation_path") or rec.image_path
        if not rec.image_path or not os.path.isfile(rec.image_path):
            bad.append((where, f"{where}: no image file {rec.image_path}"))
            continue
        try:
            plan = plan_image(rec.image_path, "apply" if rec.meta.get("orient", True) else "ignore")
            if rec.width > 0 and (plan.width, plan.height) != (rec.width, rec.height):
                raise ImageError(f"{where}: the annotation says {rec.width}x{rec.height} but the image "
                                 f"{rec.image_path} is {plan.width}x{plan.height} (boxes would not fit the pixels; "
                                 f"see dsprep info, --exif)")
            crowd = rec.attrs.get("iscrowd")
            if crowd is not None and np.any(crowd):
                keep = ~np.asarray(crowd, bool)
                if lossy is not None:
                    lossy["crowd_skipped"] = lossy.get("crowd_skipped", 0) + int((~keep).sum())
                rec = rec.select(keep)
            segs = rec.attrs.get("segmentation")
            polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
            objects = Objects(polys, tuple(rec.names), rec.difficult, rec.truncated,
                              tuple(segs) if segs is not None and any(segs) else None)
            tile_ext = ext or (os.path.splitext(rec.image_path)[1].lower() or ".png")
            masks = None
            if mask_files and rec.meta.get("annotation_path"):
                masks = find_mask_files(Path(rec.meta["annotation_path"]).parent.parent, rec.stem,
                                        (plan.width, plan.height), plan.exif, plan.orient, rec.boxes, rec.names,
                                        rec.meta["annotation_path"], fmt)
            jobs += image_jobs(rec.stem, rec.image_path, None, plan, rates, share, size, gap, objects=objects,
                               record=(rec.split, rec.polygons is not None, tuple(splits_of(rec))), ext=tile_ext,
                               masks=masks, where=where)
        except UsageError:
            raise
        except DsprepError as e:
            bad.append((rec.image_path, str(e)))
    return by_work(jobs, slots), bad
