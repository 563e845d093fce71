"""``dsprep colorize``: index maps (a network's argmax saved as an 8-bit PNG, or a ``.npy`` array) written as
palette PNGs with the VOC colour map: the same pixel values, now coloured in every viewer, as VOC's own
SegmentationClass files are (what FCN's write-up does by hand with PIL's ``putpalette``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..core import DatasetError, ParseError

EXTS = (".png", ".npy")


@dataclass(frozen=True)
class ColorizeOptions:
    out: str
    n_classes: Optional[int] = None  # values must be below it (or 255, void); None: any 8-bit value


def index_files(inputs) -> List[Tuple[str, str]]:
    """``(source, relative output name)`` for every index map under the inputs (files or folders, recursively),
    in name order; the output is always ``<relative stem>.png``."""
    pairs = []
    for given in inputs:
        p = Path(given)
        if p.is_file():
            pairs.append((str(p), Path(p.name).with_suffix(".png").as_posix()))
        elif p.is_dir():
            for dirpath, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(EXTS) and not name.startswith("."):
                        src = Path(dirpath) / name
                        pairs.append((str(src), src.relative_to(p).with_suffix(".png").as_posix()))
        else:
            raise DatasetError(f"{given}: no such file or folder")
    if not pairs:
        raise DatasetError(f"{', '.join(map(str, inputs))}: no index maps (.png or .npy)")
    names = [rel for _, rel in pairs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DatasetError(f"two inputs would both be written as {dup} (a .png and a .npy of one name?)")
    return pairs


def read_index_map(path: str) -> np.ndarray:
    """``(H, W) uint8`` class indices from an index PNG (grey or palette: the stored values) or a 2-D integer
    ``.npy`` (values 0..255; the file is read without pickles)."""
    from ..inputs import read_bytes
    from ..formats.vocmasks import mask_indices
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ParseError(f"{path}: not a readable .npy array ({e})") from e
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2 or arr.dtype.kind not in "iub":
            raise ParseError(f"{path}: expected a 2-D integer array of class indices, got {arr.dtype} {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ParseError(f"{path}: value {int(arr.max() if arr.max() > 255 else arr.min())} does not fit an "
                             f"8-bit index map")
        return arr.astype(np.uint8)
    return mask_indices(read_bytes(path), path)


def colorize_one(item) -> dict:
    """Write one index map as a VOC palette PNG (through the one output path)."""
    from ..outputs import atomic_write_bytes
    from ..formats.vocmasks import encode_palette_png, voc_palette
    src, rel, opts = item
    index = read_index_map(src)
    if opts.n_classes is not None:
        bad = (index >= opts.n_classes) & (index != 255)
        if bad.any():
            y, x = np.argwhere(bad)[0]
            raise ParseError(f"{src}: pixel ({x}, {y}) has value {index[y, x]}, beyond the {opts.n_classes} classes "
                             f"given (0..{opts.n_classes - 1}, 255 void)")
    target = Path(opts.out) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, encode_palette_png(index, voc_palette()))
    return {"images": 1}
