"""Packing, step two (in the main process, or a shard worker): the packed file written, HDF5 (:class:`H5Writer`) or
a pickle of numpy arrays (:class:`PickleWriter`), through a temporary renamed into place when complete."""
from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import DatasetError, DsprepError, ImageError, ImageRecord, boxes_to_polygons
from ..images import LazyModule, probe
from ..outputs import TemporaryPath
from ..ops.resize import map_boxes, map_polygons
from .prepare import PackOptions, Slot, close_slots, prepare_masks
from .reader import FORMAT, VERSION

h5py = LazyModule("h5py", globals())

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
        self.mask_boxes: List[np.ndarray] = []  # per image: (k, 4) int32, (R,) runs, (k,) runs per object
        self.mask_runs: List[np.ndarray] = []
        self.mask_counts: List[np.ndarray] = []
        self.any_masks = False

    def add(self, idx: int, rec: ImageRecord, class_index: Dict[str, int], orig, transform, orientation: int = 1,
            masks=None) -> None:
        self.kept.append(idx)
        if masks is None:  # (objects without masks: no runs, a zero box)
            masks = (np.zeros((len(rec), 4), np.int32), np.zeros(0, np.int64), np.zeros(len(rec), np.int64))
        else:
            self.any_masks = True
        self.mask_boxes.append(masks[0])
        self.mask_runs.append(masks[1])
        self.mask_counts.append(masks[2])
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
        from ..splits import splits_of
        self.image_splits.append(",".join(splits_of(rec)))

    def arrays(self, masks: bool = False) -> Dict[str, np.ndarray]:
        """The split's arrays; with ``masks`` the object masks too (:func:`mask_arrays`)."""
        n = len(self.counts)
        extra = {}
        if self.polygons is not None:
            extra["polygons"] = np.concatenate(self.polygons).reshape(-1, 4, 2) if n else np.zeros((0, 4, 2),
                                                                                                   np.float32)
        if masks:
            extra.update(mask_arrays(self.mask_boxes, self.mask_runs, self.mask_counts))
        return extra | {
            "boxes": np.concatenate(self.boxes).reshape(-1, 4) if n else np.zeros((0, 4), np.float32),
            "labels": np.concatenate(self.labels) if n else np.zeros(0, np.int32),
            "difficult": np.concatenate(self.difficult) if n else np.zeros(0, bool),
            "box_offsets": np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64),
            "orig_size": np.array(self.orig, np.int32).reshape(-1, 2),
            "transform": np.array(self.transform, np.float64).reshape(-1, 4),
            "orientation": np.array(self.orientation, np.uint8),
        }


def mask_arrays(boxes: Sequence[np.ndarray], runs: Sequence[np.ndarray], counts: Sequence[np.ndarray]
                ) -> Dict[str, np.ndarray]:
    """``mask_boxes`` (M, 4) int32, ``mask_runs`` (R,) (uint32, or uint64 when a run needs it) and ``mask_offsets``
    (M + 1,) int64 from per-image parts (see docs/packing.md)."""
    b = np.concatenate(boxes).reshape(-1, 4).astype(np.int32) if len(boxes) else np.zeros((0, 4), np.int32)
    r = np.concatenate(runs) if len(runs) else np.zeros(0, np.int64)
    c = np.concatenate(counts) if len(counts) else np.zeros(0, np.int64)
    dtype = np.uint32 if not len(r) or int(r.max()) < 2 ** 32 else np.uint64
    return {"mask_boxes": b, "mask_runs": r.astype(dtype),
            "mask_offsets": np.concatenate([[0], np.cumsum(c)]).astype(np.int64)}


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
        self.stats = {"images": 0, "objects": 0, "masks": 0}

    def _note(self, arrays: "_SplitArrays", split: str, index: int, prepared: dict) -> ImageRecord:
        rec = self.splits[split][index]
        arrays.add(index, rec, self.class_index, prepared["orig"], prepared["transform"],
                   prepared.get("orientation", 1), prepared.get("masks"))
        self.stats["images"] += 1
        self.stats["objects"] += len(rec)
        if "masks" in prepared:
            self.stats["masks"] += int(np.count_nonzero(prepared["masks"][2]))
        return rec

    def add(self, split: str, index: int, prepared: Optional[dict]) -> None:
        """Image ``index`` of ``split`` as :func:`~dsprep.pack.prepare.prepare_image` prepared it (None: left out)."""
        if prepared is None:
            return
        st = self._split_state(split)
        self._note(st["arrays"], split, index, prepared)
        if "image" in prepared:
            self._add_pixels(st, index, prepared["image"])
        elif "encoded" in prepared:
            self._add_encoded(st, prepared["encoded"])


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

    def _split_state(self, split: str) -> dict:
        return self._state[split]

    def _add_pixels(self, st: dict, index: int, image: np.ndarray) -> None:
        if "slot_base" in st:
            self._rows(st)[index] = image
        else:
            st["group"]["images"][index] = image

    def _add_encoded(self, st: dict, data: np.ndarray) -> None:
        st["raw"].write(data.tobytes())
        st["raw_offsets"].append(st["raw_offsets"][-1] + len(data))

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                masks = any(st["arrays"].any_masks for st in self._state.values())  # every split, or none
                for st in self._state.values():
                    self._finish_split(st, masks)
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

    def _finish_split(self, st, masks: bool = False) -> None:
        g, arrays = st["group"], st["arrays"]
        if self.opts.mode == "fixed":
            n = g["images"].shape[0]
            if len(arrays.kept) < n:  # images were skipped: close the gaps (rare; the file keeps unused space)
                self._compact(st, arrays.kept)
        elif self.opts.mode == "encoded":
            _copy_raw(g, st["raw"], st["raw_offsets"], self.opts.compression)
        for name, arr in arrays.arrays(masks).items():
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
            from ..core import OutputError
            raise OutputError(f"{self.out}: already exists (use --overwrite to replace it)")
        self._acc = {s: {"arrays": _SplitArrays(self.polygons), "images": [], "encoded": [], "offsets": [0]}
                     for s in splits}

    def __enter__(self) -> "PickleWriter":
        return self

    def slot(self, split: str, index: int) -> None:
        return None

    def _split_state(self, split: str) -> dict:
        return self._acc[split]

    def _add_pixels(self, a: dict, index: int, image: np.ndarray) -> None:
        a["images"].append(image)

    def _add_encoded(self, a: dict, data: np.ndarray) -> None:
        a["encoded"].append(data)
        a["offsets"].append(a["offsets"][-1] + len(data))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        payload = {"format": FORMAT, "version": VERSION, "classes": self.classes, "options": asdict(self.opts),
                   "splits": {}}
        masks = any(a["arrays"].any_masks for a in self._acc.values())
        for split, a in self._acc.items():
            d = a["arrays"].arrays(masks)
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


def annotation_only_results(splits: Dict[str, List[ImageRecord]], opts: Optional[PackOptions] = None):
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
            prepared = {"orig": (rec.width, rec.height), "transform": np.array([1.0, 1.0, 0.0, 0.0]),
                        "orientation": code}
            if opts is not None and opts.masks_from:
                masks = prepare_masks(rec, opts.masks_from, (rec.width, rec.height), np.array([1.0, 1.0, 0.0, 0.0]))
                if masks is not None:
                    prepared["masks"] = masks
            yield (s, i, None), prepared


# ---- reading -------------------------------------------------------------------------------------------------------
