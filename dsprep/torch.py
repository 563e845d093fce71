"""Packed data straight into a PyTorch ``DataLoader``: :class:`DetectionDataset`, :func:`collate`.

Needs the optional extra ``pip install "dsprep[torch]"`` (torch and torchvision); nothing else in dsprep imports
this module.  ::

    from torch.utils.data import DataLoader
    from torchvision.transforms import v2
    from dsprep.torch import DetectionDataset, collate

    train = DetectionDataset("voc07.h5", split="trainval", transforms=v2.RandomHorizontalFlip())
    for images, targets in DataLoader(train, batch_size=32, shuffle=True, num_workers=2, collate_fn=collate):
        ...   # images: (32, 3, H, W) uint8; targets: 32 dicts (boxes, labels, image_id, difficult[, polygons, masks])

How a batch crosses from a worker to the training process: :meth:`DetectionDataset.__getitems__` reads a whole
batch at once (the images into one array, the annotations gathered with one index per array), :func:`collate` keeps
that form, and a :class:`DetectionBatch` pickles as one image tensor (one shared-memory transfer) plus small numpy
arrays that travel inside the message itself; the per-image target dicts are made again in the receiving process.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from .core import ImageError
from .pack.reader import DetectionH5, decode_masks
from .images import LazyModule, apply_orientation, decode_image, read_image

cv2 = LazyModule("cv2", globals())

__all__ = ["DetectionDataset", "DetectionBatch", "collate"]


class _Strings:
    """Many strings as one UTF-8 byte array and its offsets.  A Python list of ``str`` would be one object per
    string, whose reference counts every access writes: forked workers would copy those pages one by one, and
    their memory would grow over an epoch."""

    def __init__(self, items: Sequence[str]):
        encoded = [s.encode("utf-8") for s in items]
        self.offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(encoded), np.uint8).copy()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i]:self.offsets[i + 1]].tobytes().decode("utf-8")

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _object_index(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The indices of every object of several images, in order: ``concatenate([arange(a, b) ...])`` in one go."""
    counts = ends - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    firsts = np.cumsum(counts) - counts  # where each image's objects begin in the output
    return np.repeat(starts - firsts, counts) + np.arange(total)


class DetectionDataset(torch.utils.data.Dataset):
    """A map-style dataset over one split of a pack written by ``dsprep voc-to-h5`` (or ``voc-to-pickle``).

    ``dataset[i]`` is ``(image, target)``: the image a :class:`torchvision.tv_tensors.Image` (uint8, 3 x H x W,
    RGB), the target a dict with ``boxes`` (:class:`~torchvision.tv_tensors.BoundingBoxes`, XYXY, in the image's
    pixels, with its canvas size), ``labels`` (int64 indices into :attr:`classes`), ``image_id`` (the image's name
    in the data set: its file stem), ``difficult`` (bool), and ``polygons`` when the pack has them (DOTA): each
    object's quadrilateral as ``BoundingBoxes`` in the ``XYXYXYXY`` format, shape (k, 8); ``masks`` when the pack
    has them: a :class:`~torchvision.tv_tensors.Mask` (k, H, W) bool, one per object on the image's pixels (empty
    for an object without a mask: ``has_mask`` (k,) bool says which have one).  ``transforms`` is called as
    ``transforms(image, target)`` (torchvision v2 transforms: a flip or a resize moves boxes, polygons and masks
    with the pixels).

    Safe with ``num_workers > 0``, ``persistent_workers``, ``shuffle`` and ``DistributedSampler``: the file is
    opened lazily in the process that reads (a handle inherited across ``fork`` is never used), and the metadata
    are numpy arrays (no Python object per image or per box), so a worker's memory stays flat over an epoch.
    """

    def __init__(self, path, split: Optional[str] = None, transforms=None):
        reader = DetectionH5(path, split)
        # the reader's per-image strings as two arrays (its lists would be copied page by page in each worker)
        reader.filenames = _Strings(reader.filenames)
        reader.paths = _Strings(reader.paths)
        if getattr(reader, "image_splits", None) is not None:
            reader.image_splits = _Strings(reader.image_splits)
        self._reader = reader
        self.path, self.split, self.transforms = str(path), reader.split, transforms
        self.classes: List[str] = list(reader.classes)
        self.mode: str = reader.mode
        self.boxes = np.ascontiguousarray(reader.boxes, np.float32)
        self.labels = reader.labels.astype(np.int64)
        self.difficult = reader.difficult.astype(bool)
        self.offsets = reader.box_offsets.astype(np.int64)
        self.polygons = None if reader.polygons is None else \
            np.ascontiguousarray(reader.polygons, np.float32).reshape(-1, 8)
        self.image_ids = _Strings([os.path.splitext(reader.filenames[i])[0] for i in range(len(reader))])
        self.has_masks: bool = reader.has_masks
        if reader.has_masks:
            self.mask_boxes = np.ascontiguousarray(reader.mask_boxes, np.int64)
            self.mask_runs = np.ascontiguousarray(reader.mask_runs, np.int64)
            self.mask_offsets = np.ascontiguousarray(reader.mask_offsets, np.int64)
        # the stored images' size (W, H) when every image has it: fixed-size packs and packs encoded at --size
        self.size = reader.size or _encoded_size(reader)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    # ---- one sample -------------------------------------------------------------------------------------------

    def __getitem__(self, i: int):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i = int(i) % n
        pixels = self._image(i)
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))
        a, b = self.offsets[i], self.offsets[i + 1]
        target = self._target(slice(a, b), self.image_ids[i], pixels.shape[:2])
        if self.has_masks:
            canvas = self._reader._checked_canvas(i, pixels)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(self._masks(a, b, canvas)))
            target["has_mask"] = torch.from_numpy(np.diff(self.mask_offsets[a:b + 1]) > 0)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _target(self, objects, image_id: str, canvas) -> dict:
        canvas = (int(canvas[0]), int(canvas[1]))
        target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(self.boxes[objects].copy()), format="XYXY",
                                                    canvas_size=canvas),
                  "labels": torch.from_numpy(self.labels[objects].copy()),
                  "image_id": image_id,
                  "difficult": torch.from_numpy(self.difficult[objects].copy())}
        if self.polygons is not None:
            target["polygons"] = tv_tensors.BoundingBoxes(torch.from_numpy(self.polygons[objects].copy()),
                                                          format="XYXYXYXY", canvas_size=canvas)
        return target

    def _masks(self, a: int, b: int, canvas, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The masks of objects ``a .. b - 1`` (one image's) decoded on its ``canvas`` (H, W): (b - a, H, W) bool,
        into ``out`` when given."""
        h, w = canvas
        m = decode_masks(self.mask_boxes[a:b], self.mask_runs, self.mask_offsets[a:b + 1], h, w, self.path)
        if out is None:
            return m
        out[...] = m
        return out

    def _source(self):
        return self._reader._open()  # reopened in each process (the reader checks the process id)

    def _image(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, 3) uint8 RGB."""
        r = self._reader
        if r.mode == "fixed":
            src = self._source()
            return np.array(src[i])
        if r.mode == "encoded":
            return cv2.cvtColor(self._decode(i), cv2.COLOR_BGR2RGB)
        return cv2.cvtColor(read_image(r.paths[i], orient=int(r.orientation[i]) != 1), cv2.COLOR_BGR2RGB)

    def _decode(self, i: int) -> np.ndarray:
        """Encoded image ``i`` decoded (BGR) through dsprep.images, turned as the pack says."""
        r = self._reader
        src = self._source()
        data = np.asarray(src[r.encoded_offsets[i]:r.encoded_offsets[i + 1]])
        img = decode_image(data, f"{self.path}: image {i} ({r.filenames[i]})", orient=False)
        return apply_orientation(img, int(r.orientation[i]))

    # ---- a whole batch: what DataLoader calls in each worker ----------------------------------------------------

    def __getitems__(self, indices: Sequence[int]):
        """The samples ``indices`` (DataLoader calls this with a batch's indices).  Without ``transforms`` the
        batch is read at once: images into one array (fixed size), annotations gathered with one index per array;
        :func:`collate` then keeps that form.  With ``transforms`` each sample is read and transformed on its own."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices out of range for {n} images")
        idx = idx % n if n else idx
        if self.transforms is not None or self.size is None or len(idx) == 0:
            return [self[int(i)] for i in idx]
        w, h = self.size
        pixels = _batch_buffer((len(idx), h, w, 3))
        self._read_into(idx, pixels.numpy())
        objects = _object_index(self.offsets[idx], self.offsets[idx + 1])
        counts = self.offsets[idx + 1] - self.offsets[idx]
        per_object = {"boxes": self.boxes[objects], "labels": self.labels[objects],
                      "difficult": self.difficult[objects]}
        if self.polygons is not None:
            per_object["polygons"] = self.polygons[objects]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        mask_keys: tuple = ()
        if self.has_masks:  # decoded straight into one (K, H, W) tensor (shared memory in a worker)
            masks = _batch_buffer((len(objects), h, w), torch.bool)
            view = masks.numpy()
            for k, i in enumerate(idx):
                a, b = int(self.offsets[i]), int(self.offsets[i + 1])
                self._masks(a, b, (h, w), view[offsets[k]:offsets[k + 1]])
            per_object["masks"] = masks
            per_object["has_mask"] = np.diff(self.mask_offsets)[objects] > 0
            mask_keys = ("masks",)
        batch = DetectionBatch(pixels.permute(0, 3, 1, 2), per_object,
                               {k: offsets for k in per_object}, [self.image_ids[int(i)] for i in idx],
                               np.tile(np.array([[h, w]], np.int64), (len(idx), 1)),
                               {"boxes": ("XYXY", "soft"), "polygons": ("XYXYXYXY", "soft")}, mask_keys=mask_keys)
        return _BatchSamples(batch)

    def _read_into(self, idx: np.ndarray, out: np.ndarray) -> None:
        r = self._reader
        src = self._source()
        if r.mode == "fixed":
            rows = self._rows_file()
            if rows is not None:  # one pread per image, straight from the page cache into the batch
                fd, offset, row = rows
                for k, i in enumerate(idx):
                    got = os.preadv(fd, [memoryview(out[k]).cast("B")], offset + int(i) * row)
                    if got != row:
                        raise ImageError(f"{self.path}: image {int(i)} is cut short (the file is truncated)")
            elif isinstance(src, np.ndarray):
                np.take(src, idx, axis=0, out=out)  # rows in memory (a pickle), copied in one call
            else:  # chunked or compressed: one row at a time (never h5py fancy indexing)
                for k, i in enumerate(idx):
                    src.read_direct(out, source_sel=np.s_[int(i)], dest_sel=np.s_[k])
            return
        for k, i in enumerate(idx):
            img = self._decode(int(i))
            if img.shape[:2] != out.shape[1:3]:
                raise ImageError(f"{self.path}: image {int(i)} ({r.filenames[int(i)]}) is {img.shape[1]}x"
                                 f"{img.shape[0]}, not the pack's {out.shape[2]}x{out.shape[1]} (damaged pack)")
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=out[k])

    def _rows_file(self):
        """``(fd, offset, bytes per image)`` of a contiguous uncompressed image array, opened in this process; None
        for other storage.  Reading rows with ``pread`` costs less than copying them out of a memory map (no page
        of the map to fault in first), which matters most in DataLoader workers."""
        pid = os.getpid()
        if getattr(self, "_rows_pid", None) == pid:
            return self._rows
        self._rows_pid, self._rows = pid, None  # a descriptor inherited across fork is never used
        r = self._reader
        if r.is_pickle or not hasattr(os, "preadv") or r._file is None:
            return None
        ds = r._file[r.split]["images"]
        offset = ds.id.get_offset() if ds.chunks is None and ds.compression is None and not ds.is_virtual \
            else None
        if offset is not None:
            fd = os.open(self.path, os.O_RDONLY)
            self._rows = (fd, int(offset), int(np.prod(ds.shape[1:])))
        return self._rows

    def close(self) -> None:
        """Close what this process opened (the file is opened again on the next read)."""
        if getattr(self, "_rows_pid", None) == os.getpid() and self._rows is not None:
            os.close(self._rows[0])
        self._rows_pid = self._rows = None
        self._reader.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_rows_pid", None)
        state.pop("_rows", None)
        return state

    def __repr__(self) -> str:
        return f"DetectionDataset({self.path!r}, split={self.split!r}: {len(self)} images, {self.mode})"


def _batch_buffer(shape, dtype=torch.uint8) -> torch.Tensor:
    """An uninitialized uint8 tensor for a batch.  In a DataLoader worker it is made in shared memory at once: the
    batch is read straight into the memory the training process will map, instead of into private memory that
    sending it would copy again (that copy, and the page faults of fresh memory, cost more than reading a batch of
    raw pixels from the page cache)."""
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if new_shared is None or torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = new_shared(int(np.prod(shape)) * torch.empty(0, dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def _encoded_size(reader: DetectionH5):
    """``(W, H)`` of a pack whose encoded images were all re-encoded at ``--size`` (``--encode``), else None."""
    options = reader.options or {}
    size = options.get("size")
    if reader.mode == "encoded" and options.get("encode") and size:
        return int(size[0]), int(size[1])
    return None


class _BatchSamples(list):
    """What :meth:`DetectionDataset.__getitems__` returns for a batch read at once: a list whose samples are made
    only if something asks for them (``collate`` does not: it takes :attr:`batch`)."""

    def __init__(self, batch: "DetectionBatch"):
        super().__init__()
        self.batch = batch
        self._filled = False

    def _fill(self):
        if not self._filled:
            self._filled = True
            images, targets = self.batch
            super().extend(zip((tv_tensors.Image(im) for im in images), targets))

    def __len__(self):
        return len(self.batch.image_ids)

    def __iter__(self):
        self._fill()
        return super().__iter__()

    def __getitem__(self, k):
        self._fill()
        return super().__getitem__(k)


class DetectionBatch:
    """A batch of detection samples: ``images, targets = batch``.

    ``images``: one uint8 tensor (N, 3, H, W) when the images share a size (for a pack read without transforms its
    memory is channels-last: no copy was made to reorder it), else a list of (3, H, W) tensors; ``targets``: a
    list of N dicts, as :class:`DetectionDataset` gives them.  Pickled (from a DataLoader worker to the training
    process) it travels as the image tensor and a few numpy arrays: per-object values concatenated, with offsets;
    masks (``mask_keys``) as one (K, H, W) tensor, like the images.
    """

    def __init__(self, images, per_object: Dict[str, Any], offsets: Dict[str, np.ndarray],
                 image_ids: List[str], canvas: np.ndarray, box_formats: Dict[str, tuple], extra=None,
                 mask_keys: Sequence[str] = ()):
        self.images = images
        self.per_object, self.offsets, self.image_ids = per_object, offsets, list(image_ids)
        self.canvas = canvas  # (N, 2) height, width of each sample's boxes
        self.box_formats = {k: v for k, v in box_formats.items() if k in per_object}
        self.mask_keys = tuple(k for k in mask_keys if k in per_object)  # made tv_tensors.Mask
        self.extra = extra or [{} for _ in self.image_ids]  # any other target entries, per sample
        self._targets = None

    @property
    def targets(self) -> List[dict]:
        if self._targets is None:
            self._targets = self._make_targets()
        return self._targets

    def _make_targets(self) -> List[dict]:
        n = len(self.image_ids)
        columns = {}
        for k, values in self.per_object.items():  # every image's part in one call (views, no copy)
            counts = np.diff(self.offsets[k]).tolist()
            tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(values)
            columns[k] = torch.split(tensor, counts) if n else ()
        out = [{} for _ in range(n)]
        for k, parts in columns.items():
            if k in self.box_formats:
                fmt, clamping = self.box_formats[k]
                for j, part in enumerate(parts):
                    out[j][k] = tv_tensors.BoundingBoxes(part, format=fmt, canvas_size=(int(self.canvas[j, 0]),
                                                                                        int(self.canvas[j, 1])),
                                                         clamping_mode=clamping)
            elif k in self.mask_keys:
                for j, part in enumerate(parts):
                    out[j][k] = tv_tensors.Mask(part)
            else:
                for j, part in enumerate(parts):
                    out[j][k] = part
        for t, image_id, extra in zip(out, self.image_ids, self.extra):
            t["image_id"] = image_id
            t.update(extra)
        return out

    def __iter__(self):
        yield self.images
        yield self.targets

    def __len__(self) -> int:
        return 2

    def __getitem__(self, k):
        return (self.images, self.targets)[k]

    def __reduce__(self):
        return (DetectionBatch, (self.images, self.per_object, self.offsets, self.image_ids, self.canvas,
                                 self.box_formats, self.extra, self.mask_keys))

    def pin_memory(self) -> "DetectionBatch":
        """For ``DataLoader(pin_memory=True)``: the images in page-locked memory."""
        images = self.images.pin_memory() if isinstance(self.images, torch.Tensor) else \
            [im.pin_memory() for im in self.images]
        return DetectionBatch(images, self.per_object, self.offsets, self.image_ids, self.canvas, self.box_formats,
                              self.extra, self.mask_keys)

    def to(self, device, non_blocking: bool = False):
        """``(images, targets)`` on ``device`` (the targets' tensors too)."""
        images = self.images.to(device, non_blocking=non_blocking) if isinstance(self.images, torch.Tensor) else \
            [im.to(device, non_blocking=non_blocking) for im in self.images]
        targets = [{k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                    for k, v in t.items()} for t in self.targets]
        return images, targets

    def __repr__(self) -> str:
        shape = tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else f"{len(self.images)} images"
        return f"DetectionBatch({shape}, {sum(len(v) for v in self.per_object.get('labels', [[]]))} objects)"


def collate(samples) -> DetectionBatch:
    """``DataLoader(..., collate_fn=collate)``: samples with different numbers of objects into one
    :class:`DetectionBatch` (``images, targets = batch``: images stacked when they share a size, a list of target
    dicts).  Works on any list of ``(image, target dict)`` samples, such as a transformed dataset's."""
    if isinstance(samples, _BatchSamples):
        return samples.batch
    samples = list(samples)
    images = [s[0] for s in samples]
    targets = [s[1] for s in samples]
    if images and all(im.shape == images[0].shape for im in images):
        stacked = torch.stack([im.as_subclass(torch.Tensor) for im in images])
    else:
        stacked = [im.as_subclass(torch.Tensor) for im in images]
    keys = [k for k, v in (targets[0].items() if targets else ()) if isinstance(v, torch.Tensor) and v.ndim >= 1
            and all(isinstance(t.get(k), torch.Tensor) for t in targets)]
    per_object: Dict[str, Any] = {}
    offsets, formats, mask_keys = {}, {}, []
    for k in keys:
        parts = [t[k].as_subclass(torch.Tensor) for t in targets]
        first = targets[0][k]
        if isinstance(first, tv_tensors.Mask):  # one tensor when every sample's masks share a size, else per sample
            if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
                continue
            per_object[k] = torch.cat(parts)
            mask_keys.append(k)
        else:
            per_object[k] = torch.cat(parts).numpy() if parts else np.zeros(0)
        offsets[k] = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        if isinstance(first, tv_tensors.BoundingBoxes):
            formats[k] = (first.format.name, getattr(first, "clamping_mode", "soft"))
    canvas = np.array([_canvas(t, im) for t, im in zip(targets, images)], np.int64).reshape(-1, 2)
    extra = [{k: v for k, v in t.items() if k not in per_object and k != "image_id"} for t in targets]
    return DetectionBatch(stacked, per_object, offsets, [t.get("image_id") for t in targets], canvas, formats,
                          extra, mask_keys)


def _canvas(target: dict, image) -> tuple:
    boxes = target.get("boxes")
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        return tuple(boxes.canvas_size)
    return tuple(image.shape[-2:])
