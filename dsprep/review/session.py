"""The state of one ``dsprep review``: a loaded data set and what the page may do with it.

Library calls only (no HTTP, no annotation logic of its own):

* the data set is opened through :func:`dsprep.dataset.load_dataset` (``on_error="skip"``: a broken file is listed
  as a problem, the rest can still be reviewed);
* a record is read and written through its format's edit protocol (``annotation_file``, ``load_record``,
  ``save_record``: see :mod:`dsprep.dataset`), files are written through :mod:`dsprep.outputs` (atomic), pixels
  decoded through :func:`dsprep.images.read_image` and drawn with :mod:`dsprep.draw`.

Saving is safe by construction: the page sends the *version* (SHA-256 of the annotation file's bytes) its copy was
read from; a file whose bytes changed since is not overwritten (:class:`ConflictError`).  Before a file is replaced
its previous bytes are kept in ``.dsprep-history/`` beside it, so every save can be undone (:meth:`Review.restore`).
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core import DsprepError, ImageRecord, Problem, UsageError, polygons_to_boxes

HISTORY_DIR = ".dsprep-history"
THUMB_SIZES = (128, 192, 256, 384)
MAX_OBJECTS = 100_000
MAX_NAME = 200


class EditError(DsprepError):
    """An edit the page sent that cannot be saved (bad values, a class name the format cannot write)."""


class ConflictError(DsprepError):
    """The annotation file changed on disk since the page read it: it is not overwritten."""


class NotEditable(DsprepError):
    """Saving is off (``--read-only``, a packed file, a read-only annotation file)."""


class NotFound(DsprepError):
    """No such image, object or history entry."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _writable(path: str) -> bool:
    """Whether the user may write ``path``: permitted (``os.access``) and meant to be (a write bit is set; root may
    write anything, but a folder made read-only says "do not change")."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _inside(root: Path, path: str) -> bool:
    """``path`` lies under ``root`` (lexically: no ``..`` way out; links the user made inside the data set are the
    data set's own)."""
    base = os.path.normpath(os.path.abspath(str(root)))
    p = os.path.normpath(os.path.abspath(path))
    return p == base or p.startswith(base.rstrip(os.sep) + os.sep)


def hex_color(name: str) -> str:
    """The class colour of :func:`dsprep.draw.class_color` as CSS ``#rrggbb``."""
    from ..draw import class_color
    b, g, r = class_color(name)
    return f"#{r:02x}{g:02x}{b:02x}"


_OBJECT_REF = re.compile(r"^object (\d+)\b")
_STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z(-\d+)?")  # a history entry is <file name>.<UTC time of the save>


class _Cache:
    """A thread-safe least-recently-used map with a byte budget; a value asked for by several threads at once is
    computed once (the others wait for it).  With a ``pool`` values are computed there (so at most its number of
    workers at a time), else in the first caller's thread."""

    def __init__(self, budget: int, pool: Optional[ThreadPoolExecutor] = None):
        self.budget, self.pool = budget, pool
        self.items: "OrderedDict[tuple, Tuple[object, int]]" = OrderedDict()
        self.used = 0
        self.pending: Dict[tuple, Future] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple, make: Callable[[], object], size: Callable[[object], int] = len):
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                return hit[0]
            fut = self.pending.get(key)
            mine = fut is None
            if mine:
                fut = self.pending[key] = self.pool.submit(make) if self.pool is not None else Future()
        if mine and self.pool is None:
            try:
                fut.set_result(make())
            except BaseException as e:
                fut.set_exception(e)
        try:
            value = fut.result()
        finally:
            with self.lock:
                self.pending.pop(key, None)
        with self.lock:
            if key not in self.items:
                n = size(value)
                self.items[key] = (value, n)
                self.used += n
                while self.used > self.budget and len(self.items) > 1:
                    _, (_, m) = self.items.popitem(last=False)
                    self.used -= m
        return value


class Review:
    """One data set under review.  Records are addressed by their index in the loaded data set (``id``)."""

    def __init__(self, path, read_only: bool = False, progress: Optional[Callable[[Iterable], Iterable]] = None,
                 workers: int = 0, exif: str = "auto", split: Optional[str] = None, fmt: Optional[str] = None,
                 on_error: str = "skip"):
        from ..dataset import format_module, load_dataset
        self.root = Path(path)
        # what may be served: the data set's folder; for a data set that is a file (a COCO JSON), its folder and the
        # one above it, where its images are looked for (images/, val2017/ beside annotations/)
        self.image_root = self.root if self.root.is_dir() else Path(os.path.abspath(self.root)).parent.parent
        self.exif = exif
        self.ds = load_dataset(path, split=split, on_error=on_error, progress=progress, fmt=fmt, exif=exif)
        self.format = self.ds.format
        self.module = format_module(self.format)
        self.read_only = read_only
        self.can_save = hasattr(self.module, "save_record") and self.ds.image_getter is None
        self.records: List[ImageRecord] = list(self.ds.records)
        self.polygons = any(r.polygons is not None for r in self.records)
        self._ann = [self._annotation_path(rec) for rec in self.records]  # a record's file never changes
        if not read_only:
            self._check_writable()
        self.editable = self.can_save and not read_only
        self.rev = [0] * len(self.records)  # bumped when a record changes (thumbnail URLs carry it)
        self.generation = 0
        self.saves = 0  # files written (saves and restores)
        self.lock = threading.RLock()
        self.save_lock = threading.Lock()
        self.problems: List[List[Problem]] = [[] for _ in self.records]
        self.unattached: List[Problem] = []
        self._attach_problems()
        self.splits = self._split_sets()
        self.classes = list(self.ds.classes)
        workers = workers or max(2, min(4, os.cpu_count() or 2))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dsprep-review")
        self.encoded = _Cache(96 << 20, self.pool)   # thumbnails, crops, view images (JPEG bytes)
        self.decoded = _Cache(256 << 20)  # full images for crops (BGR arrays; filled from inside the pool)
        self._gallery: Dict[tuple, np.ndarray] = {}

    # ---- loading ---------------------------------------------------------------------------------------------

    def _annotation_path(self, rec: ImageRecord) -> Optional[str]:
        if not self.can_save:
            return None
        path = self.module.annotation_file(self.ds, rec)
        if path is None or not _inside(self.root, path):
            return None
        return path

    def _check_writable(self) -> None:
        if self.ds.image_getter is not None:
            raise UsageError(f"{self.root}: a packed {self.format} file cannot be edited (add --read-only to look "
                             f"at it)")
        if not self.can_save:
            raise UsageError(f"{self.root}: dsprep cannot save {self.format} annotations yet (add --read-only to look "
                             f"at it)")
        folders = dict.fromkeys(os.path.dirname(p) for p in self._ann if p)
        for folder in folders:
            if not _writable(folder):
                raise UsageError(f"{folder}: the data set is read-only (add --read-only to look at it without "
                                 f"saving)")

    def _split_sets(self) -> List[frozenset]:
        """The splits each record is in: its own ``split`` and every split list naming its annotation file."""
        lists = self.module.split_lists(self.ds) if hasattr(self.module, "split_lists") else {}
        member: Dict[str, set] = {}
        for split, files in lists.items():
            for f in files:
                member.setdefault(os.path.normpath(f), set()).add(split)
        out = []
        for rec in self.records:
            ann = rec.meta.get("annotation_path")
            names = set(member.get(os.path.normpath(ann), ())) if ann else set()
            if rec.split:
                names.add(rec.split)
            out.append(frozenset(names))
        return out

    def _attach_problems(self) -> None:
        """Each problem of the loaded data set to the record whose annotation (or image) file it names."""
        owners: Dict[str, List[int]] = {}
        for i, rec in enumerate(self.records):
            for f in {rec.image_path, self._ann[i] or rec.meta.get("annotation_path")}:
                if f:
                    owners.setdefault(os.path.normpath(f), []).append(i)
        # a file shared by many records (a COCO JSON) does not say which image a problem is about
        by_file = {f: ids[0] for f, ids in owners.items() if len(ids) == 1}
        # lines a reader skipped ("file:line"); whole files skipped are already "unreadable" problems
        skipped = [Problem("skipped_line", f.rsplit(":", 1)[0], reason)
                   for f, reason in self.ds.skipped if re.search(r":\d+$", f)]
        for p in list(self.ds.problems) + skipped:
            i = by_file.get(os.path.normpath(p.file))
            if i is None:
                self.unattached.append(p)
            else:
                self.problems[i].append(p)

    # ---- what the page lists ---------------------------------------------------------------------------------

    def summary(self) -> dict:
        """Counts for the side bar: classes (with colours), splits, problem kinds."""
        with self.lock:
            records, problems = list(self.records), list(self.problems)
        objects, images = Counter(), Counter()
        for rec in records:
            objects.update(rec.names)
            images.update(set(rec.names))
        names = self.classes + sorted(set(objects) - set(self.classes))
        splits = Counter(s for names in self.splits for s in names)
        kinds, kind_images = Counter(), Counter()
        for probs in problems:
            kinds.update(p.kind for p in probs)
            kind_images.update({p.kind for p in probs})
        return {
            "name": self.root.name, "path": str(self.root), "format": self.format,
            "editable": self.editable, "read_only": self.read_only, "can_save": self.can_save,
            "shape": "polygon" if self.polygons else "box",
            "images": len(records), "objects": sum(objects.values()),
            "classes": [{"name": n, "color": hex_color(n), "objects": objects[n], "images": images[n]} for n in names],
            "splits": [{"name": s, "images": splits[s]} for s in sorted(splits)],
            "problems": [{"kind": k, "count": kinds[k], "images": kind_images[k]} for k in sorted(kinds)],
            "problem_images": sum(1 for p in problems if p),
            "other_problems": [p.as_dict() for p in self.unattached[:200]],
            "other_problem_count": len(self.unattached),
        }

    def image_list(self, cls: Optional[str] = None, split: Optional[str] = None,
                   problem: Optional[str] = None) -> dict:
        """The images passing every filter given, in data set order: ``[id, stem, objects, problems, rev]``."""
        with self.lock:
            records, problems, rev = list(self.records), list(self.problems), list(self.rev)
        items = []
        for i, rec in enumerate(records):
            if cls is not None and cls not in rec.names:
                continue
            if split is not None and split not in self.splits[i]:
                continue
            probs = problems[i]
            if problem is not None and not (probs if problem == "*" else any(p.kind == problem for p in probs)):
                continue
            items.append([i, rec.stem, len(rec), len(probs), rev[i]])
        return {"total": len(records), "items": items}

    def record(self, i: int) -> ImageRecord:
        with self.lock:
            if not 0 <= i < len(self.records):
                raise NotFound(f"no image {i}")
            return self.records[i]

    def _json(self, i: int, version: Optional[str]) -> dict:
        with self.lock:
            rec, probs, rev = self.records[i], list(self.problems[i]), self.rev[i]
        ann = self._ann[i]
        per_object: Dict[int, List[str]] = {}
        problems = []
        for p in probs:
            m = _OBJECT_REF.match(p.detail)
            k = int(m.group(1)) if m and int(m.group(1)) < len(rec) else None
            problems.append({"kind": p.kind, "detail": p.detail, "object": k})
            if k is not None:
                per_object.setdefault(k, []).append(p.kind)
        objects = [{"name": rec.names[k], "box": rec.boxes[k].tolist(),
                    "polygon": None if rec.polygons is None else rec.polygons[k].tolist(),
                    "difficult": int(rec.difficult[k]), "truncated": bool(rec.truncated[k]),
                    "problems": per_object.get(k, [])} for k in range(len(rec))]
        return {"id": i, "stem": rec.stem, "split": ", ".join(sorted(self.splits[i])) or None,
                "width": rec.width, "height": rec.height,
                "image": os.path.relpath(rec.image_path, self.root) if self.root.is_dir() else rec.image_path,
                "annotation": os.path.relpath(ann, self.root) if ann else None,
                "version": version, "editable": self.editable and ann is not None, "rev": rev,
                "objects": objects, "problems": problems, "history": len(self._history_entries(ann)) if ann else 0}

    def open(self, i: int) -> dict:
        """The record as its file holds it now (read again), with the version the page must send back to save."""
        from ..dataset import reload_record
        rec = self.record(i)
        ann = self._ann[i] if hasattr(self.module, "load_record") else None
        if ann is None:
            return self._json(i, None)
        for _ in range(3):  # a version is the hash of exactly the bytes the record was read from
            try:
                before = _sha256(_read_bytes(ann))
                new, problems = reload_record(self.ds, rec, self.exif)
                after = _sha256(_read_bytes(ann))
            except OSError as e:
                raise NotFound(f"{os.path.relpath(ann, self.root)}: cannot read ({e.strerror or e})") from e
            if before == after:
                self._replace(i, new, problems)
                return self._json(i, after)
        raise ConflictError(f"{os.path.relpath(ann, self.root)}: the file keeps changing on disk")

    def _replace(self, i: int, new: ImageRecord, problems: List[Problem]) -> None:
        with self.lock:
            old = self.records[i]
            same = (old == new and [(p.kind, p.detail) for p in self.problems[i]] ==
                    [(p.kind, p.detail) for p in problems])
            self.records[i] = new
            self.problems[i] = list(problems)
            if not same:
                self.rev[i] += 1
                self.generation += 1

    # ---- saving ----------------------------------------------------------------------------------------------

    def _edited(self, rec: ImageRecord, objects: Sequence[dict]) -> ImageRecord:
        """The record the page's object list describes (values checked; ``source_index`` from each ``src``)."""
        if not isinstance(objects, list) or len(objects) > MAX_OBJECTS:
            raise EditError("objects must be a list")
        names, boxes, polys, diff, trunc, src = [], [], [], [], [], []
        for k, o in enumerate(objects):
            if not isinstance(o, dict):
                raise EditError(f"object {k}: not an object")
            name = o.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or \
                    any(ord(c) < 32 for c in name):
                raise EditError(f"object {k}: a class name must be 1-{MAX_NAME} printable characters")
            try:
                name.encode("utf-8")
            except UnicodeEncodeError as e:
                raise EditError(f"object {k}: a class name must be text (it holds a lone UTF-16 surrogate, which no "
                                f"file can store)") from e
            s = o.get("src")
            if s is not None and (not isinstance(s, int) or isinstance(s, bool) or s < 0):
                raise EditError(f"object {k}: src must be the index of a loaded object or null")
            d, t = o.get("difficult", 0), o.get("truncated", False)
            if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 255 or not isinstance(t, bool):
                raise EditError(f"object {k}: difficult must be 0-255 and truncated true/false")
            if self.polygons:
                poly = _numbers(o.get("polygon"), (4, 2), f"object {k}: polygon must be 4 [x, y] points")
                x, y = poly[:, 0], poly[:, 1]
                if float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) == 0:
                    raise EditError(f"object {k}: the polygon has no area (its corners lie on one line)")
                polys.append(poly)
                boxes.append(polygons_to_boxes(poly)[0])
            else:
                boxes.append(_numbers(o.get("box"), (4,), f"object {k}: box must be [xmin, ymin, xmax, ymax]"))
            x0, y0, x1, y1 = boxes[-1]
            kept = s is not None and s < len(rec) and np.array_equal(rec.boxes[s], boxes[-1])  # as loaded
            if not (x1 > x0 and y1 > y0) and not kept:  # every format alike: no inverted or empty box is saved
                raise EditError(f"object {k}: the box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is inverted or has no area "
                                f"(xmax must exceed xmin and ymax ymin)")
            names.append(name.strip())
            src.append(-1 if s is None else s)
            diff.append(d)
            trunc.append(t)
        n = len(names)
        return ImageRecord(rec.image_path, rec.width, rec.height, rec.depth,
                           boxes=np.array(boxes, np.float64).reshape(n, 4), names=names,
                           difficult=np.array(diff, np.uint8), truncated=np.array(trunc, bool),
                           polygons=np.array(polys, np.float64).reshape(n, 4, 2) if self.polygons else None,
                           split=rec.split, meta=dict(rec.meta), attrs={"source_index": np.array(src, np.int64)})

    def _target(self, i: int) -> Tuple[ImageRecord, str, str]:
        if not self.editable:
            raise NotEditable("this review is read-only" + ("" if self.can_save else f" ({self.format} files "
                                                                                      f"cannot be edited)"))
        rec = self.record(i)
        ann = self._ann[i]
        if ann is None:
            raise NotEditable(f"{rec.stem}: no annotation file to save into")
        return rec, ann, os.path.relpath(ann, self.root)

    def _current(self, ann: str, rel: str, version: str) -> bytes:
        """The file's bytes when they are still those of ``version``; else :class:`ConflictError`."""
        try:
            current = _read_bytes(ann)
        except FileNotFoundError as e:
            raise ConflictError(f"{rel}: deleted on disk since this page read it; not saved") from e
        except OSError as e:
            raise NotEditable(f"{rel}: cannot read ({e.strerror or e})") from e
        if not isinstance(version, str) or _sha256(current) != version:
            raise ConflictError(f"{rel}: changed on disk since this page read it; not saved (reload the image to "
                                f"see the file as it is now)")
        if not _writable(ann):
            raise NotEditable(f"{rel}: the file is read-only; not saved")
        return current

    def _write(self, ann: str, current: bytes, data: bytes) -> str:
        """Keep ``current`` in the history folder, then replace the file (atomically, keeping its permissions)."""
        from ..outputs import atomic_write_bytes, prepare_output_dir
        folder = prepare_output_dir(Path(ann).parent / HISTORY_DIR, allow_existing=True)
        ns = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 1_000_000_000)) + f".{ns // 1000 % 1_000_000:06d}Z"
        entry = f"{os.path.basename(ann)}.{stamp}"
        n = 1
        while (folder / entry).exists():
            n += 1
            entry = f"{os.path.basename(ann)}.{stamp}-{n}"
        atomic_write_bytes(folder / entry, current)
        mode = stat.S_IMODE(os.stat(ann).st_mode)
        atomic_write_bytes(ann, data)
        os.chmod(ann, mode)
        self.saves += 1
        return entry

    def save(self, i: int, version: str, objects: Sequence[dict]) -> dict:
        """Write the page's objects into image ``i``'s annotation file, if it still holds ``version``."""
        rec, ann, rel = self._target(i)
        edited = self._edited(rec, objects)
        with self.save_lock:
            current = self._current(ann, rel, version)
            try:
                data = self.module.save_record(current, edited, rel)
            except EditError:
                raise
            except DsprepError as e:
                raise EditError(str(e)) from e
            entry = None if data == current else self._write(ann, current, data)
            out = self.open(i)
        out["saved"] = entry is not None
        out["history_entry"] = entry
        return out

    def _history_entries(self, ann: str) -> List[str]:
        folder = os.path.join(os.path.dirname(ann), HISTORY_DIR)
        prefix = os.path.basename(ann) + "."
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted((n for n in names if n.startswith(prefix) and _STAMP.fullmatch(n[len(prefix):])), reverse=True)

    def history(self, i: int) -> List[dict]:
        """Earlier versions of image ``i``'s annotation file, newest first."""
        self.record(i)
        ann = self._ann[i]
        if ann is None:
            return []
        folder = os.path.join(os.path.dirname(ann), HISTORY_DIR)
        out = []
        for name in self._history_entries(ann):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            out.append({"entry": name, "saved": name[len(os.path.basename(ann)) + 1:], "bytes": st.st_size})
        return out

    def restore(self, i: int, version: str, entry: str) -> dict:
        """Put an earlier version back (the current one goes to the history first, so this is undoable too)."""
        rec, ann, rel = self._target(i)
        if entry not in self._history_entries(ann):  # only names listed in the folder: nothing else is opened
            raise NotFound(f"{rel}: no saved version '{entry}'")
        with self.save_lock:
            current = self._current(ann, rel, version)
            try:
                data = _read_bytes(os.path.join(os.path.dirname(ann), HISTORY_DIR, entry))
            except OSError as e:
                raise NotFound(f"{rel}: cannot read saved version '{entry}' ({e.strerror or e})") from e
            saved = None if data == current else self._write(ann, current, data)
            out = self.open(i)
        out["saved"] = saved is not None
        out["history_entry"] = saved
        return out

    # ---- pixels ----------------------------------------------------------------------------------------------

    def _pixels(self, rec: ImageRecord, reduce: int = 1, strict: bool = True) -> np.ndarray:
        """The record's pixels as every command sees them (dsprep's decoder, the orientation decided at load).

        ``strict``: an image whose size is not the record's is an error (its boxes would not fit), as for every
        command; thumbnails are drawn anyway (the grid shows what is wrong).  ``reduce`` 2, 4 or 8 decodes a JPEG
        that many times smaller."""
        if self.ds.image_getter is not None:
            return self.ds.image_getter(rec)
        from ..images import read_image, read_record_image
        if ".." in Path(rec.image_path).parts or not _inside(self.image_root, rec.image_path):
            raise NotFound(f"{rec.stem}: image outside the data set")
        if not os.path.isfile(rec.image_path):
            raise NotFound(f"{rec.stem}: no image file")
        if strict:
            return read_record_image(rec)
        flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
        return read_image(rec.image_path, flags, orient=rec.meta.get("orient", True))

    def _full(self, i: int) -> np.ndarray:
        rec = self.record(i)
        return self.decoded.get(("full", i), lambda: self._pixels(rec), size=lambda a: a.nbytes)

    def view_image(self, i: int) -> bytes:
        """Image ``i`` as JPEG, decoded by dsprep's one decoder (so the page shows what every command sees)."""
        rec = self.record(i)
        from ..images import encode_image
        return self.encoded.get(("view", i), lambda: encode_image(self._pixels(rec), ".jpg", 90))

    def thumbnail(self, i: int, size: int = 256, boxes: bool = True) -> bytes:
        """Image ``i`` fitted into ``size x size`` (JPEG), its objects drawn when ``boxes``."""
        if size not in THUMB_SIZES:
            raise NotFound(f"thumbnail size must be one of {', '.join(map(str, THUMB_SIZES))}")
        with self.lock:
            rec, rev = self.record(i), self.rev[i]
        return self.encoded.get(("thumb", i, size, boxes, rev if boxes else 0),
                                lambda: self._make_thumbnail(rec, size, boxes))

    def _make_thumbnail(self, rec: ImageRecord, size: int, boxes: bool) -> bytes:
        from ..draw import draw_record
        from ..images import encode_image
        factor = 1
        big = max(rec.width, rec.height)
        while factor < 8 and big // (factor * 2) >= size and self.ds.image_getter is None:
            factor *= 2
        img = self._pixels(rec, factor, strict=False)
        h, w = img.shape[:2]
        s = min(size / max(h, w), 1.0)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) \
            if s < 1 else img
        if boxes and len(rec):
            k = small.shape[1] / (w * factor)  # file pixels -> thumbnail pixels (the decoded size, not the XML's)
            scaled = rec.select(np.arange(len(rec)))
            scaled.boxes = rec.boxes * k
            if rec.polygons is not None:
                scaled.polygons = rec.polygons * k
            small = draw_record(small, scaled, {c: j for j, c in enumerate(self.classes)}, thickness=1)
        return encode_image(small, ".jpg", 85)

    def crop(self, i: int, k: int, size: int = 128) -> bytes:
        """Object ``k`` of image ``i`` with a margin, fitted into ``size x size`` (JPEG), outlined in its colour."""
        if size not in THUMB_SIZES:
            raise NotFound(f"crop size must be one of {', '.join(map(str, THUMB_SIZES))}")
        with self.lock:
            rec, rev = self.record(i), self.rev[i]
        if not 0 <= k < len(rec):
            raise NotFound(f"image {i} has no object {k}")
        return self.encoded.get(("crop", i, k, size, rev), lambda: self._make_crop(i, rec, k, size))

    def _make_crop(self, i: int, rec: ImageRecord, k: int, size: int) -> bytes:
        from ..core import boxes_to_polygons
        from ..draw import class_color
        from ..images import encode_image
        img = self._full(i)
        h, w = img.shape[:2]
        poly = rec.polygons[k] if rec.polygons is not None else boxes_to_polygons(rec.boxes[k:k + 1])[0]
        x0, y0 = poly.min(axis=0)
        x1, y1 = poly.max(axis=0)
        pad = max(4.0, 0.15 * max(x1 - x0, y1 - y0))
        cx0 = int(np.clip(np.floor(x0 - pad), 0, max(0, w - 1)))
        cy0 = int(np.clip(np.floor(y0 - pad), 0, max(0, h - 1)))
        cx1 = int(np.clip(np.ceil(x1 + pad), cx0 + 1, w))
        cy1 = int(np.clip(np.ceil(y1 + pad), cy0 + 1, h))
        part = img[cy0:cy1, cx0:cx1]
        s = min(size / max(part.shape[:2]), 8.0)
        out = cv2.resize(part, (max(1, round(part.shape[1] * s)), max(1, round(part.shape[0] * s))),
                         interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        pts = np.round((poly - [cx0, cy0]) * s).astype(np.int32)
        cv2.polylines(out, [pts], True, class_color(rec.names[k]), 1 if size < 256 else 2, cv2.LINE_AA)
        return encode_image(out, ".jpg", 88)

    def gallery(self, cls: str, sort: str = "area", descending: bool = False) -> List[list]:
        """Every object of class ``cls``: ``[id, k, area, aspect]`` sorted by area (px²) or aspect (width /
        height; for a quad, its first edge over its second)."""
        if sort not in ("area", "aspect"):
            raise NotFound("sort must be 'area' or 'aspect'")
        with self.lock:
            key = (self.generation, cls)
            rows = self._gallery.get(key)
            records = list(self.records)
        if rows is None:
            parts = []
            for i, rec in enumerate(records):
                ks = [k for k, n in enumerate(rec.names) if n == cls]
                if not ks:
                    continue
                if rec.polygons is not None:
                    p = rec.polygons[ks]
                    x, y = p[..., 0], p[..., 1]
                    area = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))
                    wd = np.hypot(*(p[:, 1] - p[:, 0]).T)
                    ht = np.hypot(*(p[:, 2] - p[:, 1]).T)
                else:
                    b = rec.boxes[ks]
                    wd, ht = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
                    area = np.clip(wd, 0, None) * np.clip(ht, 0, None)
                aspect = wd / np.maximum(ht, 1e-9)
                parts.append(np.stack([np.full(len(ks), i), ks, area, aspect], 1))
            rows = np.concatenate(parts) if parts else np.zeros((0, 4))
            with self.lock:
                self._gallery = {key: rows}
        col = 2 if sort == "area" else 3
        order = np.lexsort((rows[:, 1], rows[:, 0], rows[:, col]))
        if descending:
            order = np.lexsort((rows[:, 1], rows[:, 0], -rows[:, col]))
        return [[int(r[0]), int(r[1]), round(float(r[2]), 2), round(float(r[3]), 4)] for r in rows[order]]

    def close(self, wait: float = 30.0) -> None:
        """Stop making pixels; wait (up to ``wait`` seconds) for a save in progress to finish writing."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.save_lock.acquire(timeout=wait):
            self.save_lock.release()


def _numbers(value, shape: Tuple[int, ...], message: str) -> np.ndarray:
    """Nested JSON lists of finite numbers (not booleans) of exactly ``shape``, as float64."""
    flat: List[float] = []

    def walk(v, depth: int) -> None:
        if depth < len(shape):
            if not isinstance(v, list) or len(v) != shape[depth]:
                raise EditError(message)
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EditError(message)
        else:
            flat.append(float(v))

    walk(value, 0)
    arr = np.array(flat, np.float64).reshape(shape)
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0) > 1e9:
        raise EditError(message)
    return arr
