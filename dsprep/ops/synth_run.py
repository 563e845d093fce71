"""A whole ``dsprep synth`` run into an output folder: the inputs found, the folders made, the images numbered
after an existing output (``--append``), made on the one executor, and the data-set files written at the end (or,
when the run is interrupted, for the finished prefix, so that ``--append`` completes it exactly)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..core import DatasetError, ImageRecord, Interrupted
from ..jobs.run import run_jobs
from ..jobs.synth import SynthConfig, synth_one
from ..report import Summary


def find_inputs(backgrounds, objects) -> Tuple[Tuple[str, ...], Tuple[Tuple[str, Tuple[str, ...]], ...]]:
    """``(background files, ((class, object files), ...))``, sorted (deterministic); :class:`DatasetError` when
    either folder is missing or holds nothing usable."""
    from ..images import is_image
    bg_dir, obj_dir = Path(backgrounds), Path(objects)
    for d, what in ((bg_dir, "--backgrounds"), (obj_dir, "--objects")):
        if not d.is_dir():
            raise DatasetError(f"{d}: {what} folder not found")
    bgs = tuple(str(p) for p in sorted(bg_dir.rglob("*")) if p.is_file() and is_image(p))
    if not bgs:
        raise DatasetError(f"{bg_dir}: no background images")
    obj = tuple((d.name, tuple(str(p) for p in sorted(d.iterdir()) if p.is_file() and is_image(p)))
                for d in sorted(obj_dir.iterdir()) if d.is_dir())
    obj = tuple((c, files) for c, files in obj if files)
    if not obj:
        raise DatasetError(f"{obj_dir}: no class folders with object images (expected objects/<class>/*.png)")
    return bgs, obj


def background_sidecars(backgrounds: Sequence[str]) -> Tuple[Optional[str], ...]:
    """Each background's blanked-regions file (``NAME.blanked.json``, written by ``dsprep crop``), or None."""
    from .inpaint import sidecar_path
    return tuple(sidecar_path(b) if os.path.isfile(sidecar_path(b)) else None for b in backgrounds)


def run_synth(out_dir: Path, spec, backgrounds, sidecars, objects, params, seed: int, count: int, summary: Summary,
              common, ext: str = ".jpg", mask_from: str = "auto", masks: bool = False, color: Optional[str] = None,
              jpeg_quality: int = 95, split: str = "train", append: bool = False) -> None:
    """``count`` synthetic images into ``out_dir`` in the format ``spec`` (a :class:`dsprep.formats.spec.FormatSpec`
    with a writer); ``common`` holds the run options (workers, scheduler, on_error, quiet, exif)."""
    existing, classes = _existing(out_dir, spec, append, [c for c, _ in objects])
    writer = spec.writer(classes, {"root": str(Path(out_dir).resolve())})
    probe = ImageRecord(f"synth_000000{ext}", 1, 1, split=split, meta={"stem": "synth_000000"})
    subdirs = [out_dir / Path(writer.image_path(probe)).parent]
    subdirs += [out_dir / Path(rel).parent for rel in writer.record_files(probe)[0]]
    if masks:
        subdirs += [out_dir / "SegmentationObject", out_dir / "SegmentationClass"]
    subdirs = list(dict.fromkeys(subdirs))
    for d in subdirs:
        d.mkdir(parents=True, exist_ok=True)
    if masks:
        _write_labelmap(out_dir, [c for c, _ in objects])
    start = 0
    if append:
        # numbered after every image already there, whatever split (folder) it is in
        taken = [int(p.stem[len("synth_"):]) for p in out_dir.rglob("synth_*") if p.stem[6:].isdigit()]
        start = max(taken) + 1 if taken else 0
    cfg = SynthConfig(out=str(out_dir), backgrounds=backgrounds, sidecars=sidecars, objects=objects, params=params,
                      seed=seed, oriented=spec.holds.quads, ext=ext, mask_from=mask_from, masks=masks, color=color,
                      jpeg_quality=jpeg_quality, orient=common.exif != "ignore", writer=writer, split=split)
    names, records, done = [], [], 0
    try:
        for _, r in run_jobs(synth_one, [(i, cfg) for i in range(start, start + count)], summary, common,
                             "synthesizing", name_of=lambda it: f"image {it[0]}"):
            done += 1
            if r is not None:
                names.append(r["name"])
                records.append(r["record"])
    except BaseException as e:
        # Results arrive in index order: the first `done` images are complete; later ones a worker may have
        # finished out of order are removed, so the output is exactly a shorter uninterrupted run.
        removed = _remove_from(out_dir, subdirs, start + done)
        _write_lists(out_dir, spec, writer, split, names, existing + records, append)
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(getattr(e, "signum", 2),
                              f"kept the {done} finished images ({start}..{start + done - 1}) and their list; "
                              f"{removed} out-of-order files removed; finish the run with --append -n "
                              f"{count - done}") from e
        raise
    _write_lists(out_dir, spec, writer, split, names, existing + records, append)


def _existing(out_dir: Path, spec, append: bool, classes):
    """With --append: the records already in the output (for the data-set files written at the end: a COCO JSON,
    a data.yaml) and the class list extended by the new classes; formats whose files need neither, nothing."""
    if not append or not spec.needs_records:
        return [], list(classes)
    from ..dataset import load_dataset
    try:
        ds = load_dataset(out_dir, fmt=spec.name, on_error="skip")
    except DatasetError:
        return [], list(classes)
    return list(ds.records), list(ds.classes) + [c for c in classes if c not in ds.classes]


def _write_lists(out_dir: Path, spec, writer, split: str, names, records, append: bool) -> None:
    """The data-set files: a list of names appended to (VOC's split list), or the writer's own (COCO JSON,
    data.yaml ...)."""
    from ..jobs.convert import write_dataset_files
    if spec.append_names is not None:
        spec.append_names(out_dir, split, names, append)
    else:
        write_dataset_files(out_dir, writer, records)


def _write_labelmap(out_dir: Path, classes) -> None:
    """``labelmap.txt``: what the SegmentationClass values mean (background 0, then the classes in folder order),
    with their palette colours, as Datumaro and ``dsprep.formats.vocmasks.read_labelmap`` read it."""
    from ..outputs import atomic_write_text
    from ..formats.vocmasks import labelmap_text
    atomic_write_text(out_dir / "labelmap.txt", labelmap_text(classes))


def _remove_from(out_dir: Path, subdirs, first: int) -> int:
    """Remove ``synth_<i>.*`` with ``i >= first`` from the output folders; returns how many files."""
    n = 0
    for d in subdirs:
        for p in d.glob("synth_*"):
            digits = p.stem[len("synth_"):]
            if digits.isdigit() and int(digits) >= first:
                p.unlink()
                n += 1
    return n
