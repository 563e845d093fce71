"""Per-image work of ``synth``: make synthetic image ``index`` and write it with its annotation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..images import read_image, write_image


@dataclass(frozen=True)
class SynthConfig:
    """Everything a synth worker needs besides the image index (file lists are sorted: deterministic)."""

    out: str
    backgrounds: Tuple[str, ...]
    sidecars: Tuple[Optional[str], ...]               # each background's blanked-regions file, or None
    objects: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (class, object files)
    params: object                                     # synth.SynthParams
    seed: int
    oriented: bool = False                             # the format holds quads: objects get their rotated rectangle
    ext: str = ".jpg"
    mask_from: str = "auto"
    masks: bool = False
    color: Optional[str] = None
    jpeg_quality: int = 95
    prefix: str = "synth_"
    orient: bool = True  # apply EXIF orientation of backgrounds and crops (--exif auto/apply)
    writer: Optional[object] = None  # the format's FormatWriter (where files go, what they hold)
    split: str = "train"             # the split the images belong to (--split-name)


_SPRITES: dict = {}
_SPRITE_BYTES = [0]
SPRITE_CACHE_BYTES = 512 << 20  # per worker process
SPRITE_BYTES_PER_PIXEL = 4 * (1 + 4)  # BGR + alpha, and up to 4 feathered premultiplied BGRA variants


def _sprite(path: str, mask_from: str, orient: bool = True):
    """Object crops are decoded once per worker process (a cache bounded in memory, emptied when full: what it holds
    never changes what is made, only how fast)."""
    from ..ops.synth import sprite_from_image
    key = (path, mask_from, orient)
    sp = _SPRITES.get(key)
    if sp is None:
        try:
            sp = sprite_from_image(read_image(path, "unchanged", orient=orient), mask_from, path)
        except ValueError as e:
            from ..core import ImageError
            raise ImageError(str(e)) from e
        size = sp.alpha.size * SPRITE_BYTES_PER_PIXEL
        if len(_SPRITES) >= 4096 or _SPRITE_BYTES[0] + size > SPRITE_CACHE_BYTES:
            _SPRITES.clear()
            _SPRITE_BYTES[0] = 0
        _SPRITES[key] = sp
        _SPRITE_BYTES[0] += size
    return sp


def synth_name(cfg: SynthConfig, index: int) -> str:
    return f"{cfg.prefix}{index:06d}"


def synth_one(args) -> dict:
    """Make and write synthetic image ``index``; its generator is seeded by ``(seed, index)``, so the output does
    not depend on which worker makes it or in which order."""
    from ..core import ImageRecord
    from ..outputs import atomic_write_bytes
    from ..ops.synth import synthesize
    from ..formats.vocmasks import encode_palette_png, voc_palette
    index, cfg = args
    rng = np.random.default_rng([cfg.seed, index])
    bg_index = int(rng.integers(len(cfg.backgrounds)))
    bg_path = cfg.backgrounds[bg_index]
    background = read_image(bg_path, orient=cfg.orient)
    keepout = None
    if cfg.sidecars[bg_index] is not None and cfg.params.avoid_blanked:
        from ..ops.inpaint import read_keepout
        keepout = read_keepout(cfg.sidecars[bg_index], (background.shape[1], background.shape[0]), bg_path)
    if cfg.color:
        from ..ops.color import correct
        background, _ = correct(background, cfg.color)
    files = dict(cfg.objects)
    classes = [c for c, _ in cfg.objects]

    def pick(cls, r):
        paths = files[cls]
        return _sprite(paths[int(r.integers(len(paths)))], cfg.mask_from, cfg.orient)

    res = synthesize(background, pick, classes, cfg.params, rng, masks=cfg.masks, reuse_background=True,
                     keepout=keepout)
    name = synth_name(cfg, index)
    out = Path(cfg.out)
    h, w = res.image.shape[:2]
    # trusted: the arrays are built here with the model's shapes and dtypes (the checks cost more than the XML)
    rec = ImageRecord.trusted(f"{name}{cfg.ext}", w, h, 3, res.boxes, res.names, np.zeros(len(res.names), np.uint8),
                              res.truncated, polygons=res.quads if cfg.oriented else None, split=cfg.split,
                              meta={"stem": name})
    image = out / cfg.writer.image_path(rec)
    image.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, res.image, jpeg_quality=cfg.jpeg_quality)
    files, _ = cfg.writer.record_files(rec)
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / rel, data)
    rec.image_path = str(image)
    if cfg.masks and res.instance is not None:
        pal = voc_palette()
        cls_index = {c: i + 1 for i, c in enumerate(classes)}
        lut = np.zeros(256, np.uint8)
        lut[255] = 255  # void: objects pasted but too hidden to annotate
        for k, n in enumerate(res.names):
            lut[min(k + 1, 254)] = cls_index[n]
        atomic_write_bytes(out / "SegmentationObject" / f"{name}.png", encode_palette_png(res.instance, pal))
        atomic_write_bytes(out / "SegmentationClass" / f"{name}.png", encode_palette_png(lut[res.instance], pal))
    return {"images": 1, "objects": len(res.names), "truncated": int(np.count_nonzero(res.truncated)),
            "hidden": res.hidden, "dropped_too_large": res.dropped_too_large,
            "dropped_no_room": res.dropped_no_room, "name": name, "record": rec}
