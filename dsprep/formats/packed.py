"""The packed files dsprep writes (``voc-to-h5``, ``voc-to-pickle``) read back as a data set (``info``, ``visualize``,
``eval``): every split, records in stored-image pixels, each image read from the file (:class:`dsprep.pack.reader.DetectionH5`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..core import Dataset, DatasetError, ImageRecord
from .spec import FormatSpec, Holds, ReadContext

LAYOUT = "packed: a .h5/.pkl file"
NAME = "h5"
PACKED_SUFFIXES = (".h5", ".hdf5", ".pkl", ".pickle")


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PACKED_SUFFIXES


def load(path: Path, split: Optional[str], ctx: Optional[ReadContext] = None) -> Dataset:
    """A packed file as a :class:`~dsprep.core.Dataset` for info/visualize: every split (records carry
    ``rec.split``, and each record's image is read from its own split), or only ``split`` (``--split``).
    Records are in stored-image pixels, with polygons when the file has them."""
    import cv2

    from ..pack.reader import DetectionH5
    readers = DetectionH5.open_splits(path)
    if split is not None:
        if split not in readers:
            raise DatasetError(f"{path}: no split '{split}' in this packed file (--split: choose one of "
                               f"{', '.join(readers)})")
        readers = {split: readers[split]}
    records = []
    for name, reader in readers.items():
        for i in range(len(reader)):
            a = reader.annotations(i)
            if reader.size:
                w, h = reader.size
            else:
                w, h = (int(v) for v in a["orig_size"])
            polygons = a["polygons"].astype(np.float64) if "polygons" in a else None
            rec = ImageRecord(a["filename"], w, h, boxes=a["boxes"].astype(np.float64),
                              names=[reader.classes[k] for k in a["labels"]],
                              difficult=a["difficult"].astype(np.uint8), polygons=polygons, split=name,
                              meta={"stem": os.path.splitext(a["filename"])[0], "index": i, "group": name})
            own = reader.image_splits[i] if reader.image_splits is not None else ""
            if own:  # the image's own splits, as the source data set had them
                from ..splits import set_splits
                set_splits(rec, own.split(","))
            records.append(rec)
    first = next(iter(readers.values()))
    ds = Dataset(Path(path), "pickle" if first.is_pickle else NAME, records, classes=list(first.classes))
    ds.image_getter = lambda rec: cv2.cvtColor(readers[rec.meta["group"]].image(rec.meta["index"]),
                                               cv2.COLOR_RGB2BGR)
    return ds


FORMAT = FormatSpec(NAME, LAYOUT, detect, load, image_files=False,
                    holds=Holds(boxes=True, quads=True, difficult=True, splits=True, image_size=True))
