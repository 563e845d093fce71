"""Per-image work units for the file-writing commands (visualize, crop).

Each is a top-level function over one picklable argument tuple, so it runs the same in this process, in a local
worker process or on a Dask worker.  They read their image, call the pure functions, and write their outputs
atomically; the returned value is a small dict of counts for the summary.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import crop as cropmod
from . import draw
from .core import OutputError, boxes_to_polygons
from .io import inside, read_image, safe_name, write_image


@dataclass(frozen=True)
class VisualizeOptions:
    out: str
    class_index: Dict[str, int]
    classes: Sequence[str] = ()
    ext: str = ".jpg"
    thumb: int = 0  # >0: also return a thumbnail of this size for the contact sheet


def visualize_one(args) -> dict:
    rec, image, opts = args  # image: a decoded array (packed data sets) or None (read from rec.image_path)
    img = image if image is not None else read_image(rec.image_path)
    drawn = draw.draw_record(img, rec, opts.class_index, classes=opts.classes)
    name = safe_name(rec.stem) + opts.ext
    path = Path(opts.out) / name
    write_image(path, drawn, jpeg_quality=92)
    thumb = None
    if opts.thumb:
        s = opts.thumb / max(drawn.shape[:2])
        thumb = cv2.resize(drawn, (max(1, int(drawn.shape[1] * s)), max(1, int(drawn.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
    return {"images": 1, "objects": int(sum(1 for n in rec.names if not opts.classes or n in opts.classes)),
            "thumb": thumb}


@dataclass(frozen=True)
class CropOptions:
    out: str
    classes: Sequence[str] = ()
    pad: int = 0
    min_size: int = 1
    backgrounds: Optional[str] = None
    blank: Optional[Sequence[str]] = None  # None: the cropped classes
    rgba: bool = False       # polygon alpha (DOTA records)
    upright: bool = False


def _target(root: str, *parts: str) -> Path:
    path = Path(root).joinpath(*parts)
    if not inside(root, path):  # cannot happen after safe_name; kept as the last line of defence
        raise OutputError(f"{path}: output name escapes {root}")
    return path


def crop_one(args) -> dict:
    """Write every selected object of one image to ``out/<class>/<stem>_<k>.png`` (+ a blanked background)."""
    rec, opts = args
    img = read_image(rec.image_path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[2] == 4 and not opts.rgba:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    h, w = img.shape[:2]
    names = np.array(rec.names, dtype=object)
    sel = np.array([not opts.classes or n in opts.classes for n in rec.names], bool)
    bounds = cropmod.pixel_bounds(rec.boxes, w, h, opts.pad)
    size_ok = ((bounds[:, 2] - bounds[:, 0]) >= max(1, opts.min_size)) & \
              ((bounds[:, 3] - bounds[:, 1]) >= max(1, opts.min_size))
    take = np.flatnonzero(sel & size_ok)
    stem = safe_name(rec.stem)
    written = 0
    for k in take:
        if opts.rgba and rec.polygons is not None:
            piece, _ = cropmod.crop_polygon_rgba(img, rec.polygons[k], upright=opts.upright, pad=opts.pad)
        else:
            x0, y0, x1, y1 = bounds[k]
            piece = img[y0:y1, x0:x1]
        folder = _target(opts.out, safe_name(names[k]))
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / f"{stem}_{k}.png", piece)
        written += 1
    result = {"images": 1, "crops": written, "too_small": int((sel & ~size_ok).sum())}
    if opts.backgrounds:
        blank = set(opts.blank) if opts.blank is not None else set(names[sel])
        mask = np.array([n in blank for n in rec.names], bool)
        polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
        base = img if img.ndim == 2 or img.shape[2] != 4 else cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        bg = cropmod.blank_regions(base, polys[mask])
        write_image(_target(opts.backgrounds, f"{stem}.png"), bg)
        result["backgrounds"] = 1
    return result


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


@dataclass(frozen=True)
class TileJob:
    """One image at one rate; ``part`` of ``parts`` selects every parts-th tile (huge images are shared out)."""

    stem: str
    image: str
    label: Optional[str]
    rate: float
    part: int = 0
    parts: int = 1


def tile_one(args) -> dict:
    """Write the tiles (images + DOTA labels) of one image at one rate."""
    from . import tiling
    from .dota import read_dota
    from .io import atomic_write_text
    job, opts = args
    img = read_image(job.image)
    skipped_lines = []
    if job.label is not None:
        rec, _, skipped_lines = read_dota(job.label, opts.on_error)
        objs = tiling.prepare_objects(rec.polygons, rec.names, rec.difficult, job.rate)
    else:
        objs = tiling.prepare_objects(np.zeros((0, 4, 2)), [], [], job.rate)
    if job.rate != 1:
        img = cv2.resize(img, None, fx=job.rate, fy=job.rate, interpolation=cv2.INTER_CUBIC)
    h, w = img.shape[:2]
    grid = tiling.tile_grid(w, h, opts.size, opts.gap)[job.part::job.parts]
    stats = tiling.TileStats()
    out = Path(opts.out)
    tiles = empty = 0
    for left, up in grid:
        lines = tiling.tile_labels(objs, left, up, w, h, opts.size, opts.thresh, stats)
        if opts.skip_empty and not lines:
            empty += 1
            continue
        name = tiling.tile_name(job.stem, job.rate, left, up)
        pixels = tiling.crop_tile(img, left, up, opts.size, opts.pad)
        write_image(out / "images" / f"{name}{opts.ext}", pixels)
        if job.label is not None:
            atomic_write_text(out / "labelTxt" / f"{name}.txt", "".join(line + "\n" for line in lines))
        tiles += 1
    return {"images": 1 if job.part == 0 else 0, "tiles": tiles, "empty_skipped": empty,
            "objects": stats.whole + stats.cut, "cut": stats.cut, "difficult_2": stats.difficult2,
            "dropped": stats.dropped + stats.invalid, "skipped_lines": skipped_lines if job.part == 0 else []}


def plan_tile_jobs(root: Path, rates: Sequence[float], slots: int, size: int, gap: int) -> list:
    """One job per image and rate; when there are fewer images than worker slots, an image's tiles are shared out
    over several jobs (each decodes the image itself, so it works the same on a cluster)."""
    from .core import DatasetError
    from .dota import dota_items
    from .io import image_size
    from .tiling import tile_grid
    if (root / "labelTxt").is_dir():
        items, _, _ = dota_items(root)
    elif (root / "images").is_dir():
        items = [(p.stem, None, str(p)) for p in sorted((root / "images").iterdir()) if p.is_file()]
    else:
        raise DatasetError(f"{root}: no images/ folder (expected a DOTA layout: images/ + labelTxt/)")
    items = [(stem, label, image) for stem, label, image in items if image is not None]
    if not items:
        raise DatasetError(f"{root}: data set is empty (no images in images/)")
    jobs = []
    share = max(1, -(-slots // len(items))) if slots > 1 else 1
    for stem, label, image in items:
        for rate in rates:
            parts = 1
            if share > 1:
                w, h, _ = image_size(image)
                parts = max(1, min(share, len(tile_grid(int(w * rate), int(h * rate), size, gap))))
            jobs += [TileJob(stem, image, label, rate, part, parts) for part in range(parts)]
    return jobs


@dataclass(frozen=True)
class ConvertOptions:
    out: str
    target: str  # "voc" | "dota"


def convert_one(args) -> dict:
    """Write one record in the other format, and place its image beside it (hard link, else copy)."""
    from .dota import write_dota
    from .io import copy_file
    from .voc import clip_boxes, write_voc
    rec, opts = args
    out = Path(opts.out)
    stem = safe_name(rec.stem)
    image_name = stem + (Path(rec.image_path).suffix or ".png")
    clipped = 0
    if opts.target == "voc":
        box_rec = rec.select(np.arange(len(rec)))
        box_rec.polygons = None
        box_rec.image_path = image_name
        box_rec, problems = clip_boxes(box_rec, rec.image_path)
        clipped = sum(p.kind == "clipped_box" for p in problems)
        (out / "Annotations").mkdir(exist_ok=True)
        (out / "JPEGImages").mkdir(exist_ok=True)
        write_voc(out / "Annotations" / f"{stem}.xml", box_rec)
        image_dir = out / "JPEGImages"
    else:
        (out / "labelTxt").mkdir(exist_ok=True)
        (out / "images").mkdir(exist_ok=True)
        write_dota(out / "labelTxt" / f"{stem}.txt", rec)
        image_dir = out / "images"
    if Path(rec.image_path).is_file():
        copy_file(rec.image_path, image_dir / image_name)
    return {"images": 1, "objects": len(rec), "clipped": clipped, "stem": stem}


def write_split_files(out: Path, target: str, records, stems) -> None:
    """VOC output: ``ImageSets/Main/<split>.txt`` per split of the input (``trainval`` when it had none)."""
    if target != "voc":
        return
    from .voc import write_split_list
    by_split = {}
    for rec, stem in zip(records, stems):
        by_split.setdefault(rec.split or "trainval", []).append(stem)
    (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, ids in by_split.items():
        write_split_list(out / "ImageSets" / "Main" / f"{split}.txt", ids)


@dataclass(frozen=True)
class ColorOptions:
    method: str
    fraction: Optional[float] = None
    min_pixels: int = 100
    p: float = 6.0
    jpeg_quality: int = 95


def color_one(args) -> dict:
    """Correct one image file and write it (same format) to its destination."""
    from .color import correct
    from .core import ImageError
    src, dst, opts = args
    img = read_image(src, cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint8:
        raise ImageError(f"{src}: {img.dtype} image: only 8-bit images are supported")
    out, changed = correct(img, opts.method, opts.fraction, opts.min_pixels, opts.p)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_image(dst, out, jpeg_quality=opts.jpeg_quality)
    return {"images": 1, "unchanged": int(not changed)}


def color_pairs(inputs: Sequence[str], out: Optional[str], in_place: bool) -> list:
    """``[(source, destination)]``: folders are walked (relative names kept), files keep their names."""
    from .core import DatasetError, OutputError
    from .io import is_image
    pairs = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and is_image(f))
            pairs += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        else:
            raise DatasetError(f"{p}: not found")
    if not pairs:
        raise DatasetError(f"no images found in {', '.join(inputs)}")
    if in_place:
        return [(str(s), str(s)) for s, _ in pairs]
    dests = {}
    for s, rel in pairs:
        d = Path(out) / rel
        if str(d) in dests:
            raise OutputError(f"{s} and {dests[str(d)]} would both be written to {d}")
        if d.exists() and d.resolve() == s.resolve():
            raise OutputError(f"{d}: would overwrite its input (use --in-place to correct files where they are)")
        dests[str(d)] = s
    return [(str(s), d) for d, s in dests.items()]


@dataclass(frozen=True)
class SynthConfig:
    """Everything a synth worker needs besides the image index (file lists are sorted: deterministic)."""

    out: str
    backgrounds: Tuple[str, ...]
    objects: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (class, object files)
    params: object                                     # synth.SynthParams
    seed: int
    fmt: str = "voc"                                   # voc | dota
    ext: str = ".jpg"
    mask_from: str = "auto"
    masks: bool = False
    color: Optional[str] = None
    jpeg_quality: int = 95
    prefix: str = "synth_"


_SPRITES: dict = {}


def _sprite(path: str, mask_from: str):
    """Object crops are decoded once per worker process (bounded cache)."""
    from .synth import sprite_from_image
    key = (path, mask_from)
    sp = _SPRITES.get(key)
    if sp is None:
        if len(_SPRITES) > 4096:
            _SPRITES.clear()
        try:
            sp = sprite_from_image(read_image(path, cv2.IMREAD_UNCHANGED), mask_from, path)
        except ValueError as e:
            from .core import ImageError
            raise ImageError(str(e)) from e
        _SPRITES[key] = sp
    return sp


def synth_name(cfg: SynthConfig, index: int) -> str:
    return f"{cfg.prefix}{index:06d}"


def synth_one(args) -> dict:
    """Make and write synthetic image ``index``; its generator is seeded by ``(seed, index)``, so the output does
    not depend on which worker makes it or in which order."""
    from .core import ImageRecord
    from .dota import write_dota
    from .io import atomic_write_bytes
    from .synth import encode_palette_png, synthesize, voc_palette
    from .voc import write_voc
    index, cfg = args
    rng = np.random.default_rng([cfg.seed, index])
    bg_path = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    background = read_image(bg_path)
    if cfg.color:
        from .color import correct
        background, _ = correct(background, cfg.color)
    files = dict(cfg.objects)
    classes = [c for c, _ in cfg.objects]

    def pick(cls, r):
        paths = files[cls]
        return _sprite(paths[int(r.integers(len(paths)))], cfg.mask_from)

    res = synthesize(background, pick, classes, cfg.params, rng, masks=cfg.masks, reuse_background=True)
    name = synth_name(cfg, index)
    out = Path(cfg.out)
    h, w = res.image.shape[:2]
    image_dir = out / ("JPEGImages" if cfg.fmt == "voc" else "images")
    write_image(image_dir / f"{name}{cfg.ext}", res.image, jpeg_quality=cfg.jpeg_quality)
    rec = ImageRecord(f"{name}{cfg.ext}", w, h, boxes=res.boxes, names=res.names,
                      polygons=res.quads if cfg.fmt == "dota" else None, meta={"stem": name})
    if cfg.fmt == "voc":
        write_voc(out / "Annotations" / f"{name}.xml", rec)
    else:
        write_dota(out / "labelTxt" / f"{name}.txt", rec)
    if cfg.masks and res.instance is not None:
        pal = voc_palette()
        cls_index = {c: i + 1 for i, c in enumerate(classes)}
        lut = np.zeros(256, np.uint8)
        for k, n in enumerate(res.names):
            lut[min(k + 1, 254)] = cls_index[n]
        atomic_write_bytes(out / "SegmentationObject" / f"{name}.png", encode_palette_png(res.instance, pal))
        atomic_write_bytes(out / "SegmentationClass" / f"{name}.png", encode_palette_png(lut[res.instance], pal))
    return {"images": 1, "objects": len(res.names), "dropped_too_large": res.dropped_too_large,
            "dropped_no_room": res.dropped_no_room, "name": name}
