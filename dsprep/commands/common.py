"""What every command shares: the error-reporting group, option decorators, loading, running jobs, summaries."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Iterable, List, Optional

import click

from ..core import DatasetError, DsprepError, OutputError
from ..report import Summary, progress


class DsprepGroup(click.Group):
    """Turns a :class:`DsprepError` into one ``error: ...`` line and its exit code; other errors are bugs."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DsprepError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)

    def list_commands(self, ctx):  # keep the order commands were added in: the order of a typical workflow
        return list(self.commands)


def _csv(value: Optional[str]) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def dataset_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(f)
    f = click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     help="fail: stop at the first bad file; skip: go on and list skipped files at the end.")(f)
    f = click.option("--split", default=None, help="Only the images listed for this split (e.g. train).")(f)
    return f


def worker_options(f):
    f = click.option("--scheduler", default=None, envvar="DSPREP_SCHEDULER",
                     help="Dask scheduler address (tcp://HOST:8786), or 'local' for a throwaway cluster "
                          "[env: DSPREP_SCHEDULER]. Needs dsprep[dask].")(f)
    f = click.option("--workers", "-j", default="1", show_default=True,
                     help="Local worker processes (a number or 'auto').")(f)
    return f


def _load(path, split, on_error, quiet):
    from ..dataset import load_dataset
    return load_dataset(path, split=split, on_error=on_error,
                        progress=lambda it: progress(it, desc="reading annotations", quiet=quiet, unit="file"))


def run_jobs(fn: Callable, items: List, summary: Summary, on_error: str, workers, scheduler, quiet: bool,
             desc: str, name_of: Callable = lambda item: str(item)) -> Iterable[dict]:
    """Run per-image jobs through the executor layer, feeding the bar, applying ``--on-error``.

    Yields ``(item, result)`` in input order; ``result`` is None for an item skipped by ``--on-error skip``."""
    from ..parallel import executor, run
    with executor(workers, scheduler) as backend, progress(total=len(items), desc=desc, quiet=quiet) as bar:
        for item, result, err in run(backend, fn, items, on_done=lambda _: bar.update(1),
                                     isolate_failures=on_error == "skip", describe=name_of):
            if err is None:
                for k, v in result.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        summary.add(k, v)
                yield item, result
            elif isinstance(err, DsprepError):
                if on_error == "fail":
                    raise err
                summary.skip(name_of(item), str(err))
                yield item, None
            else:
                raise err


def _finish(summary: Summary, out: Optional[str], order: List[str]) -> None:
    click.echo(summary.line(out, order), err=True)
    for line in summary.details():
        click.echo(line, err=True)
