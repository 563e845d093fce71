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
    from .dataset import read_records
    items = list(iter_voc_items(path, split))
    ds = Dataset(path, NAME)
    results = read_records(load_voc_item, [it for it in items if it.xml is not None], wrap)
    for item in items:
        ds.problems.extend(item.problems)
        if item.xml is None:
            continue
        _, result, err = next(results)
        if err is not None:
            policy.handle(err, item.xml)
            ds.problems.append(Problem("unreadable", item.xml, str(err)))
            continue
        rec, probs = result
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
