"""Ctrl-C and SIGTERM: turned into :class:`~dsprep.core.Interrupted`, but never inside a lock.

Python runs a signal handler in the main thread between two bytecodes, so a handler that raises can do so inside
library code that has just acquired a lock and not yet entered the ``try`` that releases it (``Condition.__enter__``,
``concurrent.futures.wait`` acquiring its futures one by one).  The lock then stays taken, and the interpreter hangs
at exit joining the pool's manager thread, which waits for that lock (seen once in 30 interrupted runs).  So:

* :func:`handler` raises at once, except inside :func:`deferred` blocks (around every call that takes the
  executor's or a future's locks), where it only records the signal; the block raises it when it ends;
* :func:`run_program` (used by the program's entry point, :mod:`dsprep.program`) ends an interrupted process with ``os._exit`` once its own clean-up
  has run (outputs removed, workers stopped), so no lock a library may still hold can keep it from exiting;
* :func:`settle` marks the moment a run's outcome is final (its output complete, its report being printed): a
  signal after it can no longer undo the run, so it is ignored.  Without this a signal landing after the summary
  line either printed a second line claiming nothing was left (the output was complete) or, during the
  interpreter's shutdown (which restores the default handlers), killed the process with no line at all.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Dict, Iterator, Optional


_depth = 0                     # how many deferred() blocks the main thread is in
_pending: Optional[int] = None  # a signal received inside them
_interrupted = False            # an interrupt was raised in this process
_installed = False              # handler() is this process's SIGINT/SIGTERM handler
_settled = False                # the run's outcome is final: signals are ignored from here on
_program = False                # this process is the dsprep program (it ends when its command ends)


def handler(signum, frame) -> None:
    """The SIGINT/SIGTERM handler: raise :class:`Interrupted`, or record it inside :func:`deferred`."""
    global _pending, _interrupted
    _interrupted = True
    if _depth:
        _pending = signum
        return
    raise _interrupt(signum)


def _interrupt(signum: int) -> KeyboardInterrupt:
    """dsprep's :class:`~dsprep.core.Interrupted`, or a plain KeyboardInterrupt while dsprep.core is still being
    imported (the program's entry point reports both alike)."""
    exc = getattr(sys.modules.get(f"{__package__}.core"), "Interrupted", None)
    return exc(signum) if exc is not None else KeyboardInterrupt(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block the interrupt handler does not raise into; a signal received meanwhile is raised when the block
    (the outermost one) ends.  Keep such blocks short: the signal waits for them."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise _interrupt(signum)


def _let_pool_threads_finish(seconds: float) -> None:
    """Wait (at most ``seconds`` in all) for the threads of stopped process pools -- a pool's manager thread and
    its queues' feeder threads -- which unlink their queues' semaphores as they end: a process leaving while one
    of them is between unlinking a semaphore and telling the resource tracker leaves the tracker a "leaked
    semaphore" to warn about on the terminal, after the run's one line."""
    import time
    deadline = time.monotonic() + seconds
    for t in threading.enumerate():
        kind = type(t).__module__
        if t is threading.current_thread() or not (kind.startswith(("concurrent.futures", "multiprocessing"))
                                                    or t.name.startswith("QueueFeederThread")):
            continue
        t.join(max(0.0, deadline - time.monotonic()))


def install(program: bool = False) -> Optional[Dict[int, object]]:
    """Handle SIGINT and SIGTERM with :func:`handler` (main thread only); the previous handlers, to restore.

    ``program``: this process is the ``dsprep`` program, which exits when its command ends, so a settled run's
    signals stay ignored until then (see :func:`restore`)."""
    global _installed, _settled, _program
    if threading.current_thread() is not threading.main_thread():
        return None
    _program = _program or program
    if not _program:
        _settled = False  # a library caller (or a test) running one command after another
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _installed = True
    return previous


def settle() -> None:
    """The run's outcome is final (its output complete, its report about to be printed): from now on SIGINT and
    SIGTERM are ignored, so a late one neither undoes the run nor adds a line.  Does nothing where dsprep's
    handler is not installed (a library caller's own signal handling is left alone)."""
    global _settled, _pending
    if not _installed or threading.current_thread() is not threading.main_thread():
        return
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    _settled, _pending = True, None


def restore(previous: Optional[Dict[int, object]]) -> None:
    """Put back the handlers :func:`install` replaced; in the program, a settled run keeps ignoring signals."""
    global _pending, _installed
    _pending = None
    if _settled and _program:
        return
    for s, h in (previous or {}).items():
        signal.signal(s, h)
    _installed = bool(previous) and all(h is handler for h in previous.values())


def run_program(main: Callable[[], object]) -> None:
    """Run the command line; after an interrupt, leave at once with its exit code (see the module's note)."""
    try:
        main()
    except SystemExit as e:
        # the command has ended, or stopped: a further signal must neither break into the clean-up below nor kill
        # the exiting interpreter (whose shutdown restores the default handlers) after the run's one line
        settle()
        if _interrupted:
            leave(e.code if isinstance(e.code, int) else 1)
        raise


def leave(code: int) -> None:
    """End an interrupted process now, with ``code``, after multiprocessing's own exit work that cannot wait on a
    thread: its semaphores unlinked (else the resource tracker warns of leaked ones); not the queue feeders'
    joins, which could."""
    with contextlib.suppress(Exception):
        _let_pool_threads_finish(1.0)
    with contextlib.suppress(Exception):
        if "multiprocessing" in sys.modules:
            from multiprocessing import util
            util._run_finalizers(0)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


__all__ = ["handler", "deferred", "install", "settle", "restore", "run_program", "leave"]
