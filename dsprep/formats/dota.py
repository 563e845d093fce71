"""DOTA label files: parse and format (pure, over text), and read/write ``images/`` + ``labelTxt/`` folders.

A label file holds optional header lines ``imagesource:...`` and ``gsd:...`` and one object per line::

    x1 y1 x2 y2 x3 y3 x4 y4 category difficult

(9 fields: difficult is 0).  Coordinates are 0-based pixel floats, the same system as dsprep's model, so they are
stored as they are.  Tiling lives in ``tiling.py``, merge-back in ``merge.py``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..core import (MAX_COORDINATE, Dataset, DatasetError, DsprepError, FormatWriter, ImageRecord, ParseError,
                   Problem, decide_classes, polygons_to_boxes)
from ..images import IMAGE_EXTS
from ..geometry import polygon_area, self_intersecting
from .common import number_text, quad_masks, source_indices
from .spec import EditProtocol, FormatSpec, Holds, ReadContext

HEADER_KEYS = ("imagesource", "gsd")


def parse_dota(text: str, source: str = "<labels>", on_error: str = "fail"
               ) -> Tuple[ImageRecord, List[Problem], List[Tuple[str, str]]]:
    """Parse a label file's text.  Returns ``(record, problems, skipped_lines)``.

    The record has ``width == height == 0`` (DOTA labels carry no size).  A line that is neither a header nor a
    valid object raises :class:`ParseError` naming ``source:line``, or with ``on_error="skip"`` is skipped and
    returned in ``skipped_lines`` as ``(where, reason)``.  Zero-area and self-intersecting quads are reported as
    problems, never errors.
    """
    meta = {}
    coords: List[List[float]] = []
    names: List[str] = []
    difficult: List[int] = []
    skipped: List[Tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        key, sep, value = s.partition(":")
        if sep and key.strip().lower() in HEADER_KEYS and len(s.split()) < 9:
            meta[key.strip().lower()] = value.strip()
            continue
        fields = s.split()
        try:
            if len(fields) not in (9, 10):
                raise ParseError(f"{source}:{lineno}: expected 9 or 10 fields "
                                 f"(x1 y1 ... x4 y4 category [difficult]), got {len(fields)}")
            xy = []
            for i, tok in enumerate(fields[:8]):
                try:
                    v = float(tok)
                except ValueError as e:
                    raise ParseError(f"{source}:{lineno}: cannot parse {'xy'[i % 2]}{i // 2 + 1} from '{tok}'") from e
                if not abs(v) <= MAX_COORDINATE:  # also NaN
                    raise ParseError(f"{source}:{lineno}: {'xy'[i % 2]}{i // 2 + 1} is '{tok}'"
                                     + ("" if not np.isfinite(v) else " (beyond any image)"))
                xy.append(v)
            diff = 0
            if len(fields) == 10:
                try:
                    diff = int(fields[9])
                    if not 0 <= diff <= 255:
                        raise ValueError
                except ValueError as e:
                    raise ParseError(f"{source}:{lineno}: cannot parse difficult from '{fields[9]}'") from e
        except ParseError as e:
            if on_error != "skip":
                raise
            skipped.append((f"{source}:{lineno}", str(e)))
            continue
        coords.append(xy)
        names.append(fields[8])
        difficult.append(diff)
    polys = np.array(coords, np.float64).reshape(-1, 4, 2)
    rec = ImageRecord("", 0, 0, boxes=polygons_to_boxes(polys), names=names, difficult=np.array(difficult, np.uint8),
                      polygons=polys, meta=meta)
    return rec, quad_problems(polys, names, source), skipped


def quad_problems(polys: np.ndarray, names: List[str], source: str) -> List[Problem]:
    """Zero-area and self-intersecting quads (vectorized over all objects)."""
    crosses = self_intersecting(polys)
    bad_area = np.flatnonzero((polygon_area(polys) == 0) & ~crosses)
    crossing = np.flatnonzero(crosses)
    return ([Problem("zero_area_polygon", source, f"object {k} ({names[k]})") for k in bad_area] +
            [Problem("self_intersecting_polygon", source, f"object {k} ({names[k]})") for k in crossing])


def format_dota(rec: ImageRecord, header: bool = True) -> str:
    """The record as DOTA label text (LF line endings).  Uses ``rec.polygons`` or, without them, the box corners
    clockwise on screen (top-left, top-right, bottom-right, bottom-left)."""
    from ..core import boxes_to_polygons
    polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
    lines = []
    if header:
        lines += [f"{k}:{rec.meta[k]}" for k in HEADER_KEYS if k in rec.meta]
    for k in range(len(rec)):
        xy = " ".join(number_text(v) for v in polys[k].reshape(-1))
        lines.append(f"{xy} {rec.names[k]} {int(rec.difficult[k])}")
    return "".join(line + "\n" for line in lines)


def read_dota(path, on_error: str = "fail"):
    from ..inputs import read_text
    path = str(path)
    rec, problems, skipped = parse_dota(read_text(path), path, on_error)
    rec.meta["stem"] = os.path.splitext(os.path.basename(path))[0]
    return rec, problems, skipped


def dota_items(root: Path) -> Tuple[List[Tuple[str, Optional[str], Optional[str]]], Path, Path]:
    """``[(stem, label_path or None, image_path or None)]`` sorted by stem, for an ``images/`` + ``labelTxt/``
    folder."""
    labels_dir, images_dir = root / "labelTxt", root / "images"
    if not labels_dir.is_dir():
        raise DatasetError(f"{root}: no labelTxt/ folder (expected a DOTA layout: images/ + labelTxt/)")
    with os.scandir(labels_dir) as it:
        labels = {e.name[:-4]: e.path for e in it if e.name.endswith(".txt") and e.is_file()}
    images = {}
    if images_dir.is_dir():
        rank = {e: i for i, e in enumerate(IMAGE_EXTS)}
        with os.scandir(images_dir) as it:
            for e in sorted(it, key=lambda e: rank.get(os.path.splitext(e.name)[1].lower(), 99)):
                stem, ext = os.path.splitext(e.name)
                if ext.lower() in rank and stem not in images and stem != "Thumbs":
                    images[stem] = e.path
    stems = sorted(set(labels) | set(images))
    return [(s, labels.get(s), images.get(s)) for s in stems], labels_dir, images_dir


LAYOUT = "DOTA: labelTxt/ + images/ (or <split>/labelTxt/ + <split>/images/)"
NAME = "dota"


def split_folders(root: Path) -> List[Path]:
    """The split folders of a DOTA data set laid out per split: ``<split>/labelTxt/`` + ``<split>/images/``
    (Datumaro's DOTA layout; Roboflow's oriented-box export, with a ``data.yaml`` naming the classes)."""
    if not root.is_dir() or (root / "labelTxt").is_dir():
        return []
    with os.scandir(root) as it:
        return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")
                      and os.path.isdir(os.path.join(e.path, "labelTxt")))


def detect(path: Path) -> bool:
    return path.is_dir() and ((path / "labelTxt").is_dir() or bool(split_folders(path)))


def _declared_names(root: Path) -> Optional[List[str]]:
    """The class list of a ``data.yaml`` beside the split folders (Roboflow writes one), or None."""
    yaml_path = root / "data.yaml"
    if not yaml_path.is_file():
        return None
    from ..inputs import read_text
    from .yamlsub import parse_yaml, yaml_names
    return yaml_names(parse_yaml(read_text(yaml_path), str(yaml_path)), str(yaml_path))


def load(root: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    """All records of a DOTA folder (or of its split folders, each record's ``split`` the folder's name); image
    sizes come from the image headers.  A single folder's splits are dsprep's ``ImageSets/<split>.txt`` lists
    (DOTA has none of its own; see :class:`Writer`)."""
    policy, wrap = ctx.policy, ctx.progress
    folders = split_folders(root)
    if not folders:
        from ..splits import membership, read_lists
        lists = read_lists(Path(root) / SPLIT_LISTS)
        if split is not None and split not in lists:
            if not lists:
                raise DatasetError(f"{root}: a DOTA folder has no split lists (--split {split}); give the split's "
                                   f"folder")
            raise DatasetError(f"{root}: no split '{split}' (available: {', '.join(sorted(lists))})")
        ds = Dataset(root, "dota")
        _read_folder(root, split, ds, policy, wrap, membership(lists))
        ds.classes = decide_classes(ds.records)
        return ds
    names = [f.name for f in folders]
    if split is not None and split not in names:
        raise DatasetError(f"{root}: no split '{split}' (available: {', '.join(names)})")
    ds = Dataset(root, "dota")
    others = Dataset(root, "dota")  # the splits not selected: read for their class names only
    from ..core import ErrorPolicy
    for folder in folders:
        if split is None or folder.name == split:
            _read_folder(folder, folder.name, ds, policy, wrap)
        else:
            _read_folder(folder, folder.name, others, ErrorPolicy("skip"), lambda it: it)
    declared = _declared_names(root)
    if declared is not None:
        ds.meta["class_file"] = str(root / "data.yaml")
    ds.classes = decide_classes(ds.records + others.records, declared=declared)
    return ds


def _read_folder(root: Path, split: Optional[str], ds: Dataset, policy, wrap, member=None) -> None:
    """The records of one ``images/`` + ``labelTxt/`` folder, appended to ``ds``.  ``member`` (a folder's own
    split lists, ``{stem: [splits]}``): each record's splits, and with ``split`` only that split's images."""
    items, labels_dir, _ = dota_items(root)
    if not items and split is None:  # (an empty split folder beside others is no error)
        raise DatasetError(f"{root}: data set is empty (no labels or images)")
    if member is not None and split is not None:
        items = [it for it in items if split in member.get(it[0], ())]
    for stem, label, image in wrap(items):
        if label is None:
            ds.problems.append(Problem("image_without_annotation", image, "no label file"))
            continue
        try:
            rec, problems, skipped = read_dota(label, policy.mode)
        except DsprepError as e:
            policy.handle(e, label)
            ds.problems.append(Problem.about("unreadable", label, e))
            continue
        ds.skipped.extend(skipped)
        if image is None:
            problems.append(Problem("annotation_without_image", label, "no image found for this label file"))
            rec.image_path = str(root / "images" / f"{stem}.png")
        else:
            rec.image_path = image
        rec.meta["annotation_path"] = label
        if member is not None and split is None and stem in member:
            from ..splits import set_splits
            set_splits(rec, member[stem])
        else:
            rec.split = split
        ds.records.append(rec)
        ds.problems.extend(problems)


SPLIT_LISTS = "ImageSets"  # dsprep's split lists of a DOTA folder: ImageSets/<split>.txt, one image name a line


class Writer(FormatWriter):
    """DOTA folder: ``images/`` + ``labelTxt/<name>.txt``; boxes become clockwise quads (nothing is lost).  DOTA
    has no split files: the splits of the records are written as ``ImageSets/<split>.txt`` lists (one image name a
    line, an image in every list it is in), which dsprep reads back (DOTA tools ignore them)."""

    NAME = NAME
    KEEPS_FLAGS = frozenset({"difficult"})
    MULTI_SPLIT = True

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        from ..outputs import safe_name
        from ..splits import list_files, lists_by_split
        return list_files(lists_by_split(records, lambda r: safe_name(r.stem)), SPLIT_LISTS)

    def image_path(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        return f"images/{safe_name(rec.stem)}{os.path.splitext(rec.image_path)[1] or '.png'}"

    def record_files(self, rec: ImageRecord):
        from ..outputs import safe_name
        lossy = {}
        spaced = [k for k, n in enumerate(rec.names) if len(n.split()) != 1]
        if spaced:  # fields are separated by white space: "small vehicle" is written "small-vehicle", as DOTA does
            rec = rec.select(np.arange(len(rec)))
            rec.names = ["-".join(n.split()) or "_" for n in rec.names]
            lossy["class_name_spaces"] = len(spaced)
        return {f"labelTxt/{safe_name(rec.stem)}.txt": format_dota(rec).encode("utf-8")}, lossy


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known (from the image header): polygons reaching outside the image are reported."""
    return rec, _outside(rec, rec.meta.get("annotation_path", rec.image_path))


def _outside(rec: ImageRecord, source: str) -> List[Problem]:
    if rec.width <= 0 or len(rec) == 0:
        return []
    b = rec.boxes
    out = np.flatnonzero((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > rec.width) | (b[:, 3] > rec.height))
    return [Problem("polygon_outside_image", source, f"object {k} ({rec.names[k]}) extends outside the "
                                                      f"{rec.width}x{rec.height} image") for k in out]


# ================================================================================================================
# Saving an edited record into its own file (the edit protocol of dataset.py: annotation_file, load_record,
# save_record).  Kept at the end of the module on purpose: it only adds names.

def _line_body(line: str) -> Tuple[str, str]:
    """``(text, line ending)`` of a line kept with its ending by ``str.splitlines(keepends=True)``."""
    body = line.splitlines()[0] if line.splitlines() else ""
    return body, line[len(body):]


def update_dota(original: bytes, rec: ImageRecord, source: str = "<labels>") -> bytes:
    """``original`` (a DOTA label file) with the objects of ``rec`` written in; every other line kept as it was.

    ``rec.attrs["source_index"]`` says for each object of ``rec`` which object line of ``original`` it is (its index
    among the valid object lines, as :func:`parse_dota` with ``on_error="skip"`` reads them) or ``-1`` for a new one;
    without it every object is new.  Header lines, blank lines and lines the reader skips stay where they are; an
    object line not named by ``rec`` is removed; a named one is rewritten only when its polygon, class or
    difficult flag differ, and then only those fields (9-field lines gain a difficult field only when it becomes
    non-zero).  New objects are appended, with the file's line ending.  Uses ``rec.polygons`` (or the box corners,
    clockwise on screen, when it has none).  UTF-8 with or without a byte-order mark, as :func:`read_dota` reads.
    """
    from ..core import boxes_to_polygons
    bom = b"\xef\xbb\xbf" if original.startswith(b"\xef\xbb\xbf") else b""
    try:
        text = original[len(bom):].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    polys = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
    for obj, name in enumerate(rec.names):
        if not name or len(name.split()) != 1 or name != name.strip():
            raise DsprepError(f"{source}: object {obj}: class name '{name}' cannot be written to a DOTA label line "
                              f"(it must be one word, without spaces)")
    if not np.isfinite(polys).all():
        raise DsprepError(f"{source}: a polygon has a coordinate that is not a finite number")
    if ((rec.difficult < 0) | (rec.difficult > 255)).any():
        raise DsprepError(f"{source}: difficult must be 0-255")

    lines = text.splitlines(keepends=True)
    object_lines = []  # (line number, the parsed single-object record)
    for i, line in enumerate(lines):
        one, _, skipped = parse_dota(line, source, on_error="skip")
        if len(one) == 1 and not skipped:
            object_lines.append((i, one))
    src = source_indices(rec, len(object_lines), source)
    of_old = {int(j): k for k, j in enumerate(src) if j >= 0}
    newline = "\r\n" if "\r\n" in text else "\n"
    out = list(lines)
    expected = []  # (polygon, name, difficult) in file order
    for j, (i, one) in enumerate(object_lines):
        k = of_old.get(j)
        if k is None:
            out[i] = ""
            continue
        body, ending = _line_body(lines[i])
        fields = body.split()
        changed = False
        assert one.polygons is not None  # parse_dota always sets polygons
        if not np.array_equal(polys[k], one.polygons[0]):
            fields[:8] = [number_text(v) for v in polys[k].reshape(-1)]
            changed = True
        if rec.names[k] != one.names[0]:
            fields[8] = rec.names[k]
            changed = True
        if int(rec.difficult[k]) != int(one.difficult[0]):
            fields[9:] = [str(int(rec.difficult[k]))]
            changed = True
        if changed:
            out[i] = " ".join(fields) + ending
        expected.append((polys[k], rec.names[k], int(rec.difficult[k])))
    new = [k for k in range(len(rec)) if src[k] < 0]
    if new:
        last = max((i for i, line in enumerate(out) if line), default=None)
        if last is not None and not _line_body(out[last])[1]:
            out[last] += newline
        for k in new:
            xy = " ".join(number_text(v) for v in polys[k].reshape(-1))
            out.append(f"{xy} {rec.names[k]} {int(rec.difficult[k])}{newline}")
            expected.append((polys[k], rec.names[k], int(rec.difficult[k])))
    result = "".join(out)
    got, _, _ = parse_dota(result, source, on_error="skip")
    got_polys = got.polygons
    assert got_polys is not None  # parse_dota always sets polygons
    if len(got) != len(expected) or not all(
            np.array_equal(got_polys[i], e[0]) and got.names[i] == e[1] and int(got.difficult[i]) == e[2]
            for i, e in enumerate(expected)):
        raise DsprepError(f"{source}: internal: the edited labels do not read back as edited; nothing written")
    return bom + result.encode("utf-8")


def annotation_file(ds: Dataset, rec: ImageRecord) -> str:
    """The label file holding ``rec``'s objects: ``labelTxt/<name>.txt`` (of its split's folder)."""
    return rec.meta.get("annotation_path") or str(Path(ds.root) / "labelTxt" / f"{rec.stem}.txt")


def load_record(ds: Dataset, rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Read ``rec``'s label file again, as :func:`load` with ``on_error="skip"`` reads it (each skipped line becomes
    a ``skipped_line`` problem); image headers are read by :func:`dsprep.dataset.reload_record`, as by
    ``load_dataset``."""
    label = annotation_file(ds, rec)
    new, problems, skipped = read_dota(label, "skip")
    problems += [Problem("skipped_line", where, reason) for where, reason in skipped]
    if not os.path.isfile(rec.image_path):
        problems.append(Problem("annotation_without_image", label, "no image found for this label file"))
    new.image_path, new.split = rec.image_path, rec.split
    new.meta["annotation_path"] = label
    return new, problems


save_record = update_dota


# ----------------------------------------------------------------------------------------------------------------
# Object masks (see dsprep.dataset.object_masks): a pixel belongs to an object when its centre lies inside the
# object's quad or on its outline.  Coordinates need no orientation step: DOTA labels refer to the pixels as read.

object_masks = quad_masks

def append_split_names(out: Path, split: str, ids: List[str], append: bool) -> None:
    """``ids`` into dsprep's ``out/ImageSets/<split>.txt`` (after the names it lists with ``append``)."""
    from ..outputs import atomic_write_bytes
    from ..splits import read_list
    path = Path(out) / SPLIT_LISTS / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_list(path) if (append and path.is_file()) else []
    atomic_write_bytes(path, "".join(f"{i}\n" for i in list(existing) + list(ids)).encode("utf-8"))


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record, object_masks=object_masks,
                    edit=EditProtocol(annotation_file, load_record, save_record), default_metric="dota-task1",
                    append_names=append_split_names,
                    holds=Holds(boxes=True, quads=True, masks=True, difficult=True, splits=True))
