"""Detection result files: read them, and line them up with a ground truth for :mod:`dsprep.evaluation.metrics`.

Four kinds, recognised by file name and checked line by line:

=========  =====================================  ===============================================================
kind       file names                             content
=========  =====================================  ===============================================================
``voc``    ``comp<N>_det_<set>_<class>.txt``      ``image_id score xmin ymin xmax ymax``, VOC's 1-based pixels
``task1``  ``Task1_<class>.txt``                  ``image score x1 y1 x2 y2 x3 y3 x4 y4`` (DOTA, 0-based)
``task2``  ``Task2_<class>.txt``                  ``image score xmin ymin xmax ymax`` (DOTA, 0-based)
``coco``   ``*.json``                             ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``
=========  =====================================  ===============================================================

VOC boxes are converted at this edge to dsprep's 0-based continuous coordinates (``xmin - 1, ymin - 1, xmax,
ymax``, exact for any coordinate of at least 0.5), so that the evaluator can re-create the devkit's arithmetic
from them.  Files written by ``dsprep merge-dota`` are ``task1`` files.  A line that is not what its file's kind
says raises :class:`~dsprep.core.ParseError` naming ``file:line``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import Dataset, DatasetError, ImageRecord, ParseError, UsageError, boxes_to_polygons, polygons_to_boxes
from .metrics import Detections, EvalResult, GroundTruth

KINDS = ("voc", "task1", "task2", "coco")
_VOC_NAME = re.compile(r"^comp\d+_det_(?P<rest>.+)\.txt$")
_DOTA_NAME = re.compile(r"^task(?P<task>[12])_(?P<cls>.+)\.txt$", re.IGNORECASE)
_FIELDS = {"voc": ("score", "xmin", "ymin", "xmax", "ymax"),
           "task2": ("score", "xmin", "ymin", "xmax", "ymax"),
           "task1": ("score", "x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")}
# which kind a metric reads first when a folder holds several
PREFERENCE = {"voc07": ("voc", "coco", "task2", "task1"), "voc12": ("voc", "coco", "task2", "task1"),
              "dota-task1": ("task1", "task2", "voc", "coco"), "dota-task2": ("task2", "task1", "voc", "coco"),
              "coco": ("coco", "voc", "task2", "task1"), "coco-segm": ("coco",)}


@dataclass
class DetectionSet:
    """Detections as read from their files, before they are matched to a data set's images and classes.

    ``images``: (N,) image names (text files) or COCO image ids; ``classes``: (N,) class names (text files) or
    None; ``category_ids``: (N,) int64 (COCO results) or None; ``scores`` (N,); ``boxes`` (N, 4) 0-based;
    ``polygons`` (N, 4, 2) for task1, else None; ``area`` (N,): COCO's ``w * h``, else None.  Rows are in file
    order, files in name order."""

    kind: str
    files: List[str]
    images: np.ndarray
    classes: Optional[np.ndarray]
    category_ids: Optional[np.ndarray]
    scores: np.ndarray
    boxes: np.ndarray
    polygons: Optional[np.ndarray] = None
    area: Optional[np.ndarray] = None
    ignored_files: List[str] = field(default_factory=list)
    segmentations: Optional[list] = None  # coco-segm: each detection's segmentation (RLE or polygons)

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Pure parsers

def parse_lines(text: str, source: str, kind: str) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Parse one text results file: ``(image names, scores (N,), coordinates (N, 4 or 8))`` in the file's own
    numbers (no conversion).  Blank lines are skipped; any other line must have the kind's fields."""
    names = _FIELDS[kind]
    width = len(names) + 1
    rows, linenos = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != width:
            raise ParseError(f"{source}:{lineno}: expected {width} fields (image {' '.join(names)}), got {len(f)}")
        rows.append(f)
        linenos.append(lineno)
    if not rows:
        return [], np.zeros(0), np.zeros((0, width - 2))
    try:
        nums = np.array([r[1:] for r in rows], dtype=np.float64)
    except ValueError:
        nums = None
    if nums is None or not np.isfinite(nums).all():
        for f, lineno in zip(rows, linenos):
            for name, tok in zip(names, f[1:]):
                try:
                    v = float(tok)
                except ValueError as e:
                    raise ParseError(f"{source}:{lineno}: cannot parse {name} from '{tok}'") from e
                if not math.isfinite(v):
                    raise ParseError(f"{source}:{lineno}: {name} is '{tok}'")
    return [r[0] for r in rows], nums[:, 0].copy(), nums[:, 1:].copy()


def parse_coco_results(data: bytes, source: str = "<results>"):
    """Parse a COCO results JSON: ``(image ids (N,), category ids (N,) int64, scores (N,), xywh (N, 4))``.

    Image ids stay as the file has them: an int64 array when they are all integers, else an object array."""
    from ..inputs import parse_json
    doc = parse_json(data, source)
    if isinstance(doc, dict) and "annotations" in doc and "images" in doc:
        raise ParseError(f"{source}: this is a COCO ground-truth file; detections are a JSON array of "
                         f'{{"image_id", "category_id", "bbox", "score"}}')
    if not isinstance(doc, list):
        raise ParseError(f'{source}: expected a JSON array of detections {{"image_id", "category_id", "bbox", '
                         f'"score"}}, got a JSON {type(doc).__name__}')
    n = len(doc)
    try:
        images = np.array([d["image_id"] for d in doc])
        cats = np.array([d["category_id"] for d in doc])
        xywh = np.array([d["bbox"] for d in doc], np.float64).reshape(n, 4)
        scores = np.array([d["score"] for d in doc], np.float64)
        # numpy infers one type for a whole column: integers give an integer array, any other value does not
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), scores, np.zeros((0, 4))
        if (cats.dtype.kind == "i" and images.dtype.kind in "iU" and images.ndim == cats.ndim == 1
                and np.isfinite(xywh).all()
                and np.isfinite(scores).all()):
            return (images.astype(np.int64) if images.dtype.kind == "i" else images.astype(object),
                    cats.astype(np.int64), scores, xywh)
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    for where, d in _entries(doc, source, ("image_id", "category_id", "bbox", "score")):  # names the first bad one
        if not _is_id(d["image_id"]):
            raise ParseError(f"{where}: image_id must be an integer or a string, got {d['image_id']!r:.40}")
        if not _is_int(d["category_id"]):
            raise ParseError(f"{where}: category_id must be an integer, got {d['category_id']!r:.40}")
        bbox = d["bbox"]
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_finite(v) for v in bbox)):
            raise ParseError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r:.80}")
        if not _is_finite(d["score"]):
            raise ParseError(f"{where}: score must be a finite number, got {d['score']!r:.40}")
    raise ParseError(f"{source}: cannot read the detections")  # pragma: no cover (the loop finds the entry)


def _entries(doc: list, source, keys: Sequence[str], why: str = ""):
    """``(where, entry)`` for each entry of a COCO results array, each checked to be an object with ``keys``."""
    for k, d in enumerate(doc):
        where = f"{source}: detection [{k}]"
        if not isinstance(d, dict):
            raise ParseError(f"{where}: expected an object, got {d!r:.80}")
        missing = [key for key in keys if key not in d]
        if missing:
            raise ParseError(f"{where}: no '{missing[0]}'{why}")
        yield where, d


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_id(v) -> bool:
    return _is_int(v) or isinstance(v, str)


def _is_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def file_kind(name: str, known_classes: Sequence[str] = ()) -> Optional[Tuple[str, Optional[str]]]:
    """``(kind, class)`` from a results file's name (class None for COCO JSON), or None for another name.

    In ``comp4_det_<set>_<class>.txt`` the set may hold underscores and so may the class: the longest class of
    ``known_classes`` that ends the name wins, else the last ``_`` part."""
    if name.lower().endswith(".json"):
        return "coco", None
    m = _DOTA_NAME.match(name)
    if m:
        return f"task{m.group('task')}", m.group("cls")
    m = _VOC_NAME.match(name)
    if m:
        rest = m.group("rest")
        fits = [c for c in known_classes if rest.endswith("_" + c)]
        if fits:
            return "voc", max(fits, key=len)
        if "_" in rest:
            return "voc", rest.rsplit("_", 1)[1]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Files

def _read_text(path: Path) -> str:
    from ..inputs import read_text
    return read_text(path)  # the one reader of annotation text


def _text_set(kind: str, files: List[Tuple[Path, str]], progress) -> DetectionSet:
    images, classes, scores, coords = [], [], [], []
    for path, cls in progress(files):
        names, s, c = parse_lines(_read_text(path), str(path), kind)
        images.extend(names)
        classes.append(np.full(len(names), cls, dtype=object))
        scores.append(s)
        coords.append(c)
    width = 8 if kind == "task1" else 4
    coords = np.concatenate(coords) if coords else np.zeros((0, width))
    polygons = None
    if kind == "task1":
        polygons = coords.reshape(-1, 4, 2)
        boxes = polygons_to_boxes(polygons)
    else:
        boxes = coords.reshape(-1, 4).copy()
        if kind == "voc":
            boxes[:, :2] -= 1.0  # VOC's 1-based first pixel -> 0-based continuous
    return DetectionSet(kind, [str(p) for p, _ in files], np.array(images, dtype=object),
                        np.concatenate(classes) if classes else np.zeros(0, object), None,
                        np.concatenate(scores) if scores else np.zeros(0), boxes, polygons)


def _coco_set(files: List[Path]) -> DetectionSet:
    if len(files) != 1:
        raise UsageError(f"{files[0].parent}: {len(files)} COCO results files ({', '.join(f.name for f in files)});"
                         f" give one of them")
    path = files[0]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
    from ..formats.common import bulk  # the garbage-collector pause load_dataset uses: json.loads builds ~1M objects
    with bulk():
        images, cats, scores, xywh = parse_coco_results(data, str(path))
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return DetectionSet("coco", [str(path)], images, None, cats, scores, boxes, None, xywh[:, 2] * xywh[:, 3])


def _coco_segm_set(files: List[Path]) -> DetectionSet:
    """COCO instance-segmentation results: ``[{"image_id", "category_id", "segmentation", "score"[, "bbox"]}]``.

    As pycocotools' ``loadRes`` reads them: when the first result has a non-empty ``bbox``, every detection's
    area (its COCO area range) is its box's ``w * h``; otherwise its mask's pixel count (set by the caller once the
    masks are decoded: ``area`` is None here)."""
    if len(files) != 1:
        raise UsageError(f"{files[0].parent}: {len(files)} COCO results files ({', '.join(f.name for f in files)});"
                         f" give one of them")
    path = files[0]
    from ..inputs import parse_json, read_bytes
    doc = parse_json(read_bytes(path), str(path))
    if not isinstance(doc, list):
        raise ParseError(f'{path}: expected a JSON array of detections {{"image_id", "category_id", '
                         f'"segmentation", "score"}}, got a JSON {type(doc).__name__}')
    for where, d in _entries(doc, path, ("image_id", "category_id", "segmentation", "score"),
                             " (coco-segm scores instance masks)"):
        if not _is_id(d["image_id"]) or not _is_int(d["category_id"]) or not _is_finite(d["score"]):
            raise ParseError(f"{where}: image_id, category_id and score must be an id, an integer and a number")
    with_box = bool(doc) and bool(doc[0].get("bbox"))
    xywh = np.zeros((len(doc), 4))
    if with_box:
        for k, d in enumerate(doc):
            bbox = d.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_finite(v) for v in bbox)):
                raise ParseError(f"{path}: detection [{k}]: bbox must be 4 finite numbers [x, y, w, h] (the first "
                                 f"detection has one, so every one must)")
            xywh[k] = bbox
    images = np.array([d["image_id"] for d in doc], dtype=object)
    if len(doc) and all(_is_int(v) for v in images.tolist()):
        images = images.astype(np.int64)
    cats = np.array([d["category_id"] for d in doc], np.int64)
    scores = np.array([d["score"] for d in doc], np.float64)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return DetectionSet("coco", [str(path)], images, None, cats, scores, boxes, None,
                        xywh[:, 2] * xywh[:, 3] if with_box else None,
                        segmentations=[d["segmentation"] for d in doc])


def read_detections(path, metric: Optional[str] = None, known_classes: Sequence[str] = (),
                    progress=lambda it: it) -> DetectionSet:
    """Read a results file or a folder of them.

    A folder may hold several kinds (e.g. ``Task1_*`` and ``Task2_*``): the first of the metric's
    :data:`PREFERENCE` present is read, and the other files are listed in ``ignored_files``, like files whose
    names are no results file name.  Two files for one class is an error."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: detections not found")
    if path.is_dir():
        entries = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")),
                         key=lambda p: p.name)
    else:
        entries = [path]
    by_kind: Dict[str, List[Tuple[Path, Optional[str]]]] = {}
    ignored = []
    for p in entries:
        kind = file_kind(p.name, known_classes)
        if kind is None:
            ignored.append(str(p))
            continue
        by_kind.setdefault(kind[0], []).append((p, kind[1]))
    if not by_kind:
        what = "is not a detection results file" if path.is_file() else "holds no detection results file"
        raise DatasetError(f"{path}: {what} (comp4_det_<set>_<class>.txt, "
                           f"Task1_<class>.txt, Task2_<class>.txt or a COCO results .json)")
    order = PREFERENCE.get(metric or "", KINDS)
    kind = next(k for k in order if k in by_kind)
    for other, files in by_kind.items():
        if other != kind:
            ignored.extend(str(p) for p, _ in files)
    files = by_kind[kind]
    if kind == "coco":
        out = (_coco_segm_set if metric == "coco-segm" else _coco_set)([p for p, _ in files])
    else:
        seen: Dict[str, Path] = {}
        for p, cls in files:
            if cls in seen:
                raise UsageError(f"{path}: two results files for class '{cls}': {seen[cls].name} and {p.name}")
            seen[cls] = p
        out = _text_set(kind, files, progress)
    out.ignored_files = sorted(ignored)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Lining up with a data set

@dataclass
class Unmatched:
    """Detections left out because their image or class is not in the ground truth: counts and a few examples."""

    unknown_images: int = 0
    unknown_classes: int = 0
    image_examples: List[str] = field(default_factory=list)
    class_examples: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"unknown_images": self.unknown_images, "unknown_classes": self.unknown_classes,
                "image_examples": self.image_examples, "class_examples": self.class_examples}


def evaluation_order(ds: Dataset) -> List[ImageRecord]:
    """The data set's records in the order the reference evaluator sees images: ascending image id for COCO
    (COCOeval sorts them; it breaks equal scores by it), else as read (the format's ``reference_order``)."""
    spec = _spec(ds)
    if spec is not None and spec.reference_order is not None:
        return sorted(ds.records, key=spec.reference_order)
    return list(ds.records)


def _spec(ds: Dataset):
    """The data set's format description (None for a format the registry does not name, e.g. ``pickle``)."""
    from ..formats import FORMATS, format_spec
    return format_spec(ds.format) if ds.format in FORMATS else None


def ground_truth(records: Sequence[ImageRecord], classes: Sequence[str], metric: str) -> GroundTruth:
    """Every object of ``records`` as one :class:`GroundTruth` (image index = position in ``records``).

    COCO fields come from ``attrs`` when present (``area``, ``iscrowd``, ``id``); else the box area, no crowd and
    ids 1..M.  For the VOC/DOTA metrics a crowd box counts as difficult (ignored, the usual COCO-to-VOC rule); for
    ``coco`` the difficult flag plays no part (COCO has none)."""
    index = {c: i for i, c in enumerate(classes)}
    n = [len(r) for r in records]
    total = int(sum(n))
    image = np.repeat(np.arange(len(records), dtype=np.int64), n)
    if total == 0:
        return GroundTruth(image, np.zeros(0, np.int64), np.zeros((0, 4)))
    label = np.array([index[name] for r in records for name in r.names], np.int64)
    boxes = np.concatenate([r.boxes for r in records])
    polygons = None
    if any(r.polygons is not None for r in records):
        polygons = np.concatenate([r.polygons if r.polygons is not None else boxes_to_polygons(r.boxes)
                                   for r in records])
    difficult = np.concatenate([r.difficult for r in records]) != 0

    def attr(key, dtype, default):
        if not any(key in r.attrs for r in records):
            return None
        return np.concatenate([np.asarray(r.attrs[key], dtype) if key in r.attrs else default(r) for r in records])
    iscrowd = attr("iscrowd", bool, lambda r: np.zeros(len(r), bool))
    area = attr("area", np.float64, lambda r: (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1]))
    ids = attr("id", np.int64, lambda r: np.zeros(len(r), np.int64))
    if iscrowd is not None and not metric.startswith("coco"):
        difficult = difficult | iscrowd
    return GroundTruth(image, label, boxes, polygons, difficult, iscrowd, area, ids)


def align(dset: DetectionSet, records: Sequence[ImageRecord], classes: Sequence[str],
          category_ids: Optional[Dict[str, int]] = None) -> Tuple[Detections, Unmatched, np.ndarray]:
    """Detections with image and class indices into ``records`` / ``classes``; those whose image or class the
    ground truth does not have are left out and counted.  Returns ``(detections, unmatched, rows)``: ``rows`` are
    the kept rows of ``dset``.

    Text files name images by file stem (a name with a folder or an extension matches by its stem); COCO results
    by image id, matched to COCO ground truth's ids (for other ground truth, to the stem).  A text name that is no
    stem but a COCO image id also matches."""
    n = len(dset)
    stem_index: Dict[str, int] = {}
    id_index: Dict[int, int] = {}
    for i, r in enumerate(records):
        stem_index.setdefault(r.stem, i)
        if "image_id" in r.meta:
            id_index.setdefault(r.meta["image_id"], i)
    uniq, inv = np.unique(np.asarray(dset.images), return_inverse=True) if n else (np.zeros(0, object),
                                                                                    np.zeros(0, np.int64))
    look = []
    for u in uniq.tolist():
        if dset.kind == "coco" and id_index and isinstance(u, int):
            look.append(id_index.get(u, -1))
            continue
        i = stem_index.get(str(u), -1)
        if i < 0:  # "P0001.png", "images/P0001.png": the file name's stem
            i = stem_index.get(PurePath(str(u)).stem, -1)
        if i < 0 and id_index:
            try:
                i = id_index.get(int(str(u)), -1)
            except ValueError:
                pass
        look.append(i)
    image = np.array(look, np.int64)[inv] if n else np.zeros(0, np.int64)

    cls_index = {c: i for i, c in enumerate(classes)}
    if dset.kind == "coco":
        if not category_ids:
            raise UsageError(f"{dset.files[0]}: COCO results name classes by category_id: the ground truth must be "
                             f"a COCO file (its categories give the ids)")
        by_id = {cid: cls_index.get(name, -1) for name, cid in category_ids.items()}
        cu, cinv = np.unique(dset.category_ids, return_inverse=True)
        label = np.array([by_id.get(int(c), -1) for c in cu], np.int64)[cinv] if n else np.zeros(0, np.int64)
        class_names = np.array([str(c) for c in cu], dtype=object)
    else:
        cu, cinv = np.unique(dset.classes.astype(str), return_inverse=True) if n else (np.zeros(0), np.zeros(0, int))
        label = np.array([cls_index.get(c, -1) for c in cu.tolist()], np.int64)[cinv] if n else np.zeros(0, np.int64)
        class_names = cu
    report = Unmatched()
    bad_img = image < 0
    bad_cls = ~bad_img & (label < 0)
    report.unknown_images = int(bad_img.sum())
    report.unknown_classes = int(bad_cls.sum())
    if report.unknown_images:
        report.image_examples = [str(v) for v in uniq[np.unique(inv[bad_img])][:5].tolist()]
    if report.unknown_classes:
        report.class_examples = [str(v) for v in class_names[np.unique(cinv[bad_cls])][:5].tolist()]
        if dset.kind == "coco":
            report.class_examples = [f"category_id {v}" for v in report.class_examples]
    rows = np.flatnonzero(~bad_img & ~bad_cls)
    dets = Detections(image[rows], label[rows], dset.scores[rows], dset.boxes[rows],
                      None if dset.polygons is None else dset.polygons[rows],
                      None if dset.area is None else dset.area[rows])
    return dets, report, rows


# ----------------------------------------------------------------------------------------------------------------
# The whole evaluation from paths

@dataclass
class Evaluation:
    """Everything an evaluation looked at: the data set, its records in evaluation order, the arrays handed to the
    evaluator, what was left out, and the result."""

    dataset: Dataset
    records: List[ImageRecord]
    detection_set: DetectionSet
    gt: GroundTruth
    dets: Detections
    rows: np.ndarray  # rows of detection_set kept in dets
    unmatched: Unmatched
    result: EvalResult
    note: Optional[str] = None  # which split was scored when the results said so (see dsprep.evaluation.splits)


def evaluate_paths(ground_truth_path, detections_path, metric: Optional[str] = None, split: Optional[str] = None,
                   on_error: str = "fail", iou_threshold: Optional[float] = None, polygon_iou: str = "devkit",
                   progress=None, loader=None) -> Evaluation:
    """Read a ground-truth data set (any format :func:`dsprep.dataset.load_dataset` reads) and detection files,
    and evaluate.  ``metric`` defaults by the ground truth's format: ``coco`` for COCO, ``dota-task1`` for DOTA,
    ``voc07`` otherwise.  ``iou_threshold`` (VOC/DOTA metrics only; default 0.5): the IoU a match must exceed.
    ``loader(path) -> Dataset`` reads the ground truth instead of a plain :func:`load_dataset` (the command passes
    its shared options: format, EXIF policy, pinned classes)."""
    from ..dataset import load_dataset
    from .metrics import METRICS, POLYGON_IOU, evaluate
    if metric is not None and metric not in METRICS:
        raise UsageError(f"--metric: unknown metric '{metric}' (known: {', '.join(METRICS)})")
    if polygon_iou not in POLYGON_IOU:
        raise UsageError(f"--polygon-iou must be one of {', '.join(POLYGON_IOU)}, not '{polygon_iou}'")
    if iou_threshold is not None and not 0 <= iou_threshold < 1:
        raise UsageError(f"--iou-thresh must be in [0, 1), got {iou_threshold}")
    if metric in ("coco", "coco-segm") and iou_threshold is not None:
        raise UsageError("--iou-thresh applies to voc07, voc12, dota-task1 and dota-task2; coco averages over the "
                         "thresholds 0.50:0.05:0.95")
    ds = loader(ground_truth_path) if loader is not None else \
        load_dataset(ground_truth_path, split=split, on_error=on_error, progress=progress)
    spec = _spec(ds)
    chosen = metric or (spec.default_metric if spec is not None else "voc07")
    dset = read_detections(detections_path, chosen, ds.classes, progress or (lambda it: it))
    if metric is None and chosen == "dota-task1" and dset.kind == "task2":
        chosen = "dota-task2"  # DOTA ground truth with only Task2 (box) files: DOTA's task 2
    metric = chosen
    if metric == "coco" and iou_threshold is not None:
        raise UsageError("--iou-thresh applies to voc07, voc12, dota-task1 and dota-task2; coco averages over the "
                         "thresholds 0.50:0.05:0.95")
    records = evaluation_order(ds)
    note = None
    if split is None:  # the split the results are for (their file names, or the images they name)
        from .splits import choose_split
        records, note = choose_split(ds, records, dset)
    gt = ground_truth(records, ds.classes, metric)
    dets, unmatched, rows = align(dset, records, ds.classes, ds.meta.get("category_ids"))
    masks = None
    if metric == "coco-segm":
        masks = segm_masks(ds, records, gt, dset, dets, rows)
    result = evaluate(gt, dets, ds.classes, metric, 0.5 if iou_threshold is None else iou_threshold, polygon_iou,
                      masks)
    return Evaluation(ds, records, dset, gt, dets, rows, unmatched, result, note)


def segm_masks(ds: Dataset, records: Sequence[ImageRecord], gt: GroundTruth, dset: DetectionSet, dets: Detections,
               rows: np.ndarray):
    """coco-segm: one mask set holding the ground truth's masks (``gt``'s rows) then the kept detections'
    (``dets``' rows); detections without a box get their mask's pixel count as their area and its box."""
    from .masks import mask_set
    from ..rle import concat
    segs = [seg for r in records for seg in r.attrs.get("segmentation", [None] * len(r))]
    if ds.format != "coco" or not any(segs):
        raise UsageError(f"{ds.root}: coco-segm needs a COCO ground truth with segmentations")
    hw = np.array([(r.height, r.width) for r in records], np.int64).reshape(-1, 2)
    objects = [(r, k) for r in records for k in range(len(r))]

    def gt_where(i: int) -> str:
        r, k = objects[i]
        return f"{r.meta.get('annotation_path', ds.root)}: image {r.meta.get('image_id', r.stem)} object {k}"
    gm = mask_set(segs, hw[gt.image, 0], hw[gt.image, 1], gt_where)
    det_segs = [dset.segmentations[i] for i in rows.tolist()]
    dm = mask_set(det_segs, hw[dets.image, 0], hw[dets.image, 1],
                  lambda i: f"{dset.files[0]}: detection [{int(rows[i])}]")
    if dset.area is None:  # no boxes in the results: the masks give the areas (and the boxes, for pictures)
        dets.area = dm.area.astype(np.float64)
        dets.boxes = dm.boxes()
    return concat([gm, dm])
