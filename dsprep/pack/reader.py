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
    When the packed data set has polygons (DOTA), samples also carry ``polygons`` ``(k, 4, 2) float32``; when it
    has masks (:attr:`has_masks`), ``masks`` ``(k, H, W) bool`` on the stored image (:meth:`masks`) and
    ``has_mask`` ``(k,) bool`` (an object without a mask has an empty one).
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
        # object masks: each object's runs over its rectangle of the stored image (None: the pack has no masks)
        self.mask_boxes: Optional[np.ndarray] = arrays.get("mask_boxes")
        self.mask_runs: Optional[np.ndarray] = arrays.get("mask_runs")
        self.mask_offsets: Optional[np.ndarray] = arrays.get("mask_offsets")
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

    @property
    def has_masks(self) -> bool:
        """Whether the pack stores object masks."""
        return self.mask_offsets is not None

    def canvas(self, i: int) -> Tuple[int, int]:
        """``(H, W)`` of stored image ``i`` (what its boxes and masks refer to), without reading it."""
        if self.size is not None:
            return int(self.size[1]), int(self.size[0])
        return int(self.orig_size[i][1]), int(self.orig_size[i][0])

    def masks(self, i: int, canvas: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Image ``i``'s object masks, ``(k, H, W) bool`` on the stored image (``canvas`` (H, W): its size when the
        image was read already).  Raises ``DatasetError`` when the pack has none."""
        boxes, runs, offsets = self.mask_boxes, self.mask_runs, self.mask_offsets
        if boxes is None or runs is None or offsets is None:
            raise DatasetError(f"{self.path}: the pack stores no masks")
        a, b = int(self.box_offsets[i]), int(self.box_offsets[i + 1])
        h, w = canvas or self.canvas(i)
        return decode_masks(boxes[a:b], runs, offsets[a:b + 1], h, w, f"{self.path}: image {i} ({self.filenames[i]})")

    def annotations(self, i: int) -> dict:
        a, b = self.box_offsets[i], self.box_offsets[i + 1]
        out = {"boxes": self.boxes[a:b], "labels": self.labels[a:b], "difficult": self.difficult[a:b],
               "filename": self.filenames[i], "orig_size": self.orig_size[i], "transform": self.transform[i],
               "index": i}
        if self.polygons is not None:
            out["polygons"] = self.polygons[a:b]
        if self.mask_offsets is not None:
            out["has_mask"] = np.diff(self.mask_offsets[a:b + 1]) > 0
        return out

    def __getitem__(self, i: int) -> dict:
        n = len(self.box_offsets) - 1
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        if i < 0:
            i += n
        out = self.annotations(i)
        out["image"] = self.image(i)
        if self.mask_offsets is not None:
            out["masks"] = self.masks(i, self._checked_canvas(i, out["image"]))
        return out

    def _checked_canvas(self, i: int, image: np.ndarray) -> Tuple[int, int]:
        """The image's size, which must be the one its masks were stored on (a source file changed since an
        annotations-only pack was made, or a damaged pack, is an error, never masks beside the pixels)."""
        got = tuple(int(v) for v in image.shape[:2])
        if got != self.canvas(i):
            h, w = self.canvas(i)
            raise ImageError(f"{self.path}: image {i} ({self.filenames[i]}) is {got[1]}x{got[0]}, its masks were "
                             f"stored on {w}x{h}")
        return got[0], got[1]

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
        if self.mask_offsets is not None:
            out["masks"] = [self.masks(i, self._checked_canvas(i, images[k])) for k, i in enumerate(idx)]
            out["has_mask"] = [a["has_mask"] for a in anns]
        return out


def decode_runs(runs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Run lengths over an ``(h, w)`` rectangle in row-major order, starting with a run of 0s -> ``(h, w) bool``
    (the inverse of :func:`dsprep.pack.prepare.mask_runs`)."""
    return np.repeat(np.arange(len(runs)) % 2 == 1, np.asarray(runs, np.int64)).reshape(h, w)


def decode_masks(boxes: np.ndarray, runs: np.ndarray, offsets: np.ndarray, h: int, w: int, where: str
                 ) -> np.ndarray:
    """``(k, h, w) bool``: object j's runs ``runs[offsets[j]:offsets[j + 1]]`` decoded over its rectangle
    ``boxes[j]`` (x0, y0, x1, y1) of the stored image, the rest False (all of it for an object without runs)."""
    k = len(boxes)
    try:
        out = np.zeros((k, h, w), bool)
    except MemoryError as e:
        raise ImageError(f"{where}: {k} masks of {w}x{h} do not fit in memory") from e
    for j in range(k):
        a, b = int(offsets[j]), int(offsets[j + 1])
        if a == b:
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[j])
        out[j, y0:y1, x0:x1] = decode_runs(runs[a:b], y1 - y0, x1 - x0)
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
            _check_split(path, name, parts[name], len(meta["classes"]), meta["options"])
    finally:
        if hasattr(get, "close"):
            get.close()
    return meta, parts


ARRAY_NAMES = ("boxes", "labels", "difficult", "box_offsets", "orig_size", "transform")
MASK_ARRAYS = ("mask_boxes", "mask_runs", "mask_offsets")  # packs with masks: all three


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
        for k in ("encoded_offsets", "polygons", "orientation") + MASK_ARRAYS:
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


def _check_split(path: str, split: str, a: dict, n_classes: int, options: Optional[dict] = None) -> None:
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
    if any(k in a for k in MASK_ARRAYS):
        _check_masks(a, n, m, bad, options or {})


def _check_masks(a: dict, n: int, m: int, bad, options: dict) -> None:
    """The object masks of a split: all three arrays, each object's rectangle inside its stored image, and its runs
    (none, or covering the rectangle exactly)."""
    missing = [k for k in MASK_ARRAYS if k not in a]
    if missing:
        bad(f"masks lack {', '.join(missing)}")
    for k in MASK_ARRAYS:
        if not isinstance(a[k], np.ndarray) or a[k].dtype.kind not in "iu":
            bad(f"{k} is not an integer array")
    boxes, runs, off = a["mask_boxes"], a["mask_runs"], a["mask_offsets"]
    if boxes.shape != (m, 4) or runs.ndim != 1 or off.shape != (m + 1,):
        bad(f"mask arrays have shapes {boxes.shape}, {runs.shape}, {off.shape} for {m} objects")
    if off[0] != 0 or off[-1] != len(runs) or np.any(np.diff(off) < 0):
        bad(f"mask_offsets do not run from 0 to the {len(runs)} runs")
    if len(runs) and (runs.min() < 0 or float(runs.astype(np.float64).sum()) > 2.0 ** 62):
        bad("mask_runs hold negative or impossibly long runs")
    owner = np.repeat(np.arange(n), np.diff(a["box_offsets"]).astype(np.int64))
    if a["mode"] == "fixed":
        hw = np.tile(np.array(a["_shape"][1:3], np.int64), (n, 1))
    elif a["mode"] == "encoded" and options.get("encode") and options.get("size"):
        hw = np.tile(np.array(options["size"][::-1], np.int64), (n, 1))
    else:
        hw = np.asarray(a["orig_size"], np.int64)[:, ::-1]
    b = boxes.astype(np.int64)
    limit = hw[owner]
    if np.any(b[:, :2] < 0) or np.any(b[:, 2:] < b[:, :2]) or np.any(b[:, 2] > limit[:, 1]) or \
            np.any(b[:, 3] > limit[:, 0]):
        bad("mask_boxes reach outside their images")
    ends = np.concatenate([[0], np.cumsum(runs.astype(np.int64))])
    sums = ends[off[1:]] - ends[off[:-1]]
    has = np.diff(off) > 0
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    if np.any(sums[has] != area[has]) or np.any(b[~has] != 0):
        bad("mask_runs do not cover their objects' rectangles")
