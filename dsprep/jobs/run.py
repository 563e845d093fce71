"""Running per-image jobs: the one loop every command uses, over the one executor (:mod:`dsprep.parallel`), feeding a
progress bar and the summary, applying ``--on-error``."""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

from ..core import DsprepError
from ..report import Summary, progress


def run_jobs(fn: Callable, items: List, summary: Summary, common, desc: str,
             name_of: Callable = lambda item: str(item)) -> Iterable[Tuple[object, Optional[dict]]]:
    """Run per-image jobs through the executor layer, feeding the bar, applying ``--on-error``.

    ``common`` holds the run options (``workers``, ``scheduler``, ``on_error``, ``quiet``: a command's
    :class:`dsprep.commands.common.Common`).  Yields ``(item, result)`` in input order; ``result`` is None for an
    item skipped by ``--on-error skip``."""
    from ..parallel import executor, run
    with executor(common.workers, common.scheduler) as backend, \
            progress(total=len(items), desc=desc, quiet=common.quiet) as bar:
        for item, result, err in run(backend, fn, items, on_done=lambda _: bar.update(1),
                                     isolate_failures=common.on_error == "skip", describe=name_of):
            if err is None:
                for k, v in result.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        summary.add(k, v)
                for where, reason in result.get("skipped", ()):
                    summary.skip(where, reason)
                yield item, result
            elif isinstance(err, DsprepError):
                if common.on_error == "fail":
                    raise err
                summary.skip(name_of(item), str(err))
                yield item, None
            else:
                raise err
