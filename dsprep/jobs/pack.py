"""Per-image work of ``voc-to-h5`` / ``voc-to-pickle``: one image decoded, fitted and handed to the writer."""
from __future__ import annotations


def pack_one(task):
    """``(split, index, (path, options, slot))`` -> the prepared image (see :func:`dsprep.pack.prepare.prepare_image`)."""
    from ..pack.prepare import prepare_image
    return prepare_image(task[2])
