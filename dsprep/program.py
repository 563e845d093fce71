"""The ``dsprep`` program: the console script's entry point (and ``python -m dsprep``).

Its signal handlers are installed before anything else is imported, so Ctrl-C or SIGTERM at any moment of a run,
even while Python is still loading, ends it with one line and exit code 130 / 143, never a traceback.
"""
import signal
import sys


def _early(signum, frame):
    raise KeyboardInterrupt(signum)


def run() -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early)
    try:
        from . import signals
        signals.install(program=True)  # from here on an interrupt is dsprep's Interrupted (a KeyboardInterrupt)
        from .cli import main
        signals.run_program(lambda: main(prog_name="dsprep"))
    except KeyboardInterrupt as e:  # before the command line was ready, or after it ended
        signum = getattr(e, "signum", None) or (e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT)
        what = "Ctrl-C" if signum == signal.SIGINT else f"signal {signal.Signals(signum).name}"
        for s in (signal.SIGINT, signal.SIGTERM):  # this is the run's one line: nothing may follow it
            signal.signal(s, signal.SIG_IGN)
        print(f"interrupted by {what}: stopped before any work started", file=sys.stderr)
        from .signals import leave
        leave(128 + signum)


if __name__ == "__main__":  # pragma: no cover
    run()
