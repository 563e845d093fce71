"""``eval --metric miou``: which ground-truth mask goes with which prediction, and one image's confusion matrix.

Ground truth: a VOC tree (``SegmentationClass/<id>.png``, the split lists in ``ImageSets/Segmentation/``) or a
plain folder of index PNGs.  Predictions: a folder of index PNGs named as the ground truth's (``<id>.png``; 8-bit
grey or palette, what a network's argmax saved as a PNG gives), directly in the folder or in its
``SegmentationClass/``.  Class names: ``--classes`` (index 0 first), else the ground truth's ``labelmap.txt``,
else VOC's 21 (background first).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..core import DatasetError, DsprepError, ParseError, UsageError


@dataclass(frozen=True)
class SegItem:
    stem: str
    gt: str
    pred: str
    n: int


@dataclass
class SegPlan:
    classes: List[str]
    items: List[SegItem]
    split: Optional[str]
    notes: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)


def _png_stems(folder: Path) -> dict:
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise DatasetError(f"{folder}: cannot list the folder ({e.strerror or e})") from e
    return {os.path.splitext(n)[0]: str(folder / n) for n in names
            if n.lower().endswith(".png") and not n.startswith(".")}


def _split_list(path: Path) -> List[str]:
    """The image ids of a split list (``splits.read_list``: comments and blank lines skipped; an id's flag column,
    as VOC's per-class lists have, left out)."""
    from ..splits import read_list
    try:
        entries = read_list(path)
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the split list ({e})") from e
    return list(dict.fromkeys(e.split()[0] for e in entries))


def plan(gt_root, pred_root, split: Optional[str], classes: Optional[Sequence[str]], on_error: str) -> SegPlan:
    """Pair every ground-truth mask to score with its prediction.

    Without ``split``, predictions naming only some of the ground truth's images are scored against the split list
    they match exactly (said in a note), or refused naming the ``--split`` values there are: a score over the wrong
    images is worse than none."""
    from ..formats.vocmasks import VOC_CLASSES, read_labelmap
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if not gt_root.is_dir():
        raise DatasetError(f"{gt_root}: no such folder")
    if not pred_root.is_dir():
        raise DatasetError(f"{pred_root}: no such folder (predictions: a folder of <id>.png index maps)")
    gt_dir = gt_root / "SegmentationClass" if (gt_root / "SegmentationClass").is_dir() else gt_root
    pred_dir = pred_root / "SegmentationClass" if (pred_root / "SegmentationClass").is_dir() else pred_root
    gts, preds = _png_stems(gt_dir), _png_stems(pred_dir)
    if not gts:
        raise DatasetError(f"{gt_dir}: no ground-truth masks (<id>.png)")
    if classes:
        names = list(classes)
    elif (gt_root / "labelmap.txt").is_file():
        names = read_labelmap(gt_root / "labelmap.txt")[0]
    else:
        names = list(VOC_CLASSES)
    sets = gt_root / "ImageSets" / "Segmentation"
    available = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
    notes: List[str] = []
    if split is not None:
        if split not in available:
            raise UsageError(f"--split: no split '{split}' in {sets} (available: {', '.join(available) or 'none'})")
        stems = _split_list(sets / f"{split}.txt")
    else:
        named = [s for s in preds if s in gts]
        if not named:
            raise DatasetError(f"{pred_dir}: no prediction is named as a ground-truth mask of {gt_dir} "
                               f"(expected <id>.png, e.g. {next(iter(gts))}.png)")
        if len(named) == len(gts):
            stems = sorted(gts)
        else:
            matching = [s for s in available if set(_split_list(sets / f"{s}.txt")) == set(named)]
            if not matching:
                raise UsageError(f"{pred_dir}: predictions for {len(named)} of the {len(gts)} ground-truth masks, "
                                 f"matching no split list; give --split ({', '.join(available) or 'none here'}) "
                                 f"or predictions for every image")
            split = matching[0]
            stems = _split_list(sets / f"{split}.txt")
            notes.append(f"note: predictions name {len(named)} of {len(gts)} images, split '{split}' exactly: "
                         f"scoring that split")
    extra = [s for s in preds if s not in gts]
    if extra:
        notes.append(f"note: {len(extra)} predictions have no ground-truth mask (e.g. {extra[0]}.png): not scored")
    items, skipped = [], []
    for stem in stems:
        if stem not in gts:
            err = f"{gt_dir / (stem + '.png')}: listed in split '{split}' but there is no such mask"
            if on_error == "fail":
                raise DsprepError(err)
            skipped.append((str(gt_dir / (stem + ".png")), "listed in the split but missing"))
        elif stem not in preds:
            err = f"{pred_dir / (stem + '.png')}: no prediction for ground-truth mask {gts[stem]}"
            if on_error == "fail":
                raise DsprepError(err)
            skipped.append((str(pred_dir / (stem + ".png")), "no prediction for this image"))
        else:
            items.append(SegItem(stem, gts[stem], preds[stem], len(names)))
    return SegPlan(names, items, split, notes, skipped)


def _read_indices(path: str):
    from ..inputs import read_bytes
    from ..formats.vocmasks import mask_indices
    return mask_indices(read_bytes(path), path)


def confusion_one(item: SegItem) -> dict:
    """One image's ``(n, n)`` confusion matrix (``{"hist": ..., "images": 1}``); a prediction whose size or values
    cannot be scored is a :class:`ParseError` naming its file."""
    from ..evaluation.segmentation import confusion
    gt = _read_indices(item.gt)
    pred = _read_indices(item.pred)
    try:
        hist = confusion(gt, pred, item.n)
    except ValueError as e:
        raise ParseError(f"{item.pred}: {e}") from e
    return {"hist": hist, "images": 1, "pixels": int(hist.sum())}


def write_confusion_chart(res, out_dir: Path) -> int:
    """``confusion.png`` in ``out_dir``: the confusion matrix normalised by ground-truth row (what share of each
    class's pixels went where), the classes that have pixels or predictions only.  Returns the charts written."""
    from ..outputs import atomic_write_bytes
    from ..ops.plots import confusion_matrix
    atomic_write_bytes(Path(out_dir) / "confusion.png", confusion_matrix(res.hist, res.classes))
    return 1
