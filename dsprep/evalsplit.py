"""Which images an evaluation scores when ``--split`` is not given: the split the results are for.

The VOC devkit names results ``comp<N>_det_<set>_<class>.txt``: ``<set>`` is the image set they were computed on,
and the devkit scores that set's images only.  dsprep does the same:

* results files naming one image set that is a split of the ground truth: that split's images are scored (said
  in a note);
* otherwise, results naming only some of the ground truth's images (the others would count as all missed): the
  smallest split holding every image the results name is scored (said in a note); when two different splits of
  that size hold them the evaluation is refused with the ``--split`` values to choose from; when no split holds
  them all, every image is scored, as before.

Pure over a loaded :class:`~dsprep.core.Dataset` and a :class:`~dsprep.detections.DetectionSet`.
"""
from __future__ import annotations

import re
from pathlib import PurePath
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .core import Dataset, ImageRecord, UsageError
from .splits import split_order, splits_of

_VOC_SET = re.compile(r"^comp\d+_det_(?P<rest>.+)\.txt$")


def result_sets(files: Sequence[str], classes: Sequence[str]) -> Set[str]:
    """The image sets named by VOC results file names (``comp4_det_val_car.txt`` -> ``val``)."""
    out = set()
    for f in files:
        m = _VOC_SET.match(PurePath(f).name)
        if not m:
            continue
        rest = m.group("rest")
        fits = [c for c in classes if rest.endswith("_" + c)]
        cls = max(fits, key=len) if fits else rest.rsplit("_", 1)[-1]
        if len(rest) > len(cls) + 1:
            out.add(rest[:-len(cls) - 1])
    return out


def members(records: Sequence[ImageRecord]) -> Dict[str, Set[str]]:
    """``{split: stems of its images}`` over every membership."""
    out: Dict[str, Set[str]] = {}
    for r in records:
        for s in splits_of(r):
            out.setdefault(s, set()).add(r.stem)
    return out


def choose_split(ds: Dataset, records: List[ImageRecord], dset) -> Tuple[List[ImageRecord], Optional[str]]:
    """``(records to score, a one-line note or None)`` for an evaluation without ``--split``."""
    by_split = members(records)
    if not by_split:
        return records, None
    named = result_sets(dset.files, ds.classes) if dset.kind == "voc" else set()
    if len(named) == 1 and next(iter(named)) in by_split:
        s = next(iter(named))
        chosen = [r for r in records if s in splits_of(r)]
        if len(chosen) < len(records):
            return chosen, (f"note: the results files are for image set '{s}' (comp<N>_det_{s}_<class>.txt): "
                            f"scoring its {len(chosen)} of {len(records)} images")
        return records, None
    stems = {str(v) for v in dset.images.tolist()} if len(dset) else set()
    all_stems = {r.stem for r in records}
    have = {s if s in all_stems else PurePath(s).stem for s in stems}
    have &= all_stems
    if not have or len(have) == len(all_stems):
        return records, None
    fits = [s for s in split_order(by_split) if have <= by_split[s]]
    if not fits or any(len(by_split[s]) == len(all_stems) for s in fits):
        return records, None  # the results are not one split's (or one split is the whole data set)
    smallest = min(len(by_split[s]) for s in fits)
    best = [s for s in fits if len(by_split[s]) == smallest]
    if len({frozenset(by_split[s]) for s in best}) == 1:
        s = best[0]
        chosen = [r for r in records if s in splits_of(r)]
        return chosen, (f"note: the results name {len(have)} of the {len(all_stems)} images, all in split "
                        f"'{s}': scoring its {len(chosen)} images (--split to choose another)")
    raise UsageError(f"the results name {len(have)} of the {len(all_stems)} ground-truth images, which are in "
                     f"splits {', '.join(best)} alike: give --split ({', '.join(best)}) to say which to score")
