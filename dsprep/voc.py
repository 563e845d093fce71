"""PASCAL VOC XML: parse and format (pure, over bytes), and read/write whole data sets.

Coordinates: VOC ``<bndbox>`` values are 1-based inclusive pixel indices (``xmax == width`` touches the right
border).  Inside dsprep boxes are 0-based continuous, so reading maps ``(xmin, ymin, xmax, ymax)`` to
``(xmin - 1, ymin - 1, xmax, ymax)`` and writing maps back.  Float coordinates (labelme exports) are kept as floats.
"""
from __future__ import annotations

import math
from decimal import Context, Decimal
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np
from lxml import etree

from .core import (Dataset, DatasetError, DsprepError, FormatWriter, ImageRecord, ParseError, Problem,
                   decide_classes)
from .images import IMAGE_EXTS, image_size
from .outputs import atomic_write_bytes

# Defence in depth: documents with a DOCTYPE are rejected before parsing (see parse_voc), and the parser itself
# never resolves entities, never loads a DTD and never touches the network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_comments=True, remove_pis=True, remove_blank_text=True, collect_ids=False)
_FLAGS = {None: 0, "0": 0, "1": 1}

_COORDS = ("xmin", "ymin", "xmax", "ymax")
_EXACT = Context(prec=1200)  # enough digits for any binary64 value plus one, exactly


def _flag(text: Optional[str], what: str, source: str) -> int:
    """``<difficult>``/``<truncated>``: missing or empty -> 0; ``"1"``, ``"1.0"``, ``"true"`` -> 1."""
    if text is None:
        return 0
    t = text.strip().lower()
    if not t:
        return 0
    if t in ("true", "yes"):
        return 1
    if t in ("false", "no"):
        return 0
    try:
        return 1 if float(t) != 0 else 0
    except ValueError as e:
        raise ParseError(f"{source}: cannot parse <{what}> from '{text.strip()}'") from e


def _size_value(text: Optional[str], what: str, source: str) -> int:
    if text is None or not text.strip():
        return 0
    try:
        v = float(text)
    except ValueError as e:
        raise ParseError(f"{source}: cannot parse <size><{what}> from '{text.strip()}'") from e
    if not math.isfinite(v) or v < 0:
        raise ParseError(f"{source}: <size><{what}> is {text.strip()}")
    return int(v)


def _coord(text: str, shift: bool) -> float:
    """A coordinate from the file; ``shift`` undoes the 1-based convention (xmin, ymin).

    Long texts are exact decimals written by :func:`_shifted` for values whose ``+1`` is not exact in binary
    floating point; they are parsed exactly so the round trip is lossless.
    """
    if len(text) <= 24:
        v = float(text)
        return v - 1.0 if shift else v
    d = Decimal(text.strip())
    return float(_EXACT.subtract(d, 1) if shift else d)


def _shifted(v: float) -> str:
    """The text of ``v + 1`` that :func:`_coord` reads back as exactly ``v``."""
    y = float(v) + 1.0
    if y - 1.0 == v:
        return _num(y)
    return format(_EXACT.add(Decimal(float(v)), 1), "f")


def _coords_slow(texts: dict, source: str, k: int, name: str) -> List[float]:
    vals = []
    for c in _COORDS:
        t = texts.get(c)
        if t is None or not t.strip():
            raise ParseError(f"{source}: object {k} ({name}): <bndbox> has no <{c}>")
        try:
            v = _coord(t, shift=c in ("xmin", "ymin"))
        except (ValueError, ArithmeticError) as e:
            raise ParseError(f"{source}: object {k} ({name}): cannot parse {c} from '{t.strip()}'") from e
        if not math.isfinite(v):
            raise ParseError(f"{source}: object {k} ({name}): {c} is {t.strip()}")
        vals.append(v)
    return vals


def _degenerate(source: str, k: int, name: str, box: List[float]) -> Problem:
    """``xmax <= xmin`` or ``ymax <= ymin`` in the file's own (1-based) numbers."""
    return Problem("degenerate_box", source, f"object {k} ({name}): xmin={_shifted(box[0])} "
                                             f"ymin={_shifted(box[1])} xmax={_num(box[2])} ymax={_num(box[3])}")


def parse_voc(data: bytes, source: str = "<xml>") -> Tuple[ImageRecord, List[Problem]]:
    """Parse one VOC XML document.  Returns the record and the problems found in it.

    ``<part>`` sub-objects are ignored.  A missing ``<size>`` gives ``width == height == 0`` (the data set reader
    fills it from the image header).  Boxes are *not* clipped here (the size may be unknown): see
    :func:`clip_boxes`.  Degenerate boxes (``xmax <= xmin`` or ``ymax <= ymin`` in the file) are reported.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ParseError(f"{source}: XML with a DOCTYPE/entity declaration is refused (possible entity attack)")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ParseError(f"{source}: malformed XML ({e.msg if hasattr(e, 'msg') else e})") from e
    return _from_root(root, source)


def _from_root(root, source: str) -> Tuple[ImageRecord, List[Problem]]:
    if root is None or root.tag != "annotation":
        raise ParseError(f"{source}: root element is <{getattr(root, 'tag', None)}>, expected <annotation>")
    # One pass over direct children (much faster than lxml path look-ups); the first of repeated tags wins.
    problems: List[Problem] = []
    filename = ""
    width = height = 0
    depth = 3
    objects = []
    seen_size = seen_name = False
    for el in root:
        tag = el.tag
        if tag == "object":
            objects.append(el)
        elif tag == "filename" and not seen_name:
            filename, seen_name = (el.text or "").strip(), True
        elif tag == "size" and not seen_size:
            seen_size = True
            for c in el:
                if c.tag == "width":
                    width = _size_value(c.text, "width", source)
                elif c.tag == "height":
                    height = _size_value(c.text, "height", source)
                elif c.tag == "depth":
                    depth = _size_value(c.text, "depth", source) or 3
    names: List[str] = []
    coords: List[List[float]] = []
    difficult: List[int] = []
    truncated: List[int] = []
    for k, obj in enumerate(objects):
        name = bb = diff = trunc = None
        for c in obj:
            tag = c.tag
            if tag == "bndbox":
                if bb is None:
                    bb = c
            elif tag == "name":
                if name is None:
                    name = (c.text or "").strip()
            elif tag == "difficult":
                if diff is None:
                    diff = c.text
            elif tag == "truncated":
                if trunc is None:
                    trunc = c.text
        if not name:
            raise ParseError(f"{source}: object {k} has no <name>")
        if bb is None:
            raise ParseError(f"{source}: object {k} ({name}) has no <bndbox>")
        texts = {c.tag: c.text for c in bb}
        try:  # fast path: short finite numbers (long ones may be exact decimals, see _shifted)
            t0, t1 = texts["xmin"], texts["ymin"]
            if len(t0) > 24 or len(t1) > 24:
                raise ValueError
            box = [float(t0) - 1.0, float(t1) - 1.0, float(texts["xmax"]), float(texts["ymax"])]
            if not (box[2] > box[0] + 1 and box[3] > box[1] + 1):  # degenerate, or not finite
                if not all(map(math.isfinite, box)):
                    raise ValueError
                problems.append(_degenerate(source, k, name, box))
        except (KeyError, ValueError, TypeError):
            box = _coords_slow(texts, source, k, name)
            if not (box[2] > box[0] + 1 and box[3] > box[1] + 1):
                problems.append(_degenerate(source, k, name, box))
        coords.append(box)
        names.append(name)
        difficult.append(_FLAGS[diff] if diff in _FLAGS else _flag(diff, "difficult", source))
        truncated.append(_FLAGS[trunc] if trunc in _FLAGS else _flag(trunc, "truncated", source))
    boxes = np.array(coords, dtype=np.float64).reshape(-1, 4)
    rec = ImageRecord.trusted(image_path=filename, width=width, height=height, depth=depth,
                              boxes=boxes, names=names,
                              difficult=np.array(difficult, np.uint8), truncated=np.array(truncated, bool),
                              meta={"filename": filename})
    return rec, problems


def clip_boxes(rec: ImageRecord, source: str) -> Tuple[ImageRecord, List[Problem]]:
    """Clip boxes to ``[0, width] x [0, height]``; report each clipped box.  Needs a known size."""
    if rec.width <= 0 or rec.height <= 0 or len(rec) == 0:
        return rec, []
    lim = np.array([rec.width, rec.height, rec.width, rec.height], np.float64)
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
    return out, problems


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def format_voc(rec: ImageRecord, folder: str = "dsprep") -> bytes:
    """The record as a standard VOC ``<annotation>`` document (UTF-8 bytes); inverse of :func:`parse_voc`."""
    filename = os.path.basename(rec.image_path) or f"{rec.stem}.jpg"
    out = ["<annotation>",
           f"\t<folder>{escape(folder)}</folder>",
           f"\t<filename>{escape(filename)}</filename>",
           "\t<source>\n\t\t<database>dsprep</database>\n\t</source>",
           f"\t<size>\n\t\t<width>{rec.width}</width>\n\t\t<height>{rec.height}</height>\n"
           f"\t\t<depth>{rec.depth}</depth>\n\t</size>",
           "\t<segmented>0</segmented>"]
    b = rec.boxes
    for k in range(len(rec)):
        out.append(
            f"\t<object>\n\t\t<name>{escape(rec.names[k])}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{int(rec.truncated[k])}</truncated>\n\t\t<difficult>{int(rec.difficult[k])}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{_shifted(b[k, 0])}</xmin>\n\t\t\t<ymin>{_shifted(b[k, 1])}</ymin>\n"
            f"\t\t\t<xmax>{_num(b[k, 2])}</xmax>\n\t\t\t<ymax>{_num(b[k, 3])}</ymax>\n\t\t</bndbox>\n\t</object>")
    out.append("</annotation>\n")
    return "\n".join(out).encode("utf-8")


def read_voc(path) -> Tuple[ImageRecord, List[Problem]]:
    """Read one XML file (no image lookup, no clipping)."""
    path = str(path)
    try:
        # libxml2 reads the file itself (no Python-level copy).  _PARSER never expands entities, so a DOCTYPE is
        # harmless here; it is still refused, as parse_voc does.
        tree = etree.parse(path, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ParseError(f"{path}: malformed XML ({e.msg if hasattr(e, 'msg') else e})") from e
    except OSError as e:
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
    if tree.docinfo.doctype:
        raise ParseError(f"{path}: XML with a DOCTYPE/entity declaration is refused (possible entity attack)")
    rec, problems = _from_root(tree.getroot(), path)
    rec.meta["stem"] = os.path.splitext(os.path.basename(path))[0]
    rec.meta["annotation_path"] = path
    return rec, problems


def write_voc(path, rec: ImageRecord, folder: str = "dsprep") -> None:
    atomic_write_bytes(path, format_voc(rec, folder))


# ----------------------------------------------------------------------------------------------------------------
# Data set layouts

@dataclass
class VocPart:
    """One folder of annotations with its images and optional split lists."""

    ann_dir: Path
    img_dir: Path
    sets_dir: Optional[Path] = None
    split_name: Optional[str] = None  # roboflow-style layouts: the folder name is the split


def find_voc_parts(root: Path) -> List[VocPart]:
    """Auto-detect the layout.  Returns ``[]`` when ``root`` holds no VOC annotations."""
    if (root / "Annotations").is_dir():
        return [VocPart(root / "Annotations", root / "JPEGImages", root / "ImageSets" / "Main")]
    subdirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    years = [d for d in subdirs if (d / "Annotations").is_dir()]
    if years:  # VOCdevkit/VOC2007, VOCdevkit/VOC2012
        return [VocPart(d / "Annotations", d / "JPEGImages", d / "ImageSets" / "Main") for d in years]
    if (root / "xmls").is_dir():
        return [VocPart(root / "xmls", root / "imgs", root / "txts")]
    if (root / "annotations").is_dir():
        return [VocPart(root / "annotations", root / "images", root / "ImageSets" / "Main")]
    if any(p.suffix.lower() == ".xml" for p in root.iterdir()):
        return [VocPart(root, root, None)]
    split_dirs = [d for d in subdirs if any(p.suffix.lower() == ".xml" for p in d.iterdir())]
    return [VocPart(d, d, None, split_name=d.name) for d in split_dirs]


def _read_split(path: Path) -> List[str]:
    ids = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if len(tok) > 1 and tok[1] == "-1":  # per-class lists mark negatives with -1
                continue
            name = os.path.basename(tok[0])
            stem, ext = os.path.splitext(name)
            ids.append(stem if ext.lower() in IMAGE_EXTS + (".xml",) else name)
    return ids


def available_splits(parts: Sequence[VocPart]) -> List[str]:
    out = set()
    for p in parts:
        if p.split_name:
            out.add(p.split_name)
        elif p.sets_dir is not None and p.sets_dir.is_dir():
            out.update(f.stem for f in p.sets_dir.glob("*.txt") if "_" not in f.stem)
    return sorted(out)


def _image_index(img_dir: Path) -> Dict[str, str]:
    """stem -> file name for the images in a folder (first by extension preference)."""
    index: Dict[str, str] = {}
    if not img_dir.is_dir():
        return index
    rank = {e: i for i, e in enumerate(IMAGE_EXTS)}
    best: Dict[str, int] = {}
    with os.scandir(img_dir) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            r = rank.get(ext.lower())
            if r is None or not entry.is_file():
                continue
            if stem not in best or r < best[stem]:
                best[stem] = r
                index[stem] = entry.name
    return index


class VocItem(NamedTuple):
    """One entry of a data set before its XML is parsed (paths as strings: cheap to build and to pickle)."""

    xml: Optional[str]
    image: Optional[str]
    stem: str
    split: Optional[str]
    img_dir: str
    problems: Tuple[Problem, ...] = ()


def iter_voc_items(root: Path, split: Optional[str] = None) -> Iterator[VocItem]:
    """Yield a :class:`VocItem` for every annotation (and every image without one) of the data set.

    Work that needs no XML parsing (layout, split lists, image lookup) is done here, once per folder, so items can
    be parsed in any order or process.  Raises :class:`DatasetError` for an unusable data set.
    """
    parts = find_voc_parts(root)
    if not parts:
        raise DatasetError(f"{root}: no VOC annotations found (looked for Annotations/, xmls/, annotations/ "
                           f"or *.xml files)")
    if split is not None and split not in available_splits(parts):
        avail = ", ".join(available_splits(parts)) or "none"
        raise DatasetError(f"{root}: no split '{split}' (available: {avail})")
    for part in parts:
        if part.split_name is not None and split is not None and part.split_name != split:
            continue
        ann_dir, img_dir = str(part.ann_dir), str(part.img_dir)
        with os.scandir(ann_dir) as it:
            xml_index = {e.name[:-4]: e.path for e in it if e.name.lower().endswith(".xml")}
        images = _image_index(part.img_dir)
        rec_split = part.split_name or split
        if split is not None and part.split_name is None:
            list_file = part.sets_dir / f"{split}.txt" if part.sets_dir is not None else None
            if list_file is None or not list_file.is_file():
                continue
            stems = list(dict.fromkeys(_read_split(list_file)))
        else:
            stems = sorted(xml_index)
        hint = img_dir if part.img_dir.is_dir() else ann_dir
        for stem in stems:
            xml = xml_index.get(stem)
            img = images.get(stem)
            problems = () if xml is not None else (
                Problem("listed_without_annotation", os.path.join(ann_dir, f"{stem}.xml"),
                        f"'{stem}' is listed in split '{split}' but has no annotation"),)
            yield VocItem(xml, os.path.join(img_dir, img) if img else None, stem, rec_split, hint, problems)
        if split is None:
            for stem in sorted(set(images) - set(xml_index)):
                path = os.path.join(img_dir, images[stem])
                yield VocItem(None, path, stem, rec_split, hint,
                              (Problem("image_without_annotation", path, "no XML annotation"),))


def load_voc_item(item: VocItem) -> Tuple[ImageRecord, List[Problem]]:
    """Parse one annotation and resolve its image.  Raises :class:`ParseError`.

    Image headers are read later, for every format alike (:func:`dsprep.dataset.load_dataset`): sizes missing from
    the XML are filled from them, then :func:`check_record` clips the boxes."""
    src, image, stem = item.xml, item.image, item.stem
    rec, problems = read_voc(src)
    filename = rec.meta.get("filename", "")
    base = os.path.basename(filename)
    if image is None and base:
        cand = os.path.join(item.img_dir, base)
        if os.path.isfile(cand):
            image = cand
    if base and base != stem and os.path.splitext(base)[0] != stem:
        problems.append(Problem("filename_mismatch", src, f"<filename> says '{filename}', the file is '{stem}'"))
    if image is None:
        problems.append(Problem("annotation_without_image", src, "no image found for this annotation"))
        rec.image_path = os.path.join(item.img_dir, base or f"{stem}.jpg")
    else:
        rec.image_path = image
    rec.split = item.split
    rec.meta["stem"] = stem
    return rec, problems


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known: boxes clipped to the image, each clipped box reported."""
    return clip_boxes(rec, rec.meta.get("annotation_path", rec.image_path))


LAYOUT = "VOC: Annotations/, xmls/, annotations/ or *.xml files"
NAME = "voc"
RECORDS_SIZE = True  # <size> is part of the annotation: a header that disagrees is a problem


def detect(path: Path) -> bool:
    """A folder holding VOC XML in any layout :func:`find_voc_parts` knows (the fallback format: checked last)."""
    return path.is_dir() and bool(find_voc_parts(path))


def load(path: Path, split: Optional[str], policy, wrap) -> Dataset:
    """Every record of a VOC data set; the class list comes from all annotation files, whatever ``split`` is."""
    items = list(iter_voc_items(path, split))
    ds = Dataset(path, NAME)
    for item in wrap(items):
        ds.problems.extend(item.problems)
        if item.xml is None:
            continue
        try:
            rec, probs = load_voc_item(item)
        except DsprepError as e:
            policy.handle(e, item.xml)
            ds.problems.append(Problem("unreadable", item.xml, str(e)))
            continue
        ds.records.append(rec)
        ds.problems.extend(probs)
    ds.classes = decide_classes(ds.records + (_other_records(path, items) if split is not None else []))
    return ds


def _other_records(path: Path, selected: Sequence[VocItem]) -> List[ImageRecord]:
    """The annotations outside the selected split, read only for their class names (so every split of a data set
    gets the same class list).  A broken file here is not the selection's problem: it is left out."""
    chosen = {item.xml for item in selected}
    out = []
    for item in iter_voc_items(path, None):
        if item.xml is not None and item.xml not in chosen:
            try:
                out.append(read_voc(item.xml)[0])
            except DsprepError:
                continue
    return out


class Writer(FormatWriter):
    """Standard VOC tree: ``Annotations/<id>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

    Polygons become their axis-aligned boxes (counted as ``polygon_to_box``); boxes are clipped to the image
    (counted as ``clipped_box``)."""

    NAME = NAME

    def image_path(self, rec: ImageRecord) -> str:
        return f"JPEGImages/{_safe_stem(rec)}{os.path.splitext(rec.image_path)[1] or '.jpg'}"

    def record_files(self, rec: ImageRecord):
        lossy = {}
        box_rec = rec.select(np.arange(len(rec)))
        if box_rec.polygons is not None:
            lossy["polygon_to_box"] = len(rec)
            box_rec.polygons = None
        box_rec.image_path = os.path.basename(self.image_path(rec))
        box_rec, problems = clip_boxes(box_rec, rec.image_path)
        clipped = sum(p.kind == "clipped_box" for p in problems)
        if clipped:
            lossy["clipped_box"] = clipped
        return {f"Annotations/{_safe_stem(rec)}.xml": format_voc(box_rec)}, lossy

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        by_split: Dict[str, List[str]] = {}
        for rec in records:
            by_split.setdefault(rec.split or "trainval", []).append(_safe_stem(rec))
        return {f"ImageSets/Main/{split}.txt": "".join(f"{i}\n" for i in ids).encode("utf-8")
                for split, ids in by_split.items()}


def _safe_stem(rec: ImageRecord) -> str:
    from .outputs import safe_name
    return safe_name(rec.stem)


def write_voc_dataset(out: Path, items: Iterable[Tuple[ImageRecord, Optional[bytes]]], split: str = "train",
                      image_ext: str = ".jpg") -> List[str]:
    """Write records (with optional encoded image bytes) as a standard VOC tree; returns the ids written."""
    ann, img, sets = out / "Annotations", out / "JPEGImages", out / "ImageSets" / "Main"
    for d in (ann, img, sets):
        d.mkdir(parents=True, exist_ok=True)
    ids = []
    for rec, data in items:
        write_voc(ann / f"{rec.stem}.xml", rec)
        if data is not None:
            atomic_write_bytes(img / os.path.basename(rec.image_path), data)
        ids.append(rec.stem)
    write_split_list(sets / f"{split}.txt", ids)
    return ids


def write_split_list(path: Path, ids: Sequence[str], append: bool = False) -> None:
    existing = _read_split(path) if (append and path.is_file()) else []
    atomic_write_bytes(path, "".join(f"{i}\n" for i in list(existing) + list(ids)).encode("utf-8"))


__all__ = ["parse_voc", "format_voc", "read_voc", "write_voc", "clip_boxes", "find_voc_parts", "iter_voc_items",
           "load_voc_item", "write_voc_dataset"]


# ----------------------------------------------------------------------------------------------------------------
# Object masks: SegmentationObject/ (instance ids) + SegmentationClass/ (class indices), for `crop` silhouettes
#
# VOC stores both as 8-bit palette PNGs: the pixel *values* are the ids (0 background, 255 "void": object borders
# and ignored regions), the palette only colours them.  Decoders that expand the palette (OpenCV does) lose the
# values, so :func:`mask_indices` rewrites the file's palette as the identity (entry i = grey i) before decoding it
# with the one decoder: every filter, bit depth and interlacing libpng reads comes back as exact indices.  Masks saved
# as RGB (some converters do) are mapped back through the VOC colour map (or ``labelmap.txt``'s colours).
#
# Instance k + 1 is object k of the XML (VOC's convention).  Tools that wrote masks apart from the boxes break it
# (labelme's VOC export numbers its own polygons), so every pairing is checked: the instance's class (the majority of
# SegmentationClass under it) must be the object's, and the instance's tight box must overlap the object's box with
# IoU >= 0.5.  Objects whose conventional instance fails the check take the best unclaimed instance that passes it;
# objects with none get no mask (``None``).
#
# Orientation: a mask describes the pixel grid the boxes refer to (the annotation's <size>).  When the photo's EXIF
# rotation was applied (``rec.meta["orient"]``) and the mask has the *stored* grid's size instead, it is turned the
# same way; a mask matching neither grid is an error.

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
MASK_IOU = 0.5


def _png_chunks(data: bytes, name: str) -> List[Tuple[bytes, bytes]]:
    import struct
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ParseError(f"{name}: not a PNG file (masks must be PNG)")
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not out or out[0][0] != b"IHDR" or len(out[0][1]) != 13:
        raise ParseError(f"{name}: PNG without a valid IHDR chunk")
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def mask_indices(data: bytes, name: str = "<mask>", colors: Optional[np.ndarray] = None) -> np.ndarray:
    """The ``(H, W) uint8`` index values of a mask PNG (stored orientation: masks carry no EXIF rotation).

    Palette and grey PNGs give their stored values (the palette is replaced by the identity before decoding, see
    above).  RGB(A) PNGs are mapped through ``colors`` (``(K, 3)`` RGB, index = row; default: the VOC colour map);
    a colour that is not in it is a :class:`ParseError`.
    """
    import struct
    from .images import decode_image
    chunks = _png_chunks(data, name)
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if ctype in (0, 3):  # grey or palette: same packing of 1/2/4/8-bit samples
        if depth > 8:
            raise ParseError(f"{name}: {depth}-bit mask; VOC masks hold 8-bit indices")
        ihdr = struct.pack(">IIBBBBB", w, h, depth, 3, comp, filt, interlace)
        n = 1 << depth
        ramp = np.repeat(np.arange(n, dtype=np.uint8), 3).tobytes()
        body = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", ramp)
                + b"".join(_chunk(k, v) for k, v in chunks if k == b"IDAT") + _chunk(b"IEND", b""))
        return np.ascontiguousarray(decode_image(np.frombuffer(body, np.uint8), name, "color", orient=False)[:, :, 0])
    if ctype in (2, 6):
        bgr = decode_image(np.frombuffer(data, np.uint8), name, "color", orient=False)
        if colors is None:
            from .synth import voc_palette
            colors = voc_palette()
        return colors_to_indices(bgr[:, :, ::-1], colors, name)
    raise ParseError(f"{name}: PNG colour type {ctype} is not a mask (palette, grey or RGB expected)")


def colors_to_indices(rgb: np.ndarray, colors: np.ndarray, name: str = "<mask>") -> np.ndarray:
    """``(H, W, 3)`` RGB pixels -> ``(H, W) uint8`` row of ``colors`` holding each colour (first row on ties)."""
    colors = np.asarray(colors, np.int64).reshape(-1, 3)[:256]
    keys = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    px = rgb.astype(np.int64)
    pk = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
    pos = np.clip(np.searchsorted(sorted_keys, pk), 0, len(sorted_keys) - 1)
    bad = sorted_keys[pos] != pk
    if bad.any():
        y, x = np.argwhere(bad)[0]
        r, g, b = rgb[y, x]
        raise ParseError(f"{name}: pixel ({x}, {y}) has colour ({r}, {g}, {b}), which is no class or instance "
                         f"colour of the palette")
    return order[pos].astype(np.uint8)


def read_labelmap(path) -> Tuple[List[str], np.ndarray]:
    """A ``labelmap.txt`` (``name:r,g,b:parts:actions`` per line, ``#`` comments): class names in index order and
    their ``(K, 3)`` RGB colours."""
    names, colors = [], []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"{path}: cannot read label map ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        fields = s.split(":")
        try:
            rgb = [int(v) for v in fields[1].split(",")] if len(fields) > 1 and fields[1].strip() else None
            if rgb is not None and (len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb)):
                raise ValueError
        except ValueError as e:
            raise ParseError(f"{path}:{lineno}: cannot parse the colour '{fields[1]}' (expected r,g,b)") from e
        names.append(fields[0].strip())
        colors.append(rgb)
    from .synth import voc_palette
    pal = voc_palette()
    return names, np.array([c if c is not None else pal[i] for i, c in enumerate(colors)], np.uint8).reshape(-1, 3)


def instance_table(instance: np.ndarray, classes: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every instance id 0..255 of an instance mask: ``(count (256,), box (256, 4) x0 y0 x1 y1 exclusive,
    class (256,))`` where class is the most frequent value of ``classes`` under the instance other than 0 and 255
    (-1 when none or no class mask).  Ids 0 and 255 (background, void) have count 0."""
    inst = np.asarray(instance, np.uint8)
    h, w = inst.shape
    flat = inst.astype(np.int64)
    count = np.bincount(flat.ravel(), minlength=256)
    count[[0, 255]] = 0
    rows = np.bincount((flat * h + np.arange(h)[:, None]).ravel(), minlength=256 * h).reshape(256, h) > 0
    cols = np.bincount((flat * w + np.arange(w)[None, :]).ravel(), minlength=256 * w).reshape(256, w) > 0
    box = np.zeros((256, 4), np.int64)
    present = count > 0
    box[:, 0] = np.argmax(cols, axis=1)
    box[:, 2] = w - np.argmax(cols[:, ::-1], axis=1)
    box[:, 1] = np.argmax(rows, axis=1)
    box[:, 3] = h - np.argmax(rows[:, ::-1], axis=1)
    box[~present] = 0
    cls = np.full(256, -1, np.int64)
    if classes is not None:
        joint = np.bincount((flat * 256 + np.asarray(classes, np.int64)).ravel(), minlength=65536).reshape(256, 256)
        joint[:, [0, 255]] = 0
        has = joint.sum(axis=1) > 0
        cls[has] = np.argmax(joint[has], axis=1)
    cls[~present] = -1
    return count, box, cls


def match_instances(count: np.ndarray, box: np.ndarray, inst_class: np.ndarray, bounds: np.ndarray,
                    object_class: np.ndarray, min_iou: float = MASK_IOU) -> np.ndarray:
    """The instance id of each object (0: none), from :func:`instance_table`'s output, the objects' integer pixel
    ``bounds`` ``(N, 4)`` and class indices ``object_class`` ``(N,)`` (-1: unknown name, class not checked).

    Object k takes instance k + 1 when it passes the check (same class where both are known, box IoU >= min_iou);
    the others take, best IoU first, an unclaimed instance that passes it."""
    n = len(bounds)
    b = np.asarray(bounds, np.float64).reshape(-1, 4)
    ib = box.astype(np.float64)
    iw = np.clip(np.minimum(b[:, None, 2], ib[None, :, 2]) - np.maximum(b[:, None, 0], ib[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], ib[None, :, 3]) - np.maximum(b[:, None, 1], ib[None, :, 1]), 0, None)
    inter = iw * ih
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[:, None]
    area_i = ((ib[:, 2] - ib[:, 0]) * (ib[:, 3] - ib[:, 1]))[None, :]
    iou = inter / np.maximum(area_b + area_i - inter, 1e-9)
    oc = np.asarray(object_class, np.int64).reshape(-1, 1)
    same = (oc < 0) | (inst_class[None, :] < 0) | (inst_class[None, :] == oc)
    ok = same & (iou >= min_iou) & (count[None, :] > 0)
    result = np.zeros(n, np.int64)
    conventional = np.arange(1, n + 1)
    fits = conventional < 255
    fits[fits] = ok[np.flatnonzero(fits), conventional[fits]]
    result[fits] = conventional[fits]
    claimed = np.zeros(256, bool)
    claimed[result[result > 0]] = True
    score = np.where(ok, iou, -1.0)
    score[result > 0] = -1.0
    score[:, claimed] = -1.0
    while True:  # greedy assignment, best pair first (one step per matched object)
        k, i = np.unravel_index(np.argmax(score), score.shape) if score.size else (0, 0)
        if score.size == 0 or score[k, i] < 0:
            break
        result[k] = i
        score[k, :] = -1.0
        score[:, i] = -1.0
    return result


def _mask_root(rec: ImageRecord) -> Optional[Path]:
    ann = rec.meta.get("annotation_path")
    return Path(ann).parent.parent if ann else None


def object_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """The VOC format's answer to :func:`dsprep.dataset.object_masks`: each object's bool mask over its pixel
    bounds (``None`` for objects without a matching instance), or ``None`` when the image has no
    ``SegmentationObject/<id>.png``."""
    from .crop import pixel_bounds
    from .images import apply_orientation
    root = _mask_root(rec)
    if root is None or len(rec) == 0:
        return None
    obj_path = root / "SegmentationObject" / f"{rec.stem}.png"
    if not obj_path.is_file():
        return None
    cls_path = root / "SegmentationClass" / f"{rec.stem}.png"
    names, colors = (read_labelmap(root / "labelmap.txt") if (root / "labelmap.txt").is_file()
                     else (list(VOC_CLASSES), None))
    maps = []
    for path in (obj_path, cls_path):
        if not path.is_file():
            maps.append(None)
            continue
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
        m = mask_indices(data, str(path), colors if path == cls_path else None)
        h, w = m.shape
        if (w, h) != (rec.width, rec.height):
            exif = rec.meta.get("exif", 1)
            if rec.meta.get("orient") and exif in (5, 6, 7, 8) and (h, w) == (rec.width, rec.height):
                m = apply_orientation(m, exif)  # stored grid of a photo whose rotation was applied
            else:
                raise ParseError(f"{path}: the mask is {w}x{h}, the image's boxes refer to {rec.width}x{rec.height}")
        maps.append(m)
    instance, classes = maps
    index = {n: i for i, n in enumerate(names)}
    object_class = np.array([index.get(n, -1) for n in rec.names], np.int64)
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    ids = match_instances(*instance_table(instance, classes), bounds, object_class)
    return [None if i == 0 else np.ascontiguousarray(instance[y0:y1, x0:x1] == i)
            for i, (x0, y0, x1, y1) in zip(ids.tolist(), bounds.tolist())]
