"""The annotation model every format speaks, and the error types.

An :class:`ImageRecord` is one image with its objects stored as arrays (structure of arrays):

* ``boxes``      ``(N, 4) float64`` -- ``xmin, ymin, xmax, ymax`` in 0-based continuous pixel coordinates
  (pixel ``i`` covers ``[i, i+1)``), so a box covering a whole ``W x H`` image is ``0, 0, W, H``.
* ``polygons``   ``(N, 4, 2) float64`` or ``None`` -- quadrilaterals (DOTA), same coordinate system.
* ``names``      ``list[str]`` of length N -- class names.
* ``difficult``  ``(N,) uint8`` -- 0/1 (DOTA tiling may also write 2: "mostly cut away").
* ``truncated``  ``(N,) bool``.
* ``attrs``      ``dict[str, array or list of length N]`` -- per-object facts a format keeps that the model has no
  field for (COCO ``area``, ``iscrowd``, ``segmentation``, annotation ``id``; labelme shape attributes ...).
  :meth:`ImageRecord.select` keeps them aligned with the objects.
* ``meta``       per-image facts (``stem``, the annotation file's path, DOTA header lines, a COCO image id ...).

A :class:`Dataset` holds the records of a data set with its class list and the problems found while reading.
Format modules (``voc.py``, ``dota.py`` ...) only translate between files and these types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .geometry import as_boxes, boxes_to_polygons, polygons_to_boxes  # noqa: F401  (the model's conversions)


# No image has a pixel coordinate beyond this (a 100-gigapixel image is 316,000 pixels a side): a coordinate
# past it in an annotation is a broken number, refused where the file is read rather than overflowing later.
MAX_COORDINATE = 1e8


class DsprepError(Exception):
    """Bad input or an impossible request: reported to the user as one line, never a traceback."""

    exit_code = 1


class ParseError(DsprepError):
    """A file that cannot be understood (malformed XML, broken label line)."""


class ImageError(DsprepError):
    """An image that cannot be read or decoded."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run stops, removes what it half-did, and says so in one line."""

    def __init__(self, signum: int = 2, message: str = ""):
        super().__init__(message)
        self.signum, self.message = signum, message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class UsageError(DsprepError):
    """An impossible option value or combination (exit code 2, like click's own usage errors)."""

    exit_code = 2


class ClassError(DsprepError):
    """An object whose class is not in the pinned class list."""


class DatasetError(DsprepError):
    """The data set as a whole is unusable (missing or empty folder, unknown layout, unknown split)."""

    exit_code = 2


class OutputError(DsprepError):
    """An output that would clobber existing work, or cannot be written."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """Something wrong with the data that does not stop a run (reported by ``dsprep info``)."""

    kind: str
    file: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "detail": self.detail}

    @classmethod
    def about(cls, kind: str, file: str, err: Exception) -> "Problem":
        """A problem from an error whose message starts with the file (not repeated in the detail)."""
        text = str(err)
        return cls(kind, file, text[len(file) + 2:] if text.startswith(f"{file}: ") else text)


@dataclass(eq=False)
class ImageRecord:
    """One image and its objects.  See the module docstring for shapes, dtypes and units."""

    image_path: str
    width: int
    height: int
    depth: int = 3
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    names: List[str] = field(default_factory=list)
    # None: all 0 / all False; __post_init__ makes them arrays, so they are arrays wherever a record is used
    difficult: np.ndarray = None  # type: ignore[assignment]
    truncated: np.ndarray = None  # type: ignore[assignment]
    polygons: Optional[np.ndarray] = None
    split: Optional[str] = None
    meta: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.boxes = as_boxes(self.boxes)
        n = len(self.boxes)
        self.names = [str(x) for x in self.names]
        if len(self.names) != n:
            raise ValueError(f"names must have length {n} (one per box), but got {len(self.names)}")
        self.difficult = (np.zeros(n, np.uint8) if self.difficult is None
                          else np.asarray(self.difficult, dtype=np.uint8).reshape(-1))
        self.truncated = (np.zeros(n, bool) if self.truncated is None
                          else np.asarray(self.truncated, dtype=bool).reshape(-1))
        for key in ("difficult", "truncated"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{key} must have length {n}, but got {len(getattr(self, key))}")
        if self.polygons is not None:
            poly = np.asarray(self.polygons, dtype=np.float64)
            if poly.size == 0:
                poly = np.zeros((0, 4, 2), np.float64)
            if poly.shape != (n, 4, 2):
                raise ValueError(f"polygons must have shape {(n, 4, 2)}, but got shape {poly.shape}")
            self.polygons = poly
        for key, values in self.attrs.items():
            if len(values) != n:
                raise ValueError(f"attrs['{key}'] must have length {n} (one per object), but got {len(values)}")
        self.width, self.height, self.depth = int(self.width), int(self.height), int(self.depth)

    @classmethod
    def trusted(cls, image_path, width, height, depth, boxes, names, difficult, truncated, polygons=None,
                split=None, meta=None, attrs=None) -> "ImageRecord":
        """Build from arrays already of the right dtypes and shapes (parsers' hot path: no validation, no copies)."""
        rec = cls.__new__(cls)
        rec.image_path, rec.width, rec.height, rec.depth = image_path, width, height, depth
        rec.boxes, rec.names, rec.difficult, rec.truncated = boxes, names, difficult, truncated
        rec.polygons, rec.split, rec.meta = polygons, split, meta if meta is not None else {}
        rec.attrs = attrs if attrs is not None else {}
        return rec

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def stem(self) -> str:
        """The image id: the annotation file's stem (VOC id, DOTA name)."""
        return self.meta.get("stem") or _stem(self.image_path)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ImageRecord):
            return NotImplemented
        if (self.width, self.height, self.depth, self.names, self.split) != \
                (other.width, other.height, other.depth, other.names, other.split):
            return False
        if _stem(self.image_path) != _stem(other.image_path):
            return False
        mine, theirs = self.polygons, other.polygons
        if (mine is None) != (theirs is None):
            return False
        if mine is not None and theirs is not None and not np.array_equal(mine, theirs):
            return False
        return (np.array_equal(self.boxes, other.boxes) and np.array_equal(self.difficult, other.difficult)
                and np.array_equal(self.truncated, other.truncated))

    def select(self, keep: np.ndarray) -> "ImageRecord":
        """A new record holding only the objects where ``keep`` (bool mask or index array) says so."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.intp)
        return ImageRecord(
            image_path=self.image_path, width=self.width, height=self.height, depth=self.depth,
            boxes=self.boxes[idx], names=[self.names[i] for i in idx], difficult=self.difficult[idx],
            truncated=self.truncated[idx], polygons=None if self.polygons is None else self.polygons[idx],
            split=self.split, meta=dict(self.meta),
            attrs={k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]) for k, v in self.attrs.items()})


def _stem(path: str) -> str:
    import os
    base = os.path.basename(path)
    root, ext = os.path.splitext(base)
    return root if ext else base


def decide_classes(records: Iterable[ImageRecord], declared: Optional[Sequence[str]] = None,
                   pinned: Optional[Sequence[str]] = None) -> List[str]:
    """The one class-list rule of dsprep.

    * ``pinned`` (``--classes``): exactly that list, in its order (duplicates are an error);
    * else ``declared``: the list a data set states itself (COCO categories, YOLO ``names``, a packed file), in its
      order, followed by any undeclared name found in ``records``, sorted;
    * else every name in ``records``, sorted (for VOC, the standard 20-class order).

    Format readers call this with *all* annotation files, whatever ``--split`` selects, so every split of a data set
    gets the same indices.
    """
    if pinned is not None:
        out = [str(c) for c in pinned]
        dup = sorted({c for c in out if out.count(c) > 1})
        if dup:
            raise UsageError(f"--classes: {', '.join(dup)} listed more than once")
        if not out:
            raise UsageError("--classes: the class list is empty")
        return out
    seen = set()
    for rec in records:
        seen.update(rec.names)
    out = list(declared or [])
    return out + sorted(seen - set(out))


@dataclass
class Dataset:
    """A whole data set as read by its format module (see :mod:`dsprep.dataset`)."""

    root: Path
    format: str  # "voc" | "dota" | "h5" | "pickle"
    records: List[ImageRecord] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (file, reason)
    classes: List[str] = field(default_factory=list)
    image_getter: Optional[Callable[[ImageRecord], np.ndarray]] = None  # packed files: BGR image of a record
    meta: dict = field(default_factory=dict)  # format-specific data-set facts (e.g. COCO category ids)


class ErrorPolicy:
    """``--on-error fail|skip``: raise the first error, or record it and go on."""

    def __init__(self, mode: str = "fail"):
        if mode not in ("fail", "skip"):
            raise DsprepError(f"--on-error must be 'fail' or 'skip', not '{mode}'")
        self.mode = mode
        self.skipped: List[Tuple[str, str]] = []

    def handle(self, err: DsprepError, file: str) -> None:
        if self.mode == "fail":
            raise err
        self.skipped.append((file, str(err)))


class FormatWriter:
    """How a format writes a data set: a pure translation of records into files, ``{relative path: bytes}``.

    * :meth:`record_files` runs once per image (in worker processes): that image's own annotation files;
    * :meth:`finish` runs once, with every record written, for the data-set-level files (split lists, a COCO JSON,
      ``data.yaml``);
    * :meth:`image_path` says where a record's image goes (relative to the output folder).

    ``lossy`` in a result counts what the format could not keep (``{"polygon_to_box": 3}``), so the caller can
    name it in the summary.  The caller writes every file through :mod:`dsprep.outputs`.  Two optional
    attributes complete the accounting (see :mod:`dsprep.jobs.convert`): ``HANDLES_ATTRS``, the per-object
    ``attrs`` the format keeps or counts itself (``{"segmentation", "iscrowd"}``; for the others the caller leaves
    COCO crowd regions out and counts dropped segmentations), and ``lossy``, counts set by :meth:`finish`
    (renumbered ids).
    """

    NAME = ""

    def __init__(self, classes: Sequence[str], options: Optional[dict] = None):
        self.classes = list(classes)
        self.options = dict(options or {})

    def image_path(self, rec: ImageRecord) -> str:
        raise NotImplementedError

    def record_files(self, rec: ImageRecord) -> Tuple[dict, dict]:
        """``({relative path: bytes}, {lossy kind: count})`` for one record."""
        raise NotImplementedError

    def finish(self, records: Sequence[ImageRecord]) -> dict:
        """``{relative path: bytes}`` written once all records are."""
        return {}
