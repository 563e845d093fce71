"""The one registry of data-set formats: which module reads (and writes) which layout.

Every format module (``voc.py``, ``dota.py``, ``hdf5.py`` ...) exposes the same few names:

* ``NAME``                          the format's name (``--format``, ``--to``);
* ``LAYOUT``                        a few words on what it looks for (for the "no data set found" error);
* ``detect(path: Path) -> bool``    whether ``path`` (a folder or a file) is in this format (cheap: names and a
                                    few bytes, never a full parse);
* ``load(path, split, policy, wrap) -> Dataset``  every record of the data set (``split`` already applied, the
                                    class list decided from *all* annotation files, see :func:`decide_classes`);
* ``Writer`` (formats dsprep can write): see :class:`dsprep.core.FormatWriter`.

Formats whose files can be edited in place (``dsprep review``) also expose the edit protocol:

* ``annotation_file(ds, rec) -> str | None``  the file holding ``rec``'s objects;
* ``load_record(ds, rec) -> (ImageRecord, [Problem])``  that file read again exactly as ``load`` reads it (its
                                    objects in file order: all those ``load`` keeps);
* ``save_record(original: bytes, rec, source: str) -> bytes``  pure: the file's new content, ``original`` with
                                    ``rec``'s objects written in.  ``rec.attrs["source_index"]`` gives, for each
                                    object, the object of ``original`` it was loaded as (its index in
                                    ``load_record``'s order) or ``-1`` for a new one; objects of ``original`` it
                                    does not name are deleted; an object's fields equal to what ``load`` gives for
                                    it, and everything that is not an object (unknown tags, header lines, comments,
                                    encoding, line endings), stay byte for byte.  The caller writes the result
                                    through :mod:`dsprep.outputs`.
* ``split_lists(ds) -> {split: [annotation file]}``  optional, for formats whose splits are lists of files: the
                                    files each split names, for a data set loaded whole (an image may be in several).

Adding a format is one new module and one line in :data:`FORMATS`.  Modules are imported only when used, so the
command line starts fast.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, List, Optional, Sequence

from .core import Dataset, DatasetError, ErrorPolicy, UsageError, decide_classes

# Detection order matters: the first module whose detect() says yes reads the data set.
FORMATS = {
    "h5": "dsprep.hdf5",
    "dota": "dsprep.dota",
    "voc": "dsprep.voc",
}


def format_module(name: str) -> ModuleType:
    if name not in FORMATS:
        raise UsageError(f"--format: unknown format '{name}' (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[name])


def detect_format(path: Path) -> str:
    """The name of the format ``path`` is in; :class:`DatasetError` when none recognises it."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: data set not found")
    for name in FORMATS:
        if format_module(name).detect(path):
            return name
    if path.is_file():
        raise DatasetError(f"{path}: not a data set folder or a file format dsprep reads")
    looked = "; ".join(format_module(n).LAYOUT for n in FORMATS)
    raise DatasetError(f"{path}: no data set found (looked for {looked})")


def load_dataset(path, split: Optional[str] = None, on_error: str = "fail",
                 progress: Optional[Callable[[Iterable], Iterable]] = None, fmt: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None) -> Dataset:
    """Read every annotation of a data set (images are not decoded; headers only where a size is needed).

    ``fmt`` forces a format (``--format``); ``classes`` pins the class list (``--classes``): objects of other
    classes are then an error (or skipped and listed with ``on_error="skip"``).
    """
    path = Path(path)
    name = fmt or detect_format(path)
    module = format_module(name)
    if fmt and not path.exists():
        raise DatasetError(f"{path}: data set not found")
    policy = ErrorPolicy(on_error)
    with _bulk():
        ds = module.load(path, split, policy, progress or (lambda it: it))
    if classes is not None:
        ds.classes = decide_classes((), pinned=classes)
        ds.records = [_pin(rec, ds, policy) for rec in ds.records]
    ds.skipped = policy.skipped + ds.skipped
    if not ds.records and not ds.skipped:
        raise DatasetError(f"{path}: data set is empty (no annotated images found)")
    return ds


def _pin(rec, ds: Dataset, policy: ErrorPolicy):
    """Objects of a class outside the pinned list: an error, or dropped and listed under ``--on-error skip``."""
    from .core import ClassError
    known = set(ds.classes)
    bad = [k for k, n in enumerate(rec.names) if n not in known]
    if not bad:
        return rec
    where = rec.meta.get("annotation_path") or rec.image_path
    for k in bad:
        policy.handle(ClassError(f"{where}: object {k} has class '{rec.names[k]}', which is not in --classes "
                                 f"({', '.join(ds.classes)})"), f"{where}#object{k}")
    keep = [k for k in range(len(rec)) if rec.names[k] in known]
    return rec.select(keep)


@contextlib.contextmanager
def _bulk():
    """Pause the cyclic garbage collector while building many small records: nothing cyclic is made, and its
    repeated full scans of a growing list otherwise cost ~15% of the reading time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def writable_formats() -> List[str]:
    return [name for name in FORMATS if hasattr(format_module(name), "Writer")]


def editable_formats() -> List[str]:
    """Formats implementing the edit protocol (see the module docstring)."""
    return [name for name in FORMATS if hasattr(format_module(name), "save_record")]
