"""``dsprep review``: a local page to look through a data set and fix its labels."""
from __future__ import annotations

import json
import shutil
import tempfile
import threading

import click

from ..report import progress
from .common import shared


@click.command()
@click.argument("dataset", type=click.Path())
@click.option("--port", type=int, default=0, show_default="a free port",
              help="Port to listen on (on 127.0.0.1 only).")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@click.option("--read-only", is_flag=True, help="Look only: nothing is saved (needed for a read-only data set or a "
                                                "packed file).")
@shared("dataset", "run")
def review(dataset, port, no_browser, read_only, common):
    """A local page to look through DATASET and fix its labels (Ctrl-C to stop).

    Thumbnails filtered by class, split or problem; images with their boxes and polygons; a gallery of each class's
    objects.  Change an object's class, move, resize, delete or draw boxes and quads, undo, save: each save
    rewrites only what changed in the annotation file and keeps the previous file in .dsprep-history/ beside it.
    The server listens on 127.0.0.1 only and answers only requests carrying the random token in the printed URL.
    With --json, stdout gets one line: a JSON document with the URL and the counts (the rest goes to stderr).
    """
    from ..review.server import ReviewServer
    from ..review.session import HISTORY_DIR, Review
    server = ReviewServer(port)  # a busy port fails before the data set is read
    try:
        session = Review(dataset, read_only=read_only, exif=common.exif, split=common.split, fmt=common.fmt,
                         on_error=common.on_error,
                         progress=lambda it: progress(it, desc="reading annotations", quiet=common.quiet, unit="file"))
    except BaseException:
        server.server_close()
        raise
    server.review = session
    private = tempfile.mkdtemp(prefix="dsprep-review-")  # mode 0700: for the browser's redirect file only
    n_obj = sum(len(r) for r in session.records)
    mode = (f"saving into the annotation files (earlier versions kept in {HISTORY_DIR}/)" if session.editable
            else "read-only: nothing is saved")
    human = common.as_json  # with --json, stdout carries the JSON document only
    click.echo(f"dsprep review: {dataset} ({session.format}, {len(session.records)} images, {n_obj} objects), "
               f"{mode}", err=human)
    click.echo(f"open {server.url}   (Ctrl-C to stop)", err=human)
    if common.as_json:
        click.echo(json.dumps({"url": server.url, "port": server.port, "dataset": str(dataset),
                               "format": session.format, "images": len(session.records), "objects": n_obj,
                               "editable": session.editable, "skipped": len(session.ds.skipped)}, ensure_ascii=False))
    if not no_browser:
        threading.Thread(target=open_browser, args=(server.url, private), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM is how a review ends: not an error
        pass
    finally:
        server.server_close()
        session.close()  # waits for a save in progress
        shutil.rmtree(private, ignore_errors=True)
    click.echo(f"dsprep review: stopped; {session.saves} file{'s' * (session.saves != 1)} saved"
               + (f" (earlier versions in {HISTORY_DIR}/)" if session.saves else ""), err=True)


def open_browser(url: str, folder: str) -> bool:
    """Open ``url`` in the user's browser without putting it on a command line (where ``ps`` shows it to every
    local user): the browser gets a redirecting file in ``folder``, a private folder of this user's."""
    import webbrowser
    from html import escape
    from pathlib import Path
    from ..outputs import atomic_write_text
    page = Path(folder) / "open-dsprep-review.html"
    atomic_write_text(page, f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url='
                            f'{escape(url)}"><title>dsprep review</title><a href="{escape(url)}">dsprep review</a>\n')
    try:
        opened = webbrowser.open(page.as_uri())
    except Exception:  # a broken browser setting must not stop the server
        opened = False
    if not opened:
        click.echo("dsprep review: no browser found: open the URL above yourself", err=True)
    return opened
