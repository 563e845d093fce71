"""``dsprep eval``: mAP of detection files against a ground truth, as the reference evaluators compute it."""
from __future__ import annotations

import json
from typing import Optional

import click

from ..evaluation.metrics import METRICS, POLYGON_IOU
from ..report import Summary, progress
from .common import finish, load, run_jobs, shared

SEGMENTATION_METRICS = ("miou",)


@click.command("eval")
@click.argument("ground_truth", type=click.Path())
@click.argument("detections", type=click.Path())
@click.option("--metric", type=click.Choice(METRICS + SEGMENTATION_METRICS), default=None,
              help="voc07 / voc12 (VOC devkit), coco (pycocotools COCOeval), dota-task1 / dota-task2 (DOTA_devkit); "
                   "miou: semantic segmentation masks (index PNGs) as FCN's score.py scores them. "
                   "Default: coco for a COCO file, dota-task1 for DOTA, voc07 otherwise.")
@click.option("--iou-thresh", type=float, default=None,
              help="IoU a match must exceed (voc07, voc12, dota-*; default 0.5, the devkits' value).")
@click.option("--polygon-iou", type=click.Choice(POLYGON_IOU), default="devkit", show_default=True,
              help="dota-task1: devkit = DOTA_devkit's polyiou, including its result on self-intersecting quads; "
                   "valid = the IoU of the shapes as repaired by shapely.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Write precision-recall curves here (pr_<class>.png, pr_all.png).")
@click.option("--visualize", "vis_dir", type=click.Path(file_okay=False), default=None,
              help="Draw true positives, false positives and missed objects on each image here, worst first.")
@click.option("--vis-score", type=float, default=0.5, show_default=True,
              help="--visualize: draw detections scored at least this.")
@click.option("--vis-limit", type=click.IntRange(min=1), default=None,
              help="--visualize: only the N worst images.")
@click.option("--overwrite", is_flag=True, help="Write into non-empty --plot / --visualize folders.")
@shared("dataset", "classes", "run", "workers")
def eval_cmd(ground_truth, detections, metric, iou_thresh, polygon_iou, plot_dir, vis_dir, vis_score, vis_limit,
             overwrite, common):
    """Evaluate DETECTIONS (results files or a folder of them) against GROUND_TRUTH (a VOC, DOTA, COCO or packed
    data set): per-class AP and the mean.  With --metric miou, DETECTIONS is a folder of predicted index masks
    (<id>.png) scored against GROUND_TRUTH's SegmentationClass/.  With --json the result is printed as one JSON
    document."""
    if metric == "miou":
        return _eval_miou(ground_truth, detections, plot_dir, overwrite, common)
    from ..evaluation.results import evaluate_paths
    from ..evaluation.metrics import format_table, result_document
    from ..outputs import check_not_input, prepare_output_dir
    summary = Summary("eval")
    # output folders are checked before any work, so a refusal costs nothing
    for folder, option in ((plot_dir, "--plot"), (vis_dir, "--visualize")):
        if folder:
            check_not_input(folder, [ground_truth, detections], option)
    plot_out = prepare_output_dir(plot_dir, overwrite=overwrite) if plot_dir else None
    vis_out = prepare_output_dir(vis_dir, overwrite=overwrite) if vis_dir else None
    ev = evaluate_paths(ground_truth, detections, metric, common.split, common.on_error, iou_thresh, polygon_iou,
                        progress=lambda it: progress(it, desc="reading", quiet=common.quiet, unit="file"),
                        loader=lambda path: load(path, common))
    as_json = common.as_json
    res, lost = ev.result, ev.unmatched
    if as_json:
        doc = result_document(res, ground_truth=str(ground_truth), detections=str(detections),
                              images=len(ev.records), unmatched=lost.as_dict(),
                              ignored_files=ev.detection_set.ignored_files)
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        click.echo(format_table(res))
    if ev.note:
        click.echo(ev.note, err=True)
    _warn(lost, ev.detection_set.ignored_files, ev.dataset.skipped)
    if plot_out is not None:
        from ..jobs.eval import write_charts
        summary.add("charts", write_charts(res, plot_out))
    if vis_out is not None:
        _visualize(ev, vis_out, vis_score, vis_limit, summary, common)
    summary.add("images", len(ev.records))
    summary.add("ground truths", sum(c.ground_truths for c in res.classes))
    summary.add("detections", len(ev.dets))
    if lost.unknown_images or lost.unknown_classes:
        summary.add("left out", lost.unknown_images + lost.unknown_classes)
    mean = "-" if res.mAP is None else f"{res.mAP:.4f}"
    summary.verb = f"eval ({res.metric}, mAP {mean})"
    outs = " and ".join(str(p) for p in (plot_out, vis_out) if p is not None)
    finish(summary, outs or None, ["images", "ground truths", "detections"])


def _warn(lost, ignored_files, skipped) -> None:
    if lost.unknown_images:
        click.echo(f"warning: {lost.unknown_images} detections name images the ground truth does not have (e.g. "
                   f"{', '.join(lost.image_examples)}): left out", err=True)
    if lost.unknown_classes:
        click.echo(f"warning: {lost.unknown_classes} detections have classes the ground truth does not have (e.g. "
                   f"{', '.join(lost.class_examples)}): left out", err=True)
    if ignored_files:
        shown = ", ".join(ignored_files[:5]) + (" ..." if len(ignored_files) > 5 else "")
        click.echo(f"note: {len(ignored_files)} files not read (another kind, or not a results file name): {shown}",
                   err=True)
    for where, reason in skipped:
        click.echo(f"  skipped {where}: {reason}", err=True)


def _visualize(ev, out_dir, min_score: float, limit: Optional[int], summary: Summary, common) -> None:
    from ..jobs.eval import OutcomeOptions, draw_one, plan_outcomes, write_index
    items, index = plan_outcomes(ev, min_score, limit)
    opts = OutcomeOptions(str(out_dir))
    getter = ev.dataset.image_getter  # packed data sets hold their images
    jobs = [(item, getter(ev.records[item.index]) if getter else None, opts) for item in items]
    drawn = Summary("visualize")
    for _ in run_jobs(draw_one, jobs, drawn, common, "drawing", name_of=lambda it: it[0].image_path):
        pass
    write_index(out_dir, index)
    summary.add("drawn", drawn.counts.get("images", 0))
    for where, reason in drawn.skipped:
        summary.skip(where, reason)



def _eval_miou(ground_truth, predictions, plot_dir, overwrite, common) -> None:
    """Semantic segmentation: one confusion matrix over every image, FCN's four figures and per-class IU."""
    import numpy as np
    from ..jobs.segeval import confusion_one, plan
    from ..outputs import check_not_input, prepare_output_dir
    from ..evaluation.segmentation import format_table as seg_table
    from ..evaluation.segmentation import scores
    if plot_dir:
        check_not_input(plot_dir, [ground_truth, predictions], "--plot")
    plot_out = prepare_output_dir(plot_dir, overwrite=overwrite) if plot_dir else None
    p = plan(ground_truth, predictions, common.split, common.classes, common.on_error)
    summary = Summary("eval")
    summary.add("inputs", len(p.items) + len(p.skipped))
    for where, reason in p.skipped:
        summary.skip(where, reason)
    hist = np.zeros((len(p.classes), len(p.classes)), np.int64)
    for _, result in run_jobs(confusion_one, p.items, summary, common, "scoring", name_of=lambda it: it.pred):
        if result is not None:
            hist += result["hist"]
    res = scores(hist, p.classes)
    if common.as_json:
        doc = {"metric": "miou", **res.as_dict(), "ground_truth": str(ground_truth), "predictions": str(predictions),
               "split": p.split, "images": summary.counts.get("images", 0), "skipped": [list(s) for s in p.skipped]}
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        click.echo(seg_table(res))
    for note in p.notes:
        click.echo(note, err=True)
    if plot_out is not None:
        from ..jobs.segeval import write_confusion_chart
        summary.add("charts", write_confusion_chart(res, plot_out))
    mean = "-" if not np.isfinite(res.mean_iou) else f"{res.mean_iou:.4f}"
    summary.verb = f"eval (miou, mean IU {mean})"
    finish(summary, str(plot_out) if plot_out is not None else None, ["images", "pixels"])
