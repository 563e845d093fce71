"""Packing, step one (in workers): one image decoded, EXIF-oriented, colour-corrected and fitted to the packed size,
written straight into the output file's memory map when the writer offers a slot, else handed back."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ..core import DsprepError, ImageError
from ..images import LazyModule, check_complete, probe, read_record_image, verify_jpeg
from ..ops.resize import fit_image

cv2 = LazyModule("cv2", globals())



@dataclass(frozen=True)
class PackOptions:
    size: Optional[Tuple[int, int]] = None   # (W, H): fixed-size mode; None: encoded mode
    resize: str = "letterbox"
    compression: str = "none"
    color: Optional[str] = None
    annotations_only: bool = False
    encode: Optional[str] = None             # "jpeg" / "png": images re-encoded at ``size`` (encoded mode)
    masks_from: Optional[str] = None         # the format whose object masks are stored (None: no masks)

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
    """Decode (or take the bytes of) one record's image, colour-correct and fit it; with ``opts.masks_from``, its
    objects' masks fitted the same way (:func:`prepare_masks`).  Returns what the writer stores.

    The pixels are those the record's boxes refer to (its EXIF orientation decided when the data set was read, its
    size checked).  Encoded mode keeps the file's bytes and stores the orientation to apply when reading."""
    rec, opts, slot = args
    prepared = _prepare_pixels(rec, opts, slot)
    if opts.masks_from:
        masks = prepare_masks(rec, opts.masks_from, prepared["orig"], prepared["transform"])
        if masks is not None:
            prepared["masks"] = masks
    return prepared


def _prepare_pixels(rec, opts: PackOptions, slot) -> dict:
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
        from ..ops.color import correct
        img, _ = correct(img, opts.color)
    if opts.mode == "encoded":
        ext = os.path.splitext(path)[1].lower() or ".png"
        from ..images import encode_image
        data = np.frombuffer(encode_image(img, ext if ext in (".jpg", ".jpeg", ".png") else ".png"), np.uint8)
        return {"encoded": data, "orig": (w, h), "transform": np.array([1.0, 1.0, 0.0, 0.0])}
    assert opts.size is not None  # fixed mode
    out, t = fit_image(img, opts.size, opts.resize)
    rgb = cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)
    if slot is not None:
        write_slot(slot, rgb)
        return {"orig": (w, h), "transform": t, "in_slot": True}
    return {"image": rgb, "orig": (w, h), "transform": t}


# ---- writing -------------------------------------------------------------------------------------------------------


def _prepare_resized_encoded(rec, opts: PackOptions) -> dict:
    """``--size WxH --encode jpeg|png``: the image fitted to the size as for fixed mode, then encoded again."""
    from ..images import encode_image
    img = read_record_image(rec)
    h, w = img.shape[:2]
    if opts.color:
        from ..ops.color import correct
        img, _ = correct(img, opts.color)
    out, t = fit_image(img, opts.size, opts.resize)
    data = np.frombuffer(encode_image(out, ".jpg" if opts.encode == "jpeg" else ".png"), np.uint8)
    return {"encoded": data, "orig": (w, h), "transform": t}


# ---- masks -----------------------------------------------------------------------------------------------------------

def masks_format(fmt: str) -> Optional[str]:
    """``fmt`` when a pack of a data set in that format stores object masks (``PackOptions.masks_from``): the
    format answers ``object_masks`` with shapes of its own (VOC's mask files, COCO/labelme segmentations); formats
    of quadrilaterals (DOTA, YOLO-OBB) store those as ``polygons`` instead.  None otherwise."""
    from ..formats import format_spec
    spec = format_spec(fmt)
    return fmt if spec.object_masks is not None and not spec.holds.quads else None


def prepare_masks(rec, fmt: str, orig: Tuple[int, int], transform: np.ndarray) -> Optional[Tuple[np.ndarray, ...]]:
    """The record's object masks (:func:`dsprep.dataset.object_masks` of format ``fmt``) as the pack stores them,
    or None when it has none: resized by nearest neighbour exactly as the image was fitted (``transform``, from the
    ``orig`` (W, H) image; :func:`dsprep.ops.maskcut.fit_masks`), each kept over its own rectangle of the stored
    image and run-length encoded (:func:`mask_runs`).  Returns ``(boxes (k, 4) int32, runs, counts (k,) int64)``:
    object j's runs are the ``counts[j]`` after those of the objects before it; an object without a mask has no
    runs (and a zero box)."""
    from ..dataset import object_masks
    from ..geometry import pixel_bounds
    from ..ops.maskcut import fit_masks
    masks = object_masks(fmt, rec)
    if masks is None or all(m is None for m in masks):
        return None
    w, h = (int(v) for v in orig)
    sx, sy, px, py = (float(v) for v in transform)
    fitted = (int(round(sx * w)), int(round(sy * h)))
    parts = fit_masks(masks, pixel_bounds(rec.boxes, rec.width, rec.height), (w, h), fitted,
                      (int(round(px)), int(round(py))))
    boxes = np.zeros((len(parts), 4), np.int32)
    runs, counts = [], np.zeros(len(parts), np.int64)
    for j, part in enumerate(parts):
        if part is None:
            continue
        boxes[j] = part[0]
        r = mask_runs(part[1])
        runs.append(r)
        counts[j] = len(r)
    return boxes, (np.concatenate(runs) if runs else np.zeros(0, np.int64)), counts


def mask_runs(mask: np.ndarray) -> np.ndarray:
    """A bool mask as run lengths over its pixels in row-major order, starting with a run of 0s (``[0, ...]`` when
    the first pixel is set); an empty mask is one run of no pixels (``[0]``).  The inverse:
    :func:`dsprep.pack.reader.decode_runs`."""
    flat = np.asarray(mask, bool).ravel()
    if flat.size == 0:
        return np.zeros(1, np.int64)
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    runs = np.diff(edges)
    return np.concatenate([[0], runs]) if flat[0] else runs
