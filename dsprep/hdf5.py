"""Packing a data set into one HDF5 file (or a pickle cache), and the reader a training loop uses.

This is the only module that imports h5py.  File layout (one group per split; see the README for the full table)::

    /                       attrs: format="dsprep-detection", version=1, classes (JSON list), options (JSON)
    /<split>/images         (N, H, W, 3) uint8 RGB, contiguous (fixed-size mode)
    /<split>/encoded        (B,) uint8: the encoded image files back to back, contiguous (encoded mode)
    /<split>/encoded_offsets (N+1,) int64: image i is encoded[offsets[i]:offsets[i+1]]
    /<split>/boxes          (M, 4) float32 xmin, ymin, xmax, ymax in the stored image's pixels
    /<split>/labels         (M,) int32 index into the class list
    /<split>/difficult      (M,) bool
    /<split>/box_offsets    (N+1,) int64: image i owns boxes[box_offsets[i]:box_offsets[i+1]]
    /<split>/polygons       (M, 4, 2) float32 quadrilaterals in the stored image's pixels (data sets with polygons,
                            such as DOTA, only)
    /<split>/orig_size      (N, 2) int32 original width, height
    /<split>/transform      (N, 4) float64 scale_x, scale_y, pad_x, pad_y (stored = original * scale + pad)
    /<split>/filenames      (N,) UTF-8 strings;  /<split>/paths: the source paths
"""
from __future__ import annotations

import json
import mmap
import os
import pickle
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .core import Dataset, DatasetError, DsprepError, ImageError, ImageRecord, boxes_to_polygons
from .images import (LazyModule, apply_orientation, check_complete, probe, read_image, read_record_image,
                     verify_jpeg)
from .outputs import TemporaryPath, partial_files
from .packcheck import check_pack_storage
from .pickles import read_pickle
from .resize import fit_image, map_boxes, map_polygons

# imported on first use: detecting a data set's format imports this module for its detect()
cv2 = LazyModule("cv2", globals())
h5py = LazyModule("h5py", globals())

FORMAT = "dsprep-detection"
VERSION = 1


@dataclass(frozen=True)
class PackOptions:
    size: Optional[Tuple[int, int]] = None   # (W, H): fixed-size mode; None: encoded mode
    resize: str = "letterbox"
    compression: str = "none"
    color: Optional[str] = None
    annotations_only: bool = False
    encode: Optional[str] = None             # "jpeg" / "png": images re-encoded at ``size`` (encoded mode)

    @property
    def mode(self) -> str:
        if self.annotations_only:
            return "annotations"
        return "fixed" if self.size and not self.encode else "encoded"


# ---- per-image work (runs in worker processes) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """Where a worker writes its fixed-size image itself: row ``index`` of a contiguous array at ``offset`` in the
    (temporary) output file.  Used with local workers: no pixels travel back through a pipe."""

    path: str
    offset: int
    shape: Tuple[int, ...]
    index: int


_SLOT_FD: Dict[str, int] = {}


def write_slot(slot: Slot, image: np.ndarray) -> None:
    """``pwrite`` the row into the file (cheaper than faulting in fresh pages of a memory map)."""
    fd = _SLOT_FD.get(slot.path)
    if fd is None:
        close_slots()  # one output file at a time per process
        fd = _SLOT_FD[slot.path] = os.open(slot.path, os.O_WRONLY)
    row = int(np.prod(slot.shape[1:]))
    data = np.ascontiguousarray(image, dtype=np.uint8)
    if data.size != row:
        raise DsprepError(f"internal: image of {data.size} bytes for a {row}-byte slot")
    os.pwrite(fd, memoryview(data).cast("B"), slot.offset + slot.index * row)


def close_slots() -> None:
    for fd in _SLOT_FD.values():
        os.close(fd)
    _SLOT_FD.clear()


def prepare_image(args) -> dict:
    """Decode (or take the bytes of) one record's image, colour-correct and fit it.  Returns what the writer stores.

    The pixels are those the record's boxes refer to (its EXIF orientation decided when the data set was read, its
    size checked).  Encoded mode keeps the file's bytes and stores the orientation to apply when reading."""
    rec, opts, slot = args
    path = rec.image_path
    if opts.encode:
        return _prepare_resized_encoded(rec, opts)
    if opts.mode == "encoded" and not opts.color:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise ImageError(f"{path}: cannot read image ({e.strerror or e})") from e
        check_complete(data, path)
        verify_jpeg(data, path)  # bytes stored as they are: their entropy-coded data checked all the same
        info = probe(path, data.tobytes())
        code = info.orientation if rec.meta.get("orient", True) else 1
        w, h = info.size(code != 1)
        if rec.width > 0 and (w, h) != (rec.width, rec.height):
            raise ImageError(f"{rec.meta.get('annotation_path') or path}: the annotation says {rec.width}x"
                             f"{rec.height} but the image {path} is {w}x{h} (boxes would not fit the pixels)")
        return {"encoded": data, "orig": (w, h), "transform": np.array([1.0, 1.0, 0.0, 0.0]), "orientation": code}
    img = read_record_image(rec)
    h, w = img.shape[:2]
    if opts.color:
        from .color import correct
        img, _ = correct(img, opts.color)
    if opts.mode == "encoded":
        ext = os.path.splitext(path)[1].lower() or ".png"
        from .images import encode_image
        data = np.frombuffer(encode_image(img, ext if ext in (".jpg", ".jpeg", ".png") else ".png"), np.uint8)
        return {"encoded": data, "orig": (w, h), "transform": np.array([1.0, 1.0, 0.0, 0.0])}
    out, t = fit_image(img, opts.size, opts.resize)
    rgb = cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)
    if slot is not None:
        write_slot(slot, rgb)
        return {"orig": (w, h), "transform": t, "in_slot": True}
    return {"image": rgb, "orig": (w, h), "transform": t}


def _prepare_resized_encoded(rec: ImageRecord, opts: PackOptions) -> dict:
    """``--size WxH --encode jpeg|png``: the image fitted to the size as for fixed mode, then encoded again."""
    from .images import encode_image
    img = read_record_image(rec)
    h, w = img.shape[:2]
    if opts.color:
        from .color import correct
        img, _ = correct(img, opts.color)
    out, t = fit_image(img, opts.size, opts.resize)
    data = np.frombuffer(encode_image(out, ".jpg" if opts.encode == "jpeg" else ".png"), np.uint8)
    return {"encoded": data, "orig": (w, h), "transform": t}


# ---- writing -------------------------------------------------------------------------------------------------------

class _SplitArrays:
    """Per-split annotation arrays, filled as images arrive (in data set order).  With ``polygons`` every object
    also gets its quadrilateral (a record without polygons contributes its box corners)."""

    def __init__(self, polygons: bool = False):
        self.polygons: Optional[List[np.ndarray]] = [] if polygons else None
        self.boxes: List[np.ndarray] = []
        self.labels: List[np.ndarray] = []
        self.difficult: List[np.ndarray] = []
        self.counts: List[int] = []
        self.orig: List[Tuple[int, int]] = []
        self.transform: List[np.ndarray] = []
        self.filenames: List[str] = []
        self.paths: List[str] = []
        self.orientation: List[int] = []
        self.image_splits: List[str] = []  # each image's own splits ("train,trainval"; "" for none)
        self.kept: List[int] = []  # indices (in the split's record list) that were stored

    def add(self, idx: int, rec: ImageRecord, class_index: Dict[str, int], orig, transform, orientation: int = 1
            ) -> None:
        self.kept.append(idx)
        self.orientation.append(int(orientation))
        self.boxes.append(map_boxes(rec.boxes, transform).astype(np.float32))
        if self.polygons is not None:
            quads = rec.polygons if rec.polygons is not None else boxes_to_polygons(rec.boxes)
            self.polygons.append(map_polygons(quads, transform).astype(np.float32))
        self.labels.append(np.array([class_index[n] for n in rec.names], np.int32))
        self.difficult.append(rec.difficult.astype(bool))
        self.counts.append(len(rec))
        self.orig.append(tuple(int(v) for v in orig))
        self.transform.append(np.asarray(transform, np.float64))
        self.filenames.append(os.path.basename(rec.image_path))
        self.paths.append(str(rec.image_path))
        from .splits import splits_of
        self.image_splits.append(",".join(splits_of(rec)))

    def arrays(self) -> Dict[str, np.ndarray]:
        n = len(self.counts)
        extra = {}
        if self.polygons is not None:
            extra["polygons"] = np.concatenate(self.polygons).reshape(-1, 4, 2) if n else np.zeros((0, 4, 2),
                                                                                                   np.float32)
        return extra | {
            "boxes": np.concatenate(self.boxes).reshape(-1, 4) if n else np.zeros((0, 4), np.float32),
            "labels": np.concatenate(self.labels) if n else np.zeros(0, np.int32),
            "difficult": np.concatenate(self.difficult) if n else np.zeros(0, bool),
            "box_offsets": np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64),
            "orig_size": np.array(self.orig, np.int32).reshape(-1, 2),
            "transform": np.array(self.transform, np.float64).reshape(-1, 4),
            "orientation": np.array(self.orientation, np.uint8),
        }


def _compression_args(compression: str) -> dict:
    if compression == "none":
        return {}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise DsprepError(f"--compression must be none, lzf or gzip, not '{compression}'")


def _contiguous(g, name: str, shape: Tuple[int, ...]):
    """A contiguous uint8 dataset whose storage exists now (so its file offset is known), never zero-filled."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return g.create_dataset(name, shape=shape, dtype=np.uint8, dcpl=dcpl)


def _preallocate(path: Path, offset: int, length: int) -> None:
    """Reserve the disk blocks of the image array at once (writes then need no block allocation); a no-op where
    the file system cannot."""
    if length <= 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Writer:
    """What both writers share: the class index, the counts, and the per-split annotation arrays."""

    def _init(self, out: Path, splits: Dict[str, List[ImageRecord]], classes: Sequence[str],
              opts: PackOptions, polygons: Optional[bool]) -> None:
        self.out, self.splits, self.classes, self.opts = Path(out), splits, list(classes), opts
        # one answer for the whole data set (shards pass it in: a shard's slice may hold no polygon record)
        self.polygons = has_polygons(splits) if polygons is None else bool(polygons)
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.stats = {"images": 0, "objects": 0}

    def _note(self, arrays: "_SplitArrays", split: str, index: int, prepared: dict) -> ImageRecord:
        rec = self.splits[split][index]
        arrays.add(index, rec, self.class_index, prepared["orig"], prepared["transform"],
                   prepared.get("orientation", 1))
        self.stats["images"] += 1
        self.stats["objects"] += len(rec)
        return rec


class H5Writer(_Writer):
    """Builds the packed file under a temporary name; renamed to ``out`` only when complete.

    Use as a context manager: :meth:`slot` tells a worker where to write a fixed-size image itself (local workers:
    contiguous, uncompressed output), :meth:`add` takes each prepared image in data set order (``None`` for one
    skipped by ``--on-error skip``).  Any exception (Ctrl-C included) removes the temporary file.
    ``polygons`` stores ``/<split>/polygons`` (default: when any record has polygons).
    """

    def __init__(self, out: Path, splits: Dict[str, List[ImageRecord]], classes: Sequence[str], opts: PackOptions,
                 overwrite: bool = False, direct: bool = True, polygons: Optional[bool] = None):
        self._init(out, splits, classes, opts, polygons)
        self._tmp = TemporaryPath(out, overwrite)
        self.direct = direct and opts.mode == "fixed" and opts.compression == "none"
        self._state: Dict[str, dict] = {}

    def __enter__(self) -> "H5Writer":
        self.path = self._tmp.__enter__()
        try:
            self.file = h5py.File(self.path, "w")
            self._setup()
        except BaseException:
            self._tmp.__exit__(*sys.exc_info())
            raise
        return self

    def _setup(self) -> None:
        f, opts = self.file, self.opts
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["classes"] = json.dumps(self.classes, ensure_ascii=False)
        f.attrs["options"] = json.dumps(asdict(opts), ensure_ascii=False)
        for split, recs in self.splits.items():
            g = f.create_group(split)
            g.attrs["mode"] = opts.mode
            st = {"group": g, "arrays": _SplitArrays(self.polygons), "raw": None, "raw_offsets": [0], "rows": None}
            if opts.mode == "fixed":
                w, h = opts.size
                g.attrs["size"] = (w, h)
                comp = _compression_args(opts.compression)
                if comp:  # one image per chunk; never h5py's automatic chunk shape
                    g.create_dataset("images", shape=(len(recs), h, w, 3), dtype=np.uint8, chunks=(1, h, w, 3),
                                     **comp)
                else:
                    ds = _contiguous(g, "images", (len(recs), h, w, 3))
                    st["slot_base"] = (str(self.path), int(ds.id.get_offset() or 0), ds.shape)
                    _preallocate(self.path, st["slot_base"][1], int(np.prod(ds.shape)))
            elif opts.mode == "encoded":
                st["raw"] = tempfile.TemporaryFile(dir=self.out.parent)
            self._state[split] = st
        f.flush()

    def slot(self, split: str, index: int) -> Optional[Slot]:
        st = self._state[split]
        if not self.direct or "slot_base" not in st or st["slot_base"][2][0] == 0:
            return None
        path, offset, shape = st["slot_base"]
        return Slot(path, offset, shape, index)

    def _rows(self, st) -> np.ndarray:
        if st["rows"] is None:
            path, offset, shape = st["slot_base"]
            st["rows"] = np.memmap(path, dtype=np.uint8, mode="r+", offset=offset, shape=shape)
        return st["rows"]

    def add(self, split: str, index: int, prepared: Optional[dict]) -> None:
        if prepared is None:
            return
        st = self._state[split]
        self._note(st["arrays"], split, index, prepared)
        if "image" in prepared:
            if "slot_base" in st:
                self._rows(st)[index] = prepared["image"]
            else:
                st["group"]["images"][index] = prepared["image"]
        elif "encoded" in prepared:
            data = prepared["encoded"]
            st["raw"].write(data.tobytes())
            st["raw_offsets"].append(st["raw_offsets"][-1] + len(data))

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                for st in self._state.values():
                    self._finish_split(st)
        except BaseException:
            exc_type, exc, tb = sys.exc_info()
            raise
        finally:
            for st in self._state.values():
                if st["raw"] is not None:
                    st["raw"].close()
                st["rows"] = None
            close_slots()
            self.file.close()
            self._tmp.__exit__(exc_type, exc, tb)
        return False

    def _finish_split(self, st) -> None:
        g, arrays = st["group"], st["arrays"]
        if self.opts.mode == "fixed":
            n = g["images"].shape[0]
            if len(arrays.kept) < n:  # images were skipped: close the gaps (rare; the file keeps unused space)
                self._compact(st, arrays.kept)
        elif self.opts.mode == "encoded":
            _copy_raw(g, st["raw"], st["raw_offsets"], self.opts.compression)
        for name, arr in arrays.arrays().items():
            g.create_dataset(name, data=arr)
        text = h5py.string_dtype("utf-8")
        g.create_dataset("filenames", data=np.array(arrays.filenames, dtype=object), dtype=text)
        g.create_dataset("paths", data=np.array(arrays.paths, dtype=object), dtype=text)
        if any(arrays.image_splits):  # the data set's own splits of each image (see dsprep.splits)
            g.create_dataset("image_splits", data=np.array(arrays.image_splits, dtype=object), dtype=text)
        g.attrs["count"] = len(arrays.counts)

    def _compact(self, st, kept: List[int]) -> None:
        g = st["group"]
        old = g["images"]
        if old.chunks is None:
            src = self._rows(st)
            new = _contiguous(g, "images_kept", (len(kept),) + old.shape[1:])
            dst = np.memmap(self.path, dtype=np.uint8, mode="r+", offset=new.id.get_offset(), shape=new.shape) \
                if kept else None
            for k, i in enumerate(kept):
                dst[k] = src[i]
            st["rows"] = None
            del dst
        else:
            new = g.create_dataset("images_kept", shape=(len(kept),) + old.shape[1:], dtype=np.uint8,
                                   chunks=old.chunks, compression=old.compression, compression_opts=old.compression_opts)
            for k, i in enumerate(kept):
                new[k] = old[i]
        del g["images"]
        g.move("images_kept", "images")


def _copy_raw(g, raw, offsets: List[int], compression: str, block: int = 64 << 20) -> None:
    total = offsets[-1]
    comp = _compression_args(compression)
    ds = g.create_dataset("encoded", shape=(total,), dtype=np.uint8,
                          chunks=(min(max(total, 1), 1 << 20),) if comp else None, **comp)
    raw.seek(0)
    pos = 0
    while pos < total:
        chunk = np.frombuffer(raw.read(min(block, total - pos)), np.uint8)
        ds[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    g.create_dataset("encoded_offsets", data=np.array(offsets, np.int64))


class PickleWriter(_Writer):
    """The same content as :class:`H5Writer`, as one pickle of numpy arrays (kept in memory until written)."""

    def __init__(self, out: Path, splits: Dict[str, List[ImageRecord]], classes: Sequence[str], opts: PackOptions,
                 overwrite: bool = False, direct: bool = False, polygons: Optional[bool] = None):
        self._init(out, splits, classes, opts, polygons)
        self.overwrite = overwrite
        if self.out.exists() and not overwrite:
            from .core import OutputError
            raise OutputError(f"{self.out}: already exists (use --overwrite to replace it)")
        self._acc = {s: {"arrays": _SplitArrays(self.polygons), "images": [], "encoded": [], "offsets": [0]}
                     for s in splits}

    def __enter__(self) -> "PickleWriter":
        return self

    def slot(self, split: str, index: int) -> None:
        return None

    def add(self, split: str, index: int, prepared: Optional[dict]) -> None:
        if prepared is None:
            return
        a = self._acc[split]
        self._note(a["arrays"], split, index, prepared)
        if "image" in prepared:
            a["images"].append(prepared["image"])
        elif "encoded" in prepared:
            a["encoded"].append(prepared["encoded"])
            a["offsets"].append(a["offsets"][-1] + len(prepared["encoded"]))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        payload = {"format": FORMAT, "version": VERSION, "classes": self.classes, "options": asdict(self.opts),
                   "splits": {}}
        for split, a in self._acc.items():
            d = a["arrays"].arrays()
            d["filenames"] = list(a["arrays"].filenames)
            d["paths"] = list(a["arrays"].paths)
            if any(a["arrays"].image_splits):
                d["image_splits"] = list(a["arrays"].image_splits)
            d["mode"] = self.opts.mode
            if self.opts.mode == "fixed":
                w, h = self.opts.size
                d["images"] = np.stack(a["images"]) if a["images"] else np.zeros((0, h, w, 3), np.uint8)
            elif self.opts.mode == "encoded":
                d["encoded"] = np.concatenate(a["encoded"]) if a["encoded"] else np.zeros(0, np.uint8)
                d["encoded_offsets"] = np.array(a["offsets"], np.int64)
            payload["splits"][split] = d
        with TemporaryPath(self.out, self.overwrite) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        return False


def has_polygons(splits: Dict[str, List[ImageRecord]]) -> bool:
    """Whether a data set has polygons (DOTA): then every split of its pack stores ``polygons``."""
    return any(rec.polygons is not None for recs in splits.values() for rec in recs)


def pack_items(writer, splits: Dict[str, List[ImageRecord]], opts: PackOptions):
    """``[(split, index, (record, opts, slot))]`` for every image to prepare."""
    return [(s, i, (rec, opts, writer.slot(s, i))) for s, recs in splits.items() for i, rec in enumerate(recs)]


def annotation_only_results(splits: Dict[str, List[ImageRecord]]):
    for s, recs in splits.items():
        for i, rec in enumerate(recs):
            # no pixels are read, but the sizes stored must be the images' (a header that contradicts the
            # annotation, say 2^40 x 2^40 for a 64x48 file, is an error as in every command writing coordinates)
            where = rec.meta.get("annotation_path") or rec.image_path
            if os.path.isfile(rec.image_path):
                got = probe(rec.image_path).size(rec.meta.get("orient", False))
                if tuple(got) != (rec.width, rec.height):
                    raise ImageError(f"{where}: the annotation says {rec.width}x{rec.height} but the image "
                                     f"{rec.image_path} is {got[0]}x{got[1]} (boxes would not fit the pixels)")
            elif not (0 < rec.width < 2 ** 31 and 0 < rec.height < 2 ** 31):
                raise DatasetError(f"{where}: image size {rec.width}x{rec.height} cannot be stored (no image file "
                                   f"to check it against)")
            code = rec.meta.get("exif", 1) if rec.meta.get("orient", True) else 1
            yield (s, i, None), {"orig": (rec.width, rec.height), "transform": np.array([1.0, 1.0, 0.0, 0.0]),
                                 "orientation": code}


# ---- reading -------------------------------------------------------------------------------------------------------

class DetectionH5:
    """Random access to a packed split: ``len()``, ``[i]``, ``get_batch(indices)``, ``classes``.

    Boxes, labels and offsets are read into memory when opened (a lookup costs microseconds).  Images are read
    lazily, one at a time, from a file handle opened in the calling process, so the object can be handed to a
    PyTorch ``DataLoader`` with ``num_workers > 0`` (it pickles without its handle and reopens in each worker).
    Contiguous uncompressed data is read through a memory map of the file (no h5py call per image).
    Works the same over a pickle cache (``.pkl``), which is loaded whole into memory through a restricted unpickler
    (numpy arrays and plain Python values only: a pickle that would run code is refused).

    ``split`` may be left out when the file holds one split.  :meth:`open_splits` opens every split at once.
    When the packed data set has polygons (DOTA), samples also carry ``polygons`` ``(k, 4, 2) float32``.
    """

    def __init__(self, path, split: Optional[str] = None):
        path = str(path)
        meta, parts = _read_packed(path, split)
        ((split, arrays),) = parts.items()
        self._setup(path, meta, split, arrays)

    @classmethod
    def open_splits(cls, path) -> Dict[str, "DetectionH5"]:
        """``{split: reader}`` for every split of a packed file, in sorted order (a pickle is read once)."""
        path = str(path)
        meta, parts = _read_packed(path, None, every=True)
        readers = {}
        for split, arrays in parts.items():
            reader = cls.__new__(cls)
            reader._setup(path, meta, split, arrays)
            readers[split] = reader
        return readers

    def _setup(self, path: str, meta: dict, split: str, arrays: dict) -> None:
        self.path = path
        self.is_pickle = _is_pickle(path)
        self.split = split
        self.classes: List[str] = meta["classes"]
        self.options: dict = meta["options"]
        self.mode: str = arrays["mode"]
        self.boxes: np.ndarray = arrays["boxes"]
        self.labels: np.ndarray = arrays["labels"]
        self.difficult: np.ndarray = arrays["difficult"]
        self.box_offsets: np.ndarray = arrays["box_offsets"]
        self.orig_size: np.ndarray = arrays["orig_size"]
        self.transform: np.ndarray = arrays["transform"]
        self.polygons: Optional[np.ndarray] = arrays.get("polygons")  # (M, 4, 2) float32, or None
        self.filenames: List[str] = arrays["filenames"]
        self.paths: List[str] = arrays["paths"]
        # each image's splits in the source data set (packed without --split; None in older files)
        self.image_splits: Optional[List[str]] = arrays.get("image_splits")
        self.encoded_offsets: Optional[np.ndarray] = arrays.get("encoded_offsets")
        # EXIF orientation to apply after decoding an encoded image or a source file (1: none); older files lack it
        self.orientation: np.ndarray = arrays.get("orientation", np.ones(len(self.box_offsets) - 1, np.uint8))
        shape = arrays.get("_shape")
        self.size: Optional[Tuple[int, int]] = (int(shape[2]), int(shape[1])) if self.mode == "fixed" else None
        if self.mode == "encoded" and self.options.get("encode") and self.options.get("size"):
            self.size = tuple(int(v) for v in self.options["size"])  # re-encoded at --size
        self._mem = arrays.get("_mem")  # pickle: the image arrays themselves
        self._pid = None
        self._file = None
        self._images = None
        self._mmap = None

    def __len__(self) -> int:
        return len(self.box_offsets) - 1

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pid"] = state["_file"] = state["_images"] = state["_mmap"] = None
        return state

    def _open(self):
        """The image source for this process (reopened after a fork)."""
        if self._pid == os.getpid() and self._images is not None:
            return self._images
        if self.is_pickle:
            self._images = self._mem
        else:
            _check_shards(self.path)
            f = h5py.File(self.path, "r")
            ds = f[self.split]["images" if self.mode == "fixed" else "encoded"] if self.mode != "annotations" \
                else None
            src = ds
            if ds is not None and ds.chunks is None and ds.compression is None and ds.id.get_offset() is not None:
                # A plain ndarray view of a read-only memory map: slicing it costs no h5py call (np.memmap
                # slices are memmap objects and cost more per access).
                with open(self.path, "rb") as fh:
                    self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                count = int(np.prod(ds.shape))
                src = np.frombuffer(self._mmap, dtype=ds.dtype, count=count,
                                    offset=ds.id.get_offset()).reshape(ds.shape)
            self._file = f
            self._images = src
        self._pid = os.getpid()
        return self._images

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._images = self._pid = self._mmap = None

    def image(self, i: int) -> np.ndarray:
        """The stored image ``i`` as ``(H, W, 3) uint8 RGB``."""
        src = self._images if self._pid == os.getpid() else self._open()
        if self.mode == "fixed":
            img = src[i]
            return img.copy() if isinstance(src, np.ndarray) else img
        if self.mode == "encoded":
            data = src[self.encoded_offsets[i]:self.encoded_offsets[i + 1]]
            img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            if img is None:
                raise ImageError(f"{self.path}: image {i} ({self.filenames[i]}) cannot be decoded")
            img = apply_orientation(img, int(self.orientation[i]))
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img if img.flags.writeable else None)
        return cv2.cvtColor(read_image(self.paths[i], orient=int(self.orientation[i]) != 1), cv2.COLOR_BGR2RGB)

    def annotations(self, i: int) -> dict:
        a, b = self.box_offsets[i], self.box_offsets[i + 1]
        out = {"boxes": self.boxes[a:b], "labels": self.labels[a:b], "difficult": self.difficult[a:b],
               "filename": self.filenames[i], "orig_size": self.orig_size[i], "transform": self.transform[i],
               "index": i}
        if self.polygons is not None:
            out["polygons"] = self.polygons[a:b]
        return out

    def __getitem__(self, i: int) -> dict:
        n = len(self.box_offsets) - 1
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        if i < 0:
            i += n
        out = self.annotations(i)
        out["image"] = self.image(i)
        return out

    def get_batch(self, indices: Sequence[int]) -> dict:
        """Several samples: images read one at a time (no h5py fancy indexing), stacked in fixed-size mode."""
        idx = [int(i) for i in indices]
        anns = [self.annotations(i) for i in idx]
        if self.mode == "fixed":
            src = self._open()
            images = np.empty((len(idx),) + tuple(src.shape[1:]), np.uint8)
            for k, i in enumerate(idx):
                images[k] = src[i]
        else:
            images = [self.image(i) for i in idx]
        out = {"images": images, "boxes": [a["boxes"] for a in anns], "labels": [a["labels"] for a in anns],
               "difficult": [a["difficult"] for a in anns], "filenames": [a["filename"] for a in anns]}
        if self.polygons is not None:
            out["polygons"] = [a["polygons"] for a in anns]
        return out


def _is_pickle(path: str) -> bool:
    return path.lower().endswith((".pkl", ".pickle"))


def _check_shards(path: str) -> None:
    """A master file's shards must all be there (HDF5 silently reads zeros from a missing virtual source), and
    nothing may be read from outside the pack and its shards (:mod:`dsprep.packcheck`)."""
    with h5py.File(path, "r") as f:
        check_pack_storage(path, f, FORMAT)


def _pick_split(available: Sequence[str], split: Optional[str], path: str) -> str:
    if split is None:
        if len(available) == 1:
            return available[0]
        raise DatasetError(f'{path}: holds several splits ({", ".join(available)}): open one with '
                           f'DetectionH5(path, split="{available[0]}")')
    if split not in available:
        raise DatasetError(f'{path}: no split "{split}" (available: {", ".join(available)})')
    return split


def _read_packed(path: str, split: Optional[str], every: bool = False) -> Tuple[dict, Dict[str, dict]]:
    """``(meta, {split: arrays})`` of a packed file: the split chosen by :func:`_pick_split`, or with ``every``
    all of them.  Every split's arrays are checked for consistency before anything uses them."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: not found")
    meta, available, get = (_pickle_source if _is_pickle(path) else _h5_source)(path)
    try:
        chosen = list(available) if every else [_pick_split(available, split, path)]
        parts = {}
        for name in chosen:
            try:
                parts[name] = get(name)
            except (OSError, KeyError) as e:  # h5py: damaged storage, or an object that is not there
                raise DatasetError(f'{path}: split "{name}" cannot be read ({e})') from e
            _check_split(path, name, parts[name], len(meta["classes"]))
    finally:
        if hasattr(get, "close"):
            get.close()
    return meta, parts


ARRAY_NAMES = ("boxes", "labels", "difficult", "box_offsets", "orig_size", "transform")


class _H5Groups:
    """Reads split groups of one open HDF5 file (closed by :func:`_read_packed`)."""

    def __init__(self, path: str, f):
        self.path, self.f = path, f

    def __call__(self, split: str) -> dict:
        g = self.f[split]
        missing = [k for k in ARRAY_NAMES + ("filenames", "paths") if k not in g]
        if missing or "mode" not in g.attrs:
            raise DatasetError(f"{self.path}: split \"{split}\" lacks {', '.join(missing or ['its mode'])} "
                               f"(damaged, or not written by dsprep)")
        arrays = {k: g[k][()] for k in ARRAY_NAMES}
        arrays["filenames"] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in g["filenames"][()]]
        arrays["paths"] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in g["paths"][()]]
        if "image_splits" in g:
            arrays["image_splits"] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in g["image_splits"][()]]
        arrays["mode"] = g.attrs["mode"]
        for k in ("encoded_offsets", "polygons", "orientation"):
            if k in g:
                arrays[k] = g[k][()]
        if arrays["mode"] in ("fixed", "encoded"):
            name = "images" if arrays["mode"] == "fixed" else "encoded"
            arrays["_shape"] = g[name].shape if name in g else None
        return arrays

    def close(self) -> None:
        self.f.close()


def _h5_source(path: str):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from e
    try:
        if f.attrs.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a dsprep packed file (no format attribute '{FORMAT}')")
        try:
            meta = {"classes": json.loads(f.attrs["classes"]), "options": json.loads(f.attrs["options"])}
            available = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group))
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"{path}: damaged dsprep packed file ({e})") from e
        if not (isinstance(meta["classes"], list) and all(isinstance(c, str) for c in meta["classes"])
                and isinstance(meta["options"], dict)):
            raise DatasetError(f"{path}: damaged dsprep packed file (classes or options are not what dsprep "
                               f"writes)")
        check_pack_storage(path, f, FORMAT)
    except BaseException:
        f.close()
        raise
    return meta, available, _H5Groups(path, f)


def _pickle_source(path: str):
    payload = read_pickle(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("splits"),
                                                                                          dict):
        raise DatasetError(f"{path}: not a dsprep pickle cache (no format '{FORMAT}')")
    meta = {"classes": payload.get("classes"), "options": payload.get("options")}
    if not (isinstance(meta["classes"], list) and all(isinstance(c, str) for c in meta["classes"])
            and isinstance(meta["options"], dict)):
        raise DatasetError(f"{path}: damaged dsprep pickle cache (classes or options are not what dsprep writes)")

    def get(split: str) -> dict:
        d = payload["splits"][split]
        if not isinstance(d, dict):
            raise DatasetError(f"{path}: split \"{split}\" is not what dsprep writes (damaged pickle cache)")
        d = dict(d)
        missing = [k for k in ARRAY_NAMES + ("filenames", "paths", "mode") if k not in d]
        if missing:
            raise DatasetError(f"{path}: split \"{split}\" lacks {', '.join(missing)} (damaged pickle cache)")
        if d["mode"] in ("fixed", "encoded"):
            image_key = "images" if d["mode"] == "fixed" else "encoded"
            d["_mem"] = d.get(image_key)
            d["_shape"] = d["_mem"].shape if isinstance(d["_mem"], np.ndarray) and d["_mem"].dtype == np.uint8 \
                else None
        return d

    if not all(isinstance(k, str) for k in payload["splits"]):
        raise DatasetError(f"{path}: damaged dsprep pickle cache (split names are not strings)")
    return meta, sorted(payload["splits"]), get


def _check_split(path: str, split: str, a: dict, n_classes: int) -> None:
    """Shapes, types and ranges of one split's arrays: a damaged or foreign file is one clear error when opened,
    never an IndexError (or wrong boxes) in the middle of a training run."""
    def bad(what: str):
        raise DatasetError(f'{path}: split "{split}": {what} (damaged, or not written by dsprep)')

    for k in ARRAY_NAMES + tuple(k for k in ("polygons", "encoded_offsets") if k in a):
        if not isinstance(a[k], np.ndarray) or a[k].dtype.kind not in "biuf" or a[k].ndim == 0:
            bad(f"{k} is not a numeric array")
    if not (isinstance(a["mode"], str) and a["mode"] in ("fixed", "encoded", "annotations")):
        bad(f"unknown mode {a['mode']!r}")
    off = a["box_offsets"]
    if off.ndim != 1 or len(off) < 1 or off.dtype.kind not in "iu":
        bad("box_offsets is not a 1-D integer array")
    n, m = len(off) - 1, len(a["boxes"])
    if off[0] != 0 or off[-1] != m or np.any(np.diff(off) < 0):
        bad(f"box_offsets do not run from 0 to the {m} boxes")
    shapes = {"boxes": (m, 4), "labels": (m,), "difficult": (m,), "orig_size": (n, 2), "transform": (n, 4)}
    if "polygons" in a:
        shapes["polygons"] = (m, 4, 2)
    if "orientation" in a:
        shapes["orientation"] = (n,)
        if a["orientation"].dtype.kind not in "iu" or (n and (a["orientation"].min() < 1 or
                                                              a["orientation"].max() > 8)):
            bad("orientation holds values outside the EXIF codes 1..8")
    for k, shape in shapes.items():
        if a[k].shape != shape:
            bad(f"{k} has shape {a[k].shape}, expected {shape}")
    labels = a["labels"]
    if labels.dtype.kind not in "iu" or (m and (labels.min() < 0 or labels.max() >= n_classes)):
        bad(f"labels are not indices into the {n_classes} classes")
    for k in ("filenames", "paths"):
        if not (isinstance(a[k], list) and len(a[k]) == n and all(isinstance(x, str) for x in a[k])):
            bad(f"{k} is not a list of {n} strings")
    if a["mode"] in ("fixed", "encoded"):
        shape = a.get("_shape")
        if shape is None:
            bad("the image data is missing (or is not uint8)")
        if a["mode"] == "fixed" and (len(shape) != 4 or shape[0] != n or shape[3] != 3):
            bad(f"images have shape {shape}, expected ({n}, H, W, 3)")
        if a["mode"] == "encoded":
            enc = a.get("encoded_offsets")
            if enc is None or enc.shape != (n + 1,) or (len(enc) and (enc[0] != 0 or enc[-1] != shape[0]
                                                                        or np.any(np.diff(enc) < 0))):
                bad("encoded_offsets do not match the encoded bytes")


LAYOUT = "packed: a .h5/.pkl file"
NAME = "h5"
HAS_IMAGE_FILES = False  # the pixels are inside the file
PACKED_SUFFIXES = (".h5", ".hdf5", ".pkl", ".pickle")


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PACKED_SUFFIXES


def load(path: Path, split: Optional[str], policy=None, wrap=None) -> Dataset:
    """A packed file as a :class:`~dsprep.core.Dataset` for info/visualize: every split (records carry
    ``rec.split``, and each record's image is read from its own split), or only ``split`` (``--split``).
    Records are in stored-image pixels, with polygons when the file has them."""
    readers = DetectionH5.open_splits(path)
    if split is not None:
        if split not in readers:
            raise DatasetError(f"{path}: no split '{split}' in this packed file (--split: choose one of "
                               f"{', '.join(readers)})")
        readers = {split: readers[split]}
    records = []
    for name, reader in readers.items():
        for i in range(len(reader)):
            a = reader.annotations(i)
            if reader.size:
                w, h = reader.size
            else:
                w, h = (int(v) for v in a["orig_size"])
            polygons = a["polygons"].astype(np.float64) if "polygons" in a else None
            rec = ImageRecord(a["filename"], w, h, boxes=a["boxes"].astype(np.float64),
                              names=[reader.classes[k] for k in a["labels"]],
                              difficult=a["difficult"].astype(np.uint8), polygons=polygons, split=name,
                              meta={"stem": os.path.splitext(a["filename"])[0], "index": i, "group": name})
            own = reader.image_splits[i] if reader.image_splits is not None else ""
            if own:  # the image's own splits, as the source data set had them
                from .splits import set_splits
                set_splits(rec, own.split(","))
            records.append(rec)
    first = next(iter(readers.values()))
    ds = Dataset(Path(path), "pickle" if first.is_pickle else NAME, records, classes=list(first.classes))
    ds.image_getter = lambda rec: cv2.cvtColor(readers[rec.meta["group"]].image(rec.meta["index"]),
                                               cv2.COLOR_RGB2BGR)
    return ds


# ---- shards: workers write whole files, the client ties them together ------------------------------------------------

def shard_path(out: Path, k: int, total: int) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{k:05d}-of-{total:05d}{out.suffix}")


def shard_ranges(n: int, shards: int) -> List[Tuple[int, int]]:
    edges = np.linspace(0, n, shards + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class ShardRun:
    """One sharded packing run: if it does not complete (any exception: an error, Ctrl-C, SIGTERM turned into an
    exception, a killed worker), everything it wrote is removed on the way out:

    * the shard files at ``shards`` (this run's names), except files that were there before the run and that
      ``overwrite`` did not allow it to replace;
    * the ``.partial`` temporaries of the shards and of ``out`` (the master) that appeared during the run (a
      worker killed mid-write leaves its temporary behind); older ones are not this run's and are kept.

    Leave the executor (stop every worker) before leaving this context, or a worker could still rename a shard
    into place afterwards.
    """

    def __init__(self, out: Path, shards: Sequence[Path], overwrite: bool = False):
        self.out, self.shards, self.overwrite = Path(out), [Path(p) for p in shards], overwrite

    def __enter__(self) -> "ShardRun":
        self._existed = {p for p in self.shards if p.exists()}
        self._partials = set(partial_files([self.out] + self.shards))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        doomed = [p for p in self.shards if self.overwrite or p not in self._existed]
        doomed += [p for p in partial_files([self.out] + self.shards) if p not in self._partials]
        for p in doomed:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError as e:  # keep the run's own error; say what is left
                print(f"warning: could not remove {p} ({e.strerror or e})", file=sys.stderr)
        return False


def pack_shard(args) -> dict:
    """Worker task: write shard ``k`` (its slice of every split) as a complete packed file, renamed into place when
    complete.  Images that cannot be read fail the shard, or are left out with ``on_error == "skip"``."""
    path, splits, classes, opts, on_error, overwrite, polygons = args
    skipped = []
    with H5Writer(Path(path), splits, classes, opts, overwrite=overwrite, direct=True, polygons=polygons) as w:
        for split, recs in splits.items():
            for i, rec in enumerate(recs):
                try:
                    prepared = prepare_image((rec, opts, w.slot(split, i)))
                except DsprepError as e:
                    if on_error != "skip":
                        raise
                    skipped.append((rec.image_path, str(e)))
                    prepared = None
                w.add(split, i, prepared)
    return {"images": w.stats["images"], "objects": w.stats["objects"], "skipped": skipped}


def _offsets_end(offsets: List[np.ndarray]) -> int:
    """The end of the last non-empty block of offsets so far."""
    return int(next(o[-1] for o in reversed(offsets) if len(o)))


def write_master(out: Path, shards: Sequence[Path], split_names: Sequence[str], classes: Sequence[str],
                 opts: PackOptions, overwrite: bool = False) -> None:
    """One file that reads like any packed file: annotations copied (offsets shifted), pixels as HDF5 virtual
    datasets over the shards (referenced by file name, relative to the master's folder)."""
    with TemporaryPath(out, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["classes"] = json.dumps(list(classes), ensure_ascii=False)
        f.attrs["options"] = json.dumps(asdict(opts), ensure_ascii=False)
        f.attrs["shards"] = json.dumps([p.name for p in shards])
        for split in split_names:
            parts = []
            for p in shards:
                with h5py.File(p, "r") as s:
                    g = s[split]
                    parts.append({k: g[k][()] for k in g.keys() if k not in ("images", "encoded")}
                                 | {"shape": g["images" if opts.mode == "fixed" else "encoded"].shape
                                    if opts.mode != "annotations" else None})
            g = f.create_group(split)
            g.attrs["mode"] = opts.mode
            if opts.mode == "fixed":
                g.attrs["size"] = opts.size
            counts = [len(pt["box_offsets"]) - 1 for pt in parts]
            g.attrs["count"] = sum(counts)
            # each shard's offsets shifted by the totals before it (a shard may hold no image of a split)
            box_off, enc_off = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
            for pt in parts:
                box_off.append(pt["box_offsets"][1:] + _offsets_end(box_off))
                if "encoded_offsets" in pt:
                    enc_off.append(pt["encoded_offsets"][1:] + _offsets_end(enc_off))
            names = ("boxes", "labels", "difficult", "orig_size", "transform")
            for name in names + tuple(n for n in ("polygons", "orientation") if all(n in pt for pt in parts)):
                g.create_dataset(name, data=np.concatenate([pt[name] for pt in parts]))
            g.create_dataset("box_offsets", data=np.concatenate(box_off))
            text = h5py.string_dtype("utf-8")
            for name in ("filenames", "paths"):
                g.create_dataset(name, data=np.concatenate([pt[name] for pt in parts]).astype(object), dtype=text)
            if any("image_splits" in pt for pt in parts):  # (a shard whose images have no split has none)
                own = [pt["image_splits"] if "image_splits" in pt else np.array([b""] * n, object)
                       for pt, n in zip(parts, counts)]
                g.create_dataset("image_splits", data=np.concatenate(own).astype(object), dtype=text)
            if opts.mode == "encoded":
                g.create_dataset("encoded_offsets", data=np.concatenate(enc_off))
            if opts.mode in ("fixed", "encoded"):
                name = "images" if opts.mode == "fixed" else "encoded"
                total = sum(pt["shape"][0] for pt in parts)
                layout = h5py.VirtualLayout(shape=(total,) + tuple(parts[0]["shape"][1:]), dtype=np.uint8)
                pos = 0
                for p, pt in zip(shards, parts):
                    n = pt["shape"][0]
                    if n:
                        layout[pos:pos + n] = h5py.VirtualSource(p.name, f"{split}/{name}", shape=pt["shape"])
                    pos += n
                g.create_virtual_dataset(name, layout)
