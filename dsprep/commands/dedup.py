"""``dsprep dedup``: exact and near copies among a data set's images, the pairs that leak across splits, and the data
set written with one image of each group."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .. import signals
from .common import finish, load, map_classes, run_jobs, shared, start_summary


def _threshold(ctx, param, value):
    if not 0.0 < value <= 1.0:
        raise click.BadParameter(f"must be above 0 and at most 1, not {value}", ctx, param)
    return value


def _distance(ctx, param, value):
    if not 0 <= value <= 64:
        raise click.BadParameter(f"must be 0 to 64 (bits of the hash), not {value}", ctx, param)
    return value


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Write the data set (in its own format) with one image of each group: the largest, then the "
                   "first by name.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--threshold", type=float, default=0.90, show_default=True, callback=_threshold,
              help="How alike two images must be to be copies: the normalized cross-correlation of their 64x64 "
                   "thumbnails, best over small shifts and scales (0-1; 1: identical).")
@click.option("--hash-distance", type=int, default=20, show_default=True, callback=_distance,
              help="Pairs whose 64-bit DCT hashes differ in more bits are never compared (raise it to find "
                   "stronger edits, slower).")
@shared("dataset", "classmap", "run", "workers")
def dedup(dataset, out, overwrite, threshold, hash_distance, common):
    """Find exact and near copies (resized, recompressed, slightly cropped, brightened) among DATASET's images, and
    every pair of copies that leaks across splits.

    Prints the groups; with --json one document {"groups": [[image, ...]], "leaks": [[image, image]], ...} with
    image paths relative to DATASET. --out writes the data set without the copies and names those left out."""
    from ..ops.dedup import collect_features, find_duplicates
    ds = load(dataset, common)
    summary = start_summary("dedup", ds)
    ds = map_classes(ds, common, summary)  # --map / --drop: what --out writes
    from ..splits import splits_of
    splits = [frozenset(splits_of(r)) for r in ds.records]  # VOC: every ImageSets/Main list an image is in
    feats = collect_features(ds.records, lambda fn, items, desc: run_jobs(fn, items, summary, common, desc,
                                                                         name_of=lambda it: it[0]))
    res = find_duplicates(ds.records, feats, threshold, hash_distance, splits=splits)
    base = dataset if os.path.isdir(dataset) else os.path.dirname(os.path.abspath(dataset))

    def rel(i):
        return Path(os.path.relpath(os.path.abspath(ds.records[i].image_path), os.path.abspath(base))).as_posix()

    def label(i):
        return ",".join(sorted(splits[i]))

    left_out = sorted({m for g in res.groups for m in g.members if m != g.keep}, key=rel)
    doc = {
        "groups": [[rel(m) for m in g.members] for g in res.groups],
        "leaks": [[rel(a), rel(b)] for a, b in res.leaks],
        "leak_splits": [[label(a), label(b)] for a, b in res.leaks],
        "exact": [g.exact for g in res.groups],
        "keep": [rel(g.keep) for g in res.groups],
        "images": len(ds.records),
        "duplicates": len(left_out),
        "candidates": res.candidates,
        "threshold": threshold,
        "hash_distance": hash_distance,
    }
    summary.add("images", len(ds.records))
    summary.add("groups", len(res.groups))
    summary.add("duplicates", len(left_out))
    summary.add("leaks", len(res.leaks))
    if out is not None:
        written = _write_without(ds, dataset, out, overwrite, set(left_out), common)
        doc["out"] = written
        doc["left_out"] = [rel(i) for i in left_out]
    signals.settle()  # the report is all that is left: a late Ctrl-C must not add a line to it
    if common.as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        click.echo(_text(res, rel, label, left_out if out is not None else None))
    finish(summary, doc.get("out"), ["images", "groups", "duplicates", "leaks"])


def _text(res, rel, label, left_out) -> str:
    n_exact = sum(g.exact for g in res.groups)
    lines = [f"{len(res.groups)} groups of copies ({n_exact} exact, {len(res.groups) - n_exact} near); "
             f"{len(res.leaks)} pairs leak across splits"]
    for g in res.groups:
        names = ", ".join(rel(m) + (f" [{label(m)}]" if label(m) else "") + (" *" if m == g.keep else "")
                          for m in g.members)
        lines.append(f"  {'exact' if g.exact else 'near '}  {names}")
    if res.groups:
        lines.append("  (* the one --out keeps: the largest, then the first by name)")
    if res.leaks:
        lines.append("leaks (the same picture in two splits):")
        lines.extend(f"  {rel(a)} [{label(a)}]  =  {rel(b)} [{label(b)}]" for a, b in res.leaks)
    if left_out is not None:
        lines.append(f"left out of --out: {len(left_out)}")
        lines.extend(f"  {rel(i)}" for i in left_out)
    return "\n".join(lines)


def _write_without(ds, dataset, out, overwrite, drop, common) -> str:
    """Write ``ds`` without the records numbered in ``drop``, in its own format (splits kept), as ``convert``
    writes."""
    from ..core import UsageError
    from ..formats import format_spec, writable_formats
    from ..jobs.convert import ConvertOptions, convert_one, unique_names, write_dataset_files
    from ..outputs import OutputDir
    if ds.format not in writable_formats():
        raise UsageError(f"--out: dsprep does not write {ds.format} data sets (convert it first)")
    keep = [r for i, r in enumerate(ds.records) if i not in drop]
    summary = start_summary("write")
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        writer = format_spec(ds.format).writer(ds.classes, {"dataset_meta": ds.meta,
                                                            "root": str(Path(out_dir).resolve())})
        records, _ = unique_names(keep, writer)
        opts = ConvertOptions(out=str(out_dir), writer=writer)
        done = [item[0] for item, r in run_jobs(convert_one, [(r, opts) for r in records], summary, common,
                                                "writing", name_of=lambda it: it[0].image_path) if r is not None]
        write_dataset_files(out_dir, writer, done)
    return str(out_dir)
