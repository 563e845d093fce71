"""Per-image work of ``convert``: one record written in another format, its image placed beside it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core import DsprepError, FormatWriter, ImageRecord

# What each lossy count of a conversion means (the summary names them).
LOSSY = {
    "polygon_to_box": "non-rectangular quadrilaterals written as their axis-aligned boxes",
    "polygon_to_obb": "polygons written as their minimum-area rotated rectangles",
    "segmentation_dropped": "segmentation polygons or masks not kept: only the boxes are written",
    "mask_to_box": "RLE masks written as their boxes",
    "mask_holes_dropped": "objects whose mask has holes written without them: {target} polygons cannot hold holes",
    "mask_parts_joined": "objects of several parts written as one polygon, the parts joined by zero-width bridges "
                         "(as Ultralytics joins them): {target} holds one polygon per object",
    "box_to_polygon": "objects without a shape written as their box's four corners ({target} lines are polygons: "
                      "read back, their mask is the box)",
    "mask_instance_over_254": "objects past the 254th of an image left out of SegmentationObject (8-bit ids, 255 "
                              "is void)",
    "mask_instance_without_object": "mask instances no annotated object matches left out (only objects are "
                                    "carried: VOC SegmentationObject ids without an XML object)",
    "mask_cut_to_box": "object masks reaching outside their object's box cut to the box",
    "mask_void_dropped": "images whose masks mark void pixels (VOC's 255 band along object borders) written "
                         "without them: every pixel is background or an object",
    "mask_class_over_254": "objects of a class past the 254th left out of SegmentationClass (8-bit values, 255 is "
                           "void)",
    "crowd_skipped": "COCO crowd regions left out: the format has no crowd flag",
    "clipped_box": "boxes reaching outside the image clipped to it",
    "clipped_polygon": "polygon corners outside the image moved onto its border",
    "image_id_renumbered": "image ids repeated across splits given new ids",
    "annotation_id_renumbered": "annotation ids repeated across splits given new ids",
    "class_name_spaces": "class names with white space written with '-' (DOTA separates fields by spaces)",
    "renamed_duplicate_name": "images of the same name (in different splits or folders) renamed so none is "
                              "overwritten",
    "difficult_not_kept": "difficult flags not kept: {target} has no field for them",
    "truncated_not_kept": "truncated flags not kept: {target} has no field for them",
    "image_flags_not_kept": "labelme image-level flags not kept: {target} has no field for them",
    "split_membership_not_kept": "images in several splits (e.g. train and trainval) written once, under their "
                                 "first split: {target} keeps one split per image",
    "remnant_dropped": "tile remnants under a pixel wide or high, or with no mask pixel left in the tile, left out",
}


def lost_flags(rec: ImageRecord, writer: FormatWriter) -> Dict[str, int]:
    """What of ``rec``'s flags and splits ``writer``'s format cannot hold (``KEEPS_FLAGS``, ``KEEPS_IMAGE_FLAGS``,
    ``MULTI_SPLIT`` say what it keeps): set difficult / truncated flags, set labelme image flags, and the record
    itself when it is in several splits."""
    from ..splits import splits_of
    keeps = getattr(writer, "KEEPS_FLAGS", frozenset())
    out: Dict[str, int] = {}
    if "difficult" not in keeps:
        out["difficult_not_kept"] = int(np.count_nonzero(rec.difficult))
    if "truncated" not in keeps:
        out["truncated_not_kept"] = int(np.count_nonzero(rec.truncated))
    flags = (rec.meta.get("labelme") or {}).get("flags")
    if isinstance(flags, dict) and not getattr(writer, "KEEPS_IMAGE_FLAGS", False):
        out["image_flags_not_kept"] = sum(1 for v in flags.values() if v)
    if not getattr(writer, "MULTI_SPLIT", False) and len(splits_of(rec)) > 1:
        out["split_membership_not_kept"] = 1
    return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class ConvertOptions:
    out: str
    writer: FormatWriter
    link: str = "hard"  # how an image is placed: hard | symlink | copy (see outputs.copy_file)
    image_files: bool = True  # False for a packed source: its pixels are inside the pack, no file is copied
    source_format: Optional[str] = None  # the format read: its object masks (VOC's PNGs) become outlines


def derive_outlines(rec: ImageRecord, fmt: Optional[str], writer: FormatWriter
                    ) -> Tuple[ImageRecord, Optional[list], Dict[str, int]]:
    """Object masks the source format keeps beside the annotation (VOC's SegmentationObject PNGs: the format's
    ``object_masks``) as COCO segmentations in ``rec.attrs["segmentation"]``, the one form every writer of shapes
    reads: one polygon ring (the mask's exact outline) for a mask of one part without holes, else a compressed RLE
    (:func:`dsprep.formats.shapes.mask_segmentation`).  Only for records whose objects carry no shape of their own
    (no segmentation, no quads).  What the mask files hold beyond the objects' masks is counted (the format's
    ``mask_leftovers``: VOC's instances without an object, its void band).  A target that holds no shapes gets
    none: its masks are counted as ``segmentation_dropped``.  Returns ``(record, the derived segmentations or None, lossy counts)``."""
    if fmt is None or len(rec) == 0 or "segmentation" in rec.attrs or rec.polygons is not None:
        return rec, None, {}
    from ..dataset import object_masks
    from ..formats import format_spec
    spec = format_spec(fmt)
    if spec.object_masks is None:
        return rec, None, {}
    masks = object_masks(fmt, rec)
    if masks is None:
        return rec, None, {}
    if "segmentation" not in getattr(writer, "HANDLES_ATTRS", frozenset()):
        n = sum(1 for m in masks if m is not None and m.any())
        return rec, None, ({"segmentation_dropped": n} if n else {})
    lossy = dict(spec.mask_leftovers(rec)) if spec.mask_leftovers is not None else {}
    from ..formats.shapes import mask_segmentation
    from ..geometry import pixel_bounds
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height).tolist()
    segs = [mask_segmentation(m, b[0], b[1], rec.width, rec.height)[0] if m is not None else []
            for m, b in zip(masks, bounds)]  # (one step per object: its outline traced by OpenCV)
    out = rec.select(np.arange(len(rec)))
    out.attrs["segmentation"] = segs
    return out, segs, lossy


def account_attrs(rec: ImageRecord, writer: FormatWriter) -> Tuple[ImageRecord, Dict[str, int]]:
    """What the target cannot hold of the per-object facts other formats keep (``writer.HANDLES_ATTRS`` names those
    it keeps or accounts for itself): COCO crowd regions are left out (``crowd_skipped``); segmentations beyond the
    record's quadrilaterals are counted as dropped (``segmentation_dropped``); boxes clipped to the image when read
    are counted (``clipped_box``) unless the writer restores them."""
    handles = getattr(writer, "HANDLES_ATTRS", frozenset())
    lossy: Dict[str, int] = {}
    crowd = rec.attrs.get("iscrowd")
    if crowd is not None and "iscrowd" not in handles and np.any(crowd):
        keep = ~np.asarray(crowd, bool)
        rec = rec.select(keep)
        lossy["crowd_skipped"] = int((~keep).sum())
    if rec.meta.get("clipped_box") and "clipped_box" not in handles:  # clipped when read (outside the image)
        lossy["clipped_box"] = int(rec.meta["clipped_box"])
    segs = rec.attrs.get("segmentation")
    if segs is not None and "segmentation" not in handles and rec.polygons is None:
        n = sum(1 for s in segs if s)
        if n:
            lossy["segmentation_dropped"] = n
    return rec, lossy


def convert_one(args) -> dict:
    """Write one record's annotation files in the target format, and place its image (hard link, else copy)."""
    from ..outputs import atomic_write_bytes, copy_file
    rec, opts = args
    out = Path(opts.out)
    if not np.isfinite(rec.boxes).all():
        raise DsprepError(f"{rec.meta.get('annotation_path') or rec.image_path}: the image size is unknown (its "
                          f"image could not be read), so its normalized coordinates cannot be converted")
    # checked before anything is written: never an annotation whose image silently stays behind
    source = _image_to_copy(rec) if opts.image_files else None
    rec, derived, lossy = derive_outlines(rec, opts.source_format, opts.writer)
    rec, more = account_attrs(rec, opts.writer)
    lossy.update(more)
    lossy.update(lost_flags(rec, opts.writer))
    files, more = opts.writer.record_files(rec)
    for k, v in more.items():
        lossy[k] = lossy.get(k, 0) + v
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / rel, data)
    done = {"images": 1, "objects": len(rec), **lossy}
    if derived is not None:  # for the writer's data-set files (a COCO JSON, VOC's segmentation lists)
        done["segmentation"] = derived
    if source is None:
        return done
    image = out / opts.writer.image_path(rec)
    image.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        atomic_write_bytes(image, source)
    elif rec.meta.get("exif", 1) != 1 and not rec.meta.get("orient", True):
        # the boxes refer to the stored pixels: the copy must not be turned by readers that apply the tag
        from ..images import clear_orientation
        atomic_write_bytes(image, clear_orientation(Path(rec.image_path).read_bytes(), rec.image_path))
    else:
        copy_file(rec.image_path, image, opts.link)
    return done


def _image_to_copy(rec: ImageRecord):
    """The record's image file, checked to be a complete image whose header agrees with the record's size (what
    every other command checks before it uses pixels); or, for a labelme file whose image is only embedded
    (``imageData``), the embedded bytes, checked the same way.  No image: an error (the record is skipped under
    ``--on-error skip``), never an annotation naming an image that was not written."""
    from ..core import ImageError
    from ..images import probe
    where = rec.meta.get("annotation_path") or rec.image_path
    data = None
    if not Path(rec.image_path).is_file():
        if rec.meta.get("has_image_data") and rec.meta.get("annotation_path"):
            from ..formats.labelme import embedded_image
            data = embedded_image(rec.meta["annotation_path"])
        if data is None:
            named = rec.meta.get("annotation_path")
            raise ImageError(f"{rec.image_path}: image not found" + (f" (named by {named})" if named else "")
                             + ": not converted")
    name = rec.image_path if data is None else f"{where} (its imageData)"
    info = probe(name, data)
    if info.complete is False:
        raise ImageError(f"{name}: {info.kind.upper()} file without its end marker (cut short): not copied")
    size = info.size(rec.meta.get("orient", False))
    if rec.width > 0 and (rec.width, rec.height) != tuple(size):
        raise ImageError(f"{where}: the annotation says {rec.width}x{rec.height} but the image {name} is "
                         f"{size[0]}x{size[1]} (boxes would not fit the pixels; see dsprep info, --exif): not "
                         f"converted")
    return rec.image_path if data is None else data


def unique_names(records: Sequence[ImageRecord], writer: FormatWriter) -> Tuple[List[ImageRecord], int]:
    """Records whose outputs would land on the same name (one stem in two splits of a flat format, two folders of
    a data set, ``a.jpg`` and ``a.png``) get distinct stems: ``<stem>_<split>`` when that is free, else
    ``<stem>_2``, ``_3`` ...  Returns the records (renamed ones are copies) and how many were renamed."""
    def key(rec):
        return os.path.splitext(writer.image_path(rec))[0].lower()  # case-insensitive file systems too

    taken = {}
    for rec in records:
        taken.setdefault(key(rec), rec)
    out, renamed = [], 0
    seen = set()
    for rec in records:
        k = key(rec)
        if k not in seen and taken.get(k) is rec:
            seen.add(k)
            out.append(rec)
            continue
        new = rec.select(np.arange(len(rec)))
        candidates = ([f"{rec.stem}_{rec.split}"] if rec.split else []) + [f"{rec.stem}_{i}" for i in range(2, 10 ** 6)]
        for stem in candidates:
            new.meta["stem"] = stem
            if key(new) not in taken:
                break
        taken[key(new)] = new
        seen.add(key(new))
        out.append(new)
        renamed += 1
    return out, renamed


def write_dataset_files(out: Path, writer: FormatWriter, records) -> Dict[str, int]:
    """The target format's data-set-level files (split lists, a COCO JSON ...), once every record is written;
    returns what writing them could not keep (``writer.lossy`` after :meth:`finish`, e.g. renumbered ids)."""
    from ..outputs import atomic_write_bytes
    records = [account_attrs(r, writer)[0] for r in records]
    for rel, data in writer.finish(records).items():
        (Path(out) / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(out) / rel, data)
    return dict(getattr(writer, "lossy", {}) or {})


def write_dataset(out_dir, target: str, classes: Sequence[str], meta: dict, records: Sequence, summary,
                  common, link: str = "hard", desc: str = "writing", image_files: bool = True,
                  source_format: Union[str, Sequence[Optional[str]], None] = None) -> List:
    """Write ``records`` into ``out_dir`` as a ``target`` data set (each record in its ``split``), through the
    format's writer and convert's per-image jobs: names that would collide are made distinct (counted as
    ``renamed_duplicate_name``), images placed as ``link`` says (``image_files=False``: a packed source, its
    pixels encoded from the pack), the object masks of ``source_format`` (the format read, or each record's:
    ``merge``) turned into outlines (:func:`derive_outlines`), what the format cannot hold counted.  Returns the records written (renamed ones as
    renamed, with their derived outlines)."""
    from ..formats import format_spec
    from .run import run_jobs
    writer = format_spec(target).writer(list(classes), {"dataset_meta": meta, "root": str(Path(out_dir).resolve())})
    formats = [source_format] * len(records) if source_format is None or isinstance(source_format, str) \
        else list(source_format)
    if len(formats) != len(records):
        raise ValueError(f"write_dataset: {len(formats)} source formats for {len(records)} records")
    records, renamed = unique_names(records, writer)
    if renamed:
        summary.add("renamed_duplicate_name", renamed)
    opts = {f: ConvertOptions(out=str(out_dir), writer=writer, link=link, image_files=image_files, source_format=f)
            for f in dict.fromkeys(formats)}
    done = []
    for item, r in run_jobs(convert_one, [(r, opts[f]) for r, f in zip(records, formats)], summary, common, desc,
                            name_of=lambda it: it[0].image_path):
        if r is None:
            continue
        rec = item[0]
        if r.get("segmentation") is not None:
            rec = rec.select(np.arange(len(rec)))
            rec.attrs["segmentation"] = r["segmentation"]
        done.append(rec)
    for kind, n in write_dataset_files(out_dir, writer, done).items():
        summary.add(kind, n)
    return done
