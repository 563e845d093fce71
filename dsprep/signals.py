"""Ctrl-C and SIGTERM: turned into :class:`~dsprep.core.Interrupted`, but never inside a lock.

Python runs a signal handler in the main thread between two bytecodes, so a handler that raises can do so inside
library code that has just acquired a lock and not yet entered the ``try`` that releases it (``Condition.__enter__``,
``concurrent.futures.wait`` acquiring its futures one by one).  The lock then stays taken, and the interpreter hangs
at exit joining the pool's manager thread, which waits for that lock (seen once in 30 interrupted runs).  So:

* :func:`handler` raises at once, except inside :func:`deferred` blocks (around every call that takes the
  executor's or a future's locks), where it only records the signal; the block raises it when it ends;
* :func:`run_program` (used by the program's entry point, :mod:`dsprep.program`) ends an interrupted process with ``os._exit`` once its own clean-up
  has run (outputs removed, workers stopped), so no lock a library may still hold can keep it from exiting.
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


def install() -> Optional[Dict[int, object]]:
    """Handle SIGINT and SIGTERM with :func:`handler` (main thread only); the previous handlers, to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: Optional[Dict[int, object]]) -> None:
    global _pending
    for s, h in (previous or {}).items():
        signal.signal(s, h)
    _pending = None


def run_program(main: Callable[[], object]) -> None:
    """Run the command line; after an interrupt, leave at once with its exit code (see the module's note)."""
    try:
        main()
    except SystemExit as e:
        if _interrupted:
            with contextlib.suppress(Exception):
                # multiprocessing's own exit work that cannot wait on a thread: its semaphores unlinked (else the
                # resource tracker warns of leaked ones); not the queue feeders' joins, which could
                from multiprocessing import util
                util._run_finalizers(0)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(e.code if isinstance(e.code, int) else 1)
        raise


__all__ = ["handler", "deferred", "install", "restore", "run_program"]
