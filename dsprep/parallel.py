"""One executor layer for every heavy command: in-process, local worker processes, or a Dask cluster.

Every path is a :class:`concurrent.futures.Executor`: ``ProcessPoolExecutor`` for ``--workers N``, and
``distributed.Client.get_executor()`` for ``--scheduler ADDRESS`` (``local`` starts a throwaway ``LocalCluster``).
Work units are whole images (or tiles of one huge image).  :func:`run` streams results back in completion order to
feed the progress bar, and yields them in submission order, so outputs the caller writes are deterministic.

Failures: a task that raises is returned with its item; a local worker process that dies (killed, out of memory,
segfault) breaks the pool: the pool is restarted and the tasks that were in flight are retried one at a time, so
the one that kills its worker is reported by name (and skipped under ``--on-error skip``).  On Dask, a worker that
dies has its tasks rescheduled by Dask; a task that kills workers repeatedly ends as ``KilledWorker`` for its item.
A scheduler that stops answering ends the run with an error instead of a hang.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

from .core import DsprepError, UsageError
from .signals import deferred

# Measured: Dask workers with glibc's default malloc thresholds spent ~1.5x the CPU on image tasks (large arrays
# are repeatedly mmapped, zeroed and trimmed).  Fixed thresholds avoid that.  They are set as environment variables
# for processes we start, and with mallopt() inside every worker (which also covers `dask worker` processes
# started by hand, whose environment we do not control).
MMAP_THRESHOLD = 33554432
TRIM_THRESHOLD = 67108864
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
DASK_BATCH = 4  # images per Dask task: amortizes the per-task scheduling cost (measured: 90 -> 110 images/s)
# Seconds a Dask client may spend reconnecting to a silent scheduler before the run is given up.
SCHEDULER_GRACE = float(os.environ.get("DSPREP_SCHEDULER_GRACE", "20"))


class WorkerLost(DsprepError):
    """A worker process died (or the scheduler was lost) while working on an item."""


def worker_init() -> None:
    """In each worker process: one OpenCV thread (the processes already use every core; OpenCV's own pool on top
    would oversubscribe them), glibc malloc thresholds for large image buffers, and signals: Ctrl-C is the parent's
    to handle (a terminal sends it to every process of the group), SIGTERM ends the worker through Python (so
    atomic writes remove their temporary files), and the worker is sent SIGTERM when its parent dies."""
    import cv2
    cv2.setNumThreads(1)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
        if threading.current_thread() is threading.main_thread():
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the parent (even a SIGKILLed one)
    except (OSError, AttributeError):
        pass  # not glibc/Linux: nothing to tune
    import warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # the run reports its own findings
    if threading.current_thread() is threading.main_thread():  # Dask runs this on a worker thread: no signals
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_on_term)
        sys.unraisablehook = _unraisable


def _unraisable(info) -> None:
    """The SystemExit of :func:`_exit_on_term` raised where Python cannot propagate it (a weakref callback, a
    ``__del__``, an import lock's clean-up): Python would print "Exception ignored in ..." on the run's terminal
    and carry on with the task.  A stopping worker leaves at once instead (the parent removes its temporaries)."""
    if _terminating and isinstance(info.exc_value, SystemExit):
        os._exit(143)
    sys.__unraisablehook__(info)


_busy = False         # this worker process is running a task
_terminating = False  # and has been told to stop


def _exit_on_term(signum, frame):
    """SIGTERM in a worker: inside a task, unwind it (its atomic writes remove their temporaries) and then leave
    (:func:`_task`); between tasks, leave at once: the worker may be half-way through reading the task queue, and
    unwinding there would leave the next reader a torn message (and a traceback on the terminal)."""
    global _terminating
    _terminating = True
    if not _busy:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


def _task(fn: Callable, item: Any) -> Any:
    """How a local worker runs ``fn(item)``: marked busy for :func:`_exit_on_term`, and never back to the pool's
    loop once told to stop (the pool would catch the SystemExit and read the queue again)."""
    global _busy
    _busy = True
    try:
        return fn(item)
    except SystemExit:
        if _terminating:
            os._exit(143)
        raise
    finally:
        _busy = False


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


def parse_workers(value) -> int:
    if value is None:
        return 1
    if str(value).lower() == "auto":
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError as e:
        raise UsageError(f"--workers must be a number or 'auto', not '{value}'") from e
    if n < 1:
        raise UsageError(f"--workers must be at least 1, not {n}")
    if n > 1024:
        raise UsageError(f"--workers {n}: more worker processes than dsprep will start (at most 1024)")
    return n


_ADDRESS = re.compile(r"^(?:(?:tcp|tls|inproc|ucx|ws|wss)://)?(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$")


def check_scheduler(value: Optional[str]) -> Optional[str]:
    """``--scheduler``: ``local`` or a Dask address (``tcp://HOST:PORT``, ``HOST:PORT``); anything else is a usage
    error before any work."""
    if value is None or value == "" or value == "local":
        return value or None
    m = _ADDRESS.match(value)
    if not m or "://" not in value and m.group(1) is None or (m.group(1) and not 0 < int(m.group(1)) < 65536):
        raise UsageError(f"--scheduler must be 'local' or a Dask address such as tcp://HOST:8786, not '{value}'")
    return value


class Backend:
    """An executor plus what :func:`run` needs around it: slot count, restart, health check."""

    def __init__(self, ex: Executor, slots: int, kind: str, restart: Optional[Callable[[], Executor]] = None,
                 alive: Optional[Callable[[], bool]] = None, batch: int = 1):
        self.ex, self.slots, self.kind, self.batch = ex, slots, kind, batch
        self._restart, self.alive = restart, alive or (lambda: True)

    def restart(self) -> None:
        if self._restart is None:
            raise DsprepError("the executor cannot be restarted")
        self.ex = self._restart()


def _forkserver():
    """The context local worker pools start from.  forkserver, not fork: the parent may already run OpenCV's thread
    pool (and hold HDF5 handles), and a forked child of a threaded parent can deadlock inside OpenCV.  The server
    preloads what most workers need, so each forked worker starts with it (h5py is left to the packing workers:
    measured, preloading shapely instead of h5py gets two tile-dota workers to their first image 0.15 s sooner)."""
    for k, v in MALLOC_ENV.items():
        os.environ.setdefault(k, v)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["dsprep.jobs", "dsprep.images", "dsprep.tiling", "cv2", "numpy"])
    _start_forkserver()
    return ctx


def warm_up(workers, scheduler: Optional[str] = None) -> None:
    """Start the fork server of a local pool now, when a command begins, so that its imports (~0.2 s) run on the
    other core while the command reads its data set instead of after it (measured: tile-dota with 2 workers on 12
    images, 0.06-0.09 s sooner).  Does nothing for one worker or a Dask scheduler."""
    if scheduler or os.environ.get("DSPREP_SCHEDULER"):
        return
    try:
        n = parse_workers(workers)
    except DsprepError:
        return
    if n > 1:
        _forkserver()


def _start_resource_tracker(resource_tracker) -> None:
    """Start multiprocessing's resource tracker with its standard error on /dev/null.

    The tracker removes the named semaphores of process pools that a process left behind, and says so on standard
    error.  dsprep's pools leave some only when a Ctrl-C ends a run at the moment a pool's queue is being torn
    down in another thread (its semaphore unlinked, the tracker not yet told): the tracker then removes it -- the
    clean-up it is there for -- but its "leaked semaphore" warning would land on the terminal after the run's one
    line.  Nothing is lost by not printing it: the semaphore is gone either way."""
    if getattr(resource_tracker._resource_tracker, "_fd", None) is not None:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _start_forkserver() -> None:
    """Start the fork server (once) with SIGINT blocked: a terminal's Ctrl-C reaches every process of its group, and
    the server would otherwise print a KeyboardInterrupt traceback when one arrives while it imports its preloads
    (its workers inherit the mask, and ignore SIGINT anyway: Ctrl-C is the parent's to handle)."""
    from multiprocessing import forkserver, resource_tracker
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        forkserver.ensure_running()
        return
    # the resource tracker first: starting it unblocks SIGINT whatever the mask was (it blocks and then unblocks
    # SIGINT and SIGTERM around its own start), which would undo the mask below
    _start_resource_tracker(resource_tracker)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _process_pool(n: int) -> ProcessPoolExecutor:
    ctx = _forkserver()
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=worker_init)


@contextlib.contextmanager
def executor(workers=1, scheduler: Optional[str] = None):
    """Yield a :class:`Backend` for the requested backend and shut it down afterwards."""
    scheduler = check_scheduler(scheduler or os.environ.get("DSPREP_SCHEDULER") or None)
    if scheduler:
        with _dask_backend(scheduler) as backend:
            yield backend
        return
    n = parse_workers(workers)
    if n == 1:
        yield Backend(SerialExecutor(), 1, "serial")
        return
    holder: List[ProcessPoolExecutor] = []

    def restart():
        # a broken pool's surviving workers are stopped and waited for: none may finish (and rename an output
        # into place) after the caller has cleaned up
        stop_pool(holder[0])
        with deferred():
            holder[0] = _process_pool(n)
        return holder[0]

    try:
        # built whole or not at all: an interrupt inside the constructor left its queues' semaphores to the
        # resource tracker, which then warned of "leaked semaphore objects" after the run's one line
        with deferred():
            holder.append(_process_pool(n))
        yield Backend(holder[0], n, "processes", restart=restart)
    except BaseException:
        if holder:
            stop_pool(holder[0])  # failure or interrupt: no worker may go on writing after we return
        raise
    with deferred():
        holder[0].shutdown(wait=True, cancel_futures=True)


def stop_pool(pool: ProcessPoolExecutor, grace: float = 2.0) -> None:
    """End a process pool now: queued tasks cancelled, workers sent SIGTERM (they remove their temporary files and
    exit), and killed after ``grace`` seconds if still alive."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    with deferred():  # takes the pool's and its futures' locks
        pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        with contextlib.suppress(Exception):
            if p.is_alive():
                p.kill()
                p.join(1.0)
    # the pool's manager thread drops its queues once it sees the workers gone, and their semaphores are unlinked
    # then; a process leaving before that thread is done leaves the resource tracker a semaphore to warn about
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None and manager is not threading.current_thread():
        with contextlib.suppress(Exception):
            manager.join(max(0.5, deadline + 1.0 - time.monotonic()))


@contextlib.contextmanager
def _dask_backend(address: str):
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
            # silence_logs: its workers would log every task cancelled by Ctrl-C on our stderr
            cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise DsprepError(f"cannot reach the Dask scheduler at {address} ({e})") from e
    lost_since: List[Optional[float]] = [None]

    def alive() -> bool:
        if client.status == "running":
            lost_since[0] = None
            return True
        if lost_since[0] is None:
            lost_since[0] = time.monotonic()
        return time.monotonic() - lost_since[0] < SCHEDULER_GRACE

    # The client logs every reconnection attempt with a traceback; the run reports a lost scheduler itself.
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        n = max(1, sum(client.nthreads().values()))
        client.run(worker_init)
        yield Backend(client.get_executor(pure=False), n, "dask", alive=alive, batch=DASK_BATCH)
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if cluster is not None:
            cluster.close()
        log.setLevel(level)


def _is_worker_death(err: BaseException) -> bool:
    if isinstance(err, BrokenProcessPool):
        return True
    return type(err).__name__ == "KilledWorker"  # distributed.scheduler.KilledWorker, without importing Dask


def call_batch(fn: Callable, items: List[Any]) -> List[Tuple[Any, Optional[BaseException]]]:
    """Worker side of a batch: ``fn`` on each item, its result or its exception, in order; then the seconds the
    batch took, as a last ``(seconds, None)`` entry (the client sizes later batches with it)."""
    out: List[Tuple[Any, Optional[BaseException]]] = []
    t = time.perf_counter()
    for item in items:
        try:
            out.append((fn(item), None))
        except Exception as e:  # noqa: BLE001 - returned to the caller, which applies --on-error
            out.append((None, e))
    out.append((time.perf_counter() - t, None))
    return out


# Seconds of work a Dask task should carry: below, the scheduler's per-task cost (and its own CPU on a small
# cluster) shows (measured: synth's ~15 ms images, 4 to a task, ran 1.59x one worker on 2 Dask workers).
DASK_TASK_SECONDS = 0.25
DASK_MAX_BATCH = 64


def run(backend: Backend, fn: Callable, items: Iterable[Any], on_done: Optional[Callable[[Any], None]] = None,
        isolate_failures: bool = False, describe: Callable[[Any], str] = str
        ) -> Iterator[Tuple[Any, Any, Optional[BaseException]]]:
    """Apply ``fn`` to every item; yield ``(item, result, error)`` in submission order.

    Results arrive in completion order (``on_done(item)`` is called then, for the progress bar) and are yielded in
    submission order.  A task's exception is returned, not raised, so the caller applies its ``--on-error``
    policy.  At most ``2 * slots + 2`` tasks are in flight locally, so memory stays bounded whatever the input
    size.  On Dask, items travel in batches of ``backend.batch`` and ``8 * slots`` batches are in flight, which hides
    the scheduler's round trip (measured: one image per task and 6 in flight left 2 workers idle a third of the
    time); batches grow until a task carries about :data:`DASK_TASK_SECONDS` of work (timed on the worker).  When a
    local worker process dies, the pool is restarted; with ``isolate_failures`` the tasks that were in flight are
    retried one by one so that only the item that kills its worker fails, otherwise the run stops with an error
    naming them.
    """
    dask = backend.kind == "dask"
    batch = backend.batch if dask else 1
    window = max(16, 8 * backend.slots) if dask else max(1, 2 * backend.slots + 2)
    it = iter(items)
    pending = {}  # future -> indices of its items
    order: List[Any] = []
    done_results = {}
    next_out = 0
    exhausted = False

    def finish(idx: int, res, err) -> None:
        if err is not None and _is_worker_death(err):
            err = WorkerLost(f"{describe(order[idx])}: the worker process died while working on it ({err})")
        done_results[idx] = (res, err)
        if on_done is not None:
            on_done(order[idx])

    try:
        while True:
            while not exhausted and len(pending) < window:
                idxs = []
                for _ in range(batch):
                    try:
                        order.append(next(it))
                    except StopIteration:
                        exhausted = True
                        break
                    idxs.append(len(order) - 1)
                if not idxs:
                    break
                # the executor's locks are taken inside (see dsprep.signals); the serial executor runs the task
                # right here, which must stay interruptible
                with deferred() if backend.kind != "serial" else contextlib.nullcontext():
                    if dask:
                        fut = backend.ex.submit(call_batch, fn, [order[i] for i in idxs])
                    else:
                        fut = backend.ex.submit(_task, fn, order[idxs[0]]) if backend.kind == "processes" \
                            else backend.ex.submit(fn, order[idxs[0]])
                    pending[fut] = idxs
            if not pending and next_out >= len(order):
                return
            if pending:
                with deferred():  # wait() takes every future's lock: an interrupt is raised after it, within 0.5 s
                    done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                if not done:
                    if not backend.alive():
                        names = ", ".join(describe(order[i]) for idxs in pending.values() for i in idxs[:1])
                        raise WorkerLost(f"lost the Dask scheduler (no answer for {SCHEDULER_GRACE:.0f} s) while "
                                         f"working on {names}")
                    continue
                with deferred():  # each future's outcome read once, under its lock
                    outcome = {f: _outcome(f) for f in done}
                cancelled = [f for f in done if outcome[f][2]]
                if cancelled:  # we never cancel: Dask cancels the futures of a client that lost its scheduler
                    raise WorkerLost(f"lost the Dask scheduler while working on "
                                     f"{describe(order[pending[cancelled[0]][0]])}")
                broken = [f for f in done if isinstance(outcome[f][1], BrokenProcessPool)]
                if broken:
                    in_flight = sorted(i for idxs in pending.values() for i in idxs)
                    pending.clear()
                    backend.restart()
                    if not isolate_failures:
                        names = ", ".join(describe(order[i]) for i in in_flight[:5])
                        raise WorkerLost(f"a worker process died (killed or crashed) while working on one of: {names}")
                    for idx in in_flight:  # one at a time: the culprit breaks the pool alone
                        with deferred():
                            fut = backend.ex.submit(_task, fn, order[idx])
                        while True:
                            with deferred():
                                if wait([fut], timeout=0.5).done:
                                    res, err, _ = _outcome(fut)
                                    break
                        if err is not None and _is_worker_death(err):
                            backend.restart()
                        finish(idx, res, err)
                for fut in done:
                    if fut not in pending:
                        continue
                    idxs = pending.pop(fut)
                    res, err, _ = outcome[fut]
                    if dask and err is None:
                        seconds = res.pop()[0]
                        for idx, (r, e) in zip(idxs, res):
                            finish(idx, r, e)
                        if idxs:  # short items travel in bigger batches
                            per_item = max(seconds / len(idxs), 1e-4)
                            batch = max(batch, min(DASK_MAX_BATCH, int(DASK_TASK_SECONDS / per_item)))
                    else:
                        for idx in idxs:
                            finish(idx, res, err)
            while next_out in done_results:
                res, err = done_results.pop(next_out)
                yield order[next_out], res, err
                order[next_out] = None
                next_out += 1
    except BaseException:
        with deferred():
            for fut in pending:  # Dask: stop what has not started; local pools are stopped by executor()
                with contextlib.suppress(Exception):
                    fut.cancel()
        raise


def _outcome(fut) -> Tuple[Any, Optional[BaseException], bool]:
    """``(result, exception, cancelled)`` of a finished future (call inside :func:`deferred`: each read takes the
    future's lock)."""
    if fut.cancelled():
        return None, None, True
    err = fut.exception(timeout=0)
    return (None if err is not None else fut.result(timeout=0)), err, False


# ---- forked readers ----------------------------------------------------------------------------------------------------

def fork_map(fn: Callable[[Any], Any], chunks: List[Any]) -> List[Any]:
    """``[fn(chunk) for chunk in chunks]``, the first chunk in this process and each other one in a forked child.

    For work too short to pay a worker pool's start (~0.3 s): reading many small files while a data set is loaded
    (annotation files, image headers), merging detections.  A forked child starts in milliseconds with everything
    this process has loaded, where a pool worker needs a fresh interpreter.  The work must not use OpenCV or HDF5
    (a child forked from a process whose OpenCV thread pool runs can deadlock inside OpenCV, see
    :func:`_process_pool`); results travel back pickled, so keep them compact.  Outputs a child writes go through
    :mod:`dsprep.outputs` like any worker's.  A child's exception is raised here; Ctrl-C and SIGTERM stop the children; a child that dies is a
    :class:`WorkerLost`."""
    import pickle
    if len(chunks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(c) for c in chunks]
    ctx = multiprocessing.get_context("fork")
    children = []
    try:
        for chunk in chunks[1:]:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_fork_child, args=(fn, chunk, send), daemon=True)
            # forked with SIGINT blocked, so that a Ctrl-C cannot reach the child before it ignores SIGINT (its
            # inherited handler would raise there); the parent gets it when the mask is restored
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                proc.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            send.close()
            children.append((proc, recv))
        out = [fn(chunks[0])]
        for proc, recv in children:
            try:
                status, value = pickle.loads(recv.recv_bytes())
            except EOFError as e:
                raise WorkerLost(f"a reading process died (exit code {proc.exitcode})") from e
            proc.join()
            if status == "error":
                raise value
            out.append(value)
        return out
    finally:
        for proc, recv in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)


def _fork_child(fn, chunk, send) -> None:
    import pickle
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent while forking
    try:
        data = pickle.dumps(("ok", fn(chunk)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            data = pickle.dumps(("error", e), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps(("error", DsprepError(f"{type(e).__name__}: {e}")))
    send.send_bytes(data)
    send.close()
