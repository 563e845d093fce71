"""PASCAL VOC XML: parse and format (pure, over bytes), and read/write whole data sets.

Coordinates: VOC ``<bndbox>`` values are 1-based inclusive pixel indices (``xmax == width`` touches the right
border).  Inside dsprep boxes are 0-based continuous, so reading maps ``(xmin, ymin, xmax, ymax)`` to
``(xmin - 1, ymin - 1, xmax, ymax)`` and writing maps back.  Float coordinates (labelme exports) are kept as floats.

Why one module: one format -- the parser, the folder layouts, the writer and the byte-preserving edit protocol
share the XML conventions (1-based pixels, flags, encodings).
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

from ..core import (MAX_COORDINATE, Dataset, DatasetError, DsprepError, FormatWriter, ImageRecord, ParseError,
                   Problem, decide_classes)
from ..images import IMAGE_EXTS
from ..outputs import atomic_write_bytes
from .common import clip_boxes, number_text, read_records, source_indices
from .spec import EditProtocol, FormatSpec, Holds, ReadContext

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
    if len(text) <= 18 or sum(c.isdigit() for c in text) <= 17:
        v = float(text)
        return v - 1.0 if shift else v
    d = Decimal(text.strip())
    return float(_EXACT.subtract(d, 1) if shift else d)


def _shifted(v: float) -> str:
    """The shortest text of ``v + 1`` that :func:`_coord` reads back as exactly ``v`` (``2.99999999999999978``,
    not the 55 digits of the exact sum, for ``v = 1.9999999999999998``)."""
    y = float(v) + 1.0
    if y - 1.0 == v:
        return number_text(y)
    exact = _EXACT.add(Decimal(float(v)), 1)
    for digits in range(15, 60):
        text = format(Context(prec=digits).plus(exact), "f")
        if _coord(text, shift=True) == v:
            return text
    return format(exact, "f")


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
        if not abs(v) <= MAX_COORDINATE:  # also NaN and infinities
            raise ParseError(f"{source}: object {k} ({name}): {c} is {t.strip()}"
                             + ("" if not math.isfinite(v) else " (beyond any image)"))
        vals.append(v)
    return vals


def _degenerate(source: str, k: int, name: str, box: List[float]) -> Problem:
    """``xmax < xmin`` or ``ymax < ymin`` in the file's own (1-based, inclusive) numbers: no pixel wide or high
    (``xmin == xmax`` is one pixel, as the VOC devkit counts it: ``xmax - xmin + 1``)."""
    return Problem("degenerate_box", source, f"object {k} ({name}): xmin={_shifted(box[0])} "
                                             f"ymin={_shifted(box[1])} xmax={number_text(box[2])} ymax={number_text(box[3])}")


def parse_voc(data: bytes, source: str = "<xml>") -> Tuple[ImageRecord, List[Problem]]:
    """Parse one VOC XML document.  Returns the record and the problems found in it.

    ``<part>`` sub-objects are ignored.  A missing ``<size>`` gives ``width == height == 0`` (the data set reader
    fills it from the image header).  Boxes are *not* clipped here (the size may be unknown): see
    :func:`clip_boxes`.  Degenerate boxes (``xmax < xmin`` or ``ymax < ymin`` in the file, 1-based inclusive, so
    no pixel wide or high) are reported.
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
            if len(t0) > 18 or len(t1) > 18:
                raise ValueError
            box = [float(t0) - 1.0, float(t1) - 1.0, float(texts["xmax"]), float(texts["ymax"])]
            if not (box[2] > box[0] and box[3] > box[1]):  # degenerate, or not finite
                if not all(map(math.isfinite, box)):
                    raise ValueError
                problems.append(_degenerate(source, k, name, box))
        except (KeyError, ValueError, TypeError):
            box = _coords_slow(texts, source, k, name)
            if not (box[2] > box[0] and box[3] > box[1]):
                problems.append(_degenerate(source, k, name, box))
        coords.append(box)
        names.append(name)
        difficult.append(_FLAGS[diff] if diff in _FLAGS else _flag(diff, "difficult", source))
        truncated.append(_FLAGS[trunc] if trunc in _FLAGS else _flag(trunc, "truncated", source))
    boxes = np.array(coords, dtype=np.float64).reshape(-1, 4)
    # the usual few boxes: a plain-Python bound test (~1 us) beats a numpy reduction (~10 us)
    if coords and not (all(-MAX_COORDINATE <= v <= MAX_COORDINATE for box in coords for v in box)
                       if len(coords) <= 32 else np.abs(boxes).max() <= MAX_COORDINATE):
        k = int(np.flatnonzero(~(np.abs(boxes) <= MAX_COORDINATE).all(axis=1))[0])
        _coords_slow({c.tag: c.text for obj in objects[k:k + 1] for el in obj if el.tag == "bndbox" for c in el},
                     source, k, names[k])
    rec = ImageRecord.trusted(image_path=filename, width=width, height=height, depth=depth,
                              boxes=boxes, names=names,
                              difficult=np.array(difficult, np.uint8), truncated=np.array(truncated, bool),
                              meta={"filename": filename})
    return rec, problems


def format_voc(rec: ImageRecord, folder: str = "dsprep", segmented: bool = False) -> bytes:
    """The record as a standard VOC ``<annotation>`` document (UTF-8 bytes); inverse of :func:`parse_voc`.
    ``segmented``: the image has Segmentation PNGs (``<segmented>1``)."""
    filename = os.path.basename(rec.image_path) or f"{rec.stem}.jpg"
    out = ["<annotation>",
           f"\t<folder>{escape(folder)}</folder>",
           f"\t<filename>{escape(filename)}</filename>",
           "\t<source>\n\t\t<database>dsprep</database>\n\t</source>",
           f"\t<size>\n\t\t<width>{rec.width}</width>\n\t\t<height>{rec.height}</height>\n"
           f"\t\t<depth>{rec.depth}</depth>\n\t</size>",
           f"\t<segmented>{int(segmented)}</segmented>"]
    b = rec.boxes
    for k in range(len(rec)):
        out.append(
            f"\t<object>\n\t\t<name>{escape(rec.names[k])}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{int(rec.truncated[k])}</truncated>\n\t\t<difficult>{int(rec.difficult[k])}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{_shifted(b[k, 0])}</xmin>\n\t\t\t<ymin>{_shifted(b[k, 1])}</ymin>\n"
            f"\t\t\t<xmax>{number_text(b[k, 2])}</xmax>\n\t\t\t<ymax>{number_text(b[k, 3])}</ymax>\n\t\t</bndbox>\n\t</object>")
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
    from ..splits import strip_comment
    ids = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            tok = strip_comment(line).split()
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
    splits: Tuple[str, ...] = ()  # every split list naming it, the primary split first (see dsprep.splits)


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
        # every split list of the part (without --split too: the lists are part of the data set)
        member: Dict[str, List[str]] = {}
        if part.split_name is None and part.sets_dir is not None and part.sets_dir.is_dir():
            from ..splits import membership
            member = membership({s: _read_split(part.sets_dir / f"{s}.txt") for s in available_splits([part])})
        if split is not None and part.split_name is None:
            list_file = part.sets_dir / f"{split}.txt" if part.sets_dir is not None else None
            if list_file is None or not list_file.is_file():
                continue
            stems = list(dict.fromkeys(_read_split(list_file)))
        else:
            stems = sorted(set(xml_index) | {m for m in member if m in images})
        hint = img_dir if part.img_dir.is_dir() else ann_dir
        for stem in stems:
            xml = xml_index.get(stem)
            img = images.get(stem)
            # with --split the records are that split's (what was asked for); without, each in all its lists
            split_name = part.split_name or split
            of = (split_name,) if split_name else tuple(member.get(stem, ()))
            problems = () if (xml is not None or img is not None) else (
                Problem("listed_without_annotation", os.path.join(ann_dir, f"{stem}.xml"),
                        f"'{stem}' is listed in split '{split or of[0]}' but has neither an annotation nor an "
                        f"image"),)
            yield VocItem(xml, os.path.join(img_dir, img) if img else None, stem, of[0] if of else None, hint,
                          problems, of)
        if split is None:
            for stem in sorted(set(images) - set(xml_index) - set(member)):
                path = os.path.join(img_dir, images[stem])
                yield VocItem(None, path, stem, part.split_name, hint,
                              (Problem("image_without_annotation", path, "no XML annotation"),))


def load_voc_item(item: VocItem) -> Tuple[ImageRecord, List[Problem]]:
    """Parse one annotation and resolve its image.  Raises :class:`ParseError`.

    Image headers are read later, for every format alike (:func:`dsprep.dataset.load_dataset`): sizes missing from
    the XML are filled from them, then :func:`check_record` clips the boxes."""
    src, image, stem = item.xml, item.image, item.stem
    assert src is not None  # called for items with an annotation only
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
    rec.meta["stem"] = stem
    _set_item_splits(rec, item)
    return rec, problems


def _set_item_splits(rec: ImageRecord, item: VocItem) -> None:
    from ..splits import set_splits
    if item.splits:
        set_splits(rec, item.splits)
    else:
        rec.split = item.split


def listed_image_record(item: VocItem) -> ImageRecord:
    """An image a split list names that has no annotation file: an image without objects (VOC allows it); its
    size comes from the image header (``meta["no_annotation"]``: no size to compare it with)."""
    assert item.image is not None  # called for items with an image only
    rec = ImageRecord(item.image, 0, 0, meta={"stem": item.stem, "no_annotation": True})
    _set_item_splits(rec, item)
    return rec


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known: boxes clipped to the image, each clipped box reported."""
    return clip_boxes(rec, rec.meta.get("annotation_path", rec.image_path))


LAYOUT = "VOC: Annotations/, xmls/, annotations/ or *.xml files"
NAME = "voc"


def detect(path: Path) -> bool:
    """A folder holding VOC XML in any layout :func:`find_voc_parts` knows; an ``annotations/`` folder (a name COCO
    uses too) only when it holds an ``.xml`` file."""
    if not path.is_dir():
        return False
    return any(p.ann_dir.name != "annotations" or _has_xml(p.ann_dir) for p in find_voc_parts(path))


def _has_xml(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.name.lower().endswith(".xml") for e in it)


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    """Every record of a VOC data set; the class list comes from all annotation files, whatever ``split`` is."""
    policy = ctx.policy
    items = list(iter_voc_items(path, split))
    ds = Dataset(path, NAME)
    results = read_records(load_voc_item, [it for it in items if it.xml is not None], ctx)
    for item in items:
        ds.problems.extend(item.problems)
        if item.xml is None:
            if item.image is not None and (item.splits or split is not None):
                ds.records.append(listed_image_record(item))
            continue
        _, result, err = next(results)
        if err is not None:
            policy.handle(err, item.xml)
            ds.problems.append(Problem.about("unreadable", item.xml, err))
            continue
        assert result is not None  # read_records gives a result when there is no error
        rec, probs = result
        ds.records.append(rec)
        ds.problems.extend(probs)
    declared, ids = read_class_file(Path(path) / CLASS_FILE)
    ds.classes = decide_classes(ds.records + (_other_records(path, items) if split is not None else []),
                                declared=declared)
    if ids:
        ds.meta["category_ids"] = ids
    return ds


# VOC declares no class list: dsprep writes one beside the data set (class-index order; with the COCO category
# ids it came with, ``name id``) and reads it back as the declared list, so round trips keep order and ids.
CLASS_FILE = "labels.txt"


def read_class_file(path: Path) -> Tuple[Optional[List[str]], Dict[str, int]]:
    """``(class names in order, {name: id})`` of a ``labels.txt`` (``(None, {})`` when there is none).  A line is
    ``name`` or, when every line ends with an integer, ``name id``; blank lines and ``# comments`` are skipped."""
    if not path.is_file():
        return None, {}
    from ..splits import read_list
    try:
        lines = read_list(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"{path}: cannot read the class list ({e})") from e
    parts = [ln.rsplit(None, 1) for ln in lines]
    if lines and all(len(p) == 2 and p[1].lstrip("-").isdigit() for p in parts):
        return [p[0] for p in parts], {p[0]: int(p[1]) for p in parts}
    return lines, {}


def format_class_file(classes: Sequence[str], ids: Optional[Dict[str, int]] = None) -> bytes:
    """The ``labels.txt`` of :func:`read_class_file`: one class a line, ``name id`` when every class has an id."""
    ids = ids or {}
    with_ids = bool(classes) and all(c in ids for c in classes)
    return "".join(f"{c} {ids[c]}\n" if with_ids else f"{c}\n" for c in classes).encode("utf-8")


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
    """Standard VOC tree: ``Annotations/<id>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``; for images
    whose objects have shapes (polygons, RLE masks, quads), ``SegmentationObject/<id>.png`` and
    ``SegmentationClass/<id>.png`` (8-bit palette PNGs, the VOC colour map: instance k + 1 is object k, class value
    = position in the class list + 1, background 0; overlaps in ``vocmasks.PAINT_ORDER``), listed in
    ``ImageSets/Segmentation/<split>.txt``, and ``labelmap.txt`` saying what the class values are.

    The XML boxes: polygons become their axis-aligned boxes (counted as ``polygon_to_box``); boxes are clipped to the
    image (counted as ``clipped_box``)."""

    NAME = NAME
    HANDLES_ATTRS = frozenset({"segmentation"})  # polygons and RLE masks painted into the Segmentation PNGs

    def image_path(self, rec: ImageRecord) -> str:
        return f"JPEGImages/{_safe_stem(rec)}{os.path.splitext(rec.image_path)[1] or '.jpg'}"

    def record_files(self, rec: ImageRecord):
        lossy = {}
        files = {}
        masks = self._masks(rec)
        if masks is not None:
            instance, classes, lost = masks
            lossy.update(lost)
            from .vocmasks import encode_palette_png, voc_palette
            pal = voc_palette()
            files[f"SegmentationObject/{_safe_stem(rec)}.png"] = encode_palette_png(instance, pal)
            files[f"SegmentationClass/{_safe_stem(rec)}.png"] = encode_palette_png(classes, pal)
        box_rec = rec.select(np.arange(len(rec)))
        if box_rec.polygons is not None:
            from .shapes import axis_aligned
            bent = int((~axis_aligned(box_rec.polygons, box_rec.boxes)).sum())  # a rectangle loses nothing
            if bent and masks is None:  # (with masks, the quads are kept in them)
                lossy["polygon_to_box"] = bent
            box_rec.polygons = None
        two = box_rec.difficult == 2
        if two.any():  # DOTA's "mostly cut away" (2): not a VOC value; difficult (as DOTA scores it) and truncated
            box_rec.difficult = np.where(two, 1, box_rec.difficult).astype(np.uint8)
            box_rec.truncated = box_rec.truncated | two
        box_rec.image_path = os.path.basename(self.image_path(rec))
        box_rec, problems = clip_boxes(box_rec, rec.image_path)
        clipped = sum(p.kind == "clipped_box" for p in problems)
        if clipped:
            lossy["clipped_box"] = clipped
        files[f"Annotations/{_safe_stem(rec)}.xml"] = format_voc(box_rec, segmented=masks is not None)
        return files, lossy

    def _masks(self, rec: ImageRecord):
        """``(instance map, class map, lossy)`` of the record's shapes, or None when it has none."""
        from .shapes import check_rle, is_rle, object_segmentations, rings, unreadable
        from .vocmasks import mask_classes, object_index_maps
        segs = object_segmentations(rec)
        if segs is None:
            return None
        for k, seg in enumerate(segs):  # each checked first, so an error names its object
            try:
                if seg:
                    check_rle(seg, (int(rec.width), int(rec.height))) if is_rle(seg) else rings(seg)
            except (ValueError, KeyError, TypeError) as e:
                raise unreadable(rec, k, e) from e
        index = {c: i + 1 for i, c in enumerate(mask_classes(self.classes))}
        class_index = np.array([index.get(n, 0) for n in rec.names], np.int64)
        return object_index_maps(segs, class_index, rec.width, rec.height)

    KEEPS_FLAGS = frozenset({"difficult", "truncated"})
    MULTI_SPLIT = True  # an image is written into every split list it is in (see dsprep.splits)

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        from ..splits import list_files, lists_by_split
        from .shapes import object_segmentations
        from .vocmasks import labelmap_text, mask_classes
        by_split = lists_by_split(records, _safe_stem)
        if not by_split and records:  # a data set without splits: one list of every image, as before
            by_split["trainval"] = [_safe_stem(r) for r in records]
        ids = (self.options.get("dataset_meta") or {}).get("category_ids")
        out = {**list_files(by_split, "ImageSets/Main"), CLASS_FILE: format_class_file(self.classes, ids)}
        segmented = [r for r in records if object_segmentations(r) is not None]
        if segmented:
            seg_split = lists_by_split(segmented, _safe_stem)
            if not seg_split:
                seg_split["trainval"] = [_safe_stem(r) for r in segmented]
            out.update(list_files(seg_split, "ImageSets/Segmentation"))
            out["labelmap.txt"] = labelmap_text(mask_classes(self.classes)).encode("utf-8")
        return out


def _safe_stem(rec: ImageRecord) -> str:
    from ..outputs import safe_name
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


def append_split_names(out: Path, split: str, ids: Sequence[str], append: bool) -> None:
    """``ids`` into ``out/ImageSets/Main/<split>.txt`` (after what it lists with ``append``)."""
    (Path(out) / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    write_split_list(Path(out) / "ImageSets" / "Main" / f"{split}.txt", ids, append=append)


__all__ = ["parse_voc", "format_voc", "read_voc", "write_voc", "clip_boxes", "find_voc_parts", "iter_voc_items",
           "load_voc_item", "write_voc_dataset"]


# ================================================================================================================
# Saving an edited record into its own file (the edit protocol of dataset.py: annotation_file, load_record,
# save_record).  Kept at the end of the module on purpose: it only adds names.

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _xml_codec(data: bytes, source: str) -> Tuple[bytes, str]:
    """``(byte-order mark, Python codec)`` of an XML document: from its BOM, else its declaration, else UTF-8."""
    import codecs
    import re
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return bom, codec
    m = re.match(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""", data[:200])
    if not m:
        return b"", "utf-8"
    name = m.group(1).decode("ascii")
    try:
        return b"", codecs.lookup(name).name
    except LookupError as e:
        raise ParseError(f"{source}: unknown encoding '{name}' in the XML declaration") from e


class _Span(NamedTuple):
    """Byte offsets of one element in a document: ``start`` (its ``<``), ``inner`` (just after its start tag),
    ``close`` (its ``</``; ``== inner`` when it is written ``<tag/>``) and ``end`` (just after it)."""

    start: int
    inner: int
    close: int
    end: int
    empty: bool


@dataclass
class _ObjectSpans:
    span: _Span
    fields: Dict[str, _Span]  # name, difficult, truncated (the first of each) and bndbox/xmin ... (the last of each)


def _tag_end(doc: bytes, lt: int) -> int:
    """Index just after the ``>`` closing the tag that starts at ``doc[lt] == '<'`` (quoted ``>`` skipped)."""
    quote = None
    i = lt + 1
    while i < len(doc):
        c = doc[i]
        if quote is not None:
            if c == quote:
                quote = None
        elif c in (0x22, 0x27):  # " '
            quote = c
        elif c == 0x3E:  # >
            return i + 1
        i += 1
    return len(doc)


def _voc_spans(doc: bytes, source: str) -> Tuple[_Span, List[_ObjectSpans]]:
    """Where the root element and each top-level ``<object>`` (with the fields the reader uses) are in ``doc``
    (UTF-8 bytes).  The same "first one wins" choices as :func:`_from_root`; inside ``<bndbox>`` the last
    coordinate of a name wins, as there."""
    import xml.parsers.expat as expat
    parser = expat.ParserCreate(encoding="utf-8")
    stack: List[Tuple[str, int, int, bool]] = []  # (tag, start, inner, empty)
    root: List[_Span] = []
    objects: List[_ObjectSpans] = []
    bndbox_done = [False]

    def start(tag, _attrs):
        lt = parser.CurrentByteIndex
        gt = _tag_end(doc, lt)
        empty = doc[gt - 2:gt] == b"/>"
        stack.append((tag, lt, gt, empty))
        if len(stack) == 2 and tag == "object":
            objects.append(_ObjectSpans(_Span(lt, gt, gt, gt, empty), {}))
            bndbox_done[0] = False

    def end(tag):
        _, lt, gt, empty = stack.pop()
        if empty:
            span = _Span(lt, gt, gt, gt, True)
        else:
            close = parser.CurrentByteIndex
            span = _Span(lt, gt, close, _tag_end(doc, close), False)
        depth = len(stack)  # of the parent
        if depth == 0:
            root.append(span)
        elif depth == 1 and tag == "object":
            objects[-1].span = span
        elif depth == 2 and stack[1][0] == "object":
            if tag in ("name", "difficult", "truncated", "bndbox"):
                objects[-1].fields.setdefault(tag, span)
            if tag == "bndbox":
                bndbox_done[0] = True
        elif depth == 3 and stack[1][0] == "object" and stack[2][0] == "bndbox" and tag in _COORDS:
            if not bndbox_done[0]:  # inside the first <bndbox> of the object
                objects[-1].fields["bndbox/" + tag] = span

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(doc, True)
    except expat.ExpatError as e:
        raise ParseError(f"{source}: malformed XML ({e})") from e
    return root[0], objects


def _leaf(tag: str, text: str) -> str:
    return f"<{tag}>{escape(text)}</{tag}>"


def _set_text(doc: bytes, span: _Span, tag: str, text: str) -> Tuple[int, int, bytes]:
    """The edit that makes an element's content ``text`` (an element written ``<tag/>`` is rewritten whole)."""
    if span.empty:
        return span.start, span.end, _leaf(tag, text).encode("utf-8")
    return span.inner, span.close, escape(text).encode("utf-8")


def _indents(doc: bytes, root: _Span, objects: List[_ObjectSpans]) -> Tuple[str, str, str]:
    """``(newline, object indent, one more level)`` as the document writes them ('' for one-line documents)."""
    def indent_before(pos: int) -> Optional[str]:
        i = pos
        while i > 0 and doc[i - 1] in b" \t":
            i -= 1
        if i > 0 and doc[i - 1] in b"\r\n":
            return doc[i:pos].decode("ascii")
        return None
    if b"\n" not in doc[root.inner:root.close]:
        return "", "", ""
    newline = "\r\n" if b"\r\n" in doc else "\n"
    obj_indent = child_indent = None
    if objects:
        first = objects[0]
        obj_indent = indent_before(first.span.start)
        inner = min((s.start for s in first.fields.values()), default=None)
        if inner is not None:
            child_indent = indent_before(inner)
    if obj_indent is None:
        i = root.inner
        while i < root.close and doc[i] in b" \t\r\n":
            i += 1
        obj_indent = indent_before(i) if i < root.close else None
    obj_indent = "\t" if obj_indent is None else obj_indent
    if child_indent is not None and child_indent.startswith(obj_indent) and len(child_indent) > len(obj_indent):
        step = child_indent[len(obj_indent):]
    else:
        step = obj_indent or "\t"
    return newline, obj_indent, step


def _voc_object(name: str, box, difficult: int, truncated: int, nl: str, ind: str, step: str) -> str:
    """A new ``<object>`` written as :func:`format_voc` does, with the document's own indentation."""
    a, b, c = nl + ind + step, nl + ind + step * 2, nl + ind
    coords = "".join(b + _leaf(t, v) for t, v in zip(_COORDS, _voc_coords(box)))
    return (f"<object>{a}{_leaf('name', name)}{a}<pose>Unspecified</pose>{a}<truncated>{truncated}</truncated>"
            f"{a}<difficult>{difficult}</difficult>{a}<bndbox>{coords}{a}</bndbox>{c}</object>")


def _voc_coords(box) -> List[str]:
    return [_shifted(box[0]), _shifted(box[1]), number_text(box[2]), number_text(box[3])]


def _check_names(rec: ImageRecord, source: str) -> None:
    for k, name in enumerate(rec.names):
        if not name or name != name.strip():
            raise DsprepError(f"{source}: object {k}: class name '{name}' is empty or starts/ends with a space")


def update_voc(original: bytes, rec: ImageRecord, source: str = "<xml>") -> bytes:
    """``original`` (a VOC document) with the objects of ``rec`` written in; everything else kept byte for byte.

    ``rec.attrs["source_index"]`` says for each object of ``rec`` which object of ``original`` it is (its index in
    document order, as :func:`parse_voc` reads them) or ``-1`` for a new one; without it every object is new.

    * an object of ``original`` that ``rec`` does not name is removed (with the white space before it);
    * an object named by ``rec`` keeps its element; only the fields that differ from what the data set reader
      gives for it (the box clipped to the image, as :func:`check_record` does) are rewritten: the text of its
      ``<name>``, of the four ``<bndbox>`` coordinates (1-based, exact, see :func:`_shifted`), of ``<difficult>``
      or ``<truncated>`` (added when missing).  Unknown tags, ``<part>``, attributes and comments stay;
    * new objects follow the last object (or the last element of ``<annotation>``), indented like the document.

    The document keeps its encoding, byte-order mark and line endings.  ``rec.polygons`` are not used (VOC holds
    boxes).  The result is parsed again and checked against what was asked: :class:`DsprepError` instead of a
    wrong file.
    """
    old, _ = parse_voc(original, source)
    sized = old.select(np.arange(len(old)))
    if sized.width <= 0 or sized.height <= 0:
        sized.width, sized.height = rec.width, rec.height
    view, _ = clip_boxes(sized, source)
    src = source_indices(rec, len(old), source)
    _check_names(rec, source)
    if not np.isfinite(rec.boxes).all():
        raise DsprepError(f"{source}: a box has a coordinate that is not a finite number")

    bom, codec = _xml_codec(original, source)
    try:
        doc = original[len(bom):].decode(codec).encode("utf-8") if codec != "utf-8" else original[len(bom):]
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not valid {codec} text ({e.reason} at byte {e.start})") from e
    root, spans = _voc_spans(doc, source)
    if len(spans) != len(old):
        raise DsprepError(f"{source}: internal: found {len(spans)} <object> elements, the reader {len(old)}")
    if root.empty:
        raise DsprepError(f"{source}: <annotation/> is empty: nothing to add objects to")
    nl, ind, step = _indents(doc, root, spans)

    edits: List[Tuple[int, int, bytes]] = []
    of_old = {int(j): k for k, j in enumerate(src) if j >= 0}
    expected = []  # (name, box, difficult, truncated) of each object of the result, in document order
    for j, obj in enumerate(spans):
        k = of_old.get(j)
        if k is None:
            cut = obj.span.start
            while cut > root.inner and doc[cut - 1] in b" \t\r\n":
                cut -= 1
            edits.append((cut, obj.span.end, b""))
            continue
        f = obj.fields
        box = old.boxes[j]  # the file's own value, unless the box changes
        if rec.names[k] != view.names[j]:
            edits.append(_set_text(doc, f["name"], "name", rec.names[k]))
        if not np.array_equal(rec.boxes[k], view.boxes[j]):
            box = rec.boxes[k]
            for tag, text in zip(_COORDS, _voc_coords(box)):
                edits.append(_set_text(doc, f["bndbox/" + tag], tag, text))
        diff, trunc = bool(rec.difficult[k]), bool(rec.truncated[k])
        for tag, value, was in (("difficult", diff, view.difficult[j]), ("truncated", trunc, view.truncated[j])):
            if value == bool(was):
                continue
            if tag in f:
                edits.append(_set_text(doc, f[tag], tag, str(int(value))))
            else:  # after the object's last child, on a line of its own
                at = obj.span.close
                while doc[at - 1] in b" \t\r\n":
                    at -= 1
                edits.append((at, at, (nl + ind + step + _leaf(tag, str(int(value)))).encode("utf-8")))
        name = rec.names[k]
        expected.append((name, box, diff, trunc))
    new = [k for k in range(len(rec)) if src[k] < 0]
    if new:
        at = spans[-1].span.end if spans else root.close
        if not spans:
            while doc[at - 1] in b" \t\r\n":
                at -= 1
        text = "".join(nl + ind + _voc_object(rec.names[k], rec.boxes[k], int(bool(rec.difficult[k])),
                                              int(bool(rec.truncated[k])), nl, ind, step) for k in new)
        edits.append((at, at, text.encode("utf-8")))
        expected += [(rec.names[k], rec.boxes[k], bool(rec.difficult[k]), bool(rec.truncated[k])) for k in new]

    out = doc
    for start, end, data in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out = out[:start] + data + out[end:]
    if codec != "utf-8":
        out = out.decode("utf-8").encode(codec, errors="xmlcharrefreplace")
    out = bom + out
    _check_voc(out, expected, source)
    return out


def _check_voc(data: bytes, expected: list, source: str) -> None:
    got, _ = parse_voc(data, source)
    ok = len(got) == len(expected) and all(
        got.names[i] == e[0] and np.array_equal(got.boxes[i], e[1]) and bool(got.difficult[i]) == e[2]
        and bool(got.truncated[i]) == e[3] for i, e in enumerate(expected))
    if not ok:
        raise DsprepError(f"{source}: internal: the edited document does not read back as edited; nothing written")


def annotation_file(ds: Dataset, rec: ImageRecord) -> Optional[str]:
    """The XML file holding ``rec``'s objects."""
    return rec.meta.get("annotation_path")


def load_record(ds: Dataset, rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Read ``rec``'s annotation file again, as :func:`load` reads it (image file, split); image headers, the size
    they give and :func:`check_record` are applied by :func:`dsprep.dataset.reload_record`, as by ``load_dataset``."""
    image = rec.image_path if os.path.isfile(rec.image_path) else None
    item = VocItem(rec.meta["annotation_path"], image, rec.stem, rec.split, os.path.dirname(rec.image_path))
    return load_voc_item(item)


save_record = update_voc


def split_lists(ds: Dataset) -> Dict[str, List[str]]:
    """For a data set loaded whole: each split's name -> the annotation files its list names (only the list files
    and folder listings are read; an image may be in several lists, e.g. ``trainval`` and ``test``)."""
    root = Path(ds.root)
    out: Dict[str, List[str]] = {}
    for split in available_splits(find_voc_parts(root)):
        out[split] = [item.xml for item in iter_voc_items(root, split) if item.xml is not None]
    return out


from .vocmasks import mask_leftovers, object_masks  # noqa: E402  (the format's answer to dataset.object_masks)

FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    mask_leftovers=mask_leftovers,
                    edit=EditProtocol(annotation_file, load_record, save_record, split_lists),
                    holds=Holds(boxes=True, masks=True, difficult=True, truncated=True, splits=True, image_size=True),
                    append_names=append_split_names)
