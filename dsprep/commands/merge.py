"""``dsprep merge``: the union of data sets in any formats, written as one."""
from __future__ import annotations

import json

import click

from ..core import UsageError
from ..jobs.convert import write_dataset
from .common import FormatChoice, account_inputs, class_map, explain_lossy, finish, load, shared, start_summary


@click.command("merge")
@click.argument("datasets", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder (never inside an input data set).")
@click.option("--to", "target", default=None, type=FormatChoice("write"),
              help="Write in this format [default: the first data set's format].")
@click.option("--link", type=click.Choice(["hard", "symlink", "copy"]), default="hard", show_default=True,
              help="How images are placed: hard links (copies across file systems), symbolic links, or copies.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@shared("exif", "classmap", "run", "workers")
def merge(datasets, out, target, link, overwrite, common):
    """Merge data sets of any formats into one: dsprep merge A B [C ...] --out DIR [--to FORMAT].

    Classes are joined by name (--map renames or merges them first, --drop leaves some out); splits of the same
    name are joined; an image whose name an earlier data set already uses is renamed NAME_K (K: the data set's
    position, from 1) and listed. COCO category ids are kept where they do not clash."""
    from ..ops.classmap import apply_to_records
    from ..ops.combine import combine
    from ..formats import format_spec, writable_formats
    from ..outputs import OutputDir
    if len(datasets) < 2:
        raise UsageError("merge needs at least two data sets")
    loaded = [load(d, common) for d in datasets]
    target = target or loaded[0].format
    if target not in writable_formats():
        raise UsageError(f"--to: dsprep cannot write {target} data sets; choose a format with --to "
                         f"({', '.join(writable_formats())})")
    summary = start_summary(f"merge to {target}")
    for ds in loaded:
        account_inputs(summary, ds)
    writer = format_spec(target).writer([], {})
    joined = combine(loaded, writer.image_path)
    cmap = class_map(common, joined.classes, "the inputs")
    records, classes, meta = joined.records, joined.classes, joined.meta
    if cmap:
        records, counts = apply_to_records(records, cmap)
        for k in ("class_renamed", "class_dropped"):
            summary.add(k, counts.get(k, 0))
        classes, meta = cmap.classes(classes), cmap.meta(meta)
    summary.add("renamed_across_inputs", len(joined.renamed))
    with OutputDir(out, overwrite=overwrite, inputs=list(datasets)) as out_dir:
        write_dataset(out_dir, target, classes, meta, records, summary, common, link=link, desc="merging",
                      source_format=[loaded[k].format for k in joined.origin])
    finish(summary, str(out_dir), ["images", "objects", "renamed_across_inputs"])
    renames = [{"input": datasets[k], "image": path, "as": stem} for k, path, stem in joined.renamed]
    for r in renames:
        click.echo(f"  renamed: {r['image']} (from {r['input']}) -> {r['as']}", err=True)
    explain_lossy(summary, target)
    if common.as_json:
        click.echo(json.dumps({**summary.as_dict(str(out_dir)), "renamed": renames}, ensure_ascii=False, indent=1))
