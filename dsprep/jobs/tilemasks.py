"""VOC mask files cut with the tiles (``tile``, ``tile-dota``): ``SegmentationClass/<id>.png`` (class indices) and
``SegmentationObject/<id>.png`` (instance ids) of a source image, cut by each tile's window into
``SegmentationClass/<tile>.png`` and ``SegmentationObject/<tile>.png``, and the ``ImageSets/Segmentation`` lists.

* The maps are cut exactly as the image (same window; ``--pad`` pads them with 0, background) and resized by
  nearest neighbour at a ``--rate`` other than 1 (:func:`dsprep.ops.maskcut.rate_index`).  Values are kept: class
  indices unchanged; instance ids renumbered per tile so that the tile's object ``j`` (its ``j``-th object as
  written) is instance ``j + 1``, VOC's convention (:mod:`dsprep.formats.vocmasks` reads masks that way), other
  instances in the tile following in their source order; 0 and 255 (void) stay.
* Which instance is which object in the source is decided as :func:`dsprep.dataset.object_masks` decides it
  (:func:`dsprep.formats.vocmasks.match_instances`), so a tile's object masks are its source object's mask cut.
* The files are written with the source file's own palette (the VOC colour map where it has none).
* A mask PNG cannot be read by windows: for images read window by window (tiled TIFFs), each job decodes the whole
  mask (one byte per pixel, and the instance matching's work arrays) and keeps its band.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core import ParseError

OBJECTS, CLASSES, LISTS = "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"


@dataclass(frozen=True)
class MaskFiles:
    """The mask files of one source image, and what deciding its instances needs: the annotated grid ``size``
    (W, H; the masks must have it, or the stored grid of a photo whose EXIF rotation was applied), and every object
    of the image (``boxes`` in its pixels, ``names``), or None when the job's own objects are complete."""

    objects: Optional[str]
    classes: Optional[str]
    labelmap: Optional[str]
    root: str
    stem: str
    size: Tuple[int, int]
    exif: int = 1
    orient: bool = False
    boxes: Optional[np.ndarray] = None
    names: Optional[Tuple[str, ...]] = None
    annotation: Optional[str] = None  # the source's annotation file, and its format (to count what a tile's
    fmt: Optional[str] = None         # segmentations cannot carry: the format's ``mask_leftovers``)


def find_mask_files(root: Path, stem: str, size: Tuple[int, int], exif: int = 1, orient: bool = False,
                    boxes: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None,
                    annotation: Optional[str] = None, fmt: Optional[str] = None) -> Optional[MaskFiles]:
    """The image's ``SegmentationObject/<stem>.png`` and ``SegmentationClass/<stem>.png`` under ``root`` (None when
    it has neither)."""
    obj, cls = root / OBJECTS / f"{stem}.png", root / CLASSES / f"{stem}.png"
    if not obj.is_file() and not cls.is_file():
        return None
    labelmap = root / "labelmap.txt"
    return MaskFiles(str(obj) if obj.is_file() else None, str(cls) if cls.is_file() else None,
                     str(labelmap) if labelmap.is_file() else None, str(root), stem, (int(size[0]), int(size[1])), exif, orient,
                     None if boxes is None else np.asarray(boxes, np.float64).reshape(-1, 4),
                     None if names is None else tuple(names), annotation, fmt)


class TileMasks:
    """One job's mask maps, read once: the source maps resized by ``rate`` and kept over ``region`` (x0, y0, x1, y1
    in the resized image), and the source instance of every object (``ids``)."""

    def __init__(self, files: MaskFiles, rate: float, region: Tuple[int, int, int, int],
                 boxes: np.ndarray, names: Sequence[str]):
        from ..formats.vocmasks import (VOC_CLASSES, instance_table, match_instances, read_labelmap, read_mask_file,
                                        voc_palette)
        from ..geometry import pixel_bounds
        from ..images import check_memory_for
        from ..ops.maskcut import png_palette, rate_index, take
        w, h = files.size
        check_memory_for(w * h * 40, files.objects or files.classes or files.stem, f"a {w}x{h} mask",
                         "to cut masks", "mask PNGs are decoded whole")
        class_names, colors = (read_labelmap(files.labelmap) if files.labelmap else (list(VOC_CLASSES), None))
        maps: List[Optional[np.ndarray]] = []
        palettes: List[np.ndarray] = []
        for path, cols in ((files.objects, None), (files.classes, colors)):
            if path is None:
                maps.append(None)
                palettes.append(voc_palette())
                continue
            m, data = read_mask_file(path, files.size, files.exif, files.orient, cols)
            maps.append(m)
            pal = png_palette(data)
            if pal is None:
                pal = voc_palette()
                if cols is not None:
                    pal[:len(cols)] = cols[:256]
            palettes.append(pal)
        instance, classes = maps
        self.source = files
        self.palettes = palettes
        index = {n: i for i, n in enumerate(class_names)}
        self.ids = np.zeros(len(names), np.int64)
        self.bounds = pixel_bounds(np.asarray(boxes, np.float64).reshape(-1, 4), w, h)
        if instance is not None and len(names):
            object_class = np.array([index.get(n, -1) for n in names], np.int64)
            self.ids = match_instances(*instance_table(instance, classes), self.bounds, object_class)
        x0, y0, x1, y1 = region
        self.origin = (x0, y0)
        # the source pixel of each row and column of the region (nearest neighbour at the rate)
        self.rows, self.cols = rate_index(y0, y1, h, rate), rate_index(x0, x1, w, rate)
        self.instance = None if instance is None else take(instance, self.rows, self.cols)
        self.classes = None if classes is None else take(classes, self.rows, self.cols)

    def window(self, left: int, up: int, size: int, pad: bool) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The tile's ``(instance, classes)`` maps as cut (source ids), padded with 0 to ``size`` with ``pad``."""
        from ..ops.tiling import crop_tile
        ox, oy = self.origin
        out = []
        for m in (self.instance, self.classes):
            out.append(None if m is None else crop_tile(m, left - ox, up - oy, size, pad, 0))
        return out[0], out[1]

    def parts(self, instance: Optional[np.ndarray], left: int, up: int, objects: np.ndarray
              ) -> List[Optional[Tuple[int, int, np.ndarray]]]:
        """Each of the source ``objects``' mask in the tile at ``(left, up)`` whose ``instance`` map (as cut: source
        ids) is given: ``None`` for an object without a mask, else ``(x, y, part)``, ``part`` the bool pixels of its
        instance within its own pixel bounds (the mask :func:`dsprep.dataset.object_masks` gives it in the source),
        at ``(x, y)`` in the tile."""
        ox, oy = self.origin
        cols = self.cols[max(left - ox, 0):max(left - ox, 0) + (0 if instance is None else instance.shape[1])]
        rows = self.rows[max(up - oy, 0):max(up - oy, 0) + (0 if instance is None else instance.shape[0])]
        out: List[Optional[Tuple[int, int, np.ndarray]]] = []
        for k in np.asarray(objects, np.int64).tolist():
            i = int(self.ids[k])
            if i == 0 or instance is None:
                out.append(None)
                continue
            x0, y0, x1, y1 = self.bounds[k].tolist()
            c0, c1 = np.searchsorted(cols, [x0, x1]).tolist()
            r0, r1 = np.searchsorted(rows, [y0, y1]).tolist()
            out.append((c0, r0, instance[r0:r1, c0:c1] == i))
        return out

    @staticmethod
    def present(parts) -> np.ndarray:
        """``(k,) bool``: which objects have some of their mask in the tile (objects without a mask: True)."""
        return np.array([p is None or bool(p[2].any()) for p in parts], bool)

    @staticmethod
    def boxes(parts) -> np.ndarray:
        """``(k, 4)``: the box of each object's mask pixels in the tile (NaN: no mask, or none there)."""
        from ..ops.maskcut import pixel_box
        out = np.full((len(parts), 4), np.nan)
        for j, p in enumerate(parts):
            if p is not None:
                out[j] = pixel_box(p[2]) + [p[0], p[1], p[0], p[1]]
        return out

    @staticmethod
    def segmentations(parts, shape: Tuple[int, int]) -> List:
        """Each object's mask as a COCO segmentation of the tile of ``shape`` (H, W) (``[]`` without a mask), as
        ``convert`` writes VOC masks for formats that keep segmentations rather than mask files: its exact outline
        when it is one part without holes, else a compressed RLE (:func:`dsprep.formats.shapes.mask_segmentation`)."""
        from ..formats.shapes import mask_segmentation
        h, w = shape
        return [[] if p is None else mask_segmentation(p[2], p[0], p[1], w, h)[0] for p in parts]

    def leftovers(self) -> Dict[str, int]:
        """What the source image's mask files hold beyond its objects' masks (its format's ``mask_leftovers``:
        instances no object matches, masks reaching outside their boxes, the void band), lost when the tiles'
        masks become segmentations."""
        from ..core import ImageRecord
        from ..formats import format_spec
        f = self.source
        spec = format_spec(f.fmt) if f.fmt else None
        if spec is None or spec.mask_leftovers is None or f.annotation is None or f.boxes is None:
            return {}
        rec = ImageRecord(f.annotation, f.size[0], f.size[1], boxes=f.boxes, names=list(f.names or ()),
                          meta={"annotation_path": f.annotation, "stem": f.stem, "orient": f.orient, "exif": f.exif})
        return dict(spec.mask_leftovers(rec))

    def files(self, name: str, instance: Optional[np.ndarray], classes: Optional[np.ndarray], objects: np.ndarray
              ) -> Dict[str, bytes]:
        """``{relative path: PNG bytes}`` of one tile: its maps, instances renumbered for its ``objects`` (source
        indices, in the tile's object order)."""
        from ..formats.vocmasks import encode_palette_png
        from ..ops.maskcut import tile_instance_lut
        from ..outputs import safe_name
        stem = safe_name(name)
        out = {}
        if instance is not None:
            present = np.bincount(instance.ravel(), minlength=256) > 0
            lut = tile_instance_lut(present, self.ids[np.asarray(objects, np.int64)])
            out[f"{OBJECTS}/{stem}.png"] = encode_palette_png(lut[instance], self.palettes[0])
        if classes is not None:
            out[f"{CLASSES}/{stem}.png"] = encode_palette_png(classes, self.palettes[1])
        return out


def mask_dataset_files(written: Sequence[Tuple[str, str, str]]) -> Dict[str, bytes]:
    """The data-set files of the tiles' mask files: ``ImageSets/Segmentation/<split>.txt`` and the source's
    ``labelmap.txt`` (what its class values are).  ``written`` lists ``(source root, source stem, tile name)`` for
    every tile whose masks were written; each tile goes into every list of its root's ``ImageSets/Segmentation``
    naming its source image (tiles in name order)."""
    from ..outputs import safe_name
    from ..splits import list_files, membership, read_lists
    member: Dict[str, Dict[str, List[str]]] = {}
    lists: Dict[str, List[str]] = {}
    for root, stem, tile in sorted(written, key=lambda t: t[2]):
        if root not in member:
            member[root] = membership(read_lists(Path(root) / LISTS))
        for split in member[root].get(stem, ()):
            lists.setdefault(split, []).append(safe_name(tile))
    out = list_files(lists, LISTS) if lists else {}
    for root in sorted(member):
        labelmap = Path(root) / "labelmap.txt"
        if labelmap.is_file():
            try:
                out["labelmap.txt"] = labelmap.read_bytes()
            except OSError as e:
                raise ParseError(f"{labelmap}: cannot read ({e.strerror or e})") from e
            break
    return out
