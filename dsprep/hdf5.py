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
    /<split>/orig_size      (N, 2) int32 original width, height
    /<split>/transform      (N, 4) float64 scale_x, scale_y, pad_x, pad_y (stored = original * scale + pad)
    /<split>/filenames      (N,) UTF-8 strings;  /<split>/paths: the source paths
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import h5py
import numpy as np

from .core import DatasetError, DsprepError, ImageError, ImageRecord
from .io import TemporaryPath, check_encoded, image_size, read_image
from .resize import fit_image, map_boxes

FORMAT = "dsprep-detection"
VERSION = 1


@dataclass(frozen=True)
class PackOptions:
    size: Optional[Tuple[int, int]] = None   # (W, H): fixed-size mode; None: encoded mode
    resize: str = "letterbox"
    compression: str = "none"
    color: Optional[str] = None
    annotations_only: bool = False

    @property
    def mode(self) -> str:
        if self.annotations_only:
            return "annotations"
        return "fixed" if self.size else "encoded"


# ---- per-image work (runs in worker processes) ---------------------------------------------------------------------

def prepare_image(args) -> dict:
    """Decode (or take the bytes of) one image, colour-correct and fit it.  Returns what the writer stores."""
    path, opts = args
    if opts.mode == "encoded" and not opts.color:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise ImageError(f"{path}: cannot read image ({e.strerror or e})") from e
        check_encoded(data, path)
        w, h, _ = image_size(path)
        return {"encoded": data, "orig": (w, h), "transform": np.array([1.0, 1.0, 0.0, 0.0])}
    img = read_image(path)
    h, w = img.shape[:2]
    if opts.color:
        from .color import correct
        img, _ = correct(img, opts.color)
    if opts.mode == "encoded":
        ext = os.path.splitext(path)[1].lower() or ".png"
        from .io import encode_image
        data = np.frombuffer(encode_image(img, ext if ext in (".jpg", ".jpeg", ".png") else ".png"), np.uint8)
        return {"encoded": data, "orig": (w, h), "transform": np.array([1.0, 1.0, 0.0, 0.0])}
    out, t = fit_image(img, opts.size, opts.resize)
    return {"image": cv2.cvtColor(out, cv2.COLOR_BGR2RGB), "orig": (w, h), "transform": t}


# ---- writing -------------------------------------------------------------------------------------------------------

class _SplitArrays:
    """Per-split annotation arrays, filled as images arrive (in data set order)."""

    def __init__(self):
        self.boxes: List[np.ndarray] = []
        self.labels: List[np.ndarray] = []
        self.difficult: List[np.ndarray] = []
        self.counts: List[int] = []
        self.orig: List[Tuple[int, int]] = []
        self.transform: List[np.ndarray] = []
        self.filenames: List[str] = []
        self.paths: List[str] = []

    def add(self, rec: ImageRecord, class_index: Dict[str, int], orig, transform) -> None:
        self.boxes.append(map_boxes(rec.boxes, transform).astype(np.float32))
        self.labels.append(np.array([class_index[n] for n in rec.names], np.int32))
        self.difficult.append(rec.difficult.astype(bool))
        self.counts.append(len(rec))
        self.orig.append(tuple(int(v) for v in orig))
        self.transform.append(np.asarray(transform, np.float64))
        self.filenames.append(os.path.basename(rec.image_path))
        self.paths.append(str(rec.image_path))

    def arrays(self) -> Dict[str, np.ndarray]:
        n = len(self.counts)
        return {
            "boxes": np.concatenate(self.boxes).reshape(-1, 4) if n else np.zeros((0, 4), np.float32),
            "labels": np.concatenate(self.labels) if n else np.zeros(0, np.int32),
            "difficult": np.concatenate(self.difficult) if n else np.zeros(0, bool),
            "box_offsets": np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64),
            "orig_size": np.array(self.orig, np.int32).reshape(-1, 2),
            "transform": np.array(self.transform, np.float64).reshape(-1, 4),
        }


def _compression_args(compression: str) -> dict:
    if compression == "none":
        return {}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise DsprepError(f"--compression must be none, lzf or gzip, not '{compression}'")


def write_h5(out: Path, splits: Dict[str, List[ImageRecord]], classes: Sequence[str], opts: PackOptions,
             results: Iterable[Tuple[str, int, Optional[dict]]], overwrite: bool = False, batch: int = 64) -> dict:
    """Write the file from ``results``: ``(split, index_in_split, prepared or None if skipped)`` in data set order.

    The file is built under a temporary name beside ``out`` and renamed only when complete.
    """
    class_index = {c: i for i, c in enumerate(classes)}
    stats = {"images": 0, "objects": 0}
    with TemporaryPath(out, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["classes"] = json.dumps(list(classes), ensure_ascii=False)
        f.attrs["options"] = json.dumps({k: v for k, v in asdict(opts).items()}, ensure_ascii=False)
        groups = {}
        for split, recs in splits.items():
            g = f.create_group(split)
            g.attrs["mode"] = opts.mode
            state = {"group": g, "arrays": _SplitArrays(), "buffer": [], "written": 0, "raw": None,
                     "raw_offsets": [0]}
            if opts.mode == "fixed":
                w, h = opts.size
                comp = _compression_args(opts.compression)
                # Contiguous (the count is known), or one image per chunk when compressed; never auto-chunked.
                g.create_dataset("images", shape=(len(recs), h, w, 3), dtype=np.uint8,
                                 chunks=(1, h, w, 3) if comp else None, **comp)
                g.attrs["size"] = (w, h)
            elif opts.mode == "encoded":
                state["raw"] = tempfile.TemporaryFile(dir=Path(out).parent)
            groups[split] = state
        for split, idx, prepared in results:
            st = groups[split]
            if prepared is None:
                continue
            rec = splits[split][idx]
            st["arrays"].add(rec, class_index, prepared["orig"], prepared["transform"])
            stats["images"] += 1
            stats["objects"] += len(rec)
            if opts.mode == "fixed":
                st["buffer"].append(prepared["image"])
                if len(st["buffer"]) >= batch:
                    _flush(st)
            elif opts.mode == "encoded":
                data = prepared["encoded"]
                st["raw"].write(data.tobytes())
                st["raw_offsets"].append(st["raw_offsets"][-1] + len(data))
        for split, st in groups.items():
            g = st["group"]
            if opts.mode == "fixed":
                _flush(st)
            elif opts.mode == "encoded":
                _copy_raw(g, st["raw"], st["raw_offsets"], opts.compression)
            for name, arr in st["arrays"].arrays().items():
                g.create_dataset(name, data=arr)
            text = h5py.string_dtype("utf-8")
            g.create_dataset("filenames", data=np.array(st["arrays"].filenames, dtype=object), dtype=text)
            g.create_dataset("paths", data=np.array(st["arrays"].paths, dtype=object), dtype=text)
            g.attrs["count"] = len(st["arrays"].counts)
    return stats


def _flush(st) -> None:
    buf = st["buffer"]
    if buf:
        i = st["written"]
        st["group"]["images"][i:i + len(buf)] = np.stack(buf)
        st["written"] += len(buf)
        buf.clear()


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
    raw.close()
    g.create_dataset("encoded_offsets", data=np.array(offsets, np.int64))


def write_pickle(out: Path, splits: Dict[str, List[ImageRecord]], classes: Sequence[str], opts: PackOptions,
                 results: Iterable[Tuple[str, int, Optional[dict]]], overwrite: bool = False) -> dict:
    """The same content as :func:`write_h5`, as one pickle of numpy arrays (loaded whole into memory)."""
    class_index = {c: i for i, c in enumerate(classes)}
    stats = {"images": 0, "objects": 0}
    acc = {s: {"arrays": _SplitArrays(), "images": [], "encoded": [], "offsets": [0]} for s in splits}
    for split, idx, prepared in results:
        if prepared is None:
            continue
        a = acc[split]
        rec = splits[split][idx]
        a["arrays"].add(rec, class_index, prepared["orig"], prepared["transform"])
        stats["images"] += 1
        stats["objects"] += len(rec)
        if opts.mode == "fixed":
            a["images"].append(prepared["image"])
        elif opts.mode == "encoded":
            a["encoded"].append(prepared["encoded"])
            a["offsets"].append(a["offsets"][-1] + len(prepared["encoded"]))
    payload = {"format": FORMAT, "version": VERSION, "classes": list(classes), "options": asdict(opts),
               "splits": {}}
    for split, a in acc.items():
        d = a["arrays"].arrays()
        d["filenames"] = list(a["arrays"].filenames)
        d["paths"] = list(a["arrays"].paths)
        d["mode"] = opts.mode
        if opts.mode == "fixed":
            w, h = opts.size
            d["images"] = np.stack(a["images"]) if a["images"] else np.zeros((0, h, w, 3), np.uint8)
        elif opts.mode == "encoded":
            d["encoded"] = np.concatenate(a["encoded"]) if a["encoded"] else np.zeros(0, np.uint8)
            d["encoded_offsets"] = np.array(a["offsets"], np.int64)
        payload["splits"][split] = d
    with TemporaryPath(out, overwrite) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    return stats


def prepare_tasks(splits: Dict[str, List[ImageRecord]], opts: PackOptions):
    """``[(split, index, (path, opts))]`` for every image to prepare (none for annotation-only caches)."""
    return [(s, i, (rec.image_path, opts)) for s, recs in splits.items() for i, rec in enumerate(recs)]


def annotation_only_results(splits: Dict[str, List[ImageRecord]]):
    for s, recs in splits.items():
        for i, rec in enumerate(recs):
            yield s, i, {"orig": (rec.width, rec.height), "transform": np.array([1.0, 1.0, 0.0, 0.0])}


# ---- reading -------------------------------------------------------------------------------------------------------

class DetectionH5:
    """Random access to a packed split: ``len()``, ``[i]``, ``get_batch(indices)``, ``classes``.

    Boxes, labels and offsets are read into memory when opened (a lookup costs microseconds).  Images are read
    lazily, one at a time, from a file handle opened in the calling process, so the object can be handed to a
    PyTorch ``DataLoader`` with ``num_workers > 0`` (it pickles without its handle and reopens in each worker).
    Contiguous uncompressed data is read through a memory map of the file (no h5py call per image).
    Works the same over a pickle cache (``.pkl``), which is loaded whole into memory.
    """

    def __init__(self, path, split: Optional[str] = None):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise DatasetError(f"{self.path}: not found")
        self.is_pickle = self.path.lower().endswith((".pkl", ".pickle"))
        meta, self.split, arrays = (_load_pickle_meta if self.is_pickle else _load_h5_meta)(self.path, split)
        self.classes: List[str] = meta["classes"]
        self.options: dict = meta["options"]
        self.mode: str = arrays["mode"]
        self.boxes: np.ndarray = arrays["boxes"]
        self.labels: np.ndarray = arrays["labels"]
        self.difficult: np.ndarray = arrays["difficult"]
        self.box_offsets: np.ndarray = arrays["box_offsets"]
        self.orig_size: np.ndarray = arrays["orig_size"]
        self.transform: np.ndarray = arrays["transform"]
        self.filenames: List[str] = arrays["filenames"]
        self.paths: List[str] = arrays["paths"]
        self.encoded_offsets: Optional[np.ndarray] = arrays.get("encoded_offsets")
        self._mem = arrays.get("_mem")  # pickle: the image arrays themselves
        self._pid = None
        self._file = None
        self._images = None

    def __len__(self) -> int:
        return len(self.box_offsets) - 1

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pid"] = state["_file"] = state["_images"] = None
        return state

    def _open(self):
        """The image source for this process (reopened after a fork)."""
        if self._pid == os.getpid() and self._images is not None:
            return self._images
        if self.is_pickle:
            self._images = self._mem
        else:
            f = h5py.File(self.path, "r")
            ds = f[self.split]["images" if self.mode == "fixed" else "encoded"] if self.mode != "annotations" \
                else None
            src = ds
            if ds is not None and ds.chunks is None and ds.compression is None and ds.id.get_offset() is not None:
                src = np.memmap(self.path, dtype=ds.dtype, mode="r", offset=ds.id.get_offset(), shape=ds.shape)
            self._file = f
            self._images = src
        self._pid = os.getpid()
        return self._images

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._images = self._pid = None

    def image(self, i: int) -> np.ndarray:
        """The stored image ``i`` as ``(H, W, 3) uint8 RGB``."""
        src = self._open()
        if self.mode == "fixed":
            return np.array(src[i])
        if self.mode == "encoded":
            a, b = self.encoded_offsets[i], self.encoded_offsets[i + 1]
            data = np.asarray(src[a:b])
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if img is None:
                raise ImageError(f"{self.path}: image {i} ({self.filenames[i]}) cannot be decoded")
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
        return cv2.cvtColor(read_image(self.paths[i]), cv2.COLOR_BGR2RGB)

    def annotations(self, i: int) -> dict:
        a, b = self.box_offsets[i], self.box_offsets[i + 1]
        return {"boxes": self.boxes[a:b], "labels": self.labels[a:b], "difficult": self.difficult[a:b],
                "filename": self.filenames[i], "orig_size": self.orig_size[i], "transform": self.transform[i],
                "index": i}

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        i = i % len(self)
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
        return {"images": images, "boxes": [a["boxes"] for a in anns], "labels": [a["labels"] for a in anns],
                "difficult": [a["difficult"] for a in anns], "filenames": [a["filename"] for a in anns]}


def _pick_split(available: Sequence[str], split: Optional[str], path: str) -> str:
    if split is None:
        if len(available) == 1:
            return available[0]
        raise DatasetError(f"{path}: holds several splits ({', '.join(available)}): choose one with split=")
    if split not in available:
        raise DatasetError(f"{path}: no split '{split}' (available: {', '.join(available)})")
    return split


def _load_h5_meta(path: str, split: Optional[str]):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        if f.attrs.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a dsprep packed file (no format attribute '{FORMAT}')")
        meta = {"classes": json.loads(f.attrs["classes"]), "options": json.loads(f.attrs["options"])}
        split = _pick_split(sorted(f.keys()), split, path)
        g = f[split]
        arrays = {k: g[k][()] for k in ("boxes", "labels", "difficult", "box_offsets", "orig_size", "transform")}
        arrays["filenames"] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in g["filenames"][()]]
        arrays["paths"] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in g["paths"][()]]
        arrays["mode"] = g.attrs["mode"]
        if "encoded_offsets" in g:
            arrays["encoded_offsets"] = g["encoded_offsets"][()]
    return meta, split, arrays


def _load_pickle_meta(path: str, split: Optional[str]):
    with open(path, "rb") as f:
        payload = pickle.load(f)  # trusted files only: see the README
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a dsprep pickle cache")
    split = _pick_split(sorted(payload["splits"]), split, path)
    d = dict(payload["splits"][split])
    d["_mem"] = d.get("images") if d["mode"] == "fixed" else d.get("encoded")
    return {"classes": payload["classes"], "options": payload["options"]}, split, d


def load_packed_dataset(path: Path, split: Optional[str] = None):
    """A packed file as a :class:`~dsprep.dataset.Dataset` (records in stored-image pixels) for info/visualize."""
    from .dataset import Dataset
    reader = DetectionH5(path, split)
    records = []
    for i in range(len(reader)):
        a = reader.annotations(i)
        if reader.mode == "fixed":
            w, h = reader.options["size"]
        else:
            w, h = (int(v) for v in a["orig_size"])
        records.append(ImageRecord(a["filename"], w, h, boxes=a["boxes"].astype(np.float64),
                                   names=[reader.classes[k] for k in a["labels"]],
                                   difficult=a["difficult"].astype(np.uint8), split=reader.split,
                                   meta={"stem": os.path.splitext(a["filename"])[0], "index": i}))
    ds = Dataset(Path(path), "pickle" if reader.is_pickle else "h5", records, classes=list(reader.classes))
    ds.image_getter = lambda rec: cv2.cvtColor(reader.image(rec.meta["index"]), cv2.COLOR_RGB2BGR)
    return ds
