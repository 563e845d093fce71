"""The one timing rule of the benchmark scripts: the best of ``n`` runs (on a shared machine, the minimum is the
time the work takes; the rest is other work)."""
import time


def best(fn, n: int = 3) -> float:
    """Seconds of the fastest of ``n`` calls of ``fn()``."""
    t_best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best
