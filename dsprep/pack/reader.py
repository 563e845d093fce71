"""The reader training loops import: :class:`DetectionH5` over a packed ``.h5`` or ``.pkl`` file (one split, or every
split), with every file checked against the layout before it is trusted."""
from __future__ import annotations

import json
import mmap
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import DatasetError, ImageError
from ..images import LazyModule, apply_orientation, read_image
from ..packcheck import check_pack_storage
from ..pickles import read_pickle

# imported on first use (a packed file is opened without OpenCV)
cv2 = LazyModule("cv2", globals())
h5py = LazyModule("h5py", globals())

FORMAT = "dsprep-detection"  # the file format written and read (its name and version in the root attributes)
VERSION = 1

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
