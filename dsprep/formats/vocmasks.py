"""VOC object masks: SegmentationObject/ (instance ids) + SegmentationClass/ (class indices), for `crop` silhouettes,
and palette PNGs written as VOC writes them (`synth --masks`).

VOC stores both as 8-bit palette PNGs: the pixel *values* are the ids (0 background, 255 "void": object borders
and ignored regions), the palette only colours them.  Decoders that expand the palette (OpenCV does) lose the
values, so :func:`mask_indices` rewrites the file's palette as the identity (entry i = grey i) before decoding it
with the one decoder: every filter, bit depth and interlacing libpng reads comes back as exact indices.  Masks saved
as RGB (some converters do) are mapped back through the VOC colour map (or ``labelmap.txt``'s colours).

Instance k + 1 is object k of the XML (VOC's convention).  Tools that wrote masks apart from the boxes break it
(labelme's VOC export numbers its own polygons), so every pairing is checked: the instance's class (the majority of
SegmentationClass under it) must be the object's, and the instance's tight box must overlap the object's box with
IoU >= 0.5.  Objects whose conventional instance fails the check take the best unclaimed instance that passes it;
objects with none get no mask (``None``).

Orientation: a mask describes the pixel grid the boxes refer to (the annotation's <size>).  When the photo's EXIF
rotation was applied (``rec.meta["orient"]``) and the mask has the *stored* grid's size instead, it is turned the
same way; a mask matching neither grid is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..pngenc import chunk as _chunk  # the one PNG chunk writer
from ..core import ImageRecord, ParseError


VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
MASK_IOU = 0.5


def png_chunks(data: bytes, name: str) -> List[Tuple[bytes, bytes]]:
    """A PNG file's ``(type, body)`` chunks up to ``IEND`` (``ParseError`` naming ``name`` when it is not a PNG)."""
    import struct
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ParseError(f"{name}: not a PNG file (masks must be PNG)")
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not out or out[0][0] != b"IHDR" or len(out[0][1]) != 13:
        raise ParseError(f"{name}: PNG without a valid IHDR chunk")
    return out


def mask_indices(data: bytes, name: str = "<mask>", colors: Optional[np.ndarray] = None) -> np.ndarray:
    """The ``(H, W) uint8`` index values of a mask PNG (stored orientation: masks carry no EXIF rotation).

    Palette and grey PNGs give their stored values (the palette is replaced by the identity before decoding, see
    above).  RGB(A) PNGs are mapped through ``colors`` (``(K, 3)`` RGB, index = row; default: the VOC colour map);
    a colour that is not in it is a :class:`ParseError`.
    """
    import struct
    from ..images import decode_image
    chunks = png_chunks(data, name)
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if ctype in (0, 3):  # grey or palette: same packing of 1/2/4/8-bit samples
        if depth > 8:
            raise ParseError(f"{name}: {depth}-bit mask; VOC masks hold 8-bit indices")
        if depth == 8:  # 8-bit indices are laid out as 8-bit grey samples: decode them as grey, one channel
            ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, comp, filt, interlace)
            body = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                    + b"".join(_chunk(k, v) for k, v in chunks if k == b"IDAT") + _chunk(b"IEND", b""))
            return np.ascontiguousarray(decode_image(np.frombuffer(body, np.uint8), name, "unchanged", orient=False))
        ihdr = struct.pack(">IIBBBBB", w, h, depth, 3, comp, filt, interlace)
        n = 1 << depth
        ramp = np.repeat(np.arange(n, dtype=np.uint8), 3).tobytes()
        body = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", ramp)
                + b"".join(_chunk(k, v) for k, v in chunks if k == b"IDAT") + _chunk(b"IEND", b""))
        return np.ascontiguousarray(decode_image(np.frombuffer(body, np.uint8), name, "color", orient=False)[:, :, 0])
    if ctype in (2, 6):
        bgr = decode_image(np.frombuffer(data, np.uint8), name, "color", orient=False)
        if colors is None:
            colors = voc_palette()
        return colors_to_indices(bgr[:, :, ::-1], colors, name)
    raise ParseError(f"{name}: PNG colour type {ctype} is not a mask (palette, grey or RGB expected)")


def colors_to_indices(rgb: np.ndarray, colors: np.ndarray, name: str = "<mask>") -> np.ndarray:
    """``(H, W, 3)`` RGB pixels -> ``(H, W) uint8`` row of ``colors`` holding each colour (first row on ties)."""
    colors = np.asarray(colors, np.int64).reshape(-1, 3)[:256]
    keys = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    px = rgb.astype(np.int64)
    pk = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
    pos = np.clip(np.searchsorted(sorted_keys, pk), 0, len(sorted_keys) - 1)
    bad = sorted_keys[pos] != pk
    if bad.any():
        y, x = np.argwhere(bad)[0]
        r, g, b = rgb[y, x]
        raise ParseError(f"{name}: pixel ({x}, {y}) has colour ({r}, {g}, {b}), which is no class or instance "
                         f"colour of the palette")
    return order[pos].astype(np.uint8)


def read_labelmap(path) -> Tuple[List[str], np.ndarray]:
    """A ``labelmap.txt`` (``name:r,g,b:parts:actions`` per line, ``#`` comments): class names in index order and
    their ``(K, 3)`` RGB colours."""
    names, colors = [], []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"{path}: cannot read label map ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        fields = s.split(":")
        try:
            rgb = [int(v) for v in fields[1].split(",")] if len(fields) > 1 and fields[1].strip() else None
            if rgb is not None and (len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb)):
                raise ValueError
        except ValueError as e:
            raise ParseError(f"{path}:{lineno}: cannot parse the colour '{fields[1]}' (expected r,g,b)") from e
        names.append(fields[0].strip())
        colors.append(rgb)
    pal = voc_palette()
    return names, np.array([c if c is not None else pal[i] for i, c in enumerate(colors)], np.uint8).reshape(-1, 3)


def instance_table(instance: np.ndarray, classes: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every instance id 0..255 of an instance mask: ``(count (256,), box (256, 4) x0 y0 x1 y1 exclusive,
    class (256,))`` where class is the most frequent value of ``classes`` under the instance other than 0 and 255
    (-1 when none or no class mask).  Ids 0 and 255 (background, void) have count 0."""
    inst = np.asarray(instance, np.uint8)
    h, w = inst.shape
    flat = inst.astype(np.int64)
    count = np.bincount(flat.ravel(), minlength=256)
    count[[0, 255]] = 0
    rows = np.bincount((flat * h + np.arange(h)[:, None]).ravel(), minlength=256 * h).reshape(256, h) > 0
    cols = np.bincount((flat * w + np.arange(w)[None, :]).ravel(), minlength=256 * w).reshape(256, w) > 0
    box = np.zeros((256, 4), np.int64)
    present = count > 0
    box[:, 0] = np.argmax(cols, axis=1)
    box[:, 2] = w - np.argmax(cols[:, ::-1], axis=1)
    box[:, 1] = np.argmax(rows, axis=1)
    box[:, 3] = h - np.argmax(rows[:, ::-1], axis=1)
    box[~present] = 0
    cls = np.full(256, -1, np.int64)
    if classes is not None:
        joint = np.bincount((flat * 256 + np.asarray(classes, np.int64)).ravel(), minlength=65536).reshape(256, 256)
        joint[:, [0, 255]] = 0
        has = joint.sum(axis=1) > 0
        cls[has] = np.argmax(joint[has], axis=1)
    cls[~present] = -1
    return count, box, cls


def match_instances(count: np.ndarray, box: np.ndarray, inst_class: np.ndarray, bounds: np.ndarray,
                    object_class: np.ndarray, min_iou: float = MASK_IOU) -> np.ndarray:
    """The instance id of each object (0: none), from :func:`instance_table`'s output, the objects' integer pixel
    ``bounds`` ``(N, 4)`` and class indices ``object_class`` ``(N,)`` (-1: unknown name, class not checked).

    Object k takes instance k + 1 when it passes the check (same class where both are known, box IoU >= min_iou);
    the others take, best IoU first, an unclaimed instance that passes it."""
    n = len(bounds)
    b = np.asarray(bounds, np.float64).reshape(-1, 4)
    ib = box.astype(np.float64)
    iw = np.clip(np.minimum(b[:, None, 2], ib[None, :, 2]) - np.maximum(b[:, None, 0], ib[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], ib[None, :, 3]) - np.maximum(b[:, None, 1], ib[None, :, 1]), 0, None)
    inter = iw * ih
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[:, None]
    area_i = ((ib[:, 2] - ib[:, 0]) * (ib[:, 3] - ib[:, 1]))[None, :]
    iou = inter / np.maximum(area_b + area_i - inter, 1e-9)
    oc = np.asarray(object_class, np.int64).reshape(-1, 1)
    same = (oc < 0) | (inst_class[None, :] < 0) | (inst_class[None, :] == oc)
    ok = same & (iou >= min_iou) & (count[None, :] > 0)
    result = np.zeros(n, np.int64)
    conventional = np.arange(1, n + 1)
    fits = conventional < 255
    fits[fits] = ok[np.flatnonzero(fits), conventional[fits]]
    result[fits] = conventional[fits]
    claimed = np.zeros(256, bool)
    claimed[result[result > 0]] = True
    score = np.where(ok, iou, -1.0)
    score[result > 0] = -1.0
    score[:, claimed] = -1.0
    while True:  # greedy assignment, best pair first (one step per matched object)
        k, i = np.unravel_index(np.argmax(score), score.shape) if score.size else (0, 0)
        if score.size == 0 or score[k, i] < 0:
            break
        result[k] = i
        score[k, :] = -1.0
        score[:, i] = -1.0
    return result


def _mask_root(rec: ImageRecord) -> Optional[Path]:
    ann = rec.meta.get("annotation_path")
    return Path(ann).parent.parent if ann else None


def read_mask_file(path, size: Tuple[int, int], exif: int = 1, orient: bool = False,
                   colors: Optional[np.ndarray] = None) -> Tuple[np.ndarray, bytes]:
    """One mask PNG's ``(H, W) uint8`` values (:func:`mask_indices`) and its bytes, checked against the annotated
    grid ``size`` (W, H): a mask of the stored grid of a photo whose EXIF rotation was applied (``orient``) is
    turned as the photo is; any other size is a :class:`ParseError`."""
    from ..images import apply_orientation
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
    m = mask_indices(data, str(path), colors)
    h, w = m.shape
    if (w, h) != tuple(size):
        if orient and exif in (5, 6, 7, 8) and (h, w) == tuple(size):
            m = apply_orientation(m, exif)  # the stored grid of a photo whose rotation was applied
        else:
            raise ParseError(f"{path}: the mask is {w}x{h}, the image's boxes refer to {size[0]}x{size[1]}")
    return m, data


def _matched(rec: ImageRecord):
    """``(instance map, class map or None, each object's instance id (0: none), pixel bounds)`` of the record's
    ``SegmentationObject/<id>.png`` (and ``SegmentationClass/<id>.png``), or None when it has none."""
    from ..geometry import pixel_bounds
    root = _mask_root(rec)
    if root is None or len(rec) == 0:
        return None
    obj_path = root / "SegmentationObject" / f"{rec.stem}.png"
    if not obj_path.is_file():
        return None
    cls_path = root / "SegmentationClass" / f"{rec.stem}.png"
    names, colors = (read_labelmap(root / "labelmap.txt") if (root / "labelmap.txt").is_file()
                     else (list(VOC_CLASSES), None))
    size, exif, orient = (rec.width, rec.height), rec.meta.get("exif", 1), bool(rec.meta.get("orient"))
    maps: List[Optional[np.ndarray]] = [
        read_mask_file(path, size, exif, orient, colors if path == cls_path else None)[0] if path.is_file() else None
        for path in (obj_path, cls_path)]
    instance, classes = maps
    assert instance is not None  # obj_path is a file (checked above)
    index = {n: i for i, n in enumerate(names)}
    object_class = np.array([index.get(n, -1) for n in rec.names], np.int64)
    bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
    ids = match_instances(*instance_table(instance, classes), bounds, object_class)
    return instance, classes, ids, bounds


def object_masks(rec: ImageRecord) -> Optional[List[Optional[np.ndarray]]]:
    """The VOC format's answer to :func:`dsprep.dataset.object_masks`: each object's bool mask over its pixel
    bounds (``None`` for objects without a matching instance), or ``None`` when the image has no
    ``SegmentationObject/<id>.png``."""
    found = _matched(rec)
    if found is None:
        return None
    instance, _, ids, bounds = found
    return [None if i == 0 else np.ascontiguousarray(instance[y0:y1, x0:x1] == i)
            for i, (x0, y0, x1, y1) in zip(ids.tolist(), bounds.tolist())]


def mask_leftovers(rec: ImageRecord) -> dict:
    """What the record's VOC masks hold beyond its objects' masks (the format's ``mask_leftovers``): instances no
    object of the XML matches (``mask_instance_without_object``: labelme's VOC export paints every polygon, not
    only the annotated objects), objects whose instance reaches outside their box (``mask_cut_to_box``: an
    object's mask is cut to its box) and the void band (``mask_void_dropped``: 1 for an image with 255 pixels).
    ``{}`` for an image without masks."""
    found = _matched(rec)
    if found is None:
        return {}
    instance, classes, ids, bounds = found
    count = np.bincount(instance.ravel(), minlength=256)
    present = np.flatnonzero(count[1:255]) + 1
    inside = [int(np.count_nonzero(instance[y0:y1, x0:x1] == i)) if i else 0   # (one step per object)
              for i, (x0, y0, x1, y1) in zip(ids.tolist(), bounds.tolist())]
    out = {"mask_instance_without_object": int(len(np.setdiff1d(present, ids[ids > 0]))),
           "mask_cut_to_box": int(sum(1 for i, n in zip(ids.tolist(), inside) if i and count[i] > n)),
           "mask_void_dropped": int(count[255] > 0 or (classes is not None and bool((classes == 255).any())))}
    return {k: v for k, v in out.items() if v}


# ---- writing: palette PNGs as VOC's masks are -------------------------------------------------------------

def voc_palette() -> np.ndarray:
    """The standard PASCAL VOC colour map (256 x 3 RGB): bit j of the index's three-bit groups sets bit 7-j."""
    idx = np.arange(256)
    pal = np.zeros((256, 3), np.int64)
    for j in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * j + ch)) & 1) << (7 - j)
    return pal.astype(np.uint8)


def encode_palette_png(index: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette ('P' mode) PNG, as VOC's SegmentationClass/SegmentationObject files are (OpenCV cannot
    write these): :func:`dsprep.pngenc.encode_png`."""
    from ..pngenc import encode_png
    return encode_png(np.ascontiguousarray(index, np.uint8), palette=palette)


# ---- writing a record's objects as VOC masks ----------------------------------------------------------------------

# The order objects are painted in where they overlap: larger first (by mask pixels), so a smaller object lying on a
# larger one stays visible; equal areas in object order (the later on top).
PAINT_ORDER = "larger area first, smaller on top (equal areas: object order, the later on top)"


def top_masks(masks, height: int, width: int) -> np.ndarray:
    """``(height, width) int64``: at each pixel the mask of ``masks`` (a :class:`dsprep.rle.MaskSet` over this
    image, one mask per object) painted last in :data:`PAINT_ORDER` among those covering it, -1 where none does."""
    n = len(masks)
    flat = np.full(int(height) * int(width), -1, np.int64)
    lengths = masks.end - masks.start
    total = int(lengths.sum())
    if n == 0 or total == 0:
        return flat.reshape(int(width), int(height)).T
    area = masks.area
    rank = np.empty(n, np.int64)
    rank[np.lexsort((np.arange(n), -area))] = np.arange(n)
    owner = np.repeat(np.repeat(np.arange(n), np.diff(masks.first)), lengths)
    offset = np.repeat(masks.start - (np.cumsum(lengths) - lengths), lengths)
    pixel = offset + np.arange(total)                         # flat column-major index of every covered pixel
    order = np.lexsort((-rank[owner], pixel))                 # per pixel, the top mask first
    pixel, owner = pixel[order], owner[order]
    first = np.r_[True, pixel[1:] != pixel[:-1]]
    flat[pixel[first]] = owner[first]
    return flat.reshape(int(width), int(height)).T


def object_index_maps(segs: Sequence, class_index: np.ndarray, width: int, height: int
                      ) -> Optional[Tuple[np.ndarray, np.ndarray, Dict[str, int]]]:
    """A record's objects as VOC's two index maps: ``(SegmentationObject, SegmentationClass, lossy)``, ``(H, W)
    uint8`` each, or None when no object has a shape.

    ``segs``: each object's COCO segmentation in pixel coordinates (polygon rings, an RLE mask of the image's size,
    or None / ``[]`` for a box-only object, which is not painted); ``class_index``: each object's class value (its
    position in the class list + 1).  Polygons are rasterized exactly as pycocotools rasterizes them
    (:func:`dsprep.rle.from_polygons`), so the masks are those a COCO reader sees.  Object k is instance k + 1;
    where objects overlap, :data:`PAINT_ORDER` decides.  What 8-bit indices cannot hold (255 is void) is counted:
    objects past the 254th (``mask_instance_over_254``: not in SegmentationObject) and class values over 254
    (``mask_class_over_254``: not in SegmentationClass).  ``ValueError`` for a segmentation that cannot be used."""
    from .. import rle
    from .shapes import is_rle, rings, rle_counts, check_rle
    n = len(segs)
    ring_list: List[np.ndarray] = []
    ring_owner: List[int] = []
    rle_objs: List[int] = []
    rle_runs: List[np.ndarray] = []
    for k, seg in enumerate(segs):  # (one step per object: sorting out which kind of shape it has)
        if not seg:
            continue
        if is_rle(seg):
            check_rle(seg, (int(width), int(height)))
            rle_objs.append(k)
            rle_runs.append(rle_counts(seg))
            continue
        rs = rings(seg)
        ring_list += rs
        ring_owner += [k] * len(rs)
    if not ring_list and not rle_objs:
        return None
    poly_objs = sorted(set(ring_owner))
    local = {k: i for i, k in enumerate(poly_objs)}
    parts = []
    if poly_objs:
        parts.append(rle.from_polygons(ring_list, [local[k] for k in ring_owner], [height] * len(poly_objs),
                                       [width] * len(poly_objs)))
    if rle_objs:
        first = np.r_[0, np.cumsum([len(r) for r in rle_runs])]
        parts.append(rle.from_counts(np.concatenate(rle_runs), first, [height] * len(rle_objs),
                                     [width] * len(rle_objs)))
    owners = np.array(poly_objs + rle_objs, np.int64)
    top = top_masks(rle.concat(parts), height, width)
    obj = np.where(top >= 0, owners[np.maximum(top, 0)], -1)  # the object on top at each pixel, -1 background
    lossy: Dict[str, int] = {}
    inst_of = np.r_[np.arange(1, n + 1), 0]                  # (index -1: background)
    over = inst_of > 254
    if over.any():
        lossy["mask_instance_over_254"] = int(len(set(owners.tolist()) & set(np.flatnonzero(over).tolist())))
        inst_of[over] = 0
    cls_of = np.r_[np.asarray(class_index, np.int64).reshape(n), 0]
    bad = cls_of > 254
    if bad.any():
        lossy["mask_class_over_254"] = int(len(set(owners.tolist()) & set(np.flatnonzero(bad).tolist())))
        cls_of[bad] = 0
    return inst_of[obj].astype(np.uint8), cls_of[obj].astype(np.uint8), lossy


def mask_classes(classes: Sequence[str]) -> List[str]:
    """The classes whose position + 1 is each class's value in written SegmentationClass masks: VOC's own 20, in
    VOC's order, when every class of the data set is one of them (so person is 15, as in VOC's masks and every FCN
    write-up, whatever subset of classes the data set holds), else the data set's class list."""
    voc = list(VOC_CLASSES[1:])  # (VOC_CLASSES[0] is the background, value 0)
    return voc if all(c in voc for c in classes) else list(classes)


def labelmap_text(classes: Sequence[str]) -> str:
    """``labelmap.txt`` (CVAT's and Datumaro's VOC export): ``background`` then the classes, the value of each
    being its line number from 0, with its VOC palette colour (:func:`read_labelmap` reads it)."""
    pal = voc_palette()
    names = ["background"] + list(classes)
    return "# label:color_rgb:parts:actions\n" + "".join(
        f"{name}:{','.join(str(int(v)) for v in pal[i % 256])}::\n" for i, name in enumerate(names))
