"""One executor layer for every heavy command: in-process, local worker processes, or a Dask cluster.

Every path is a :class:`concurrent.futures.Executor`: ``ProcessPoolExecutor`` for ``--workers N``, and
``distributed.Client.get_executor()`` for ``--scheduler ADDRESS`` (``local`` starts a throwaway ``LocalCluster``).
Work units are whole images (or tiles of one huge image).  :func:`run` streams results back in completion order to
feed the progress bar, and yields them in submission order, so outputs that the caller writes are deterministic.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

from .core import DsprepError

# Measured: Dask workers with glibc's default malloc thresholds spent ~1.5x the CPU on image tasks (large arrays
# are repeatedly mmapped and trimmed).  A fixed mmap threshold avoids that; set for every worker process we start.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864"}


class SerialExecutor(Executor):
    """Runs each task when submitted, in this process (``--workers 1``): no pickling, plain tracebacks."""

    def submit(self, fn, *args, **kwargs):
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(e, KeyboardInterrupt):
                raise
            fut.set_exception(e)
        return fut


def worker_init() -> None:
    """In each worker process: one OpenCV thread (the processes already use every core; OpenCV's own pool on top
    would oversubscribe them)."""
    import cv2
    cv2.setNumThreads(1)


def parse_workers(value) -> int:
    if value is None:
        return 1
    if str(value).lower() == "auto":
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError as e:
        raise DsprepError(f"--workers must be a number or 'auto', not '{value}'") from e
    if n < 1:
        raise DsprepError(f"--workers must be at least 1, not {n}")
    return n


@contextlib.contextmanager
def executor(workers=1, scheduler: Optional[str] = None):
    """Yield ``(executor, n_slots)`` for the requested backend and shut it down afterwards."""
    scheduler = scheduler or os.environ.get("DSPREP_SCHEDULER") or None
    if scheduler:
        with _dask_executor(scheduler) as pair:
            yield pair
        return
    n = parse_workers(workers)
    if n == 1:
        yield SerialExecutor(), 1
        return
    for k, v in MALLOC_ENV.items():
        os.environ.setdefault(k, v)
    # forkserver, not fork: the parent may already run OpenCV's thread pool (and hold HDF5 handles), and a forked
    # child of a threaded parent can deadlock inside OpenCV.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["dsprep.jobs", "dsprep.hdf5", "cv2", "numpy"])
    ex = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=worker_init)
    try:
        yield ex, n
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _dask_executor(address: str):
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise DsprepError('--scheduler needs Dask: pip install "dsprep[dask]"') from e
    dask.config.set({"distributed.nanny.pre-spawn-environ": dict(MALLOC_ENV),
                     "distributed.comm.timeouts.connect": "10s"})
    cluster = None
    try:
        if address == "local":
            cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise DsprepError(f"cannot reach the Dask scheduler at {address} ({e})") from e
    try:
        n = max(1, sum(client.nthreads().values()))
        client.run(worker_init)
        yield client.get_executor(pure=False), n
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run(ex: Executor, fn: Callable, items: Iterable[Any], slots: int = 1,
        on_done: Optional[Callable[[Any], None]] = None) -> Iterator[Tuple[Any, Any, Optional[BaseException]]]:
    """Apply ``fn`` to every item; yield ``(item, result, error)`` in submission order.

    At most ``2 * slots + 2`` tasks are in flight (bounded memory whatever the input size); ``on_done(item)`` is
    called as each finishes, in completion order (for the progress bar).  A task's exception is returned, not
    raised, so the caller applies its ``--on-error`` policy.
    """
    window = max(1, 2 * slots + 2)
    it = iter(items)
    pending = {}
    order = []
    done_results = {}
    next_out = 0
    submitted = 0
    exhausted = False
    while True:
        while not exhausted and len(pending) < window:
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                break
            fut = ex.submit(fn, item)
            pending[fut] = submitted
            order.append(item)
            submitted += 1
        if not pending and next_out >= submitted:
            return
        if pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                idx = pending.pop(fut)
                err = fut.exception()
                done_results[idx] = (None if err else fut.result(), err)
                if on_done is not None:
                    on_done(order[idx])
        while next_out in done_results:
            res, err = done_results.pop(next_out)
            yield order[next_out], res, err
            order[next_out] = None
            next_out += 1
