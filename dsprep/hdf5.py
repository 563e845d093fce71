"""Packed data sets, the public face: :class:`DetectionH5` reads what ``dsprep voc-to-h5`` / ``voc-to-pickle``
write (one split or every split; images as RGB arrays, annotations in the stored image's pixels).

    from dsprep.hdf5 import DetectionH5
    data = DetectionH5("voc.h5", split="train")
    sample = data[0]              # {"image": (H, W, 3) uint8 RGB, "boxes", "labels", "difficult", "filename", ...}

Writing: :class:`PackOptions`, :class:`H5Writer`, :class:`PickleWriter` (and :func:`dsprep.pack.run.pack_dataset` for
a whole run on the executor).  The file layout and the implementation are in :mod:`dsprep.pack`.
"""
from .pack.prepare import PackOptions
from .pack.reader import ARRAY_NAMES, FORMAT, VERSION, DetectionH5
from .pack.writers import H5Writer, PickleWriter

__all__ = ["ARRAY_NAMES", "DetectionH5", "FORMAT", "H5Writer", "PackOptions", "PickleWriter", "VERSION"]
