"""Progress bars and the one-line summaries every long command ends with."""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Iterable, List, Optional, Tuple

from tqdm import tqdm


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: Optional[str] = None,
             quiet: bool = False, unit: str = "img"):
    """A tqdm bar on stderr; silent with ``--quiet`` or when stderr is not a terminal."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=quiet or not sys.stderr.isatty())


class Summary:
    """Counts what a command did; :meth:`line` renders ``"<verb>: 13 images, 2 skipped (...) -> out/ in 0.4 s"``."""

    def __init__(self, verb: str):
        self.verb = verb
        self.t0 = time.perf_counter()
        self.counts: Counter = Counter()
        self.skipped: List[Tuple[str, str]] = []

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def skip(self, file: str, reason: str) -> None:
        self.skipped.append((file, reason))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def line(self, out: Optional[str] = None, order: Optional[List[str]] = None) -> str:
        keys = list(order or []) + [k for k in self.counts if k not in (order or [])]
        parts = [f"{self.counts[k]} {k}" for k in keys if k in self.counts or k in (order or [])]
        if self.skipped:
            reasons = Counter(_reason_kind(r) for _, r in self.skipped)
            parts.append(f"{len(self.skipped)} skipped (" + ", ".join(f"{n} {k}" for k, n in reasons.items()) + ")")
        text = f"{self.verb}: " + ", ".join(parts)
        if out:
            text += f" -> {out}"
        return text + f" in {self.seconds:.1f} s"

    def details(self) -> List[str]:
        return [f"  skipped {f}: {r}" for f, r in self.skipped]


def _reason_kind(reason: str) -> str:
    # "path: what is wrong (detail)" -> "what is wrong"
    text = reason.split(": ", 1)[-1]
    return text.split(" (", 1)[0][:60]
