"""``dsprep visualize boxes``: annotations drawn on their images."""
from __future__ import annotations

from pathlib import Path

import click

from ..core import DsprepError
from .common import DsprepGroup, check_classes_known, csv_list, finish, load, run_jobs, shared, start_summary


@click.group(cls=DsprepGroup)
def visualize():
    """Draw annotations on images to check them by eye."""


@visualize.command("boxes")
@click.argument("dataset", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the drawn images (never inside the data set).")
@click.option("--only", default=None, help="Draw only objects of these classes (comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many images.")
@click.option("--show", is_flag=True, help="Also show each image in a window (needs a GUI build of OpenCV).")
@click.option("--grid", is_flag=True, help="Also write one contact sheet (grid.png) of the drawn images.")
@click.option("--ext", type=click.Choice([".jpg", ".png"]), default=".jpg", show_default=True,
              help="Format of the drawn images.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--masks/--no-masks", default=None,
              help="Fill each object's mask, translucent, in its class colour [default: when the format has masks: "
                   "VOC SegmentationObject, COCO and labelme shapes].")
@click.option("--mask-alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="How much of a masked pixel is the class colour (0: none, 1: solid).")
@click.option("--mask-outlines", is_flag=True, help="Also outline each mask in a darker shade of its class colour.")
@shared("dataset", "classes", "run", "workers")
def visualize_boxes(dataset, out, only, limit, show, grid, ext, overwrite, masks, mask_alpha, mask_outlines,
                    common):
    """Draw every box (or polygon) on its image, its mask filled where the data set has masks, one file per image
    in --out."""
    from ..ops.draw import contact_sheet, drawable
    from ..images import write_image
    from ..jobs.visualize import VisualizeOptions, visualize_one
    from ..ops.maskstats import masks_wanted
    from ..outputs import OutputDir, atomic_write_text, safe_name
    if show:
        _check_gui()
    ds = load(dataset, common)
    wanted = csv_list(only)
    check_classes_known(wanted, ds, "--only")
    masks = masks_wanted(masks, ds.format)
    records = ds.records[:limit] if limit else ds.records
    index = {c: i for i, c in enumerate(ds.classes)}
    summary = start_summary("visualize", ds)
    with OutputDir(out, overwrite=overwrite, inputs=[dataset]) as out_dir:
        opts = VisualizeOptions(out=str(out_dir), class_index=index, classes=tuple(wanted), ext=ext,
                                thumb=256 if grid else 0, fmt=ds.format, masks=masks, mask_alpha=mask_alpha,
                                mask_outlines=mask_outlines)
        # packed files hold their images; folder data sets are read by the jobs themselves
        items = [(r, ds.image_getter(r) if ds.image_getter else None, opts) for r in records]
        thumbs = []
        for item, result in run_jobs(visualize_one, items, summary, common, "drawing",
                                     name_of=lambda it: it[0].image_path):
            if result is not None and result.get("thumb") is not None:
                thumbs.append(result["thumb"])
            if show and result is not None and not _show(out_dir / (safe_name(item[0].stem) + ext)):
                show = False  # 'q' pressed: keep writing, stop showing
        if not all(drawable(c) for c in ds.classes):
            atomic_write_text(out_dir / "legend.txt", "".join(f"#{i}\t{c}\n" for i, c in enumerate(ds.classes)))
        if grid and thumbs:
            write_image(out_dir / "grid.png", contact_sheet(thumbs[:256]))
    finish(summary, str(out_dir), ["images", "objects"] + (["masks"] if masks else []), common)


def _check_gui() -> None:
    """--show opens a window: refuse at once (before any work) when this OpenCV cannot."""
    import cv2
    try:
        cv2.namedWindow("dsprep")
        cv2.destroyWindow("dsprep")
    except cv2.error as e:
        raise DsprepError("--show needs an OpenCV with a GUI (pip install opencv-python) and a display; this one "
                          "cannot open windows (drop --show: the images are written to --out)") from e


def _show(path: Path) -> bool:
    """Show one written image; returns False when the user pressed q or Esc."""
    import cv2
    from ..images import read_image
    cv2.imshow("dsprep", read_image(path))
    key = cv2.waitKey(0) & 0xFF
    if key in (ord("q"), 27):
        cv2.destroyAllWindows()
        return False
    return True
