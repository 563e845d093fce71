"""What every command shares: the error-reporting group, the one option vocabulary, loading, running jobs, summaries.

The vocabulary: an option name means the same thing in every command that has it.

* ``--split S``      only the images of split S (as the data set's split lists or split folders name them);
* ``--format F``     read the data set as format F instead of detecting it;
* ``--exif P``       the EXIF orientation policy (auto | apply | ignore);
* ``--images-outside`` read images that annotation files name outside the data set (refused by default);
* ``--classes L``    the class list in index order (``a,b,c`` or a file, one name a line), on commands that assign
                     class indices;
* ``--on-error M``   fail at the first bad input, or skip it and list it with its reason;
* ``--quiet``/``-q`` no progress bar;  ``--json``: the summary as one JSON document on stdout;
* ``--workers N``/``-j N``, ``--scheduler ADDR``: where the per-image work runs;
* ``--size WxH`` (or ``N`` for a square), ``--out DIR``, ``--overwrite``;
* ``--masks/--no-masks`` read (draw, count) the data set's object masks or not [default: ``visualize`` when its
                     format has masks of its own (VOC ``SegmentationObject``, COCO and labelme shapes); ``info``
                     only where they are images (VOC), shapes being rasterized object by object];
* ``--map OLD:NEW``, ``--drop CLASS``: rename or merge classes, drop the objects of a class, on every command that
                     writes a data set (see :mod:`dsprep.classmap`).

Every bad option value is a usage error (exit code 2) with a message naming the option.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence

import click

from .. import signals
from ..core import DsprepError, Interrupted, UsageError
from ..jobs.run import run_jobs  # noqa: F401  (commands import it from here)
from ..report import Summary, part_kind, progress

if TYPE_CHECKING:
    from ..ops.classmap import ClassMap


class DsprepGroup(click.Group):
    """Turns a :class:`DsprepError` into one ``error: ...`` line and its exit code, and Ctrl-C or SIGTERM into one
    ``interrupted: ...`` line (exit 130 / 143); any other exception is a bug and keeps its traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except KeyboardInterrupt as e:  # while the command line is parsed: the same one line as during a run
            _report_interrupt(e)

    def invoke(self, ctx):
        top = ctx.parent is None
        if top:  # the user sees one summary line, not numpy's or shapely's arithmetic warnings
            warnings.filterwarnings("ignore", category=RuntimeWarning)
        previous = signals.install() if top else None
        try:
            result = super().invoke(ctx)
            if top:
                signals.settle()
            return result
        except click.exceptions.Exit:
            if top:
                signals.settle()  # the command ended with its exit code (--help, --version, ctx.exit)
            raise
        except DsprepError as e:
            if top:
                signals.settle()  # the error line is the run's one line
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            if not top:
                raise
            _report_interrupt(e, ctx)
        finally:
            signals.restore(previous)

    def list_commands(self, ctx):  # keep the order commands were added in: the order of a typical workflow
        return list(self.commands)


def _report_interrupt(e: KeyboardInterrupt, ctx: Optional[click.Context] = None) -> None:
    """One line for Ctrl-C or SIGTERM, then exit 130 / 143."""
    err = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
    what = "Ctrl-C" if err.signum == signal.SIGINT else f"signal {signal.Signals(err.signum).name}"
    click.echo(f"interrupted by {what}: " + (err.message or "stopped; nothing half-done was left at the output"),
               err=True)
    if ctx is not None:
        ctx.exit(err.exit_code)
    sys.exit(err.exit_code)


# ---- option values ---------------------------------------------------------------------------------------------------

class SizeType(click.ParamType):
    """``WxH`` (``1024x768``) or ``N`` (a square): ``(width, height)`` in pixels."""

    name = "WxH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..ops.resize import parse_size
        try:
            return parse_size(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeType()


def parse_class_list(value: Optional[str]) -> Optional[List[str]]:
    """``--classes``: ``a,b,c``, or a file holding one class name a line (blank lines and ``#`` comments skipped)."""
    if value is None:
        return None
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8-sig") as f:
                names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as e:
            raise click.BadParameter(f"cannot read class list file {value} ({e})", param_hint="--classes") from e
    else:
        names = [v.strip() for v in value.split(",")]
        if len(names) > 1 and "" in names:
            raise click.BadParameter(f"'{value}' has an empty name (two commas in a row, or one at an end)",
                                     param_hint="--classes")
        names = [n for n in names if n]
    if not names:
        raise click.BadParameter(f"'{value}' names no class", param_hint="--classes")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise click.BadParameter(f"{', '.join(dup)} listed more than once", param_hint="--classes")
    return names


def csv_list(value: Optional[str]) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def library_parser(module: str, name: str, empty_is_none: bool = False) -> Callable:
    """A click callback running the option parser ``name`` of library module ``dsprep.<module>`` (imported when
    the option is parsed), its ``ValueError`` turned into click's usage error (exit 2)."""
    def callback(ctx, param, value):
        import importlib
        parse = getattr(importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{module}"), name)
        try:
            out = parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param) from e
        return (out or None) if empty_is_none else out
    return callback


_parse_map = library_parser("ops.classmap", "parse_map", empty_is_none=True)
_parse_drop = library_parser("ops.classmap", "parse_drop")


def _one_split(ctx, param, values):
    """``--split`` repeated is refused (exit 2), never the last one silently (see :mod:`dsprep.splits`)."""
    from ..splits import one_split_option
    try:
        return one_split_option(values)
    except UsageError as e:
        raise click.BadParameter(str(e).replace("--split ", ""), ctx, param) from e


def _check_workers(ctx, param, value):
    from ..parallel import parse_workers
    try:
        parse_workers(value)
    except UsageError as e:
        raise click.BadParameter(str(e).replace("--workers ", ""), ctx, param) from e
    return value


def _check_scheduler(ctx, param, value):
    from ..parallel import check_scheduler
    try:
        return check_scheduler(value)
    except UsageError as e:
        raise click.BadParameter(str(e).replace("--scheduler ", ""), ctx, param) from e


# ---- the shared options ------------------------------------------------------------------------------------------

@dataclass
class Common:
    """The shared options of one command run (only those the command declares are set)."""

    on_error: str = "fail"
    quiet: bool = False
    as_json: bool = False
    split: Optional[str] = None
    fmt: Optional[str] = None
    exif: str = "auto"
    images_outside: bool = False
    classes: Optional[List[str]] = None
    workers: str = "1"
    scheduler: Optional[str] = None
    class_map: Optional[dict] = None
    drop: tuple = ()


_FIELDS = set(Common.__dataclass_fields__)


class FormatChoice(click.Choice):
    """The formats dsprep reads (``"read"``) or writes (``"write"``), asked of the registry only when needed (so
    ``dsprep --help`` starts without importing it)."""

    def __init__(self, kind: str = "read"):
        self.kind = kind
        super().__init__([])

    @property
    def choices(self):
        from ..formats import FORMATS, writable_formats
        return writable_formats() if self.kind == "write" else list(FORMATS)

    @choices.setter
    def choices(self, value):
        pass


def _options(group: str) -> List[Callable]:
    if group == "run":
        return [click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                             help="fail: stop at the first bad input; skip: go on, and list every skipped input "
                                  "with its reason."),
                click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
                click.option("--json", "as_json", is_flag=True,
                             help="Also print the summary as one JSON document on stdout.")]
    if group == "dataset":
        return [click.option("--split", multiple=True, callback=_one_split,
                             help="Only the images of this split (as the data set's split lists or split folders "
                                  "name them) [default: every image, each in its own splits]. Given once."),
                click.option("--format", "fmt", type=FormatChoice(), default=None,
                             help="Read the data set as this format [default: detected from its layout]."),
                _exif_option(),
                click.option("--images-outside", is_flag=True,
                             help="Read images that annotation files name outside the data set's folder "
                                  "(../raw/a.jpg, absolute paths); refused by default: only for data sets you "
                                  "trust.")]
    if group == "exif":
        return [_exif_option()]
    if group == "classes":
        return [click.option("--classes", default=None, callback=lambda c, p, v: parse_class_list(v),
                             help="The class list in index order: a,b,c or a file with one name a line [default: "
                                  "the list the data set declares (COCO categories, YOLO names), else every class "
                                  "of the data set, sorted]. Objects of other classes are errors (skipped and "
                                  "listed with --on-error skip).")]
    if group == "classmap":
        return [click.option("--map", "class_map", default=None, callback=_parse_map,
                             help="Rename or merge classes: OLD:NEW[,OLD:NEW...] (several OLD to one NEW merge "
                                  "them), or a file with one OLD:NEW a line. Counted as class_renamed."),
                click.option("--drop", default=None, callback=_parse_drop,
                             help="Leave out the objects of these classes: CLASS[,CLASS...]. Counted as "
                                  "class_dropped.")]
    if group == "workers":
        return [click.option("--workers", "-j", default="1", show_default=True, callback=_check_workers,
                             help="Worker processes: a number, or 'auto' for one per CPU."),
                click.option("--scheduler", default=None, envvar="DSPREP_SCHEDULER", callback=_check_scheduler,
                             help="Run on a Dask cluster: its scheduler address (tcp://HOST:8786), or 'local' for "
                                  "a throwaway one [env: DSPREP_SCHEDULER]. Needs dsprep[dask].")]
    raise ValueError(group)


def _exif_option():
    return click.option("--exif", type=click.Choice(["auto", "apply", "ignore"]), default="auto", show_default=True,
                        help="EXIF orientation of photos: apply it, ignore it, or auto: the annotation's recorded "
                             "image size decides (see README).")


def shared(*groups: str):
    """Add the shared option groups (``run``, ``dataset``, ``exif``, ``classes``, ``workers``) to a command; the
    command receives them bundled as ``common: Common``."""
    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            common = Common(**{k: kwargs.pop(k) for k in list(kwargs) if k in _FIELDS})
            if "workers" in groups:
                from ..parallel import warm_up
                warm_up(common.workers, common.scheduler)
            return f(*args, common=common, **kwargs)
        for group in reversed(groups):
            for opt in reversed(_options(group)):
                wrapper = opt(wrapper)
        return wrapper
    return deco


# ---- loading, running, reporting -----------------------------------------------------------------------------------

def load(path, common: Common):
    """The data set, read as the shared options say (split, format, EXIF policy, pinned classes, --on-error)."""
    import gc
    from ..dataset import load_dataset
    ds = load_dataset(path, split=common.split, on_error=common.on_error, fmt=common.fmt, classes=common.classes,
                      exif=common.exif, images_outside=common.images_outside,
                      progress=lambda it: progress(it, desc="reading annotations", quiet=common.quiet, unit="file"))
    # The data set lives for the whole command: frozen, the cyclic collector's scans skip its objects (a
    # 100,000-annotation COCO file is ~7 million of them, made while the collector was paused; its next two scans
    # cost ~0.5 s each, 30% of `info`).  Unfrozen when the command ends, so the collector's last pass at exit frees
    # every cycle as usual (an h5py object left to the HDF5 library's own exit handler crashes the process).
    gc.freeze()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(gc.unfreeze)
    return ds


def class_map(common: Common, classes: Sequence[str], where) -> "ClassMap":
    """The ``--map``/``--drop`` of this run, checked against ``classes`` (the data set's, or the union of the
    inputs'): a class the data set lacks is a usage error (exit code 2)."""
    from ..ops.classmap import ClassMap
    try:
        cmap = ClassMap(dict(common.class_map or {}), tuple(common.drop or ()))
        cmap.check(classes)
    except ValueError as e:
        raise UsageError(f"{e}" if str(e).startswith("--") else f"--map/--drop: {e}") from e
    return cmap


def map_classes(ds, common: Common, summary: Optional[Summary] = None):
    """``ds`` with ``--map``/``--drop`` applied (a new :class:`~dsprep.core.Dataset`; ``ds`` is left as it was), the
    objects renamed and dropped counted in ``summary``."""
    import dataclasses
    from ..ops.classmap import apply_to_records
    cmap = class_map(common, ds.classes, ds.root)
    if not cmap:
        return ds
    records, counts = apply_to_records(ds.records, cmap)
    if summary is not None:
        for k in ("class_renamed", "class_dropped"):
            summary.add(k, counts.get(k, 0))
    return dataclasses.replace(ds, records=records, classes=cmap.classes(ds.classes), meta=cmap.meta(ds.meta))


def start_summary(verb: str, ds=None) -> Summary:
    """A summary that already lists what reading the data set skipped (every skipped input is accounted for)."""
    summary = Summary(verb)
    if ds is not None:
        account_inputs(summary, ds)
    return summary


def account_inputs(summary: Summary, ds) -> None:
    """Count ``ds``'s inputs in ``summary`` and list what reading it skipped (for commands reading several)."""
    summary.add("inputs", len(ds.records) + sum(1 for f, _ in ds.skipped if part_kind(f) is None))
    for f, reason in ds.skipped:
        summary.skip(f, reason)


def finish(summary: Summary, out: Optional[str], order: Sequence[str], common: Optional[Common] = None) -> None:
    """The one summary line (and one line per skipped input) on stderr; with ``--json`` the same as JSON on stdout.

    The run's outcome is final from here on (:func:`signals.settle`): a late Ctrl-C adds no second line."""
    signals.settle()
    click.echo(summary.line(out, list(order)), err=True)
    for line in summary.details():
        click.echo(line, err=True)
    if common is not None and common.as_json:
        click.echo(json.dumps(summary.as_dict(out), ensure_ascii=False, indent=1))


def explain_lossy(summary: Summary, target: str) -> None:
    """One line on stderr for each kind of loss a data-set writer of format ``target`` counted
    (``jobs.convert.LOSSY``)."""
    from ..jobs.convert import LOSSY
    for kind in summary.counts:
        if kind in LOSSY and summary.counts[kind]:
            click.echo(f"  {kind}: {summary.counts[kind]} ({LOSSY[kind].format(target=target.upper())})", err=True)


def check_classes_known(wanted: Sequence[str], ds, option: str) -> None:
    unknown = [c for c in wanted if c not in ds.classes]
    if unknown:
        raise UsageError(f"{option}: no class {', '.join(unknown)} in {ds.root} (classes: {', '.join(ds.classes)})")
