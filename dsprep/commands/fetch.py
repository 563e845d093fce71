"""``dsprep fetch``: a public data set (or any archive with a known checksum) downloaded, checked and unpacked."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..core import DatasetError, Interrupted, UsageError
from ..report import Summary
from .common import Common, load


def _number(option: str, text: str, kind=float, minimum=0.0):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < minimum or value != value:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{option}: expected {what} >= {minimum:g}, got '{text}'")
    return value


def _list() -> None:
    from ..fetch import REGISTRY
    width = max(len(n) for n in REGISTRY)
    for e in REGISTRY.values():
        click.echo(f"{e.name:<{width}}  {e.size / 1e6:>7,.0f} MB  {e.description}")
        click.echo(f"{'':<{width}}  {e.filename}, sha256 {e.sha256}")


@click.command()
@click.argument("source", required=False, metavar="NAME|URL")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Folder to unpack into (created; must be missing or empty unless --overwrite).")
@click.option("--sha256", default=None, metavar="HEX", help="Expected SHA-256 of the file (required with a URL).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder (once the new one is complete).")
@click.option("--cache", type=click.Path(file_okay=False), envvar="DSPREP_CACHE",
              help="Download cache [env: DSPREP_CACHE; default: ~/.cache/dsprep].")
@click.option("--timeout", default="30", show_default=True, metavar="SECONDS",
              help="Give up a connection after this long without data.")
@click.option("--retries", default="5", show_default=True, metavar="N",
              help="Retries per source after a network error, with backoff (1 s, 2 s, 4 s ...).")
@click.option("--list", "list_", is_flag=True, help="List the data sets dsprep knows, and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def fetch(ctx, source: Optional[str], out, sha256, overwrite, cache, timeout, retries, list_, quiet):
    """Download a data set (voc2007, voc2007-test, voc2012) or any archive URL with --sha256, verify it, unpack
    it safely into --out and say what is in it.

    Interrupted downloads resume where they stopped; a second fetch of the same file is taken from the cache."""
    from ..fetch import cache_root, fetch as run_fetch, resolve
    if list_:
        _list()
        return
    if not source:
        raise UsageError("give a data set name or a URL (dsprep fetch --list shows the names)")
    entry = resolve(source, sha256)
    if not out:
        raise UsageError("--out DIR is required (the folder to unpack into)")
    timeout_s = _number("--timeout", timeout, float, 0.001)
    n_retries = _number("--retries", retries, int, 0)
    cache_dir = Path(cache).expanduser() if cache else cache_root()
    summary = Summary(f"fetch {entry.name}")
    try:
        result = run_fetch(entry, out, cache=cache_dir, overwrite=overwrite, timeout=timeout_s, retries=n_retries,
                           quiet=quiet, log=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt as e:
        raise Interrupted(getattr(e, "signum", 2), f"nothing was written to {out}; the partial download is kept in "
                                                   f"{cache_dir} and the same command resumes it") from e
    _show_info(result, quiet)
    dl = result.download
    source_text = f"cache ({dl.path})" if dl.cached else dl.source
    resumed = f"resumed at byte {dl.resumed_from}" if dl.resumed_from else "not resumed"
    summary.verb = f"fetch {entry.name} from {source_text}, {resumed}"
    summary.add("bytes downloaded", dl.fetched)
    summary.add("files extracted", result.members)
    click.echo(summary.line(str(result.out), ["bytes downloaded", "files extracted"]), err=True)


def _show_info(result, quiet: bool) -> None:
    """What ``dsprep info`` says about the data set just unpacked (a bad file there is listed, not fatal)."""
    from ..info import format_summary, summarize
    if result.dataset is None:
        click.echo(f"{result.out}: no data set dsprep reads was found in it (dsprep info skipped)")
        return
    try:
        ds = load(result.dataset, Common(on_error="skip", quiet=quiet))
    except DatasetError as e:  # the download is fine; there is just nothing dsprep info can say
        click.echo(f"dsprep info: {e}")
        return
    click.echo(format_summary(summarize(ds)))
