"""YOLO label files (axis-aligned boxes) and YOLO-OBB (oriented boxes): parse and format, read and write data sets.

One text file per image, one object per line, every coordinate normalized by the image size (0..1)::

    class cx cy w h                      (YOLO: box centre and size)
    class x1 y1 x2 y2 x3 y3 x4 y4        (YOLO-OBB: the four corners)

``class`` is a 0-based index into the data set's class list.  An image without a label file has no objects.  Label
files carry no image size: it comes from the image header (read for every format by :mod:`dsprep.dataset`), so
:func:`load` keeps the normalized boxes (or corners) in ``rec.attrs["normalized"]`` and :func:`check_record` turns
them into pixels once the size is known (until then ``rec.boxes`` is NaN, never a wrong number).

Layouts read (:func:`find_layout`):

* **Ultralytics**: a ``data.yaml`` (any ``*.yaml`` naming ``names`` and ``train``/``val``...) whose splits are image
  folders, image list files or lists of them, resolved against ``path:`` or the YAML's own folder (``../`` prefixes
  as Roboflow writes them are also tried without); labels are where Ultralytics looks: the image path with its last
  ``images`` folder replaced by ``labels`` and the extension by ``.txt`` (beside the image when the path has no
  ``images`` folder);
* ``images/`` + ``labels/`` without a YAML (splits = the subfolders of ``images/``, class names = the indices);
* **flat**: a folder with ``classes.txt`` (labelImg) or ``obj.names`` (darknet, CVAT "YOLO 1.1", with ``obj.data``
  and its ``train.txt``/``valid.txt`` lists) and labels beside the images.

data.yaml is read and written through :mod:`dsprep.formats.yamlsub` (the small YAML subset those files use), so dsprep needs
no YAML library.

Why one module: the YOLO layouts (data.yaml, Darknet lists, flat folders), the reader, the edit protocol and the
writer make one format, and YOLO-OBB (:mod:`dsprep.formats.yolo_obb`) and YOLO-seg (:mod:`dsprep.formats.yolo_seg`,
through :class:`LabelSyntax`) reuse all of it.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core import (Dataset, DatasetError, DsprepError, FormatWriter, ImageRecord, ParseError, Problem,
                   boxes_to_polygons, decide_classes, polygons_to_boxes)
from ..images import IMAGE_EXTS
from .yamlsub import parse_yaml, yaml_names, yaml_string
from .common import number_text, source_indices
from .spec import EditProtocol, FormatSpec, Holds, ReadContext

NAME = "yolo"
LAYOUT = "YOLO: a data.yaml with images/ + labels/, or classes.txt / obj.names beside .txt labels"

_FIELDS = {False: 5, True: 9}
_KIND = {False: "yolo", True: "yolo-obb"}


@dataclass(frozen=True)
class LabelSyntax:
    """What one YOLO variant's label lines are, for the reader all variants share (:func:`load_yolo`):

    * ``kind``: the format's name; ``fields``: the number of fields of every line, or None for polygons (any
      length: YOLO-seg);
    * ``parse(text, source, n_classes, on_error) -> (classes, values, skipped lines)``: one label file, naming each
      bad line (``values``: an ``(N, fields - 1)`` array, or for polygons a list of ``(K, 2)`` arrays);
    * ``parts(values of each file) -> [(normalized, normalized boxes or None, (reaches outside, has a zero-size
      box))]``: computed for all files at once; a record keeps them in ``attrs["normalized"]`` (and
      ``attrs["normalized_box"]``) until its format's ``check_record`` turns them into pixels."""

    kind: str
    fields: Optional[int]
    parse: Callable
    parts: Callable

    def empty(self):
        return np.zeros((0, self.fields - 1)) if self.fields else []
_CLASS_FILES = ("obj.names", "classes.txt", "classes.names")
_NOT_LABELS = {"classes.txt", "obj.names", "classes.names", "obj.data", "train.txt", "val.txt", "valid.txt",
               "test.txt", "readme.txt", "readme.roboflow.txt", "readme.dataset.txt", "labels.txt"}


# ---- data.yaml ------------------------------------------------------------------------------------------------

# ---- label text ----------------------------------------------------------------------------------------------

def parse_yolo(text: str, source: str = "<labels>", obb: bool = False, n_classes: Optional[int] = None,
               on_error: str = "fail") -> Tuple[np.ndarray, np.ndarray, List[Tuple[str, str]]]:
    """Parse a label file's text.  Returns ``(classes (N,) int64, values (N, 4|8) float64, skipped_lines)``.

    ``values`` are the file's normalized numbers (``cx cy w h`` or ``x1 y1 ... y4``).  A line with the wrong number
    of fields, a number that does not parse, a class index that is not a whole number in ``0..n_classes-1`` or a
    coordinate outside ``[0, 1]`` raises :class:`ParseError` naming ``source:line``; with ``on_error="skip"`` the
    line is left out and listed in ``skipped_lines`` as ``(where, reason)``."""
    n = _FIELDS[obb]
    rows = text.split("\n") if "\r" not in text else text.splitlines()
    fields = [r.split() for r in rows]
    good = [f for f in fields if f]
    if not good:
        return np.zeros(0, np.int64), np.zeros((0, n - 1)), []
    if all(len(f) == n for f in good):
        try:
            arr = np.array(good, dtype=np.float64)
        except ValueError:
            arr = None
        # a few whole-array checks (NaN fails them all); any doubt: the line-by-line path names the line
        if arr is not None and arr.min() >= 0 and arr[:, 1:].max() <= 1:
            cls = arr[:, 0].astype(np.int64)
            if (cls == arr[:, 0]).all() and (n_classes is None or cls.max() < n_classes):
                return cls, arr[:, 1:], []
    return _parse_slow(fields, source, obb, n_classes, on_error)


def class_index(token: str, where: str, n_classes: Optional[int]) -> int:
    """A label line's class field as an index into the class list (``n_classes`` long, when known); a
    :class:`ParseError` naming ``where`` (``file:line``) otherwise."""
    try:
        c = float(token)
    except ValueError as e:
        raise ParseError(f"{where}: cannot parse the class index from '{token}'") from e
    if not (math.isfinite(c) and c >= 0 and c == int(c)):
        raise ParseError(f"{where}: class index '{token}' is not a whole number >= 0")
    if n_classes is not None and c >= n_classes:
        raise ParseError(f"{where}: class index {int(c)} is not in the class list (0..{n_classes - 1})")
    return int(c)


def coordinate(token: str, name: str, where: str) -> float:
    """A label line's normalized coordinate ``name``; a :class:`ParseError` naming ``where`` unless it is a number
    in ``[0, 1]``."""
    try:
        v = float(token)
    except ValueError as e:
        raise ParseError(f"{where}: cannot parse {name} from '{token}'") from e
    if not 0.0 <= v <= 1.0:
        raise ParseError(f"{where}: {name} is {token}, outside [0, 1] (YOLO coordinates are normalized by the image "
                         f"size)")
    return v


def _parse_slow(fields, source, obb, n_classes, on_error):
    """Line by line, naming the first problem of each bad line."""
    n = _FIELDS[obb]
    names = ("cx", "cy", "w", "h") if not obb else tuple(f"{a}{i}" for i in range(1, 5) for a in "xy")
    what = "class cx cy w h" if not obb else "class x1 y1 x2 y2 x3 y3 x4 y4"
    classes, values, skipped = [], [], []
    for lineno, f in enumerate(fields, 1):
        if not f:
            continue
        try:
            if len(f) != n:
                hint = " (a YOLO-OBB line: use --format yolo-obb)" if (not obb and len(f) == 9) else \
                    " (a YOLO box line: use --format yolo)" if (obb and len(f) == 5) else \
                    " (a YOLO-seg polygon line: use --format yolo-seg)" if len(f) > n and len(f) % 2 == 1 else ""
                raise ParseError(f"{source}:{lineno}: expected {n} fields ({what}), got {len(f)}{hint}")
            c = class_index(f[0], f"{source}:{lineno}", n_classes)
            row = []
            for name, tok in zip(names, f[1:]):
                row.append(coordinate(tok, name, f"{source}:{lineno}"))
        except ParseError as e:
            if on_error != "skip":
                raise
            skipped.append((f"{source}:{lineno}", str(e)))
            continue
        classes.append(int(c))
        values.append(row)
    return (np.array(classes, np.int64), np.array(values, np.float64).reshape(-1, n - 1), skipped)


def denormalize(values: np.ndarray, width: int, height: int, obb: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Normalized label numbers -> ``(boxes (N, 4), quads (N, 4, 2) or None)`` in pixels."""
    if obb:
        quads = values.reshape(-1, 4, 2) * [float(width), float(height)]
        return polygons_to_boxes(quads), quads
    cx, cy, w, h = (values[:, i] for i in range(4))
    W, H = float(width), float(height)
    x0, y0 = (cx - w / 2) * W, (cy - h / 2) * H
    x1, y1 = (cx + w / 2) * W, (cy + h / 2) * H
    return np.stack([x0, y0, x1, y1], axis=1).reshape(-1, 4), None


def format_yolo(classes: Sequence[int], values: np.ndarray) -> str:
    """Label text: one ``class v1 v2 ...`` line per object (LF line endings, numbers at full precision)."""
    if len(classes) == 0:
        return ""
    vals = np.asarray(values, np.float64).reshape(len(classes), -1)
    return "".join(f"{int(c)} " + " ".join(number_text(v, exponent=False) for v in row) + "\n" for c, row in zip(classes, vals.tolist()))


def normalized(rec: ImageRecord, obb: bool) -> Tuple[np.ndarray, Dict[str, int]]:
    """The record's objects as normalized label numbers, clipped to the image; returns ``(values, lossy counts)``.

    Boxes: ``cx cy w h`` of the box clipped to ``[0, W] x [0, H]`` (``clipped_box``); non-rectangular
    quadrilaterals give their boxes (``polygon_to_box``).  OBB: the quads, else the corners of the box clockwise on
    screen from the top-left, each corner clipped into the image (``clipped_polygon``); an object whose
    segmentation is one 4-point ring gives that quad, another polygon its minimum-area rotated rectangle
    (``polygon_to_obb``), a mask its box (``mask_to_box``)."""
    from .shapes import axis_aligned, obb_of_segmentation, unreadable
    W, H = float(rec.width), float(rec.height)
    lossy: Dict[str, int] = {}
    if rec.width <= 0 or rec.height <= 0 or not np.isfinite(rec.boxes).all():
        raise DsprepError(f"{rec.meta.get('annotation_path') or rec.image_path}: the image size is unknown (no "
                          f"readable image), so its objects cannot be normalized")
    if not obb:
        if rec.polygons is not None:
            bent = int((~axis_aligned(rec.polygons, rec.boxes)).sum())
            if bent:
                lossy["polygon_to_box"] = bent
        lim = np.array([W, H, W, H])
        b = np.clip(rec.boxes, 0.0, lim)
        clipped = int((b != rec.boxes).any(axis=1).sum())
        if clipped:
            lossy["clipped_box"] = clipped
        vals = np.stack([(b[:, 0] + b[:, 2]) / 2 / W, (b[:, 1] + b[:, 3]) / 2 / H,
                         (b[:, 2] - b[:, 0]) / W, (b[:, 3] - b[:, 1]) / H], axis=1)
        return np.clip(vals, 0.0, 1.0), lossy
    quads = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
    segs = rec.attrs.get("segmentation")
    if rec.polygons is None and segs is not None:
        quads = quads.copy()
        for k, seg in enumerate(segs):
            try:
                quad, kind = obb_of_segmentation(seg)
            except (ValueError, KeyError, TypeError) as e:
                raise unreadable(rec, k, e) from e
            if quad is not None:
                quads[k] = quad
            if kind:
                lossy[kind] = lossy.get(kind, 0) + 1
    q = np.clip(quads, 0.0, [W, H])
    clipped = int((q != quads).any(axis=(1, 2)).sum())
    if clipped:
        lossy["clipped_polygon"] = clipped
    return (q / [W, H]).reshape(-1, 8), lossy


# ---- layouts -------------------------------------------------------------------------------------------------

@dataclass
class YoloSplit:
    name: Optional[str]
    sources: List[Path]       # image folders and image list files
    alias_of: Optional[str] = None  # a YAML split naming the same sources as an earlier one
    root: Optional[Path] = None  # the data set's folder: images a list file names must lie inside it


@dataclass
class YoloLayout:
    root: Path
    kind: str                          # "ultralytics" | "folders" | "flat"
    splits: List[YoloSplit]
    names: Optional[List[str]] = None  # the declared class list
    names_file: Optional[Path] = None  # where it was declared
    problems: List[Problem] = field(default_factory=list)


def _yaml_files(root: Path) -> List[Path]:
    """``data.yaml`` first, then other ``*.yaml``/``*.yml`` files holding ``names:`` or ``nc:`` at the top level."""
    out = []
    for p in sorted(root.iterdir(), key=lambda p: (p.name not in ("data.yaml", "data.yml", "dataset.yaml"), p.name)):
        if p.suffix.lower() in (".yaml", ".yml") and p.is_file():
            try:
                head = p.read_bytes()[:65536].decode("utf-8", "replace")
            except OSError:
                continue
            if re.search(r"^(names|nc)\s*:", head, re.M) and re.search(r"^(train|val)\s*:", head, re.M):
                out.append(p)
    return out


def _resolve(base_dirs: Sequence[Path], entry: str) -> Optional[Path]:
    """A split entry of a data.yaml, resolved as Ultralytics does, with Roboflow's ``../`` also tried without."""
    p = Path(entry)
    cands = [p] if p.is_absolute() else [b / p for b in base_dirs]
    if entry.startswith("../"):
        cands += [b / entry[3:] for b in base_dirs]
    for c in cands:
        if c.exists():
            return c
    return None


def _layout_from_yaml(root: Path, yaml_path: Path) -> YoloLayout:
    from ..inputs import read_text
    doc = parse_yaml(read_text(yaml_path), str(yaml_path))
    names = yaml_names(doc, str(yaml_path))
    bases = [root]
    if isinstance(doc.get("path"), str) and doc["path"].strip():
        p = Path(doc["path"])
        bases = [p if p.is_absolute() else root / p, root]
    splits: List[YoloSplit] = []
    problems: List[Problem] = []
    seen: Dict[Tuple[str, ...], str] = {}
    for key, value in doc.items():
        if key in ("path", "names", "nc", "download", "roboflow", "kpt_shape", "flip_idx", "channels") or \
                value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        if not entries or not all(isinstance(e, str) for e in entries):
            continue
        if key not in ("train", "val", "test", "minival", "valid", "validation") and \
                not any(("/" in e or "\\" in e or e.endswith(".txt")) for e in entries):
            continue  # not a split entry (e.g. a licence string)
        sources = []
        for e in entries:
            found = _resolve(bases, e.replace("\\", "/"))
            if found is None:
                problems.append(Problem("split_not_found", str(yaml_path), f"{key}: {e} does not exist"))
                continue
            sources.append(found)
            here = _resolve([root], e.replace("\\", "/"))
            if here is not None and here.resolve() != found.resolve():  # a copied or moved data set: say which
                problems.append(Problem("yaml_path_elsewhere", str(yaml_path),
                                        f"{key}: read from {found} as the data.yaml's path: says, not from {here} "
                                        f"beside it (delete the path: line to read the folder the YAML is in)"))
        if not sources:
            continue
        ident = tuple(sorted(str(s.resolve()) for s in sources))
        splits.append(YoloSplit(str(key), sources, alias_of=seen.get(ident), root=root))
        seen.setdefault(ident, str(key))
    if not splits:
        raise DatasetError(f"{yaml_path}: names no existing train/val/test image folder or list"
                           + (f" ({'; '.join(p.detail for p in problems)})" if problems else ""))
    return YoloLayout(root, "ultralytics", splits, names, yaml_path, problems)


def _read_names_file(path: Path) -> List[str]:
    from ..inputs import read_text
    names = [line.strip() for line in read_text(path).splitlines()]
    while names and not names[-1]:
        names.pop()
    for i, n in enumerate(names):
        if not n:
            raise ParseError(f"{path}:{i + 1}: empty class name (class indices are line numbers: no blank lines)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ParseError(f"{path}: class name{'s' if len(dup) > 1 else ''} {', '.join(dup)} listed more than once")
    return names


def _darknet_lists(root: Path) -> List[YoloSplit]:
    """``obj.data``'s ``train = ...`` / ``valid = ...`` list files (CVAT "YOLO 1.1"), when present."""
    data = root / "obj.data"
    splits = []
    if data.is_file():
        for line in data.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if sep and key in ("train", "valid", "val", "test") and value:
                found = _resolve([root], value) or _resolve([root], "/".join(Path(value).parts[1:]) or value)
                if found is not None and found.is_file():
                    splits.append(YoloSplit("val" if key == "valid" else key, [found], root=root))
    return splits


def find_layout(root: Path) -> Optional[YoloLayout]:
    """The YOLO layout of ``root`` (see the module docstring), or None when it is not a YOLO data set."""
    root = Path(root)
    if not root.is_dir():
        return None
    yamls = _yaml_files(root)
    if yamls:
        return _layout_from_yaml(root, yamls[0])
    names_file = next((root / n for n in _CLASS_FILES if (root / n).is_file()), None)
    images, labels = root / "images", root / "labels"
    if images.is_dir() and labels.is_dir():
        # with or without a class file at the root: Label Studio's YOLO export (classes.txt, images/, labels/),
        # Datumaro's loose YOLO (obj.names, images/<subset>/, labels/<subset>/)
        names = _read_names_file(names_file) if names_file is not None else None
        subs = sorted(d for d in images.iterdir() if d.is_dir() and (labels / d.name).is_dir())
        if subs:
            return YoloLayout(root, "folders", [YoloSplit(d.name, [d]) for d in subs], names, names_file)
        return YoloLayout(root, "folders", [YoloSplit(None, [images])], names, names_file)
    if names_file is not None:
        splits = _darknet_lists(root) or [YoloSplit(None, [root])]
        return YoloLayout(root, "flat", splits, _read_names_file(names_file), names_file)
    return None


def label_path(image: str) -> str:
    """Where Ultralytics looks for an image's labels: its last ``images`` folder replaced by ``labels``, the
    extension by ``.txt``; beside the image when the path has no ``images`` folder."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, sep, tail = image.rpartition(sa)
    path = head + sb + tail if sep else image
    return os.path.splitext(path)[0] + ".txt"


def _walk_images(folder: Path) -> List[str]:
    out = []
    for dirpath, dirnames, files in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "labels")
        for f in files:
            if os.path.splitext(f)[1].lower() in IMAGE_EXTS and not f.startswith("."):
                out.append(os.path.join(dirpath, f))
    out.sort()
    return out


def _list_file_images(path: Path, root: Optional[Path] = None) -> List[str]:
    """Image paths listed in a split list file (relative ones against the list's folder, or the data set root as
    darknet's ``data/...`` prefixes assume: leading folders are dropped until the file is found).  An entry that
    lies outside the data set (``root`` and the list's folder: ``/home/you/a.jpg``, ``../../a.jpg``) is looked for
    inside it the same way (``/content/data/obj/a.jpg`` of a list written on another machine), and refused when
    it is not there (:mod:`dsprep.datapaths`)."""
    from ..datapaths import OutsideDataset, named_path
    base = path.parent
    roots = [str(base)] + ([str(root)] if root is not None else [])
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        p = Path(s.replace("\\", "/"))
        outside = None
        try:
            first = Path(named_path(str(p), str(base), roots, f"{path}:{lineno}", f"image '{s}'"))
        except OutsideDataset as e:
            first, outside = None, e
        if first is not None and first.exists():
            out.append(str(first))
            continue
        parts = [q for q in p.parts if q not in ("/", ".", "..")]
        found = next((base / Path(*parts[k:]) for k in range(1 if first is not None else 0, len(parts))
                      if (base / Path(*parts[k:])).exists()), None)
        if found is not None:
            out.append(str(found))
        elif outside is not None:
            raise outside
        else:
            out.append(str(first))  # inside, missing: reported as an image without its file
    return out


def split_images(split: YoloSplit) -> List[str]:
    images: List[str] = []
    for s in split.sources:
        images += _walk_images(s) if s.is_dir() else _list_file_images(s, split.root)
    return list(dict.fromkeys(images))


def _label_files(layout: YoloLayout, split: YoloSplit) -> List[str]:
    """Every label file under the ``labels`` folders matching this split's image folders (for labels whose image
    is missing); flat layouts have no such folder (their ``.txt`` files may be anything)."""
    out = []
    for s in split.sources:
        if not s.is_dir():
            continue
        lab = Path(label_path(str(s / "x.jpg"))).parent
        if lab == s or not lab.is_dir():
            continue
        for dirpath, dirnames, files in os.walk(lab):
            dirnames.sort()
            out += [os.path.join(dirpath, f) for f in files if f.endswith(".txt") and f.lower() not in _NOT_LABELS]
    return out


def _sample_fields(layout: YoloLayout, limit: int = 20) -> List[int]:
    """The field counts of the first line of the first ``limit`` label files, in name order (so the answer never
    depends on the order the file system lists a folder in); ``[]`` when no label has a line."""
    counts: List[int] = []
    looked = 0
    for split in layout.splits:
        folders = [Path(label_path(str(s / "x.jpg"))).parent for s in split.sources if s.is_dir()]
        if not folders:
            folders = [Path(label_path(p)).parent for p in split_images(split)[:limit]]
        for folder in dict.fromkeys(folders):
            if not folder.is_dir():
                continue
            try:
                names = sorted(n for n in os.listdir(folder) if n.endswith(".txt") and n.lower() not in _NOT_LABELS)
            except OSError:
                continue
            for name in names:
                try:
                    with open(folder / name, "rb") as f:
                        head = f.read(4096)
                except OSError:  # (a folder named *.txt, an unreadable file)
                    continue
                first = next((line.split() for line in head.splitlines() if line.split()), None)
                if first is not None:
                    counts.append(len(first))
                looked += 1
                if looked >= limit:
                    return counts
    return counts


def detect_kind(path: Path) -> Optional[str]:
    """``"yolo"``, ``"yolo-obb"``, ``"yolo-seg"`` or None: the layout, and the field counts of the first line of
    (up to 20) label files:

    * lines of an odd count of 7 or more other than 9 (a class and 3, 5, 6 ... points), and these with the lines
      of 9 outnumbering the lines of 5: YOLO-seg (its 4-point polygons are lines of 9 too);
    * else more lines of 9 (a class and 4 corners) than of 5: YOLO-OBB -- unless the data.yaml is one dsprep wrote
      for YOLO-seg (4-point polygons only look like corners: their data.yaml's first line says which it is);
    * else YOLO (lines of 5: class cx cy w h).

    A line of another count (6 values: a results file with confidences) does not decide: the reader names it."""
    try:
        layout = find_layout(Path(path))
    except DsprepError:
        # a data.yaml that cannot be read beside images/ or labels/: a YOLO data set whose reader says what is
        # wrong with it (rather than "no data set found")
        root = Path(path)
        return "yolo" if root.is_dir() and (root / "images").is_dir() | (root / "labels").is_dir() else None
    if layout is None:
        return None
    counts = _sample_fields(layout)
    flat = layout.kind == "flat"
    obb = counts.count(9)
    boxes = counts.count(5)
    polygons = sum(1 for n in counts if n >= 7 and n % 2 == 1 and n != 9)
    if (polygons and polygons + obb > boxes) or ((obb > boxes or not counts) and _written_as(layout) == "yolo-seg"):
        return "yolo-seg"
    if obb > boxes:
        return "yolo-obb"
    if boxes:
        return "yolo"
    if flat or _labels_are_dota(layout):
        # a flat folder needs labels that look like YOLO to be told from any folder with a classes.txt; image
        # folders whose labels sit in a DOTA labelTxt/ beside them are DOTA's (Roboflow's oriented-box export)
        return None
    # a YOLO layout whose lines are all of another count (or that has none yet) is still YOLO: its reader names
    # the lines
    return "yolo"


def _written_as(layout: YoloLayout) -> Optional[str]:
    """The variant a data.yaml written by dsprep names in its first line (see :meth:`Writer.finish`), or None."""
    if layout.names_file is None or layout.names_file.suffix.lower() not in (".yaml", ".yml"):
        return None
    try:
        with open(layout.names_file, "rb") as f:
            first = f.readline(200).decode("utf-8", "replace")
    except OSError:
        return None
    m = re.match(r"# (YOLO(?:-OBB|-seg)?) data set written by dsprep", first)
    return m.group(1).lower() if m else None


def _labels_are_dota(layout: YoloLayout) -> bool:
    """No YOLO label was found, and an image folder of the layout has a ``labelTxt/`` folder beside it."""
    return any(src.is_dir() and (src.parent / "labelTxt").is_dir() for s in layout.splits for src in s.sources)


def detect(path: Path) -> bool:
    return detect_kind(path) == NAME


# ---- reading -------------------------------------------------------------------------------------------------

def _beside(image: str) -> str:
    return os.path.splitext(image)[0] + ".txt"


def read_label_text(path: str, missing_ok: bool = False) -> Optional[str]:
    """A label file's text (UTF-8, with or without a byte-order mark); with ``missing_ok`` a missing file gives
    None."""
    from ..inputs import read_text
    return read_text(path, missing_ok)


def read_labels(path: str, obb: bool, n_classes: Optional[int], on_error: str, missing_ok: bool = False):
    """Parse one label file (see :func:`parse_yolo`); with ``missing_ok`` a missing file gives None."""
    text = read_label_text(path, missing_ok)
    return None if text is None else parse_yolo(text, path, obb, n_classes, on_error)


def load_yolo(path: Path, split: Optional[str], policy, wrap, obb: bool = False,
              syntax: Optional[LabelSyntax] = None) -> Dataset:
    """Every record of a YOLO (``obb=False``) or YOLO-OBB data set, boxes still normalized (see the module
    docstring); ``syntax`` reads another variant's label lines in the same layouts (YOLO-seg)."""
    syntax = syntax or SYNTAX[obb]
    path = Path(path)
    layout = find_layout(path)
    if layout is None:
        raise DatasetError(f"{path}: no YOLO data set found ({LAYOUT})")
    names = layout.names
    available = [s.name for s in layout.splits if s.name is not None]
    if split is not None and split not in available:
        raise DatasetError(f"{path}: no split '{split}' (available: {', '.join(available) or 'none'})")
    ds = Dataset(path, syntax.kind)
    ds.problems.extend(layout.problems)
    ds.meta["yolo_layout"] = layout.kind
    if layout.names_file is not None:
        ds.meta["class_file"] = str(layout.names_file)
    n_classes = len(names) if names is not None else None
    chosen = [s for s in layout.splits if s.alias_of is None and (split is None or s.name == split)]
    # dsprep's own writer names the training images as 'val' when the source had no validation split (Ultralytics
    # requires the entry; the line says so): not a problem of the data set
    own_val_stand_in = _written_as(layout) is not None
    for s in layout.splits:
        if s.alias_of is not None and (split is None or s.name == split):
            if not (own_val_stand_in and s.name == "val"):
                ds.problems.append(Problem("split_alias", str(layout.names_file or path),
                                           f"split '{s.name}' names the same images as '{s.alias_of}' (read once, "
                                           f"as '{s.alias_of}')"))
            if split is not None:
                chosen = [t for t in layout.splits if t.name == s.alias_of]
    labels_of = _beside if layout.kind == "flat" else label_path
    # Pass 1, per image: its label file read and split into numbers.  Files whose lines all have the right number
    # of fields are checked together in pass 2 (a few whole-array tests); the others, and the files pass 2 finds
    # a bad number in, go through the line-by-line parser, which names each bad line and applies --on-error.
    entries: List[list] = []  # [image, label file or None, split, classes, values, text]
    regular: List[int] = []
    accounted = set()  # label files read, or reported as without an image
    for s in chosen:
        images = split_images(s)
        listed = any(not src.is_dir() for src in s.sources)
        used = set()
        for image in wrap(images):
            if listed and not os.path.isfile(image):
                policy.handle(ParseError(f"{image}: listed in split '{s.name}' but the image does not exist"), image)
                continue
            lab = labels_of(image)
            try:
                text = read_label_text(lab, missing_ok=True)
            except DsprepError as e:
                policy.handle(e, lab)
                ds.problems.append(Problem.about("unreadable", lab, e))
                continue
            if text is None:
                entries.append([image, None, s.name, _NO_CLASSES, syntax.empty(), None])
                continue
            used.add(lab)
            rows = _rows(text, syntax.fields) if syntax.fields else None
            if rows is None:
                found = _checked(text, lab, syntax, n_classes, policy, ds)
                if found is not None:
                    entries.append([image, lab, s.name, found[0], found[1], None])
                continue
            regular.append(len(entries))
            entries.append([image, lab, s.name, None, rows, text])
        accounted |= used
        for lab in _label_files(layout, s):
            if lab not in used:
                accounted.add(lab)
                policy.handle(ParseError(f"{lab}: label file without an image (no image of that name in "
                                         f"{', '.join(str(src) for src in s.sources)})"), lab)
    if split is None:
        ds.problems.extend(unread_labels(layout, accounted, syntax.kind))
    # Pass 2: the regular files' numbers, all at once.
    if regular:
        arrays = [entries[i][4] for i in regular]
        big = np.concatenate(arrays)
        ends = np.cumsum(np.fromiter(map(len, arrays), np.int64, len(arrays)))
        starts = np.concatenate([[0], ends[:-1]])
        cls_f = big[:, 0]
        good = (big.min(axis=1) >= 0) & (big[:, 1:].max(axis=1) <= 1) & (cls_f == np.floor(cls_f))
        if n_classes is not None:
            good &= cls_f < n_classes
        bad_before = np.concatenate([[0], np.cumsum(~good)])
        file_bad = (bad_before[ends] != bad_before[starts]).tolist()
        cls_all = np.where(good, cls_f, 0).astype(np.int64)
        for j, i in enumerate(regular):
            ent = entries[i]
            if file_bad[j]:
                found = _checked(ent[5], ent[1], syntax, n_classes, policy, ds)
                if found is None:
                    ent[0] = None  # unreadable: skipped under --on-error skip
                    continue
                ent[3], ent[4] = found
            else:
                a, b = starts[j], ends[j]
                ent[3], ent[4] = cls_all[a:b], big[a:b, 1:]
    entries = [e for e in entries if e[0] is not None]
    max_class = max((int(e[3].max()) for e in entries if len(e[3])), default=-1)
    declared = names is not None
    if names is None:
        max_class = max(max_class, _max_class_elsewhere(layout, chosen, syntax))
        names = [str(i) for i in range(max_class + 1)]
    parts = syntax.parts([e[4] for e in entries])
    for (image, lab, split_name, cls, _vals, _), (norm, norm_box, flags) in zip(entries, parts):
        n = len(cls)
        meta = {"stem": os.path.splitext(os.path.basename(image))[0],
                "label_path": lab if lab is not None else labels_of(image),
                "yolo_classes": names,  # one list shared by every record: the indices of its label file
                "yolo_declared": declared, "yolo_flags": flags}
        if lab is not None:
            meta["annotation_path"] = lab
        attrs = {"normalized": norm}
        if norm_box is not None:
            attrs["normalized_box"] = norm_box
        ds.records.append(ImageRecord.trusted(
            image, 0, 0, 3, np.full((n, 4), np.nan), [names[i] for i in cls.tolist()], np.zeros(n, np.uint8),
            np.zeros(n, bool), None, split_name, meta, attrs))
    ds.classes = decide_classes(ds.records, declared=names)
    return ds


_NO_CLASSES = np.zeros(0, np.int64)

# Overshoots of the image below 1e-3 px are rounding of the label's numbers, clipped without a word; so are those
# below 1e-6 of the image's side (cx and w/2 written with 6 decimals are each off by up to 5e-7: on a 4000 px
# aerial image that is up to 4e-3 px).
ROUNDING_PX = 1e-3
ROUNDING_FRACTION = 1e-6


def _rows(text: str, n_fields: int) -> Optional[np.ndarray]:
    """The label lines as a ``(K, n_fields)`` float array when every non-blank line has ``n_fields`` numbers, else
    None (the line-by-line parser then says which line is wrong)."""
    lines = text.split("\n") if "\r" not in text else text.splitlines()
    fields = [f for f in map(str.split, lines) if f]
    if not fields:
        return np.zeros((0, n_fields))
    if not all(len(f) == n_fields for f in fields):
        return None
    try:
        return np.array(fields, np.float64)
    except ValueError:
        return None


def _checked(text: str, lab: str, syntax: LabelSyntax, n_classes: Optional[int], policy, ds: Dataset):
    """``(classes, values)`` from the line-by-line parser (skipped lines listed), or None for a file it refuses."""
    try:
        cls, vals, skipped = syntax.parse(text, lab, n_classes, policy.mode)
    except DsprepError as e:
        policy.handle(e, lab)
        ds.problems.append(Problem.about("unreadable", lab, e))
        return None
    ds.skipped.extend(skipped)
    return cls, vals


def normalized_parts(values: Sequence[np.ndarray], obb: bool):
    """For each record's label numbers: ``(normalized boxes or corners, normalized boxes (OBB) or None, (reaches
    outside the image, has a zero-size box))``, computed for all records at once.  Boxes are ``x0 y0 x1 y1`` as
    fractions of the image size (``cx -+ w/2``: multiplied by the size later, the same numbers as
    ``(cx -+ w/2) * W``)."""
    if not values:
        return []
    counts = np.fromiter(map(len, values), np.int64, len(values))
    ends = np.cumsum(counts)
    starts = np.concatenate([[0], ends[:-1]])
    big = np.concatenate(values).reshape(-1, _FIELDS[obb] - 1)
    if obb:
        corners = big.reshape(-1, 4, 2)
        box = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        norm = big
        outside: Union[np.ndarray, np.bool_] = np.zeros(len(big), bool)  # corners are within [0, 1]
    else:
        half = big[:, 2:] * 0.5
        box = np.concatenate([big[:, :2] - half, big[:, :2] + half], axis=1)
        norm = box
        outside = (box < 0).any(axis=1) | (box > 1).any(axis=1)
    flat = (box[:, 2:] <= box[:, :2]).any(axis=1)
    out_before = np.concatenate([[0], np.cumsum(outside)])
    flat_before = np.concatenate([[0], np.cumsum(flat)])
    clip = (out_before[ends] != out_before[starts]).tolist()
    degenerate = (flat_before[ends] != flat_before[starts]).tolist()
    return [(norm[a:b], box[a:b] if obb else None, (c, d))
            for a, b, c, d in zip(starts.tolist(), ends.tolist(), clip, degenerate)]


def _syntax(obb: bool) -> LabelSyntax:
    def parse(text, source, n_classes, on_error):
        return parse_yolo(text, source, obb, n_classes, on_error)

    def parts(values):
        return normalized_parts(values, obb)
    return LabelSyntax(_KIND[obb], _FIELDS[obb], parse, parts)


SYNTAX = {False: _syntax(False), True: _syntax(True)}  # YOLO's boxes, YOLO-OBB's corners


def unread_labels(layout: YoloLayout, accounted, kind: str) -> List[Problem]:
    """One ``labels_not_read`` problem counting the label files under the data set's root that no image led to
    (labels where this layout does not look for them: a reader that found nothing must not say "problems: none").
    A ``.txt`` file counts when its first line is a label line (a class index and 4 or 8 numbers, or a polygon)
    or it is empty; class lists, split lists and notes do not."""
    lists = {str(src) for s in layout.splits for src in s.sources if not src.is_dir()}
    found: List[str] = []
    for dirpath, dirnames, files in os.walk(layout.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(files):
            if not f.endswith(".txt") or f.lower() in _NOT_LABELS:
                continue
            p = os.path.join(dirpath, f)
            if p in accounted or p in lists or not _looks_like_labels(p):
                continue
            found.append(p)
    if not found:
        return []
    kind = kind.upper()
    return [Problem("labels_not_read", found[0],
                    f"{len(found)} label file{'s' if len(found) > 1 else ''} under {layout.root} never read (this "
                    f"one and {len(found) - 1} more): no image of the data set leads to them ({kind} labels are "
                    f"read from labels/ mirroring images/, or beside each image)")]


def _looks_like_labels(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    for line in head.splitlines():
        fields = line.split()
        if fields:
            if len(fields) < 5 or len(fields) % 2 == 0:
                return False
            try:
                [float(x) for x in fields]
            except ValueError:
                return False
            return True
    return not head.strip()


def _max_class_elsewhere(layout: YoloLayout, chosen: Sequence[YoloSplit], syntax: LabelSyntax) -> int:
    """The largest class index in the splits not read (so every split of an undeclared data set gets the same
    class list); unreadable files there are not this selection's problem."""
    best = -1
    for s in layout.splits:
        if s in chosen or s.alias_of is not None:
            continue
        for image in split_images(s):
            lab = _beside(image) if layout.kind == "flat" else label_path(image)
            try:
                text = read_label_text(lab, missing_ok=True)
                found = None if text is None else syntax.parse(text, lab, None, "skip")
            except DsprepError:
                continue
            if found is not None and len(found[0]):
                best = max(best, int(found[0].max()))
    return best


def load(path: Path, split: Optional[str], ctx: ReadContext) -> Dataset:
    return load_yolo(path, split, ctx.policy, ctx.progress, obb=False)


def check_record(rec: ImageRecord) -> Tuple[ImageRecord, List[Problem]]:
    """Once the size is known (image header): normalized numbers to pixels; zero-size boxes and boxes reaching
    outside the image reported."""
    return to_pixels(rec, obb=False)


def to_pixels(rec: ImageRecord, obb: bool) -> Tuple[ImageRecord, List[Problem]]:
    """The record with its normalized numbers (``attrs["normalized"]``, prepared by :func:`normalized_parts`)
    turned into pixels at its size: boxes (clipped to the image, each clipped one reported, as VOC boxes are), or
    quads.  One or two multiplications per record: this runs once per image of every YOLO data set read."""
    norm = rec.attrs.get("normalized")
    if norm is None:
        return rec, []
    W, H = float(rec.width), float(rec.height)
    attrs = {k: v for k, v in rec.attrs.items() if k not in ("normalized", "normalized_box")}
    outside, flat = rec.meta.get("yolo_flags", (True, True))
    quads = None
    if obb:
        quads = norm.reshape(-1, 4, 2) * (W, H)
        boxes = rec.attrs["normalized_box"] * (W, H, W, H)
    else:
        boxes = norm * (W, H, W, H)
    problems: List[Problem] = []
    source = rec.meta.get("annotation_path", rec.image_path)
    if outside and not obb and len(boxes):  # centre +- half size reaches outside the image
        clipped = np.clip(boxes, 0.0, (W, H, W, H))
        # numbers written with 6 decimals (CVAT, Datumaro) overshoot by ~1e-5 px: rounding, not a problem
        tol = np.maximum(ROUNDING_PX, ROUNDING_FRACTION * np.array([W, H, W, H]))
        problems += [Problem("clipped_box", source, f"object {k} ({rec.names[k]}) extends outside the "
                                                    f"{rec.width}x{rec.height} image")
                     for k in np.flatnonzero((np.abs(clipped - boxes) > tol).any(axis=1))]
        boxes = clipped
    if flat and len(boxes):
        problems += [Problem("degenerate_box", source, f"object {k} ({rec.names[k]}): zero width or height")
                     for k in np.flatnonzero((boxes[:, 2:] <= boxes[:, :2]).any(axis=1))]
    out = ImageRecord.trusted(rec.image_path, rec.width, rec.height, rec.depth, boxes, rec.names, rec.difficult,
                              rec.truncated, quads, rec.split, rec.meta, attrs)
    return out, problems


# ---- the edit protocol (dsprep review) -----------------------------------------------------------------------

def annotation_file(ds: Dataset, rec: ImageRecord) -> Optional[str]:
    """The label file holding ``rec``'s objects (None for an image without one: nothing to save into)."""
    path = rec.meta.get("label_path")
    return path if path and os.path.isfile(path) else None


def load_record(ds: Dataset, rec: ImageRecord, obb: bool = False) -> Tuple[ImageRecord, List[Problem]]:
    """Read ``rec``'s label file again as :func:`load` with ``on_error="skip"`` reads it (each skipped line becomes
    a ``skipped_line`` problem); numbers stay normalized until :func:`dsprep.dataset.reload_record` reads the image
    header, as ``load_dataset`` does."""
    lab = rec.meta["label_path"]
    names = rec.meta.get("yolo_classes") or []
    declared = rec.meta.get("yolo_declared", True)
    found = read_labels(lab, obb, len(names) if declared else None, "skip", missing_ok=True)
    cls, vals, skipped = found if found is not None else (np.zeros(0, np.int64), np.zeros((0, _FIELDS[obb] - 1)), [])
    problems = [Problem("skipped_line", where, reason) for where, reason in skipped]
    n = len(cls)
    meta = dict(rec.meta)
    if found is None:
        meta.pop("annotation_path", None)
    (norm, norm_box, flags), = normalized_parts([vals], obb)
    meta["yolo_flags"] = flags
    attrs = {"normalized": norm}
    if obb:
        attrs["normalized_box"] = norm_box
    new = ImageRecord.trusted(
        image_path=rec.image_path, width=0, height=0, depth=3, boxes=np.full((n, 4), np.nan),
        names=[names[i] if i < len(names) else str(i) for i in cls.tolist()], difficult=np.zeros(n, np.uint8),
        truncated=np.zeros(n, bool), split=rec.split, meta=meta, attrs=attrs)
    return new, problems


def update_yolo(original: bytes, rec: ImageRecord, source: str = "<labels>", obb: bool = False) -> bytes:
    """``original`` (a label file) with the objects of ``rec`` written in; every other line kept as it was.

    ``rec.attrs["source_index"]`` says for each object which object line of ``original`` it is (its index among
    the lines :func:`parse_yolo` with ``on_error="skip"`` reads) or ``-1`` for a new one.  An object line not named
    is removed; a named one is rewritten only when its class or geometry differ from what the data set reader gives
    for it (the box clipped to the image); blank and unreadable lines stay.  New objects are appended with the
    file's line ending.  Class indices come from the data set's class list (``rec.meta["yolo_classes"]``); numbers
    are normalized by ``rec.width``/``rec.height``, at full precision."""
    names = rec.meta.get("yolo_classes")
    if names is None:
        raise DsprepError(f"{source}: the record does not come from a YOLO data set (no class list)")
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({n for n in rec.names if n not in index})
    if unknown:
        raise DsprepError(f"{source}: class {', '.join(unknown)} is not in the data set's class list "
                          f"({', '.join(names)}); add it to the class list (data.yaml names) first")
    bom = b"\xef\xbb\xbf" if original.startswith(b"\xef\xbb\xbf") else b""
    try:
        text = original[len(bom):].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    lines = text.splitlines(keepends=True)
    object_lines = []  # (line number, class, values)
    for i, line in enumerate(lines):
        cls, vals, skipped = parse_yolo(line, source, obb, len(names), on_error="skip")
        if len(cls) == 1 and not skipped:
            object_lines.append((i, int(cls[0]), vals[0]))
    src = source_indices(rec, len(object_lines), source)
    of_old = {int(j): k for k, j in enumerate(src) if j >= 0}
    new_vals, _ = normalized(rec, obb)
    loaded = _loaded_geometry(rec, [v for _, _, v in object_lines], obb)
    mine = rec.polygons if obb else rec.boxes
    if obb and mine is None:
        mine = boxes_to_polygons(rec.boxes)
    assert mine is not None  # rec.boxes is always set
    newline = "\r\n" if "\r\n" in text else "\n"
    out = list(lines)
    for j, (i, c, _) in enumerate(object_lines):
        k = of_old.get(j)
        if k is None:
            out[i] = ""
            continue
        same_place = np.array_equal(mine[k], loaded[j])
        if index[rec.names[k]] == c and same_place:
            continue
        body = lines[i].rstrip("\r\n")
        ending = lines[i][len(body):]
        if same_place:  # only the class changed: only the class field is rewritten
            lead = body[:len(body) - len(body.lstrip())]
            rest = body.lstrip()
            out[i] = lead + str(index[rec.names[k]]) + rest[len(rest.split()[0]):] + ending
        else:
            out[i] = format_yolo([index[rec.names[k]]], new_vals[k:k + 1]).rstrip("\n") + ending
    added = [k for k in range(len(rec)) if src[k] < 0]
    if added:
        last = max((i for i, line in enumerate(out) if line), default=None)
        if last is not None and not out[last].endswith(("\n", "\r")):
            out[last] += newline
        out += [format_yolo([index[rec.names[k]]], new_vals[k:k + 1]).replace("\n", newline) for k in added]
    return bom + "".join(out).encode("utf-8")


def _loaded_geometry(rec: ImageRecord, values: Sequence[np.ndarray], obb: bool) -> np.ndarray:
    """What the data set reader gives for each object line, at this record's size (boxes clipped)."""
    vals = np.array(values, np.float64).reshape(-1, _FIELDS[obb] - 1)
    boxes, quads = denormalize(vals, rec.width, rec.height, obb)
    if obb:
        assert quads is not None  # denormalize gives quads for obb
        return quads
    return np.clip(boxes, 0.0, [rec.width, rec.height, rec.width, rec.height])


def save_record(original: bytes, rec: ImageRecord, source: str) -> bytes:
    return update_yolo(original, rec, source, obb=False)


# ---- writing -------------------------------------------------------------------------------------------------

_SPLIT_KEYS = (("train", "train"), ("val", "val"), ("valid", "val"), ("test", "test"))


def yaml_key(split: str) -> str:
    """The data.yaml key of a split: ``train2017`` -> ``train``, ``valid`` -> ``val``; other names stay."""
    low = split.lower()
    for prefix, key in _SPLIT_KEYS:
        if low.startswith(prefix):
            return key
    return split


class Writer(FormatWriter):
    """Ultralytics layout: ``images/<split>/``, ``labels/<split>/<stem>.txt``, ``data.yaml`` naming the splits and
    the classes in the data set's class-list order (so class indices follow ``--classes``).

    Records without a split go to ``train``.  Ultralytics needs a ``val`` entry: when no split is a validation
    split, ``val`` names the training images (said in a comment).  ``options["root"]``, when given, is written as
    ``path:`` (Ultralytics resolves a relative data set root against its own datasets folder, not the YAML's)."""

    NAME = NAME
    OBB = False
    TITLE = "YOLO"  # the variant the data.yaml's first line names (detect_kind reads it back)

    def __init__(self, classes, options=None):
        super().__init__(classes, options)
        self.index = {c: i for i, c in enumerate(self.classes)}

    def split_dir(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        return safe_name(rec.split or "train")

    def image_path(self, rec: ImageRecord) -> str:
        from ..outputs import safe_name
        return f"images/{self.split_dir(rec)}/{safe_name(rec.stem)}{os.path.splitext(rec.image_path)[1] or '.jpg'}"

    def record_files(self, rec: ImageRecord):
        from ..outputs import safe_name
        vals, lossy = normalized(rec, self.OBB)
        try:
            cls = [self.index[n] for n in rec.names]
        except KeyError as e:
            raise DsprepError(f"{rec.meta.get('annotation_path') or rec.image_path}: class {e} is not in the class "
                              f"list") from e
        text = format_yolo(cls, vals)
        return {f"labels/{self.split_dir(rec)}/{safe_name(rec.stem)}.txt": text.encode("utf-8")}, lossy

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        dirs: Dict[str, List[str]] = {}
        for rec in records:
            d = self.split_dir(rec)
            key = yaml_key(d)
            if d not in dirs.setdefault(key, []):
                dirs[key].append(d)
        if not dirs:
            dirs["train"] = ["train"]
        # no 'path:' entry: Ultralytics then takes this file's own folder as the data set root, so the folder can
        # be moved or copied (an absolute path would keep pointing at the original)
        lines = [f"# {self.TITLE} data set written by dsprep (Ultralytics layout): "
                 f"labels/<split>/ beside images/<split>/, relative to this file's folder"]
        order = sorted(dirs, key=lambda k: ({"train": 0, "val": 1, "test": 2}.get(k, 3), k))
        for key in order:
            paths = [f"images/{d}" for d in dirs[key]]
            lines.append(f"{yaml_string(key)}: {yaml_string(paths[0]) if len(paths) == 1 else _flow_list(paths)}")
        if "val" not in dirs:
            first = dirs.get("train") or dirs[order[0]]
            lines.append(f"val: {yaml_string('images/' + first[0])}  # no validation split in the source: the "
                         f"training images (Ultralytics requires a val entry)")
        lines.append(f"nc: {len(self.classes)}")
        lines.append("names:")
        lines += [f"  {i}: {yaml_string(c)}" for i, c in enumerate(self.classes)]
        return {"data.yaml": ("\n".join(lines) + "\n").encode("utf-8")}


def _flow_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(yaml_string(s) for s in items) + "]"


__all__ = ["parse_yolo", "format_yolo", "normalized", "denormalize", "yaml_names", "find_layout",
           "label_path", "load", "detect", "Writer"]


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, writer=Writer, check_record=check_record,
                    edit=EditProtocol(annotation_file, load_record, save_record), needs_records=True,
                    holds=Holds(boxes=True, splits=True))
